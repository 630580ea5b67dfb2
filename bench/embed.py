"""Embed jobs' input size: same-class share of the 10 nearest neighbours against embedding time, per size.

Real Fashion-MNIST images (28 px, grayscale) written as PNG files and sent
through the embed job's own path (data.decode_all at S px -> backbones.embedder
-> embed.embed_batches), then exact cosine neighbours (similar.normalise,
similar.nearest). One line per size: share@10 (chance 0.1), seconds per 1,000
images (decode + embed, this machine's torch threads), the embedding dimension.

Weights: LOUPE_EMBED_WEIGHTS or torchvision's cache when present; otherwise a
randomly initialised backbone (seeded), and the line says so: a random
ResNet is a fixed random feature extractor, well above chance on FMNIST.

Run: .venv/bin/python bench/embed.py [--n 2000] [--sizes 32,64,112] [--backbone resnet18] [--split train|test]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from app.embeddings import similar  # noqa: E402
from app.errors import TrainingError  # noqa: E402
from app.training import backbones, data, embed, nets  # noqa: E402
from tests import fmnist  # noqa: E402


def share_at(vectors: np.ndarray, labels: np.ndarray, k: int) -> float:
    rows = similar.normalise(vectors)
    shares = [np.mean(labels[similar.nearest(rows, rows[q], k, exclude=q)[0]] == labels[q]) for q in range(len(rows))]
    return float(np.mean(shares))


def model_for(name: str, tmp: Path):
    try:
        path = backbones.weights_file(name, os.environ.get("LOUPE_EMBED_WEIGHTS"))
        return backbones.embedder(name, path), f"weights {path.name}"
    except TrainingError:
        torch.manual_seed(0)
        path = tmp / "random.pth"
        torch.save(nets._factory(name)[0](weights=None).state_dict(), path)  # noqa: SLF001
        return backbones.embedder(name, path), "RANDOM weights (no pretrained file here)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--sizes", default="32,64,112")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--split", default="test")
    ap.add_argument("--start", type=int, default=0)
    args = ap.parse_args()
    images, labels = fmnist.load(args.split, args.start + args.n)
    images, labels = images[args.start:], labels[args.start:]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = []
        for i, img in enumerate(images):
            paths.append(str(tmp / f"{i:05d}.png"))
            Image.fromarray(img).save(paths[-1])
        model, which = model_for(args.backbone, tmp)
        for size in (int(s) for s in args.sizes.split(",")):
            t0 = time.perf_counter()
            x, errors = data.decode_all(paths, size, progress=lambda d: None, cancelled=lambda: False)
            vectors = embed.embed_batches(model, x, embed.DEFAULT_BATCH, torch.device("cpu"))
            seconds = time.perf_counter() - t0
            assert not errors and np.isfinite(vectors).all()
            print(f"embed {args.backbone} {which} fmnist-{args.split}[{args.start}:{args.start + args.n}] "
                  f"size={size}px share@10={share_at(vectors, labels, 10):.3f} "
                  f"per_1000={1000 * seconds / len(paths):.1f}s dim={vectors.shape[1]} "
                  f"threads={torch.get_num_threads()}", flush=True)


if __name__ == "__main__":
    main()
