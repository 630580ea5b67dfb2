"""Formats, modes, orientation, derivatives and the perceptual hash, through a real import."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.db.models import Image as ImageRow
from app.images import store
from app.images.decode import Limits, Unreadable, decode
from app.images.hashing import hamming, phash
from app.images.ingest import import_uploads
from tests import fmnist
from tests.images.broken import encoded, photo, png16_rgb, truncated


def _import_one(db, settings, name: str, data: bytes) -> ImageRow:
    report = import_uploads(db, settings, [(name, io.BytesIO(data))], source="formats")
    assert report.rejected == [] and len(report.imported) == 1, report
    with db.reading() as session:
        return session.get(ImageRow, report.imported[0]["id"])


def _derived(settings, row) -> tuple[Image.Image, Image.Image]:
    thumb = Image.open(store.thumb_path(settings, row.sha256))
    preview = Image.open(store.preview_path(settings, row.sha256))
    for img in (thumb, preview):
        assert img.format == "JPEG" and img.mode in ("RGB", "L")
    return thumb, preview


def _rgba_half_transparent() -> Image.Image:
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., 0] = 200  # red where opaque
    rgba[:, :30, 3] = 255  # left half opaque, right half fully transparent (black underneath)
    return Image.fromarray(rgba, "RGBA")


FORMATS = [
    ("photo.jpg", lambda: encoded(photo(64, 48), "JPEG"), "JPEG", "RGB", ".jpg"),
    ("gray.jpg", lambda: encoded(photo(64, 48).convert("L"), "JPEG"), "JPEG", "L", ".jpg"),
    ("cmyk.jpg", lambda: encoded(photo(64, 48).convert("CMYK"), "JPEG"), "JPEG", "CMYK", ".jpg"),
    ("palette.png", lambda: encoded(photo(64, 48).quantize(16), "PNG"), "PNG", "P", ".png"),
    ("alpha.png", lambda: encoded(_rgba_half_transparent(), "PNG"), "PNG", "RGBA", ".png"),
    ("la.png", lambda: encoded(_rgba_half_transparent().convert("LA"), "PNG"), "PNG", "LA", ".png"),
    ("deep.png", lambda: encoded(Image.fromarray(np.full((8, 8), 40000, np.uint16)), "PNG"), "PNG", "I;16", ".png"),
    ("photo.webp", lambda: encoded(photo(64, 48), "WEBP"), "WEBP", "RGB", ".webp"),
    ("photo.bmp", lambda: encoded(photo(64, 48), "BMP"), "BMP", "RGB", ".bmp"),
    ("photo.tiff", lambda: encoded(photo(64, 48), "TIFF"), "TIFF", "RGB", ".tif"),
    ("cmyk.tif", lambda: encoded(photo(64, 48).convert("CMYK"), "TIFF"), "TIFF", "CMYK", ".tif"),
    ("anim.gif", lambda: encoded(photo(64, 48).quantize(32), "GIF"), "GIF", "P", ".gif"),
]


@pytest.mark.parametrize("name,make,fmt,mode,ext", FORMATS, ids=[f[0] for f in FORMATS])
def test_each_format_imports_with_original_bytes_and_jpeg_derivatives(db, settings, name, make, fmt, mode, ext):
    data = make()
    row = _import_one(db, settings, name, data)
    assert (row.format, row.mode) == (fmt, mode)
    assert row.stored_path == f"store/{row.sha256[:2]}/{row.sha256[2:4]}/{row.sha256}{ext}"
    assert store.original_path(settings, row).read_bytes() == data
    assert row.byte_size == len(data)
    thumb, preview = _derived(settings, row)
    assert (row.width, row.height) == preview.size


def test_alpha_is_composited_over_white(db, settings):
    row = _import_one(db, settings, "alpha.png", encoded(_rgba_half_transparent(), "PNG"))
    _, preview = _derived(settings, row)
    rgb = np.asarray(preview.convert("RGB"), dtype=int)
    assert (rgb[:, 45] > 235).all()  # transparent half: white, not the black underneath
    assert abs(rgb[20, 10] - [200, 0, 0]).max() < 30  # opaque half keeps its red


def test_sixteen_bit_is_scaled_not_clipped(db, settings):
    gray = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (16, 1))
    row = _import_one(db, settings, "deep.png", encoded(Image.fromarray(gray), "PNG"))
    _, preview = _derived(settings, row)
    values = np.asarray(preview.convert("L"), dtype=int)[8]
    assert values[0] < 10 and values[-1] > 245 and 100 < values[32] < 160  # a ramp, not all white


def test_sixteen_bit_rgb_png(db, settings):
    pixels = np.zeros((10, 12, 3), np.uint16)
    pixels[..., 2] = 65535
    row = _import_one(db, settings, "deep-rgb.png", png16_rgb(pixels))
    _, preview = _derived(settings, row)
    assert (row.width, row.height) == (12, 10)
    assert abs(np.asarray(preview.convert("RGB"), dtype=int)[5, 5] - [0, 0, 255]).max() < 20


def test_animated_gif_uses_the_first_frame(db, settings):
    frames = [Image.new("P", (20, 20), 0), Image.new("P", (20, 20), 1)]
    for frame in frames:
        frame.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    _, preview = _derived(settings, _import_one(db, settings, "anim.gif", data))
    assert np.asarray(preview.convert("L")).mean() > 240  # frame 0 is white, frame 1 black


@pytest.mark.parametrize("orientation,swapped", [(1, False), (3, False), (6, True), (8, True)])
def test_exif_orientation_gives_oriented_size_and_derivatives(db, settings, orientation, swapped):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encoded(photo(80, 40), "JPEG", exif=exif)
    row = _import_one(db, settings, f"o{orientation}.jpg", data)
    assert (row.width, row.height) == ((40, 80) if swapped else (80, 40))
    thumb, preview = _derived(settings, row)
    assert thumb.size == preview.size == (row.width, row.height)


def test_big_jpeg_decodes_at_reduced_scale_into_a_bounded_preview(db, settings):
    data = encoded(photo(2600, 2000), "JPEG", quality=85)
    row = _import_one(db, settings, "big.jpg", data)
    assert (row.width, row.height) == (2600, 2000)  # full size recorded, though decoded at 1/2
    thumb, preview = _derived(settings, row)
    assert 0.75 * settings.preview_size <= max(preview.size) <= settings.preview_size
    assert max(thumb.size) == settings.thumb_size
    full = phash(Image.open(io.BytesIO(data)))
    assert hamming(row.phash, full) <= 6


def test_truncated_big_jpeg_is_caught_despite_draft_decoding():
    data = encoded(photo(2600, 2000), "JPEG", quality=85)
    limits = Limits(max_pixels=80_000_000, thumb_size=256, preview_size=1280)
    assert decode(data, limits).width == 2600
    for keep in (0.5, 0.99):
        with pytest.raises(Unreadable, match="truncated or damaged"):
            decode(truncated(data, keep), limits)


def test_unsupported_format_is_refused():
    with pytest.raises(Unreadable, match="not an image Loupe can read"):
        decode(encoded(photo(10, 10), "PPM"), Limits(1_000_000, 256, 1280))


def test_phash_of_a_resized_reencoded_copy_is_close():
    images, _ = fmnist.load("train", 50)
    for pixels in images:
        original = Image.fromarray(pixels)
        bigger = original.resize((112, 112), Image.Resampling.BICUBIC)
        copy = Image.open(io.BytesIO(encoded(bigger, "JPEG", quality=70)))
        assert hamming(phash(original), phash(copy)) <= 8


def test_phash_of_different_classes_is_far_apart_on_average():
    images, labels = fmnist.load("train", 400)
    hashes = np.array([phash(Image.fromarray(p)) for p in images])
    trousers, bags = hashes[labels == 1], hashes[labels == 8]
    between = np.mean([hamming(int(a), int(b)) for a in trousers for b in bags])
    within = np.mean([hamming(int(a), int(b)) for a in trousers for b in trousers if a != b])
    assert between > 24 and between > within + 4


def test_phash_is_a_signed_int64_and_hamming_counts_bits():
    value = phash(Image.fromarray(fmnist.load("train", 1)[0][0]))
    assert -(2**63) <= value < 2**63
    assert hamming(value, value) == 0
    assert hamming(0, -1) == 64
    assert hamming(0b1011, 0b0001) == 2
