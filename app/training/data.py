"""Images for training: decoded once into memory, augmented per batch on the training device.

Every image is decoded once per run with Pillow (EXIF orientation applied,
converted to RGB) and resized straight to S x S, ignoring its aspect ratio
("squish": nothing is cropped away, at the cost of some distortion). The
result is one uint8 tensor (N, 3, S, S) in host memory (channels-last
layout, as Pillow decodes); batches are taken
from it, moved to the device, scaled to [0, 1], augmented and normalised
there.

When that tensor would take more than MAX_MEMORY_SHARE of the machine's
memory (a million images at 64 px are 12 GB), it is decoded into a
memory-mapped file in the job's work folder instead: the operating system
keeps in memory what fits and reads the rest back as batches need it, so a
big snapshot trains (more slowly) instead of being refused or swapping the
worker to death. The file goes when the run ends.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

SMALL = 64  # at or below this size, augment by flips only; above, by random resized crops too
MAX_MEMORY_SHARE = 0.5  # of physical memory the decoded images may take


class Unreadable(Exception):
    """An image file could not be read; the message names it."""


def load(path: str, size: int) -> np.ndarray:
    """One image as uint8 (size, size, 3)."""
    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: let the decoder downscale by 1/2..1/8 first
            img = ImageOps.exif_transpose(img)
            if img.mode != "RGB":
                img = img.convert("RGBA").convert("RGB") if "transparency" in img.info else img.convert("RGB")
            img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
            return np.asarray(img, dtype=np.uint8)
    except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many kinds (OSError, SyntaxError, ...)
        raise Unreadable(f"cannot read image {path}: {exc}") from None


SPILL_NAME = "decoded-images.npy"


class TooBig(Exception):
    """The decoded images fit neither in memory nor on the work folder's disk; the message says so."""


def spill_file(count: int, size: int, workdir: Path) -> Path | None:
    """None when `count` decoded images of `size` px fit in memory; else the file under `workdir` to
    decode them into (memory-mapped). Raises TooBig when the disk cannot hold them either."""
    need = count * 3 * size * size
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    if need <= MAX_MEMORY_SHARE * total:
        return None
    path = Path(workdir) / SPILL_NAME
    path.unlink(missing_ok=True)  # an earlier attempt's: its space counts as free
    free = shutil.disk_usage(workdir).free
    if need > 0.9 * free:
        raise TooBig(f"{count} images at {size} px need {need / 1e9:.1f} GB: more than half of this machine's "
                     f"{total / 1e9:.1f} GB of memory, and more than the {free / 1e9:.1f} GB free on the disk "
                     f"of {workdir}: try a smaller image size")
    return path


def decode_all(
    paths: Sequence[str],
    size: int,
    *,
    progress: Callable[[int], None],
    cancelled: Callable[[], bool],
    chunk: int = 256,
    spill: Path | None = None,
) -> tuple[torch.Tensor, list[tuple[int, str]]]:
    """All images as uint8 (N, 3, size, size), and (index, message) for those that could not be read.

    Unreadable images are left black; the caller decides whether that is fatal.
    `progress(done)` is called after each chunk; `cancelled()` is checked
    between chunks and stops early (the caller then raises). With `spill`, the
    tensor lives in that file, memory-mapped (see the module docstring).
    """
    shape = (len(paths), size, size, 3)
    if spill is None:
        out = torch.zeros(shape, dtype=torch.uint8)
    else:  # a new file reads as zeros, like torch.zeros: unreadable images stay black here too
        out = torch.from_numpy(np.lib.format.open_memmap(spill, mode="w+", dtype=np.uint8, shape=shape))
    view = out.numpy()
    errors: list[tuple[int, str]] = []

    def one(i: int) -> None:
        try:
            view[i] = load(paths[i], size)
        except Unreadable as exc:
            errors.append((i, str(exc)))

    workers = min(8, max(1, (os.cpu_count() or 1)))
    with ThreadPoolExecutor(workers) as pool:  # Pillow releases the GIL while decoding and resizing
        for start in range(0, len(paths), chunk):
            if cancelled():
                break
            list(pool.map(one, range(start, min(start + chunk, len(paths)))))
            progress(min(start + chunk, len(paths)))
    return out.permute(0, 3, 1, 2), sorted(errors)  # (N, 3, S, S) in channels-last memory: no copy


def channel_stats(images: torch.Tensor, limit: int = 10_000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in [0, 1] units, from up to `limit` evenly spaced images."""
    step = max(1, len(images) // limit)
    x = images[::step].float().div_(255)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return mean.tolist(), std.tolist()


def batches(n: int, batch_size: int, *, shuffle: bool, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Index batches over range(n); a trailing batch of one joins the previous one (batch norm needs two)."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    out = list(order.split(batch_size))
    if len(out) > 1 and len(out[-1]) == 1:
        out[-2] = torch.cat([out[-2], out.pop()])
    return out


def to_device(images: torch.Tensor, index: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch as float in [0, 1] on `device` (moved as uint8: a quarter of the bytes)."""
    if images.device.type == device.type:
        return images[index.to(device)].float().div_(255)
    batch = images[index]
    if device.type == "cuda":
        batch = batch.pin_memory().to(device, non_blocking=True)
    else:
        batch = batch.to(device)
    return batch.float().div_(255)


def augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Above SMALL px: a per-image random horizontal flip and random resized crop. Small images: none.

    Small images are not augmented: in a short training run, shifts cost more
    accuracy than they add (Fashion-MNIST, 4,000 images, 8 epochs, accuracy on
    a held-out fold: no augmentation 0.881, flip 0.872, flip and 1 px shifts
    0.855, flip and 2 px shifts 0.846), and a mirror image is another class
    where handedness matters: out-of-sample accuracy of the 5,000-image 5-fold
    job (bench/train.py) with flips / without: Fashion-MNIST 0.884 / 0.887,
    rendered letters 0.978 / 0.989 (half the errors gone). Larger images get a crop of 35-100 %
    of the area (aspect 3:4 to 4:3) resampled back to full size, as
    torchvision's RandomResizedCrop, drawn per image in one batched affine
    resampling on the device (torchvision.transforms.v2 draws one set of
    parameters per call, i.e. the same crop for the whole batch).
    """
    n, _, h, w = x.shape
    dev = x.device

    def rand(count: int) -> torch.Tensor:
        return torch.rand(count, generator=generator).to(dev)

    if max(h, w) <= SMALL:
        return x
    flip = rand(n) < 0.5
    area = 0.35 + 0.65 * rand(n)
    ratio = torch.exp((rand(n) - 0.5) * 2 * math.log(4 / 3))
    sx = (area * ratio).sqrt().clamp(max=1)
    sy = (area / ratio).sqrt().clamp(max=1)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0] = torch.where(flip, -sx, sx)
    theta[:, 1, 1] = sy
    theta[:, 0, 2] = (1 - sx) * (2 * rand(n) - 1)
    theta[:, 1, 2] = (1 - sy) * (2 * rand(n) - 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
