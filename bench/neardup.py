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

Run: .venv/bin/python bench/neardup.py [N] [--min-r R] [--max-d D,D,...] [--sheet OUT.png]
     .venv/bin/python bench/neardup.py --freeze 100000   (what embedding confirmation adds to a freeze)
(--min-r tries another threshold than looks.MIN_CORRELATION; the table in app/snapshots/looks.py)
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db.models import Image as ImageRow  # noqa: E402
from app.embeddings import similar  # noqa: E402
from app.images.decode import Limits, decode  # noqa: E402
from app.images.hashing import hamming, look  # noqa: E402
from app.snapshots import looks, neardup  # noqa: E402
from bench._fmnist_embed import embed, embed_files, model  # noqa: E402
from tests import fmnist  # noqa: E402

LIMITS = Limits(max_pixels=10**8, thumb_size=256, preview_size=1280)


def _decoded(img: Image.Image, fmt: str = "PNG", **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    d = decode(buf.getvalue(), LIMITS)
    return d.phash, look(Image.open(io.BytesIO(d.thumb))), buf.getvalue()


def _copies(img: Image.Image) -> dict[str, tuple]:
    w, h = img.size
    c = max(1, round(w * 0.01))
    return {"jpeg60": (img.convert("RGB"), "JPEG", {"quality": 60}),
            "jpeg85": (img.convert("RGB"), "JPEG", {"quality": 85}),
            "half": (img.resize((w // 2, h // 2), Image.Resampling.LANCZOS), "PNG", {}),
            "double": (img.resize((w * 2, h * 2), Image.Resampling.LANCZOS), "PNG", {}),
            "crop1%": (img.crop((c, c, w - c, h - c)), "PNG", {}),
            "bright20%": (ImageEnhance.Brightness(img).enhance(1.2), "PNG", {})}


def planted(images: np.ndarray, net) -> dict[str, np.ndarray]:
    """Planted copies that pHash accepts: kind/name, thumbnail r and embedding distance of each (original, copy)."""
    originals = [("fm28", Image.fromarray(a)) for a in images[:100]]
    originals += [("fm112", Image.fromarray(a).resize((112, 112), Image.Resampling.BICUBIC)) for a in images[100:200]]
    photos = sorted(Path("/root/.rustup").glob("**/*.jp*g"))[:6] + sorted(Path("/usr/share").glob("**/*.jp*g"))[:6]
    originals += [("photo", Image.open(p).convert("RGB")) for p in photos]
    names, looks_a, looks_b, blobs_a, blobs_b = [], [], [], [], []
    for kind, img in originals:
        h0, v0, f0 = _decoded(img)
        for name, (copy, fmt, kw) in _copies(img).items():
            h1, v1, f1 = _decoded(copy, fmt, **kw)
            if hamming(h0, h1) > neardup.MAX_DISTANCE:
                continue  # pHash alone already misses it: not the second check's doing
            names.append(f"{kind}/{name}")
            looks_a.append(v0)
            looks_b.append(v1)
            blobs_a.append(f0)
            blobs_b.append(f1)
    r = looks.alike(np.stack(looks_a), np.stack(looks_b))
    ea, eb = (similar.normalise(embed_files(net, blobs)) for blobs in (blobs_a, blobs_b))
    return {"name": np.array(names), "r": r, "d": 1.0 - np.sum(ea * eb, axis=1)}


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


def freeze_cost(n: int) -> None:
    """What embedding confirmation adds to a freeze's near-duplicate grouping (app.quality.duplicate_flags.near_groups).

    On bench/_server.build(n) (2,000 real Fashion-MNIST imports with thumbnails, the rest copies of their
    rows under new hashes: every copy is a pHash candidate pair), a copy of its database: grouping timed
    with no embedding space, then with an embed job holding a float16 vector for every image.
    """
    import shutil

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _server import OUT, build

    from app.config import Settings
    from app.db.engine import Database
    from app.db.models import Job
    from app.embeddings import files
    from app.quality import duplicate_flags as service

    source = build(n)
    copy = OUT / f"neardup-{n}.db"
    shutil.copy(source / "loupe.db", copy)
    settings = Settings(data=source, database_url=f"sqlite:///{copy}")
    db = Database(settings.database_url)
    looks.register(settings)

    def timed() -> tuple[float, int]:
        best = np.inf
        for _ in range(3):  # the best of three: the cores are shared
            looks._cache.clear()
            with db.reading() as s:
                live = service.live_images(s)
                t0 = time.perf_counter()
                groups = service.near_groups(s, live)
                best = min(best, time.perf_counter() - t0)
        sizes = np.bincount(groups)
        return best, int((sizes > 1).sum())

    without, g0 = timed()
    with db.writing() as s:
        rows = s.execute(select(ImageRow.id, ImageRow.stored_path).order_by(ImageRow.id)).all()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        # A copy's row is its original's (same stored file): one vector per file, a little noise per copy.
        _, picture = np.unique([r[1] for r in rows], return_inverse=True)
        job = Job(kind="embed", config={}, status="succeeded")
        s.add(job)
        s.flush()
        writer = files.Writer(settings.jobs_dir / f"job-{job.id}", ids, 256)
        rng = np.random.default_rng(0)
        base = rng.standard_normal((int(picture.max()) + 1, 256), dtype=np.float32)
        for start in range(0, len(ids), 65_536):
            chunk = slice(start, start + 65_536)
            noise = 0.01 * rng.standard_normal((len(ids[chunk]), 256), dtype=np.float32)
            writer.write(ids[chunk], base[picture[chunk]] + noise)
        info = writer.finish()
        job.artifacts = {"embeddings": info["embeddings"], "embedding_ids": info["embedding_ids"]}
        s.commit()
    with_space, g1 = timed()
    db.dispose()
    print(f"neardup freeze grouping n={n}: {without:.2f} s without embeddings ({g0} groups), "
          f"{with_space:.2f} s with a space holding every image ({g1} groups), best of 3 each")


def main() -> None:
    args = sys.argv[1:]
    if "--freeze" in args:
        freeze_cost(int(args[args.index("--freeze") + 1]))
        return
    sheet = args[args.index("--sheet") + 1] if "--sheet" in args else None
    if "--min-r" in args:
        looks.MIN_CORRELATION = float(args[args.index("--min-r") + 1])
    sweep = [looks.MAX_EMBEDDING_DISTANCE]
    if "--max-d" in args:  # one or more thresholds, comma-separated: one "+ embeddings"/"+ both" pair of lines each
        sweep = [float(v) for v in args[args.index("--max-d") + 1].split(",")]
    n = int(args[0]) if args and args[0].isdigit() else 10_000
    images, _ = fmnist.load("train", n)
    t0 = time.perf_counter()
    decoded = [_decoded(Image.fromarray(a)) for a in images]
    phashes = np.array([h for h, _, _ in decoded], dtype=np.int64)
    vectors = {i: v for i, (_, v, _) in enumerate(decoded)}
    t1 = time.perf_counter()
    net = model()  # trained on the first 10,000 images (bench/_fmnist_embed.py), as a train job's model would be
    t2 = time.perf_counter()
    unit = similar.normalise(embed(net, np.repeat(images[..., None], 3, axis=-1)))
    embeddings = (np.arange(n), unit)
    t3 = time.perf_counter()
    a, b = neardup.candidate_pairs(phashes)
    r = looks.alike(np.stack([vectors[i] for i in a]), np.stack([vectors[j] for j in b])) if len(a) else np.zeros(0)
    d = 1.0 - np.sum(unit[a] * unit[b], axis=1)
    true = r >= 0.998  # by eye: these are the same picture (see docstring)
    copies = planted(images, net)

    def grouped(ok: np.ndarray) -> str:
        sizes = np.bincount(neardup._components(n, a[ok], b[ok]))
        return f"pairs {int(ok.sum())} ({int((ok & true).sum())} true), groups {int((sizes > 1).sum())} " \
               f"(images {int(sizes[sizes > 1].sum())})"

    t4 = time.perf_counter()
    ok = looks.confirm_pairs(vectors, a, b, embeddings)  # the app's rule, at its own threshold
    t5 = time.perf_counter()
    rows = [("phash alone", None, np.ones(len(a), bool), np.ones(len(copies["r"]), bool)),
            ("+ thumbnails", None, r >= looks.MIN_CORRELATION, copies["r"] >= looks.MIN_CORRELATION)]
    for max_d in sweep:
        rows += [("+ embeddings", max_d, d <= max_d, copies["d"] <= max_d),
                 ("+ both", max_d, (r >= looks.MIN_CORRELATION) & (d <= max_d),
                  (copies["r"] >= looks.MIN_CORRELATION) & (copies["d"] <= max_d))]
    rows.append(("app rule", looks.MAX_EMBEDDING_DISTANCE, ok, looks.verdict(copies["r"], copies["d"])))
    for name, max_d, pairs_ok, copies_ok in rows:
        missed = sorted(set(copies["name"][~copies_ok].tolist()))
        print(f"neardup n={n} max_bits={neardup.MAX_DISTANCE} min_r={looks.MIN_CORRELATION} "
              f"max_d={max_d if max_d is not None else '-'} {name}: {grouped(pairs_ok)}; planted copies kept "
              f"{copies_ok.mean():.1%} of {len(copies_ok)} (missed: {', '.join(missed) or 'none'})", flush=True)
    thumb_ok = r >= looks.MIN_CORRELATION
    print("neardup the thumbnail-confirmed pairs' embedding distances: true "
          f"{np.round(np.sort(d[thumb_ok & true]), 4).tolist()}, "
          f"false {np.round(np.sort(d[thumb_ok & ~true]), 4).tolist()}")
    for q in (50, 90, 99, 100):
        print(f"neardup distances: copies p{q} {np.percentile(copies['d'], q):.5f}; "
              f"false phash pairs p{100 - q} {np.percentile(d[~true], 100 - q):.5f}; true pairs "
              f"{np.round(d[true], 5).tolist()}")
    print(f"neardup timings: decode {t1 - t0:.1f} s, model {t2 - t1:.1f} s, embed {t3 - t2:.1f} s, "
          f"app confirm {1000 * (t5 - t4):.1f} ms for {len(a)} pairs")
    if sheet:
        order = np.argsort(-np.asarray(r))[:64]
        _sheet(images, [(int(a[k]), int(b[k]), float(r[k])) for k in order], sheet)


if __name__ == "__main__":
    main()
