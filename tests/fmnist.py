"""Real images for tests and benchmarks: Debian's dataset-fashion-mnist (idx files)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def load(split: str = "train", n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int (N,)) from the installed dataset."""
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(ROOT / f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(ROOT / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8).astype(int)
    return (images[:n], labels[:n]) if n else (images, labels)


def write_pngs(out: Path, n: int, *, start: int = 0, folders: bool = False) -> list[Path]:
    """Write n Fashion-MNIST images as PNG files; in class folders when `folders`."""
    images, labels = load("train", start + n)
    paths = []
    for i in range(start, start + n):
        d = out / CLASSES[labels[i]] if folders else out
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"fmnist-{i:05d}.png"
        Image.fromarray(images[i]).save(p)
        paths.append(p)
    return paths
