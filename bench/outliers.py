"""Outlier scores and the flag cut, measured on real train-job spaces with planted strays.

Each condition is a real data dir: Fashion-MNIST images labelled with their true
class, more of them unlabelled, and strays (tests/embeddings/strays.py) planted
among them; one train job through the real worker, then its analyse job. For
each scoring variant the line gives the planted strays' ranks (0 = strangest),
how many strays reach the cut, and how many ordinary Fashion-MNIST images do
(false flags).

  A  2,000 labelled (10 classes) + 1,000 unlabelled; 11 photos and 20 noise images unlabelled, 2 photos
     labelled "bag" (a scrape that went wrong)
  B  1,000 labelled of 9 classes + 60 of a rare 10th (ankle-boot) + 1,000 unlabelled; 40 letters drawn
     with Debian's fonts and 10 noise images unlabelled (strays in the same style as the data)

Run: .venv/bin/python bench/outliers.py [--conditions A,B] [--epochs 6]   (data dirs kept in bench/out/)
     .venv/bin/python bench/outliers.py --reuse --reanalyse   (the same spaces, analysed again by today's code)
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db.engine import Database  # noqa: E402
from app.db.migrate import upgrade_head  # noqa: E402
from app.db.models import Flag, Job  # noqa: E402
from app.embeddings import analyses, outliers  # noqa: E402
from app.main import create_app  # noqa: E402
from tests import fmnist  # noqa: E402
from tests.embeddings import strays  # noqa: E402
from tests.factories import add_class, label, upload  # noqa: E402
from tests.workers import finished, start_worker, stop, wait_for  # noqa: E402

OUT = ROOT / "bench" / "out"


def _fmnist_files(indices, images) -> list[tuple[str, bytes]]:
    out = []
    for i in indices:
        buf = io.BytesIO()
        Image.fromarray(images[i]).save(buf, format="PNG")
        out.append((f"fmnist-{i:05d}.png", buf.getvalue()))
    return out


def flags_written(body) -> bool:
    return finished(body) and (body["status"] != "succeeded" or "outlier_flags" in (body["metrics"] or {}))


def analysis_of(settings: Settings, timeout: float = 120) -> int:
    """The analyse job the worker queues after the train job's quality checks (it comes a moment later)."""
    db = Database(settings.database_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.reading() as s:
            found = s.scalars(select(Job.id).where(Job.kind == "analyse").order_by(Job.id.desc())).first()
        if found is not None:
            return found
        time.sleep(0.5)
    raise RuntimeError("no analyse job was queued")


def build(name: str, epochs: int) -> tuple[Path, dict]:
    """The condition's data dir with a finished train job and its analysis; returns (dir, planted ids by kind)."""
    data = OUT / f"outliers-{name}-e{epochs}"
    shutil.rmtree(data, ignore_errors=True)
    settings = Settings(data=data)
    settings.ensure_dirs()
    upgrade_head(settings.database_url)
    images, labels = fmnist.load("train")
    rng = np.random.default_rng(1 if name == "A" else 2)
    order = rng.permutation(len(labels))
    planted: dict[str, list[int]] = {}
    with TestClient(create_app(settings)) as client:
        for c in fmnist.CLASSES:
            add_class(client, c)
        if name == "A":
            lab = order[:2000]
            unl = order[2000:3000]
            photos = strays.photos(13)
            planted["photo labelled"] = [x["id"] for x in upload(client, photos[11:], "scrape")["imported"]]
            for i in planted["photo labelled"]:
                label(client, i, "bag", annotator="scraper")
            extra = {"photo": photos[:11], "noise": strays.noise(20)}
        else:
            common = [i for i in order if labels[i] != 9][:2000]
            rare = [i for i in order if labels[i] == 9][:60]
            lab = np.array(common[:1000] + rare)
            unl = np.array(common[1000:2000])
            extra = {"letter": strays.letters(40), "noise": strays.noise(10, seed=1)}
        ids = {}
        for start in range(0, len(lab), 500):  # the upload takes at most 1,000 files
            report = upload(client, _fmnist_files(lab[start:start + 500], images), "fmnist")
            ids.update({x["filename"]: x["id"] for x in report["imported"]})
        for c, cname in enumerate(fmnist.CLASSES):
            chosen = [ids[f"fmnist-{i:05d}.png"] for i in lab if labels[i] == c]
            if chosen:
                r = client.post("/api/labels/bulk", json={"images": chosen, "class": cname, "annotator": "truth"})
                assert r.status_code in (200, 201), r.text
        upload(client, _fmnist_files(unl, images), "fmnist")
        for kind, files in extra.items():
            planted[kind] = [x["id"] for x in upload(client, files, "scrape")["imported"]]
        snap = client.post("/api/snapshots", json={"name": "s", "split": {"val": 0.2, "seed": 0, "folds": 3}}).json()
        job = client.post("/api/jobs", json={"snapshot": snap["id"], "config": {
            "epochs": epochs, "image_size": 28, "batch_size": 64}}).json()
        worker = start_worker(data)
        try:
            t = time.perf_counter()
            body = wait_for(client, job["id"], finished, timeout=1800)
            assert body["status"] == "succeeded", body["error"]
            print(f"# {name}: train job {time.perf_counter() - t:.0f} s, accuracy {body['metrics']['accuracy']:.3f}")
            body = wait_for(client, analysis_of(settings), flags_written, timeout=600)
            assert body["status"] == "succeeded", body["error"]
        finally:
            stop(worker)
    (data / "planted.json").write_text(json.dumps(planted))
    return data, planted


def reanalyse(data: Path) -> None:
    settings = Settings(data=data)
    with TestClient(create_app(settings)) as client:
        job = client.post("/api/jobs", json={"kind": "analyse", "config": {"space": 1}}).json()
        worker = start_worker(data)
        try:
            body = wait_for(client, job["id"], flags_written, timeout=900)
            assert body["status"] == "succeeded", body["error"]
            print(f"# analysis {job['id']}: {body['metrics']['seconds']}")
        finally:
            stop(worker)


def evaluate(name: str, data: Path, planted: dict) -> None:
    settings = Settings(data=data)
    db = Database(settings.database_url)
    with db.reading() as s:
        a = analyses.latest(s, settings)
        flagged = set(s.scalars(select(Flag.image_id).where(Flag.kind == "outlier", Flag.status == "open")))
    ids, z = np.asarray(a.ids), np.asarray(a.array("outlier"))
    every_planted = {i for v in planted.values() for i in v}
    ordinary = ~np.isin(ids, list(every_planted))
    rank = np.empty(len(z), dtype=int)
    rank[np.argsort(-np.nan_to_num(z, nan=-np.inf), kind="stable")] = np.arange(len(z))
    for kind, members in planted.items():
        rows = [a.row(i) for i in members]
        print(f"{name} {kind:15s} n={len(rows):3d} ranks median {int(np.median(rank[rows])):5d} "
              f"worst {int(rank[rows].max()):5d} of {len(z)}; z median {np.median(z[rows]):5.1f}; "
              f"flagged {len(set(members) & flagged)}")
    for cut in (2.5, 3.0, 3.5, 4.0, 5.0):
        over = np.isfinite(z) & (z >= cut)
        print(f"{name} cut z>={cut}: strays over it {int((over & ~ordinary).sum())} of {int((~ordinary).sum())}, "
              f"ordinary images over it {int((over & ordinary).sum())} of {int(ordinary.sum())}")
    print(f"{name} flags: {len(flagged)} ({len(flagged & every_planted)} strays), cap "
          f"{int(min(outliers.MAX_FLAGS, np.ceil(outliers.MAX_FLAG_SHARE * len(z))))}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conditions", default="A,B")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--reuse", action="store_true", help="evaluate the kept data dirs again")
    parser.add_argument("--reanalyse", action="store_true", help="with --reuse: a new analysis by today's code")
    args = parser.parse_args()
    for name in args.conditions.split(","):
        data = OUT / f"outliers-{name}-e{args.epochs}"
        if args.reuse and (data / "planted.json").exists():
            planted = json.loads((data / "planted.json").read_text())
            if args.reanalyse:
                reanalyse(data)
        else:
            data, planted = build(name, args.epochs)
        evaluate(name, data, planted)


if __name__ == "__main__":
    main()
