"""Real embeddings for the benchmarks: Fashion-MNIST through the app's small CNN, trained briefly here.

The net (app.training.nets.SmallCNN, 256-d penultimate layer) is trained for
2 epochs on the first 10,000 training images at 28 px, seeded, then exported
the way a train job exports it (nets.Exported: normalisation inside, `embed`
= the penultimate layer). Images go in as the worker reads them
(app.training.data.load: RGB, resized to 28 px). The model and the 70,000
embeddings are cached under bench/out/ (about 2 minutes on two cores the first time).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import fmnist  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
SIZE = 28
TRAIN = 10_000


def _rgb(images: np.ndarray) -> np.ndarray:
    return np.repeat(images[..., None], 3, axis=-1)


def model():
    """The trained, exported net (nets.Exported), from the cache when there."""
    import torch

    from app.training import nets

    path = OUT / "fmnist-smallcnn.pt"
    torch.manual_seed(0)
    net = nets.build("smallcnn", 10).model
    images, labels = fmnist.load("train", TRAIN)
    x = torch.from_numpy(_rgb(images)).permute(0, 3, 1, 2).float() / 255
    mean, std = [float(x.mean())] * 3, [float(x.std())] * 3
    exported = nets.Exported(net, mean, std)
    if path.is_file():
        exported.load_state_dict(torch.load(path))
        return exported.eval()
    y = torch.from_numpy(labels)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(2):
        exported.train()
        for batch in torch.randperm(len(x), generator=gen).split(128):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(exported(x[batch]), y[batch]).backward()
            opt.step()
    OUT.mkdir(exist_ok=True)
    torch.save(exported.state_dict(), path)
    return exported.eval()


def embed(net, rgb: np.ndarray) -> np.ndarray:
    """float32 (N, 256) embeddings of uint8 (N, S, S, 3) images already at the net's size."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(rgb), 1024):
            x = torch.from_numpy(np.ascontiguousarray(rgb[start:start + 1024])).permute(0, 3, 1, 2).float() / 255
            out.append(net.embed(x).numpy())
    return np.concatenate(out).astype(np.float32)


def embed_files(net, blobs: list[bytes]) -> np.ndarray:
    """Embeddings of encoded image files, decoded as the worker decodes them (data.load at SIZE px)."""
    from app.training import data

    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for i, blob in enumerate(blobs):
            path = Path(tmp) / f"{i}"
            path.write_bytes(blob)
            rows.append(data.load(str(path), SIZE))
    return embed(net, np.stack(rows))


def embeddings() -> tuple[np.ndarray, np.ndarray]:
    """(labels (70000,), float32 (70000, 256)): every Fashion-MNIST image, train then test."""
    path = OUT / "fmnist-embeddings.npz"
    if path.is_file():
        got = np.load(path)
        return got["labels"], got["vectors"]
    net = model()
    parts = [fmnist.load(split) for split in ("train", "test")]
    labels = np.concatenate([p[1] for p in parts])
    vectors = embed(net, _rgb(np.concatenate([p[0] for p in parts])))
    np.savez(path, labels=labels, vectors=vectors)
    return labels, vectors


if __name__ == "__main__":
    labels, vectors = embeddings()
    print(f"fmnist embeddings: {vectors.shape}")
