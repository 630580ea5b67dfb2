"""Perceptual hash (64-bit DCT pHash) and Hamming distance, in numpy only."""

from __future__ import annotations

import numpy as np
from PIL import Image

HASH_SIZE = 8
SAMPLE_SIZE = 32


def _dct_matrix(n: int) -> np.ndarray:
    """The (unnormalised) DCT-II basis: row k holds cos(pi * (2m + 1) * k / 2n)."""
    k = np.arange(n)[:, None]
    m = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * m + 1) * k / (2 * n))


_DCT = _dct_matrix(SAMPLE_SIZE)


def phash(image: Image.Image) -> int:
    """Perceptual hash of an image, as a signed 64-bit integer.

    The image is reduced to 32x32 grayscale, transformed with a 2-D DCT, and
    the 8x8 lowest frequencies (top-left, DC term included) are compared to
    their median: one bit per coefficient, set where it is above the median.

    Parameters
    ----------
    image : PIL.Image.Image
        Any mode Pillow can convert to ``"L"``; colour is ignored.

    Returns
    -------
    int
        The 64 bits, row-major with the DC term as the most significant bit,
        read as a signed int64 (SQLite has no unsigned integers).
        Visually similar images have hashes a small `hamming` distance apart
        (a resized or re-encoded copy: a few bits; unrelated images: ~32).
    """
    small = image.convert("L").resize((SAMPLE_SIZE, SAMPLE_SIZE), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float64)
    coeffs = (_DCT @ pixels @ _DCT.T)[:HASH_SIZE, :HASH_SIZE]
    bits = coeffs > np.median(coeffs)
    return int(np.packbits(bits.ravel()).view(">i8")[0])


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned).

    Parameters
    ----------
    a, b : int
        Hashes as returned by `phash`.

    Returns
    -------
    int
        0 (identical) to 64; lower means more alike.
    """
    return ((a ^ b) & 0xFFFF_FFFF_FFFF_FFFF).bit_count()


LOOK_SIZE = 16


def look(image: Image.Image) -> np.ndarray:
    """A second, independent fingerprint: the image as 16x16 grayscale pixels (uint8, 256 values).

    pHash keeps only the signs of 64 low DCT frequencies against their median,
    so look-alike shapes (two different sneakers, centred on black) collide.
    The pixels keep intensities and where they are; `alike` compares them.
    """
    if image.format == "JPEG":  # libjpeg decodes at 1/2..1/8 scale, down to twice the look's size: 5x faster
        image.draft("L", (2 * LOOK_SIZE, 2 * LOOK_SIZE))
    small = image.convert("L").resize((LOOK_SIZE, LOOK_SIZE), Image.Resampling.LANCZOS)
    return np.asarray(small, dtype=np.uint8).ravel()


def alike(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation between looks, row by row: 1.0 the same picture (brightness and contrast aside).

    Parameters
    ----------
    a, b : ndarray of uint8, shape (N, 256) or (256,)

    Returns
    -------
    ndarray of float, shape (N,) (or a 0-d array); a flat image correlates 0 with anything.
    """
    x = np.atleast_2d(a).astype(np.float64)
    y = np.atleast_2d(b).astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    y -= y.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    return np.divide((x * y).sum(axis=1), norm, out=np.zeros(len(x)), where=norm > 0)
