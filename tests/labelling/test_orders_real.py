"""The queue orders on what the real worker writes: a train job's per-source accuracy and suggestions, and the
analysis's diverse order, on real Fashion-MNIST images; and the per-source trend of that job."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from app.db.models import Image, Job, Prediction, Source
from app.embeddings import analyses
from app.labelling.queries import queue_ids
from tests import fmnist
from tests.factories import add_class, upload
from tests.workers import FAST, finished, start_worker, stop, wait_for

pytestmark = pytest.mark.slow  # one real train job (3 small models) and its analysis: ~40 s on two busy cores

CLASSES = (1, 5, 8)  # trouser, sandal, bag: told apart by a small model in a few epochs


def fmnist_files(n_per_class: int, start: int) -> tuple[list[tuple[str, bytes]], list[int]]:
    images, labels = fmnist.load("train", start + 40 * n_per_class)
    files, truth = [], []
    for c in CLASSES:
        for i in [i for i in range(start, len(labels)) if labels[i] == c][:n_per_class]:
            buf = io.BytesIO()
            PILImage.fromarray(images[i]).save(buf, format="PNG")
            files.append((f"fmnist-{i:05d}.png", buf.getvalue()))
            truth.append(c)
    return files, truth


def upload_labelled(client, source: str, start: int, *, wrong_share: float) -> None:
    """20 images a class from `source`, labelled; `wrong_share` of them with another class (a careless scrape)."""
    files, truth = fmnist_files(20, start)
    ids = [x["id"] for x in upload(client, files, source)["imported"]]
    rng = np.random.default_rng(start)
    for image, c in zip(ids, truth):
        if rng.random() < wrong_share:
            c = CLASSES[(CLASSES.index(c) + 1) % len(CLASSES)]
        r = client.post(f"/api/images/{image}/labels", json={"class": fmnist.CLASSES[c], "annotator": "truth"})
        assert r.status_code == 201, r.text


def test_the_orders_follow_the_real_workers_accuracy_suggestions_and_diverse_order(client, settings, db):
    for c in CLASSES:
        add_class(client, fmnist.CLASSES[c])
    upload_labelled(client, "stock", 0, wrong_share=0.0)
    upload_labelled(client, "web", 2000, wrong_share=0.4)
    snap = client.post("/api/snapshots", json={"name": "s", "split": {"val": 0.2, "seed": 0, "folds": 2}})
    assert snap.status_code == 201, snap.text
    unlabelled = {source: [x["id"] for x in upload(client, fmnist_files(n, start)[0], source)["imported"]]
                  for source, n, start in (("stock", 10, 4000), ("web", 10, 6000), ("phone", 5, 8000))}
    train = client.post("/api/jobs", json={"snapshot": snap.json()["id"], "config": FAST}).json()["id"]
    worker = start_worker(settings.data)
    try:
        assert wait_for(client, train, finished)["status"] == "succeeded"
        deadline = time.monotonic() + 120
        while (analysis := _analysis(db, settings)) is None and time.monotonic() < deadline:
            time.sleep(0.3)
        assert analysis is not None, "the analysis queued after the train job never succeeded"
    finally:
        stop(worker)

    per_source = client.get(f"/api/jobs/{train}").json()["metrics"]["per_source"]
    assert set(per_source) == {"stock", "web"} and per_source["web"] < per_source["stock"]

    # Weakest source first: every waiting web image, least sure first, then stock's, then phone's (unmeasured).
    with db.reading() as s:
        got = queue_ids(s, order="weakest-source", settings=settings, n=100)
        source_of = dict(s.execute(select(Image.id, Source.name).join(Source, Source.id == Image.source_id)).all())
        margin = dict(s.execute(select(Prediction.image_id, Prediction.margin)
                                .where(Prediction.job_id == train, Prediction.role == "suggestion")).all())
    assert [source_of[i] for i in got] == ["web"] * 30 + ["stock"] * 30 + ["phone"] * 15
    assert sorted(got[:30]) == sorted(unlabelled["web"])
    assert [margin[i] for i in got[:30]] == sorted(margin[i] for i in got[:30])
    r = client.get("/api/queue", params={"order": "weakest-source", "n": 1}).json()
    assert r["in_force"] == "weakest-source" and r["images"] == got[:1]
    assert r["note"] == f"From web: {per_source['web']:.0%} out-of-sample accuracy (job #{train}), the weakest source."

    # Diverse: the analysis's order as it stands, passing over what is labelled since.
    order = analysis.array("diverse").tolist()
    assert sorted(order) == sorted(i for ids in unlabelled.values() for i in ids)
    r = client.get("/api/queue", params={"order": "diverse", "n": 20}).json()
    assert r["in_force"] == "diverse" and r["images"] == order[:20]
    for image in order[:3]:
        assert client.post(f"/api/images/{image}/labels", json={"class": "bag"}).status_code == 201
    assert client.get("/api/queue", params={"order": "diverse", "n": 20}).json()["images"] == order[3:23]

    trend = client.get("/api/quality/sources").json()
    assert [p["job"] for p in trend["points"]] == [train] and trend["points"][0]["accuracy"] == per_source
    assert trend["sources"] == ["web", "stock"]


def _analysis(db, settings) -> analyses.Analysis | None:
    with db.reading() as s:
        failed = s.scalars(select(Job).where(Job.kind == "analyse", Job.status == "failed")).first()
        assert failed is None, failed.error
        return analyses.latest(s, settings)
