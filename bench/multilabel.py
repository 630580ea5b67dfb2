"""The multi-label benchmark: tiled real images, training metrics, and label issues per (image, class) against
cleanlab's multi-label method on the same out-of-sample probabilities. Prints one line per cell.

Data (tests/tiles.py): Fashion-MNIST or rendered letters, four 28x28 images
tiled 2x2 into a 56x56 image whose set is its tiles' classes (tiles blank at
0.3, so sets hold 0-4 classes). Missing tags (a class dropped from a set) and
wrong tags (a class added that the image does not show; with --lookalike a
class confusable with one in the set) are planted at the given rates. Splits
and folds by iterative stratification (app.snapshots.stratify), test 0.2, val
0.1 of the rest, 5 folds; the default TrainConfig at image_size 56. The test
split is scored against the true sets; the folds' out-of-sample
probabilities of train + val go to both detectors, scored per (image, class)
and per image against the planted errors.

cleanlab (a benchmark dependency only: `.venv/bin/pip install cleanlab`):
`multilabel_classification.filter.find_multilabel_issues_per_class` (its
defaults) per pair, `find_label_issues` per image.

--save F writes the probabilities and sets (npz) so that --probs F compares
detectors again without training: what a GPU run hands back to a CPU machine.

Measured (2026-12-04; the GPU cells on an H200, the CPU ones on 2 cores), per (image, class) F1 of Loupe's
flags against cleanlab's, and the trained model on the test split against the true sets:

    fmnist 10,000, 10/2 %          0.692 vs 0.647   micro-F1 0.841  macro-F1 0.852  mAP 0.904  (47 s training)
    fmnist 10,000, 5/5 %           0.724 vs 0.672   micro-F1 0.848  macro-F1 0.863  mAP 0.907
    fmnist 10,000, 20/1 %          0.696 vs 0.641   micro-F1 0.851  macro-F1 0.853  mAP 0.903
    fmnist 10,000, 10/3 % look     0.633 vs 0.593   micro-F1 0.839  macro-F1 0.852  mAP 0.903
    letters 10,000, 10/2 %         0.937 vs 0.934   micro-F1 0.956  macro-F1 0.955  mAP 0.986
    letters 10,000, 10/3 % look    0.484 vs 0.505   micro-F1 0.877  macro-F1 0.880  mAP 0.951
    fmnist 3,000 (CPU), 10/2 %     0.595 vs 0.552   micro-F1 0.781  macro-F1 0.795  mAP 0.844  (246 s)
    letters 3,000 (CPU), 10/2 %    0.494 vs 0.487   (an earlier run, scored against the given sets)
    letters 3,000 (CPU), 10/3 % l. 0.278 vs 0.279   micro-F1 0.595  macro-F1 0.609  mAP 0.651  (396 s)

Run: .venv/bin/python bench/multilabel.py [--dataset fmnist|letters] [--n 3000] [--missing 0.1] [--wrong 0.02]
     [--lookalike] [--epochs E] [--device D] [--save F | --probs F]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.quality.set_issues import detect_sets  # noqa: E402
from app.snapshots.stratify import assign_sets  # noqa: E402
from app.training import multilabel, train  # noqa: E402
from app.training.spec import Item, TrainConfig  # noqa: E402
from bench.train import Quiet  # noqa: E402
from tests import letters, tiles  # noqa: E402

TEST_ID = 10_000_000


def lookalikes(dataset: str, classes: list[str]) -> dict[int, list[int]]:
    if dataset == "letters":
        index = {c: i for i, c in enumerate(classes)}
        return {index[k]: [index[v] for v in vs] for k, vs in letters.LOOKALIKE.items()}
    pairs = {"t-shirt": ["shirt"], "shirt": ["t-shirt", "pullover", "coat"], "pullover": ["coat", "shirt"],
             "coat": ["pullover", "shirt"], "sandal": ["sneaker"], "sneaker": ["sandal", "ankle-boot"],
             "ankle-boot": ["sneaker"], "dress": ["coat"], "trouser": ["dress"], "bag": ["pullover"]}
    index = {c: i for i, c in enumerate(classes)}
    return {index[k]: [index[v] for v in vs] for k, vs in pairs.items()}


def train_probs(args, images, given, truth_sets, classes) -> dict:
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(len(images))]
    placed = assign_sets(shas, given, val=0.08, test=0.2, seed=0, folds=5)
    config = replace(TrainConfig(), image_size=56, device=args.device, epochs=args.epochs or TrainConfig().epochs)
    with tempfile.TemporaryDirectory(prefix="loupe-bench-ml-") as tmp:
        items = []
        for i, (pixels, s, (split, fold)) in enumerate(zip(images, given, placed)):
            path = Path(tmp, f"{i:05d}.png")
            Image.fromarray(pixels).save(path)
            items.append(Item(image_id=i, path=str(path), label=-1, split=split, fold=fold, source=args.dataset,
                              classes=tuple(s)))
        test = np.array([i for i, (split, _) in enumerate(placed) if split == "test"])
        start = time.perf_counter()
        # The test images also go in as "unlabelled": their suggestions are the final model's probabilities,
        # scored here against the true sets.
        result = train.run(items, classes, config, Quiet(args.verbose), Path(tmp, "work"),
                           unlabelled=[(TEST_ID + int(i), items[i].path) for i in test])
        elapsed = time.perf_counter() - start
    test_probs = np.array([result.suggestions[TEST_ID + int(i)] for i in test])
    return {"result": result, "elapsed": elapsed, "test": test, "test_probs": test_probs}


def prf(flags: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = float((flags & truth).sum())
    p, r = tp / max(1, flags.sum()), tp / max(1, truth.sum())
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def compare(given: np.ndarray, probs: np.ndarray, planted: np.ndarray) -> dict:
    found = detect_sets(given, probs)
    truth = planted != 0
    out = {"loupe_pair": prf(found["issues"], truth), "loupe_image": prf(found["issues"].any(1), truth.any(1)),
           "loupe_n": int(found["issues"].sum())}
    try:
        from cleanlab.multilabel_classification.filter import find_label_issues, find_multilabel_issues_per_class
    except ImportError:
        return out
    labels = [np.flatnonzero(row).tolist() for row in given]
    per_class = np.asarray(find_multilabel_issues_per_class(labels, probs)).T
    if per_class.shape != given.shape:
        per_class = per_class.T
    per_image = np.asarray(find_label_issues(labels, probs))
    out.update(cleanlab_pair=prf(per_class, truth), cleanlab_image=prf(per_image, truth.any(1)),
               cleanlab_n=int(per_class.sum()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("fmnist", "letters"), default="fmnist")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--missing", type=float, default=0.1)
    parser.add_argument("--wrong", type=float, default=0.02)
    parser.add_argument("--lookalike", action="store_true")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--save")
    parser.add_argument("--probs")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if args.probs:
        saved = np.load(args.probs, allow_pickle=False)
        run_from_saved(saved, args)
        return
    images, truth_sets, classes = tiles.load(args.dataset, args.n)
    rng = np.random.default_rng(1)
    given_sets, planted = tiles.plant(truth_sets, len(classes), rng, missing=args.missing, wrong=args.wrong,
                                      lookalike=lookalikes(args.dataset, classes) if args.lookalike else None)
    done = train_probs(args, images, given_sets, truth_sets, classes)
    result = done["result"]
    truth = multilabel.as_targets(truth_sets, len(classes)) > 0
    given = multilabel.as_targets(given_sets, len(classes)) > 0
    ids = np.array(sorted(result.out_of_sample))
    oos = np.array([result.out_of_sample[i] for i in ids])
    if args.save:
        np.savez(args.save, ids=ids, probs=oos, given=given, truth=truth, planted=planted,
                 thresholds=np.array(result.thresholds), test=done["test"], test_probs=done["test_probs"])
    test = done["test"]
    tuned = multilabel.evaluate_sets(truth[test], done["test_probs"], result.thresholds, classes=classes)
    half = multilabel.evaluate_sets(truth[test], done["test_probs"], [0.5] * len(classes), classes=classes)
    print(f"multilabel {args.dataset} n={args.n} missing={args.missing} wrong={args.wrong}"
          f"{' lookalike' if args.lookalike else ''}: {len(ids)} out-of-sample in {done['elapsed']:.0f} s on "
          f"{result.device}; test (true sets, {len(test)}) micro-F1 {tuned['micro_f1']:.3f} macro-F1 "
          f"{tuned['macro_f1']:.3f} mAP {tuned['map']:.3f} exact {tuned['accuracy']:.3f} (at 0.5: micro-F1 "
          f"{half['micro_f1']:.3f} macro-F1 {half['macro_f1']:.3f}); out-of-sample micro-F1 "
          f"{result.metrics['micro_f1']:.3f}; " + report(compare(given[ids], oos, planted[ids])))


def report(r: dict) -> str:
    line = (f"loupe per pair P/R/F1 {r['loupe_pair'][0]:.3f}/{r['loupe_pair'][1]:.3f}/{r['loupe_pair'][2]:.3f} "
            f"({r['loupe_n']} flags), per image F1 {r['loupe_image'][2]:.3f}")
    if "cleanlab_pair" in r:
        line += (f"; cleanlab per pair {r['cleanlab_pair'][0]:.3f}/{r['cleanlab_pair'][1]:.3f}/"
                 f"{r['cleanlab_pair'][2]:.3f} ({r['cleanlab_n']}), per image F1 {r['cleanlab_image'][2]:.3f}")
    return line


def run_from_saved(saved, args) -> None:
    ids = saved["ids"]
    r = compare(saved["given"][ids], saved["probs"], saved["planted"][ids])
    print(f"multilabel (saved {args.probs}): {len(ids)} out-of-sample; " + report(r))


if __name__ == "__main__":
    main()
