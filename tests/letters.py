"""Real images for benchmarks: capital letters rendered in the fonts Debian ships, 28x28 grayscale.

A second dataset next to Fashion-MNIST (same format: uint8 (N, 28, 28), a
light shape on a dark background), with look-alike classes by design: O/Q/C/G,
E/F/P/R, I/J/L/T, B/D, U/V, M/N, K/X. Each image picks, from its own seeded
generator (image i is the same whatever n is), one of the installed fonts (a
file is one family in one weight and slant: dejavu, liberation, urw-base35,
freefont; symbol and dingbat fonts left out), a size, a stretch, a rotation, a
shift, a stroke made thinner or bolder, a blur and sensor noise. Rendered at 4x
and reduced, so strokes are anti-aliased as in a scan.

The fonts come from Debian packages (fonts-dejavu-core, fonts-liberation, and
fonts-urw-base35 + fonts-freefont-ttf, which `scripts/setup.sh test`
installs); with fewer installed the set still renders, with less variety.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

CLASSES = ["B", "C", "D", "E", "F", "G", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "T", "U", "V", "X"]
# Look-alike letters: which classes a careless labeller confuses each one with (for class-conditional noise).
LOOKALIKE = {
    "O": ["Q", "C", "D"], "Q": ["O"], "C": ["G", "O"], "G": ["C"], "E": ["F"], "F": ["E", "P"], "P": ["R", "F"],
    "R": ["P"], "I": ["J", "L", "T"], "J": ["I"], "L": ["I"], "T": ["I"], "B": ["D", "R"], "D": ["O", "B"],
    "U": ["V"], "V": ["U"], "M": ["N"], "N": ["M"], "K": ["X"], "X": ["K"],
}
SIMILAR = {CLASSES.index(a): [CLASSES.index(b) for b in bs] for a, bs in LOOKALIKE.items()}
FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation",
             "/usr/share/fonts/opentype/urw-base35", "/usr/share/fonts/truetype/freefont")
# Not letters (symbols, dingbats, maths).
SKIP = ("StandardSymbols", "D050000L", "MathTeX")
SCALE = 4  # render at 4x, then reduce: anti-aliased strokes
SIZE = 28


@lru_cache(maxsize=1)
def fonts() -> tuple[str, ...]:
    """Installed font files used, sorted (the order is part of what a seed means)."""
    out = []
    for d in FONT_DIRS:
        for p in sorted(Path(d).glob("*")):
            if p.suffix.lower() in (".ttf", ".otf") and not any(s in p.name for s in SKIP):
                out.append(str(p))
    if not out:
        raise RuntimeError(f"no fonts in {', '.join(FONT_DIRS)}; install fonts-dejavu-core")
    return tuple(out)


@lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def render(letter: str, rng: np.random.Generator) -> np.ndarray:
    """One 28x28 uint8 image of `letter` with random font, size, pose, stroke, blur and noise."""
    big = SIZE * SCALE
    font = _font(fonts()[rng.integers(len(fonts()))], int(rng.integers(15, 24)) * SCALE)
    canvas = Image.new("L", (big * 2, big * 2), 0)
    draw = ImageDraw.Draw(canvas)
    box = draw.textbbox((0, 0), letter, font=font)
    w, h = box[2] - box[0], box[3] - box[1]
    draw.text((big - w / 2 - box[0], big - h / 2 - box[1]), letter, fill=255, font=font)
    # Stroke weight: thinner (min filter) or bolder (max filter) than the font's own, now and then.
    stroke = rng.choice([-1, 0, 0, 0, 1])
    if stroke:
        canvas = canvas.filter(ImageFilter.MinFilter(3) if stroke < 0 else ImageFilter.MaxFilter(5))
    # Pose: stretch, rotate about the centre, shift; then crop the 28x28 window and reduce.
    sx, sy = rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15)
    canvas = canvas.resize((int(big * 2 * sx), int(big * 2 * sy)), Image.BILINEAR)
    canvas = canvas.rotate(float(rng.uniform(-12, 12)), resample=Image.BILINEAR)
    cx, cy = canvas.width / 2 + rng.uniform(-3, 3) * SCALE, canvas.height / 2 + rng.uniform(-3, 3) * SCALE
    canvas = canvas.crop((int(cx - big / 2), int(cy - big / 2), int(cx - big / 2) + big, int(cy - big / 2) + big))
    small = canvas.resize((SIZE, SIZE), Image.LANCZOS)
    blur = rng.uniform(0, 0.9)
    if blur > 0.3:
        small = small.filter(ImageFilter.GaussianBlur(blur))
    pixels = np.asarray(small, dtype=np.float64) * rng.uniform(0.75, 1.0)  # ink intensity
    pixels += rng.normal(0, rng.uniform(0, 12), pixels.shape)  # sensor noise
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def load(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 28, 28), labels int (n,)): balanced classes, shuffled; image i fixed by (seed, i)."""
    k = len(CLASSES)
    # Every block of k images holds each class once, in its own shuffled order: balanced at any n.
    labels = np.concatenate([np.random.default_rng([seed, 0, b]).permutation(k) for b in range(-(-n // k))])[:n]
    images = np.empty((n, SIZE, SIZE), dtype=np.uint8)
    for i in range(n):
        images[i] = render(CLASSES[labels[i]], np.random.default_rng([seed, 1, i]))
    return images, labels
