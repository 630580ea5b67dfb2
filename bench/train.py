"""Train on Fashion-MNIST PNGs with the default TrainConfig; prints one line.

Default: the first 5,000 training images, val 0.2 stratified by class, 5
folds dealt round-robin within each class: 5 fold models + the final model,
reporting out-of-sample and val accuracy and the wall time of `train.run`
(PNG decoding included). Target on 2 CPU cores: under 180 s, out-of-sample
accuracy at least 0.85. Measured on an idle 2-core machine (2026-12-03): 167 s,
0.888 (with horizontal flips, as before: 0.884); letters 0.989 (flips: 0.978);
Fashion-MNIST with 10 % uniform noise, scored against the true labels: 0.871
with flips, 0.877 without (that run also averaged each fold's last 3 epochs,
which changed nothing on the clean runs and was left out).

--dataset letters: the same on 5,000 rendered letters (tests/letters.py, 20
classes). --noise R: plant uniform label noise at rate R (tests/noise.py,
seeded) before training; out-of-sample accuracy is then measured against the
true labels, which is what the mislabel detector's evidence is worth.

--full (for a GPU machine): all 60,000 training images (val 0.1) and the
10,000 test images as the test split, 15 epochs at batch size 128; by
default only the final model (--folds 5 adds the out-of-sample folds).
Target: test accuracy at least 0.93 in under a minute of training.

Run: .venv/bin/python bench/train.py [--dataset fmnist|letters] [--noise R] [--full] [--folds N] [--epochs N] [--batch-size N] [--device cpu|cuda|mps] [--verbose]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.training import train  # noqa: E402
from app.training.spec import Item, TrainConfig  # noqa: E402
from tests import fmnist, letters, noise  # noqa: E402

FULL = {"epochs": 15, "batch_size": 128}  # 60,000 images: more epochs are cheap on a GPU and pay off


class Quiet:
    """Hooks that print epochs and log lines to stderr with --verbose, and never cancel."""

    def __init__(self, verbose: bool):
        self.verbose = verbose

    def progress(self, fraction: float, message: str) -> None:
        pass

    def epoch(self, stage: str, epoch: int, metrics: dict) -> None:
        if self.verbose:
            shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
            print(f"  {stage} epoch {epoch}: {shown}", file=sys.stderr)

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"  {message}", file=sys.stderr)

    def cancelled(self) -> bool:
        return False


def write(folder: Path, images: np.ndarray, prefix: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, pixels in enumerate(images):
        path = folder / f"{prefix}-{i:05d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


def items_for(paths: list[str], labels: np.ndarray, *, val: float, folds: int, seed: int = 0,
              split: str | None = None, first_id: int = 0, source: str = "fashion-mnist") -> list[Item]:
    """Val share per class (seeded), folds round-robin within each class; `split` forces one split."""
    rng = np.random.default_rng(seed)
    out: dict[int, Item] = {}
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val = 0 if split else round(len(members) * val)
        for pos, i in enumerate(members.tolist()):
            out[i] = Item(image_id=first_id + i, path=paths[i], label=int(c),
                          split=split or ("val" if pos < n_val else "train"), fold=pos % folds,
                          source=source)
    return [out[i] for i in range(len(paths))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="60,000 + 10,000 test images (for a GPU)")
    parser.add_argument("--folds", type=int, help="default 5; 1 with --full (final model only)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, help=f"default {TrainConfig().epochs}; {FULL['epochs']} with --full")
    parser.add_argument("--batch-size", type=int, help=f"default {TrainConfig().batch_size}; "
                                                       f"{FULL['batch_size']} with --full")
    parser.add_argument("--dataset", choices=("fmnist", "letters"), default="fmnist")
    parser.add_argument("--noise", type=float, default=0.0, help="uniform label noise planted before training")
    parser.add_argument("--verbose", action="store_true", help="per-epoch metrics on stderr")
    args = parser.parse_args()
    if args.full and args.dataset != "fmnist":
        parser.error("--full is Fashion-MNIST's 60,000 + 10,000 images")
    folds = args.folds or (1 if args.full else 5)
    config = replace(TrainConfig(), device=args.device, **(FULL if args.full else {}))
    config = replace(config, epochs=args.epochs or config.epochs, batch_size=args.batch_size or config.batch_size)
    with tempfile.TemporaryDirectory(prefix="loupe-bench-train-") as tmp:
        if args.dataset == "letters":
            classes = letters.CLASSES
            images, truth = letters.load(5000)
        else:
            classes = fmnist.CLASSES
            images, truth = fmnist.load("train", None if args.full else 5000)
        labels = truth
        if args.noise:
            labels, _ = noise.uniform(truth, np.random.default_rng(0), args.noise, len(classes))
        paths = write(Path(tmp, "train"), images, "train")
        items = items_for(paths, labels, val=0.1 if args.full else 0.2, folds=folds, source=args.dataset)
        if args.full:
            test_images, test_labels = fmnist.load("test")
            test_paths = write(Path(tmp, "test"), test_images, "test")
            items += items_for(test_paths, test_labels, val=0, folds=folds, split="test", first_id=len(paths))
        start = time.perf_counter()
        result = train.run(items, classes, config, Quiet(args.verbose), Path(tmp, "work"))
        elapsed = time.perf_counter() - start
    val = result.final["val"]["accuracy"]
    if args.full:
        fitting = sum(v for k, v in result.timings.items() if k.startswith(("fold", "final")))
        folds_part = f"{folds} folds + final (training {fitting:.0f} s, final model" if folds > 1 else "final (training"
        oos = f", out-of-sample accuracy {result.metrics['accuracy']:.3f}" if result.metrics else ""
        print(f"train --full: {len(paths)} + {len(test_paths)} test images, {folds_part} "
              f"{result.timings['final']:.0f} s) on {result.device} in {elapsed:.0f} s: "
              f"test accuracy {result.final['test']['accuracy']:.3f}, val accuracy {val:.3f}{oos}")
    else:
        probs = np.array([result.out_of_sample[i] for i in range(len(paths))])
        noisy = f", {args.noise:.0%} uniform noise" if args.noise else ""
        print(f"train {args.dataset}{noisy}: {len(items)} images, {folds} folds + final on {result.device} in "
              f"{elapsed:.0f} s: out-of-sample accuracy {(probs.argmax(1) == truth).mean():.3f} (against the true "
              f"labels), val accuracy {val:.2f}")


if __name__ == "__main__":
    main()
