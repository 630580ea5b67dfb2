"""False near-duplicates on Fashion-MNIST: pHash alone versus pHash confirmed by the thumbnails' looks.

Every image goes through the real decoder (`app.images.decode`), so pHashes and
thumbnails are what an import stores. Counts candidate pairs within
`neardup.MAX_DISTANCE` bits and the groups they chain into, then the same after
`app.snapshots.looks` confirms each pair. The true near-duplicates among
Fashion-MNIST's pHash pairs were judged by eye on a contact sheet (--sheet):
the pairs that look alike at >= 0.998 are the same picture; everything below
0.99 was a different garment. Recall is measured on planted copies of 200
images (JPEG q60/q85, halved, doubled, 1 % crop, +20 % brightness) plus the
photos found on the machine, counting only copies that pHash itself accepts.

Run: .venv/bin/python bench/neardup.py [N] [--min-r R] [--sheet OUT.png]
(--min-r tries another threshold than looks.MIN_CORRELATION; the table in app/snapshots/looks.py)
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.images.decode import Limits, decode  # noqa: E402
from app.images.hashing import hamming, look  # noqa: E402
from app.snapshots import looks, neardup  # noqa: E402
from tests import fmnist  # noqa: E402

LIMITS = Limits(max_pixels=10**8, thumb_size=256, preview_size=1280)


def _decoded(img: Image.Image, fmt: str = "PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    d = decode(buf.getvalue(), LIMITS)
    return d.phash, look(Image.open(io.BytesIO(d.thumb)))


def _copies(img: Image.Image) -> dict[str, tuple]:
    w, h = img.size
    c = max(1, round(w * 0.01))
    return {"jpeg60": (img.convert("RGB"), "JPEG", {"quality": 60}),
            "jpeg85": (img.convert("RGB"), "JPEG", {"quality": 85}),
            "half": (img.resize((w // 2, h // 2), Image.Resampling.LANCZOS), "PNG", {}),
            "double": (img.resize((w * 2, h * 2), Image.Resampling.LANCZOS), "PNG", {}),
            "crop1%": (img.crop((c, c, w - c, h - c)), "PNG", {}),
            "bright20%": (ImageEnhance.Brightness(img).enhance(1.2), "PNG", {})}


def recall(images: np.ndarray) -> tuple[float, int, list[str]]:
    originals = [("fm28", Image.fromarray(a)) for a in images[:100]]
    originals += [("fm112", Image.fromarray(a).resize((112, 112), Image.Resampling.BICUBIC)) for a in images[100:200]]
    photos = sorted(Path("/root/.rustup").glob("**/*.jp*g"))[:6] + sorted(Path("/usr/share").glob("**/*.jp*g"))[:6]
    originals += [("photo", Image.open(p).convert("RGB")) for p in photos]
    kept, total, missed = 0, 0, set()
    for kind, img in originals:
        h0, v0 = _decoded(img)
        for name, (copy, fmt, kw) in _copies(img).items():
            h1, v1 = _decoded(copy, fmt, **kw)
            if hamming(h0, h1) > neardup.MAX_DISTANCE:
                continue  # pHash alone already misses it: not the second check's doing
            total += 1
            ok = looks.confirm_pairs({0: v0, 1: v1}, np.array([0]), np.array([1]))[0]
            kept += bool(ok)
            if not ok:
                missed.add(f"{kind}/{name}")
    return kept / total, total, sorted(missed)


def _sheet(images: np.ndarray, pairs: list[tuple[int, int, float]], out: str) -> None:
    cell, per_row = 84, 8
    sheet = Image.new("L", (per_row * (2 * cell + 10), ((len(pairs) + per_row - 1) // per_row) * (cell + 14)), 255)
    draw = ImageDraw.Draw(sheet)
    for k, (i, j, r) in enumerate(pairs):
        x, y = (k % per_row) * (2 * cell + 10), (k // per_row) * (cell + 14)
        sheet.paste(Image.fromarray(images[i]).resize((cell, cell)), (x, y))
        sheet.paste(Image.fromarray(images[j]).resize((cell, cell)), (x + cell, y))
        draw.text((x, y + cell), f"{i}-{j} r={r:.3f}", fill=0)
    sheet.save(out)


def main() -> None:
    args = sys.argv[1:]
    sheet = args[args.index("--sheet") + 1] if "--sheet" in args else None
    if "--min-r" in args:
        looks.MIN_CORRELATION = float(args[args.index("--min-r") + 1])
    n = int(args[0]) if args and args[0].isdigit() else 10_000
    images, _ = fmnist.load("train", n)
    t0 = time.perf_counter()
    decoded = [_decoded(Image.fromarray(a)) for a in images]
    phashes = np.array([h for h, _ in decoded], dtype=np.int64)
    vectors = {i: v for i, (_, v) in enumerate(decoded)}
    t1 = time.perf_counter()
    a, b = neardup.candidate_pairs(phashes)
    before = neardup.groups(phashes)
    confirm = lambda x, y: looks.confirm_pairs(vectors, x, y)  # noqa: E731
    t2 = time.perf_counter()
    after = neardup.groups(phashes, confirm=confirm)
    t3 = time.perf_counter()
    ok = confirm(a, b)
    r = looks.alike(np.stack([vectors[i] for i in a]), np.stack([vectors[j] for j in b])) if len(a) else []
    true_pairs = int((np.asarray(r) >= 0.998).sum())  # by eye: these are the same picture (see docstring)

    def grouped(g):
        sizes = np.bincount(g)
        return int((sizes > 1).sum()), int(sizes[sizes > 1].sum())

    g0, i0 = grouped(before)
    g1, i1 = grouped(after)
    rec, copies, missed = recall(images)
    if sheet:
        order = np.argsort(-np.asarray(r))[:64]
        _sheet(images, [(int(a[k]), int(b[k]), float(r[k])) for k in order], sheet)
    print(f"neardup n={n} max_bits={neardup.MAX_DISTANCE} min_r={looks.MIN_CORRELATION}: "
          f"phash pairs={len(a)} groups={g0} (images {i0}); confirmed pairs={int(ok.sum())} groups={g1} "
          f"(images {i1}); true pairs (r>=0.998)={true_pairs}; false pairs {len(a) - true_pairs} -> "
          f"{int(ok.sum()) - true_pairs}; copies kept {rec:.1%} of {copies} (missed: {', '.join(missed) or 'none'}); "
          f"decode {t1 - t0:.1f} s, group {t2 - t1:.3f} s, confirm+group {t3 - t2:.3f} s")


if __name__ == "__main__":
    main()
