"""A finished job with chosen out-of-sample probabilities, written the way the worker writes one."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.db.engine import Database
from app.training import jobs
from app.training.spec import Item, Result
from app.training.worker import after_finish, prediction_rows
from tests.factories import labelled_snapshot


def snapshot_labels(client, snap: dict) -> tuple[list[str], dict[int, int]]:
    """(class names in the snapshot's index order, image id -> class index)."""
    classes = client.get(f"/api/snapshots/{snap['id']}").json()["classes"]
    items = client.get(f"/api/snapshots/{snap['id']}/items").json()["items"]
    return classes, {i["image"]: classes.index(i["class"]) for i in items}


def confident_probs(labels: dict[int, int], k: int, *, wrong: dict[int, int] = {}, sure: float = 0.9,
                    seed: int = 0) -> dict[int, list[float]]:
    """Probabilities that agree with each label (`sure` on it), except for `wrong` (image -> class believed)."""
    rng = np.random.default_rng(seed)
    out = {}
    for image, label in labels.items():
        target = wrong.get(image, label)
        p = rng.dirichlet(np.ones(k)) * (1 - sure)
        p[target] += sure
        out[image] = (p / p.sum()).tolist()
    return out


def finish_job(client, db, snap: dict, oof: dict[int, list[float]], *, run_hook: bool = True,
               metrics: dict | None = None) -> int:
    """Create, claim and finish a job with these out-of-sample predictions; then the worker's after-finish hook."""
    job_id = client.post("/api/jobs", json={"snapshot": snap["id"], "config": {"epochs": 1}}).json()["id"]
    classes = client.get(f"/api/snapshots/{snap['id']}").json()["classes"]
    result = Result(classes=classes, out_of_sample=oof, suggestions={}, metrics=metrics or {"accuracy": 1.0}, final={},
                    model_path=None, device="cpu")
    items = [Item(image_id=i, path="", label=0, split="train", fold=0, source="fmnist") for i in oof]
    with db.writing() as s:
        assert jobs.claim(s, "w").id == job_id
    with db.writing() as s:
        assert jobs.finish(s, job_id, "w", status="succeeded", result=result,
                           predictions=prediction_rows(result, items, None))
    if run_hook:
        after_finish(db, job_id, "succeeded")
    return job_id


def planted_job_on_server(client, data: Path, *, n: int, folds: int, wrong) -> tuple[list[str], dict[int, int]]:
    """For browser tests: a snapshot of n labelled images on a live server (SQLite data dir `data`) and a
    finished job whose model believes `wrong(ids, labels)` ({image: class index}); returns (classes, labels)."""
    snap = labelled_snapshot(client, n, classes=3, folds=folds)
    classes, labels = snapshot_labels(client, snap)
    db = Database(f"sqlite:///{data / 'loupe.db'}")
    try:
        finish_job(client, db, snap, confident_probs(labels, 3, wrong=wrong(sorted(labels), labels)))
    finally:
        db.dispose()
    return classes, labels
