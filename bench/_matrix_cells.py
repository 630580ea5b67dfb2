"""One cell of the mislabel matrix (bench/matrix.py) through the real pipeline, cached as an .npz.

A cell is (dataset, noise kind, rate). Building it, in a fresh data dir:

1. the dataset's first n images (Fashion-MNIST's training set, or the letters
   tests/letters.py renders), each from one of three sources (shares 0.4 /
   0.35 / 0.25, seeded), imported through the HTTP API (`POST /api/images`, the
   app in-process), one request per source;
2. the cell's planted noise (tests/noise.py); a rare-class cell first cuts one
   class to 4 % of the images (Fashion-MNIST, 10 classes) or 1.5 % (letters,
   20 classes). Every image is labelled through
   `POST /api/labels/bulk` by its source's annotator, with a simulated
   confidence: correct labels "sure" / "unsure" / "guess" with probabilities
   0.85 / 0.12 / 0.03, wrong ones 0.40 / 0.35 / 0.25;
3. a snapshot (val 0.2, 5 folds) and a train job with the default config;
4. the real worker process (`python -m app.cli worker --once`) trains the
   fold models and the final model, writes out-of-sample predictions,
   oof-embeddings.npy and, on success, its mislabel flags;
5. what the detector needs is read back and saved to bench/out/matrix/<cell>.npz;
   the data dir is deleted.

The .npz (all rows in image-id order, over the job's out-of-sample images):
image_ids, given and true (column index into `classes`, the snapshot's class
order), probs (N, K) out-of-sample, confidence (annotator), fold, source
(index into `sources`), annotator (same index: one annotator per source),
flag_ids / flag_scores (the worker's open mislabel flags), oof_embeddings and
oof_embedding_ids (when the job wrote them), est_noise (the quality page's
estimate, from app.quality.report.noise_summary), est_source_noise (per
source, in `sources` order), timings (import, worker seconds), and the
cell's dataset / kind / rate / n / seed.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from fastapi.testclient import TestClient  # noqa: E402

from app.artifacts import job_dir  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db.engine import Database  # noqa: E402
from app.db.models import Job  # noqa: E402
from app.embeddings import files as embedding_files  # noqa: E402
from app.main import create_app  # noqa: E402
from app.quality.jobprobs import job_probs  # noqa: E402
from app.quality.report import noise_summary  # noqa: E402
from tests import fmnist, letters, noise  # noqa: E402

OUT = ROOT / "bench" / "out" / "matrix"
SOURCES = ["source-a", "source-b", "source-c"]
SOURCE_SHARES = [0.40, 0.35, 0.25]
NOISY_SOURCE = 0  # the noisy_source kind: this one at 4x the others' rate
LEVELS = np.array([1.0, 0.6, 0.3])  # sure, unsure, guess (app.keyboard.CONFIDENCE_LEVELS)
P_CLEAN, P_FLIPPED = [0.85, 0.12, 0.03], [0.40, 0.35, 0.25]
# Look-alike pairs for Fashion-MNIST (bags never flipped).
FMNIST_SIMILAR = {0: [6, 2], 6: [0, 2, 4], 2: [4, 6, 0], 4: [2, 6], 3: [4, 1], 1: [3], 5: [7, 9], 7: [5, 9],
                  9: [7, 5]}
DATASETS = {
    # name: (classes, look-alike pairs, the class a rare-class cell cuts, to this share of the images)
    "fmnist": (fmnist.CLASSES, FMNIST_SIMILAR, 3, 0.04),   # dress: 4 % where a class is 10 %
    # Q, a look-alike of O, to 1.5 %: at 4 % it would hardly be rarer than the 5 % each of 20 letters has.
    "letters": (letters.CLASSES, letters.SIMILAR, letters.CLASSES.index("Q"), 0.015),
}


def cell_name(dataset: str, kind: str, rate: float) -> str:
    return f"{dataset}-{kind}-{int(round(rate * 100)):02d}"


def load_images(dataset: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    if dataset == "fmnist":
        return fmnist.load("train", n)
    return letters.load(n, seed=0)


def plant(dataset: str, kind: str, rate: float, truth: np.ndarray, source: np.ndarray, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray]:
    classes, pairs, rare, _ = DATASETS[dataset]
    if kind == "uniform":
        return noise.uniform(truth, rng, rate, len(classes))
    if kind == "lookalike":
        return noise.lookalike(truth, rng, rate, pairs)
    if kind == "noisy_source":
        return noise.noisy_source(truth, rng, rate, len(classes), source, noisy=NOISY_SOURCE, factor=4)
    if kind == "rare_class":
        return noise.rare_class(truth, rng, rate, len(classes), rare)
    raise SystemExit(f"unknown noise kind {kind!r}; one of {', '.join(noise.KINDS)}")


def _upload(client: TestClient, dataset: str, images: np.ndarray, index: np.ndarray, source: str) -> dict[int, int]:
    """Import images[index] from `source`; {index: image id} (a duplicate maps to the id it duplicates)."""
    out = {}
    for start in range(0, len(index), 500):
        files = []
        for i in index[start:start + 500]:
            buf = io.BytesIO()
            Image.fromarray(images[i]).save(buf, format="PNG")
            files.append(("files", (f"{dataset}-{i:05d}.png", buf.getvalue(), "image/png")))
        r = client.post("/api/images", data={"source": source}, files=files)
        r.raise_for_status()
        body = r.json()
        assert not body["rejected"], body["rejected"]
        by_name = {x["filename"]: x["id"] for x in body["imported"] + body["duplicates"]}
        out.update({int(f[1][0].rsplit("-", 1)[1][:-4]): by_name[f[1][0]] for f in files})
    return out


def build(dataset: str, kind: str, rate: float, n: int, seed: int, epochs: int | None, log=print) -> Path:
    """Run the cell through the real pipeline and write its .npz; returns the path."""
    classes, _, rare, rare_share = DATASETS[dataset]
    name = cell_name(dataset, kind, rate)
    rng = np.random.default_rng([seed, int(round(rate * 1000)), noise.KINDS.index(kind)])
    images, truth = load_images(dataset, n)
    if kind == "rare_class":
        keep = noise.subsample_rare(truth, rng, rare, share=rare_share)
        images, truth = images[keep], truth[keep]
    source = np.random.default_rng([seed, 7]).choice(len(SOURCES), len(truth), p=SOURCE_SHARES)
    given, flipped = plant(dataset, kind, rate, truth, source, rng)
    confidence = np.where(flipped, rng.choice(LEVELS, len(truth), p=P_FLIPPED),
                          rng.choice(LEVELS, len(truth), p=P_CLEAN))

    data = OUT / f"{name}.data"
    shutil.rmtree(data, ignore_errors=True)
    timings = {}
    with TestClient(create_app(Settings(data=data))) as client:
        t = time.perf_counter()
        for c in classes:
            client.post("/api/taxonomy/changes", json={"op": "add", "name": c}).raise_for_status()
        ids = {}
        for s, sname in enumerate(SOURCES):
            ids.update(_upload(client, dataset, images, np.flatnonzero(source == s), sname))
        # An exact duplicate image maps to one id: keep its first index only.
        first = {}
        for i in range(len(truth)):
            first.setdefault(ids[i], i)
        kept = np.array(sorted(first.values()))
        id_of = np.array([ids[i] for i in range(len(truth))])
        for s, sname in enumerate(SOURCES):
            for c in range(len(classes)):
                for level in LEVELS:
                    chosen = id_of[kept[(given[kept] == c) & (confidence[kept] == level) & (source[kept] == s)]]
                    if len(chosen):
                        client.post("/api/labels/bulk", json={
                            "images": chosen.tolist(), "class": classes[c], "confidence": float(level),
                            "annotator": f"annotator-{sname[-1]}"}).raise_for_status()
        timings["import"] = time.perf_counter() - t
        r = client.post("/api/snapshots", json={"name": name,
                                                "split": {"val": 0.2, "test": 0.0, "seed": seed, "folds": 5}})
        r.raise_for_status()
        job = client.post("/api/jobs", json={"snapshot": r.json()["id"],
                                             "config": {"epochs": epochs} if epochs else {}}).json()["id"]
        t = time.perf_counter()
        worker = subprocess.run([sys.executable, "-m", "app.cli", "worker", "--data", str(data), "--once"],
                                cwd=ROOT, env={**os.environ, "LOUPE_TOKEN": ""}, capture_output=True, text=True)
        timings["worker"] = time.perf_counter() - t
        body = client.get(f"/api/jobs/{job}").json()
        if body["status"] != "succeeded":
            raise SystemExit(f"{name}: job {job} {body['status']}: {body['error']}\n{worker.stderr[-3000:]}")
        flags = _all_flags(client)

    settings = Settings(data=data)
    db = Database(settings.database_url)
    with db.reading() as s:
        jp = job_probs(s, s.get(Job, job))
        summary = noise_summary(s, s.get(Job, job)) or {}
        from app.db.models import LabelClass
        class_names = [s.get(LabelClass, cid).name for cid in jp.class_ids]
    db.dispose()
    index_of = {int(id_of[i]): int(i) for i in kept}
    rows = np.array([index_of[int(i)] for i in jp.image_ids])
    to_column = np.array([class_names.index(c) for c in classes])
    per_source = {p["source"]: p["noise"] for p in summary.get("per_source", [])}
    arrays = {
        "image_ids": jp.image_ids, "given": jp.labels, "true": to_column[truth[rows]], "probs": jp.probs,
        "confidence": jp.confidence, "fold": jp.folds, "source": source[rows], "annotator": source[rows],
        "planted_given": to_column[given[rows]],
        "classes": np.array(class_names), "sources": np.array(SOURCES),
        "flag_ids": np.array([f["image"] for f in flags], dtype=np.int64),
        "flag_scores": np.array([f["score"] for f in flags], dtype=np.float64),
        "est_noise": np.float64(summary.get("noise", np.nan)),
        "est_source_noise": np.array([per_source.get(sname, np.nan) for sname in SOURCES]),
        "timings": np.array([timings["import"], timings["worker"]]),
        "dataset": dataset, "kind": kind, "rate": np.float64(rate), "n": np.int64(len(truth)), "seed": np.int64(seed),
        "job": np.int64(job),
    }
    folder = job_dir(settings, job)
    oof_vectors, oof_ids = folder / (embedding_files.OOF + embedding_files.VECTORS), \
        folder / (embedding_files.OOF + embedding_files.IDS)
    if oof_vectors.exists() and oof_ids.exists():
        e_ids, e_rows = embedding_files.load(oof_vectors, oof_ids)
        arrays["oof_embedding_ids"], arrays["oof_embeddings"] = e_ids, np.asarray(e_rows)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.npz"
    np.savez_compressed(path, **arrays)
    shutil.rmtree(data, ignore_errors=True)
    log(f"  built {name}: {len(rows)} images, worker {timings['worker']:.0f} s, import {timings['import']:.0f} s",
        file=sys.stderr)
    return path


def _all_flags(client: TestClient) -> list[dict]:
    out, offset = [], 0
    while True:
        page = client.get("/api/flags", params={"kind": "mislabel", "status": "open", "limit": 1000,
                                                "offset": offset}).json()
        out += page["items"]
        offset += 1000
        if offset >= page["total"]:
            return out
