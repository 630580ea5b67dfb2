"""Decode untrusted image bytes once: check, measure, hash, and make thumbnail and preview.

Runs in worker processes, so it depends on Pillow and numpy only.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.images.hashing import phash

# We check the size ourselves (before decoding) so the message can name the limit.
Image.MAX_IMAGE_PIXELS = None

# Pillow format name -> extension of the stored original. Only these decoders
# ever see imported bytes.
FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}
_DECODERS = ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"]  # MPO comes through the JPEG decoder
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
JPEG_QUALITY = 85
DRAFT_SLACK = 0.75
_ORIENTATION_TAG = 0x0112
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}


class Unreadable(Exception):
    """This file cannot be imported; the message says why, in a sentence for the user."""


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    thumb_size: int
    preview_size: int


@dataclass(frozen=True)
class Decoded:
    width: int  # full resolution, after EXIF orientation
    height: int
    format: str  # Pillow's name: JPEG, PNG, ...
    mode: str  # of the original
    ext: str  # for the stored original
    phash: int
    thumb: bytes  # JPEG
    preview: bytes  # JPEG


def megapixels(n: int) -> str:
    return f"{n / 1e6:.1f} MP"


def size_text(n: int) -> str:
    """Bytes for people: 512 bytes, 12.3 kB, 4.5 MB, 8.0 GB."""
    if n < 10_000:
        return f"{n:,} bytes"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def too_big(size: int, limit: int) -> Unreadable:
    return Unreadable(f"file is {size_text(size)}, over the limit of {size_text(limit)} (LOUPE_MAX_FILE_BYTES)")


def decode(data: bytes, limits: Limits) -> Decoded:
    """Fully decode `data` (so truncation is caught) and derive what the app shows."""
    if not data:
        raise Unreadable("empty file (0 bytes)")
    img = _open(data)
    width, height = img.size
    if width * height > limits.max_pixels:
        raise Unreadable(
            f"image is {width}x{height} ({megapixels(width * height)}), over the limit of "
            f"{megapixels(limits.max_pixels)} (LOUPE_MAX_PIXELS)"
        )
    if width == 0 or height == 0:
        raise Unreadable(f"image is {width}x{height} pixels: nothing to show")
    fmt, mode = ("JPEG" if img.format == "MPO" else img.format), img.mode
    if _orientation(img) in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    if fmt == "JPEG":
        # libjpeg can decode at 1/2, 1/4 or 1/8 scale, much faster than in full
        # (it still reads every byte, so truncation is still caught). We accept
        # a preview down to DRAFT_SLACK of preview_size when that saves a resize:
        # a 4000x3000 photo decodes at 1/4 straight to a 1000x750 preview.
        scale = limits.preview_size * DRAFT_SLACK / max(img.size)
        if scale < 1:
            img.draft(None, (math.ceil(img.size[0] * scale), math.ceil(img.size[1] * scale)))
    try:
        img.load()
    except Exception as exc:  # Pillow raises many kinds on damaged data
        raise Unreadable(f"image data is truncated or damaged ({_reason(exc)})") from None
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # a broken EXIF block should not cost the image
        pass
    img = to_display_mode(img)
    preview = _shrunk(img, limits.preview_size, reducing_gap=2.0)
    thumb = _shrunk(preview, limits.thumb_size, reducing_gap=1.5)
    thumb_bytes = _jpeg(thumb)
    preview_bytes = thumb_bytes if thumb.size == preview.size else _jpeg(preview)
    return Decoded(width, height, fmt, mode, FORMATS[fmt], phash(thumb), thumb_bytes, preview_bytes)


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=_DECODERS)
    except UnidentifiedImageError:
        raise Unreadable("not an image Loupe can read (expected JPEG, PNG, WebP, GIF, BMP or TIFF)") from None
    except Exception as exc:
        raise Unreadable(f"damaged image header ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:
        return 1


def to_display_mode(img: Image.Image) -> Image.Image:
    """RGB or L, with transparency composited over white and high bit depths scaled down."""
    mode = img.mode
    if mode in ("RGB", "L"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_to_uint8(np.asarray(img), sixteen_bit=mode.startswith("I;16")))
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("PA", "RGBa", "La"):
        img = img.convert("LA" if mode == "La" else "RGBA")
    if img.mode == "LA":
        background = Image.new("L", img.size, 255)
        background.paste(img.getchannel("L"), mask=img.getchannel("A"))
        return background
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img.convert("RGB"), mask=img.getchannel("A"))
        return background
    return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...


def _to_uint8(values: np.ndarray, *, sixteen_bit: bool) -> np.ndarray:
    """Grayscale of any depth to 0..255: 16-bit by its high byte, floats by their range."""
    if values.dtype.kind == "f":
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        if lo >= 0 and hi <= 1:
            lo, hi = 0.0, 1.0
        scaled = (np.nan_to_num(values, nan=lo) - lo) * (255 / (hi - lo or 1))
        return np.clip(scaled, 0, 255).astype(np.uint8)
    values = values.astype(np.int64)
    hi = int(values.max(initial=0))
    if hi <= 255 and not sixteen_bit:
        return np.clip(values, 0, 255).astype(np.uint8)
    if hi <= 65535:
        return (np.clip(values, 0, 65535) >> 8).astype(np.uint8)
    return (np.clip(values, 0, None) * (255 / hi)).astype(np.uint8)


def _shrunk(img: Image.Image, size: int, *, reducing_gap: float) -> Image.Image:
    """Fit in size x size; a cheap integer `reduce` first, then Lanczos over the last factor < reducing_gap."""
    if max(img.size) <= size:
        return img
    out = img.copy()
    out.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=reducing_gap)
    return out


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()
