"""Images that do not belong in a clothing dataset, planted among Fashion-MNIST to check outlier scores.

photos: pictures found on this machine (Debian's docs: screenshots, diagrams, a
photo or two), grayscale and shrunk, as a scrape that went wrong would bring in.
noise: uniform random pixels. letters: glyphs drawn with Debian's fonts, light
on black like Fashion-MNIST (a harder stray: same style, other content).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PHOTO_ROOTS = (Path("/usr/share/doc"), Path("/usr/share/info"), Path("/usr/share/pixmaps"),
               Path("/usr/share/backgrounds"), Path("/usr/share/wallpapers"))
FONT_ROOT = Path("/usr/share/fonts/truetype")


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def photo_paths() -> list[Path]:
    """Pictures of some size on this machine, in a fixed order (icons left out)."""
    found = []
    for root in PHOTO_ROOTS:
        if root.is_dir():
            found += [p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                      and p.is_file() and p.stat().st_size > 8_000 and "icon" not in str(p).lower()]
    return sorted(found)


def photos(n: int, start: int = 0) -> list[tuple[str, bytes]]:
    out = []
    for path in photo_paths()[start:]:
        try:
            with Image.open(path) as im:
                small = im.convert("L").resize((56, 56))
        except OSError:
            continue
        out.append((f"photo-{len(out) + start:03d}-{path.stem[:40]}.png", _png(small)))
        if len(out) == n:
            break
    if len(out) < n:
        raise RuntimeError(f"only {len(out)} pictures found under {PHOTO_ROOTS}")
    return out


def noise(n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(seed)
    return [(f"noise-{seed}-{i:03d}.png", _png(Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8))))
            for i in range(n)]


def letters(n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    fonts = sorted(FONT_ROOT.rglob("*.ttf"))
    if not fonts:
        raise RuntimeError(f"no fonts under {FONT_ROOT}")
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        font = ImageFont.truetype(str(fonts[i % len(fonts)]), 22)
        image = Image.new("L", (28, 28), 0)
        glyph = "ABCDEFGHJKMNPQRSTUVWXYZ0123456789"[int(rng.integers(0, 33))]
        ImageDraw.Draw(image).text((14, 14), glyph, fill=255, font=font, anchor="mm")
        out.append((f"letter-{seed}-{i:03d}-{glyph}.png", _png(image)))
    return out
