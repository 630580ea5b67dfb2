"""Files that should not import cleanly, and the images to build them from (all in memory)."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from functools import cache

import numpy as np
from PIL import Image

from tests import fmnist


def encoded(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


@cache
def fmnist_items() -> np.ndarray:
    """The first 50 Fashion-MNIST images (read once: the file is 26 MB of gzip)."""
    return fmnist.load("train", 50)[0]


def photo(width: int = 640, height: int = 480, seed: int = 0) -> Image.Image:
    """An RGB image with structure (an upscaled Fashion-MNIST item over a gradient), not flat colour."""
    rng = np.random.default_rng(seed)
    item = Image.fromarray(fmnist_items()[seed % 50]).resize((width, height), Image.Resampling.BICUBIC)
    gray = np.asarray(item, dtype=np.float32)
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    rgb = np.stack(np.broadcast_arrays(gray * 0.8 + 50 * x, gray * 0.6 + 80 * y, 255 - gray * 0.7), axis=-1)
    rgb += rng.normal(0, 4, rgb.shape).astype(np.float32)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def fmnist_png(index: int = 0) -> bytes:
    return encoded(Image.fromarray(fmnist_items()[index]), "PNG")


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    """The first `keep` share of a file, as an interrupted download leaves it."""
    return data[: int(len(data) * keep)]


def truncated_jpeg(width: int = 640, height: int = 480) -> bytes:
    return truncated(encoded(photo(width, height), "JPEG", quality=90))


def truncated_png() -> bytes:
    return truncated(encoded(photo(200, 150), "PNG"), 0.6)


def not_an_image() -> bytes:
    return b"This is a text file that someone named holiday.jpg.\n" * 20


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (e.g. 30000 x 30000) but holds almost nothing:
    a few bytes on disk, gigabytes once decoded (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def png16_rgb(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), from a (H, W, 3) uint16 array."""
    height, width, _ = pixels.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\0" + pixels[y].astype(">u2").tobytes() for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def zip_bytes(entries: dict[str, bytes], *, symlinks: dict[str, str] | None = None) -> bytes:
    """A zip holding `entries` (names written exactly as given, '..' and leading '/' included)
    and `symlinks` (name -> target) stored as Unix symbolic links."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.filename = name  # ZipInfo would otherwise tidy some names
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buf.getvalue()


def corrupt_zip() -> bytes:
    """Starts like a zip, then garbage: no central directory."""
    return zip_bytes({"a.png": fmnist_png(0)})[:40] + b"\x00garbage" * 50
