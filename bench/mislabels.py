"""Suspected-mislabel flags on Fashion-MNIST through the real pipeline, next to cleanlab on the same probabilities.

For each noise kind, in a fresh data dir:

1. import the first 5,000 Fashion-MNIST training images through the HTTP API
   (the app in-process, `POST /api/images`);
2. flip 10 % of the labels (500 images): **uniform** (to any other class) or
   **similar** (to a look-alike: t-shirt <-> shirt <-> pullover <-> coat,
   dress <-> coat/trouser, sandal <-> sneaker <-> ankle-boot; bags are never
   flipped), and label every image through `POST /api/labels/bulk`. Annotator
   confidence is simulated for a labeller who is less sure about the images
   they get wrong: correct labels are "sure" / "unsure" / "guess" with
   probabilities 0.85 / 0.12 / 0.03, flipped ones 0.40 / 0.35 / 0.25;
3. freeze a snapshot (val 0.2, 5 folds) and queue a train job (default config)
   through the API;
4. run the real worker process (`python -m app.cli worker --once`): it trains
   the 5 fold models and the final model, writes out-of-sample predictions and,
   when the job succeeds, its mislabel flags;
5. read the flags back (`GET /api/flags?kind=mislabel`) and score them against
   the flipped set.

On the very same out-of-sample probabilities (`GET /api/jobs/{id}/predictions`)
it runs cleanlab's `find_label_issues` (defaults) and this app's detection
without annotator confidence and with per-fold thresholds (read-only, nothing
written). cleanlab is a benchmark dependency only: `.venv/bin/pip install cleanlab`.

Prints one line per noise kind: precision / recall / F1 of each method, and
the out-of-sample accuracy. Target: the app's flags have F1 at least cleanlab's.

Also prints the precision of the first k flags in review order (highest score first; k = the number
flipped) next to the k lowest of cleanlab's `get_label_quality_scores`.

Run: .venv/bin/python bench/mislabels.py [--n 5000] [--kinds uniform,similar] [--epochs N] [--keep | --reuse]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from fastapi.testclient import TestClient  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db.engine import Database  # noqa: E402
from app.main import create_app  # noqa: E402
from app.quality.service import detect_mislabels  # noqa: E402
from tests import fmnist  # noqa: E402

NOISE = 0.10
SIMILAR = {0: [6, 2], 6: [0, 2, 4], 2: [4, 6, 0], 4: [2, 6], 3: [4, 1], 1: [3], 5: [7, 9], 7: [5, 9], 9: [7, 5]}
LEVELS = np.array([1.0, 0.6, 0.3])  # sure, unsure, guess (app.labelling.keys.CONFIDENCE_LEVELS)
P_CLEAN, P_FLIPPED = [0.85, 0.12, 0.03], [0.40, 0.35, 0.25]


def flip(labels: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, indices flipped): 10 % of all images."""
    n = len(labels)
    pool = np.arange(n) if kind == "uniform" else np.flatnonzero(np.isin(labels, list(SIMILAR)))
    chosen = np.sort(rng.choice(pool, int(n * NOISE), replace=False))
    noisy = labels.copy()
    for i in chosen:
        options = [c for c in range(10) if c != labels[i]] if kind == "uniform" else SIMILAR[int(labels[i])]
        noisy[i] = rng.choice(options)
    return noisy, chosen


def prf(found: set[int], truth: set[int]) -> tuple[float, float, float]:
    hit = len(found & truth)
    p = hit / len(found) if found else 0.0
    r = hit / len(truth) if truth else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def upload_all(client: TestClient, images: np.ndarray) -> list[int]:
    ids = []
    for start in range(0, len(images), 500):
        files = []
        for i in range(start, min(start + 500, len(images))):
            buf = io.BytesIO()
            Image.fromarray(images[i]).save(buf, format="PNG")
            files.append(("files", (f"fmnist-{i:05d}.png", buf.getvalue(), "image/png")))
        r = client.post("/api/images", data={"source": "fashion-mnist"}, files=files)
        r.raise_for_status()
        body = r.json()
        assert not body["rejected"], body["rejected"]
        by_name = {x["filename"]: x["id"] for x in body["imported"] + body["duplicates"]}
        ids += [by_name[f[1][0]] for f in files]
    return ids


def all_flags(client: TestClient) -> list[dict]:
    out, offset = [], 0
    while True:
        page = client.get("/api/flags", params={"kind": "mislabel", "status": "open", "limit": 1000,
                                                "offset": offset}).json()
        out += page["items"]
        offset += 1000
        if offset >= page["total"]:
            return out


def build(kind: str, data: Path, images: np.ndarray, noisy: np.ndarray, confidence: np.ndarray, seed: int,
          epochs: int | None) -> dict:
    """Steps 1-4: a fresh data dir with the images imported and labelled, a snapshot and a finished job."""
    shutil.rmtree(data, ignore_errors=True)
    timings = {}
    with TestClient(create_app(Settings(data=data))) as client:
        t = time.perf_counter()
        for name in fmnist.CLASSES:
            client.post("/api/taxonomy/changes", json={"op": "add", "name": name}).raise_for_status()
        ids = np.array(upload_all(client, images))
        timings["import"] = time.perf_counter() - t
        for c in range(10):
            for level in LEVELS:
                chosen = ids[(noisy == c) & (confidence == level)]
                if len(chosen):
                    client.post("/api/labels/bulk", json={"images": chosen.tolist(), "class": fmnist.CLASSES[c],
                                                          "confidence": float(level), "annotator": "bench"}
                                ).raise_for_status()
        r = client.post("/api/snapshots", json={"name": f"noisy-{kind}",
                                                "split": {"val": 0.2, "test": 0.0, "seed": seed, "folds": 5}})
        r.raise_for_status()
        config = {"epochs": epochs} if epochs else {}
        job = client.post("/api/jobs", json={"snapshot": r.json()["id"], "config": config}).json()["id"]
        t = time.perf_counter()
        worker = subprocess.run([sys.executable, "-m", "app.cli", "worker", "--data", str(data), "--once"],
                                cwd=ROOT, env={**os.environ, "LOUPE_TOKEN": ""}, capture_output=True, text=True)
        timings["worker"] = time.perf_counter() - t
        body = client.get(f"/api/jobs/{job}").json()
        if body["status"] != "succeeded":
            raise SystemExit(f"job {job} {body['status']}: {body['error']}\n{worker.stderr[-3000:]}")
    return {"job": job, "timings": timings}


def reuse(data: Path, n: int) -> dict:
    """A data dir `build` made before (--reuse): its last job, and the image ids by file name."""
    db = Database(Settings(data=data).database_url)
    with db.reading() as s:
        job = s.execute(text("SELECT max(id) FROM jobs WHERE status = 'succeeded'")).scalar()
        by_name = dict(s.execute(text("SELECT original_filename, id FROM images")).all())
    db.dispose()
    if job is None:
        raise SystemExit(f"{data} has no succeeded job; run without --reuse")
    return {"job": job, "ids": np.array([by_name[f"fmnist-{i:05d}.png"] for i in range(n)]), "timings": {}}


def precision_at(ranked: list[int], truth: set[int], k: int) -> float:
    top = ranked[:k]
    return len(set(top) & truth) / len(top) if top else 0.0


def run_kind(kind: str, n: int, seed: int, epochs: int | None, workdir: Path, again: bool) -> dict:
    rng = np.random.default_rng(seed)
    images, truth = fmnist.load("train", n)
    noisy, flipped = flip(truth, kind, rng)
    is_flipped = np.zeros(n, dtype=bool)
    is_flipped[flipped] = True
    confidence = np.where(is_flipped, rng.choice(LEVELS, n, p=P_FLIPPED), rng.choice(LEVELS, n, p=P_CLEAN))

    data = workdir / kind
    if again:
        made = reuse(data, n)
    else:
        made = build(kind, data, images, noisy, confidence, seed, epochs)
        made["ids"] = np.array(reuse(data, n)["ids"])
    job, ids, timings = made["job"], made["ids"], made["timings"]
    truth_ids = set(ids[is_flipped].tolist())

    with TestClient(create_app(Settings(data=data))) as client:
        flags = all_flags(client)
        preds = client.get(f"/api/jobs/{job}/predictions").json()
    ours = prf({f["image"] for f in flags}, truth_ids)
    review_order = [f["image"] for f in sorted(flags, key=lambda f: -f["score"])]

    index = {int(i): k for k, i in enumerate(ids)}
    oof = [p for p in preds["items"] if p["role"] == "oof"]
    order = np.array([index[p["image"]] for p in oof])
    probs = np.array([p["probs"] for p in oof])
    names = preds["classes"]                              # the snapshot's class order (sorted by name)
    given = np.array([names.index(fmnist.CLASSES[c]) for c in noisy[order]])
    accuracy = float((probs.argmax(axis=1) == np.array([names.index(fmnist.CLASSES[c]) for c in truth[order]])).mean())

    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    cl_mask = find_label_issues(labels=given, pred_probs=probs)
    cleanlab = prf(set(ids[order[cl_mask]].tolist()), truth_ids)
    cl_low = find_label_issues(labels=given, pred_probs=probs, filter_by="low_self_confidence")
    cleanlab_low = prf(set(ids[order[cl_low]].tolist()), truth_ids)
    cl_scores = get_label_quality_scores(labels=given, pred_probs=probs)
    cl_order = ids[order[np.argsort(cl_scores, kind="stable")]].tolist()

    db = Database(Settings(data=data).database_url)
    variants = {}
    with db.reading() as s:
        for name, kw in (("no confidence", {"use_confidence": False}),
                         ("per-fold thresholds", {"per_fold": True}),
                         ("per-fold, no confidence", {"use_confidence": False, "per_fold": True}),
                         ("prune_by_noise_rate", {"method": "prune_by_noise_rate"}),
                         ("prune_by_noise_rate, no confidence", {"method": "prune_by_noise_rate",
                                                                 "use_confidence": False})):
            t = time.perf_counter()
            found = detect_mislabels(s, job_id=job, **kw)
            variants[name] = (prf(set(found.data.image_ids[found.issues].tolist()), truth_ids),
                              time.perf_counter() - t)
    db.dispose()
    return {"kind": kind, "n": n, "flipped": len(truth_ids), "flags": len(flags), "ours": ours,
            "cleanlab": cleanlab, "cleanlab_n": int(cl_mask.sum()), "cleanlab_low": cleanlab_low,
            "variants": variants, "accuracy": accuracy,
            "timings": timings, "oof": len(oof), "p_at": precision_at(review_order, truth_ids, len(truth_ids)),
            "cl_p_at": precision_at(cl_order, truth_ids, len(truth_ids))}


def fmt(p: tuple[float, float, float]) -> str:
    return f"P {p[0]:.3f} R {p[1]:.3f} F1 {p[2]:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--kinds", default="uniform,similar")
    parser.add_argument("--seed", type=int, default=1,
                        help="flips, confidences and splits (detection was tuned on seed 0's flips)")
    parser.add_argument("--epochs", type=int, help="default: the train config's default")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs (under bench/out/mislabels)")
    parser.add_argument("--reuse", action="store_true",
                        help="measure again on the data dirs a --keep run left (no import, no training)")
    args = parser.parse_args()
    kept = args.keep or args.reuse
    workdir = ROOT / "bench" / "out" / "mislabels" if kept else Path(tempfile.mkdtemp(prefix="loupe-mislabels-"))
    try:
        for kind in args.kinds.split(","):
            r = run_kind(kind, args.n, args.seed, args.epochs, workdir, args.reuse)
            v = r["variants"]
            print(f"mislabels {r['kind']}: {r['n']} images, {r['flipped']} flipped, out-of-sample accuracy "
                  f"{r['accuracy']:.3f} | app flags ({r['flags']}): {fmt(r['ours'])} | cleanlab find_label_issues "
                  f"({r['cleanlab_n']}): {fmt(r['cleanlab'])} | app without annotator confidence: "
                  f"{fmt(v['no confidence'][0])} | cleanlab filter_by=low_self_confidence: "
                  f"{fmt(r['cleanlab_low'])} | app prune_by_noise_rate: F1 {v['prune_by_noise_rate'][0][2]:.3f} "
                  f"(without confidence {v['prune_by_noise_rate, no confidence'][0][2]:.3f}) | "
                  f"per-fold thresholds: F1 {v['per-fold thresholds'][0][2]:.3f} (without confidence "
                  f"{v['per-fold, no confidence'][0][2]:.3f}) | precision of the first {r['flipped']} in review order "
                  f"{r['p_at']:.3f} (cleanlab's label quality score {r['cl_p_at']:.3f}) | detection "
                  f"{v['no confidence'][1]:.2f} s" + (f", worker {r['timings']['worker']:.0f} s"
                                                     if "worker" in r["timings"] else ""), flush=True)
    finally:
        if not kept:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
