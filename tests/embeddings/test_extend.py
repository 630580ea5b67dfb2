"""Images imported after an analysis get a point on the map and an outlier score without a full analysis
(app.embeddings.extend), through the real worker: train -> analyse -> import -> predict -> extend; then the
same space analysed in full for comparison, and the as-of line stale after a label and fresh after the next
analysis. Both databases."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from app.db.models import Flag, Job
from app.embeddings import analyses, knn, outliers
from tests import databases, fmnist
from tests.embeddings import strays
from tests.factories import add_class, label, upload
from tests.workers import FAST, finished, start_worker, stop, wait_for

pytestmark = pytest.mark.slow  # one small train job, a predict job and three analyses: ~60 s on two busy cores

CLASSES = (1, 5, 8)  # trouser, sandal, bag: a small model tells them apart in seconds
PER_CLASS = 30


def _fmnist(per_class: int, start: int) -> list[tuple[str, bytes]]:
    images, labels = fmnist.load("train", start + 30 * per_class)
    files = []
    for c in CLASSES:
        for i in [i for i in range(start, len(labels)) if labels[i] == c][:per_class]:
            buf = io.BytesIO()
            PILImage.fromarray(images[i]).save(buf, format="PNG")
            files.append((f"fmnist-{i:05d}.png", buf.getvalue()))
    return files


def flags_written(body) -> bool:
    return finished(body) and (body["status"] != "succeeded" or "outlier_flags" in (body["metrics"] or {}))


def _analysis_job(db, where, timeout: float = 120) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.reading() as s:
            found = [j for j in s.scalars(select(Job).where(Job.kind == "analyse").order_by(Job.id)) if where(j)]
        if found:
            return found[-1]
        time.sleep(0.2)
    pytest.fail("the analyse job did not come")


@pytest.fixture(scope="module")
def world(tmp_path_factory, database_template):
    data = tmp_path_factory.mktemp("extend") / "data"
    with databases.module_app(database_template, data) as (settings, db, client):
        for c in CLASSES:
            add_class(client, fmnist.CLASSES[c])
        files = _fmnist(PER_CLASS, 0)
        labelled = [x["id"] for x in upload(client, files, "fmnist")["imported"]]
        for k, c in enumerate(CLASSES):
            chosen = labelled[k * PER_CLASS:(k + 1) * PER_CLASS]
            r = client.post("/api/labels/bulk", json={"images": chosen, "class": fmnist.CLASSES[c],
                                                      "annotator": "truth"})
            assert r.status_code in (200, 201), r.text
        snap = client.post("/api/snapshots", json={"name": "s", "split": {"val": 0.2, "seed": 0, "folds": 2}})
        assert snap.status_code == 201, snap.text
        upload(client, _fmnist(10, 5000), "folders")
        worker = start_worker(data)
        try:
            train = client.post("/api/jobs", json={"snapshot": snap.json()["id"], "config": FAST}).json()["id"]
            assert wait_for(client, train, finished)["status"] == "succeeded"
            base = _analysis_job(db, lambda j: j.config.get("space") == train)
            assert wait_for(client, base.id, flags_written)["status"] == "succeeded"
            # Imported after the analysis: 2 of each class and a noise image. The import queues a predict job
            # (the model's guesses and embeddings), and that an extension of the analysis.
            new = [x["id"] for x in upload(client, _fmnist(2, 9000) + strays.noise(1, seed=3), "later")["imported"]]
            ext = _analysis_job(db, lambda j: (j.config or {}).get("extend") is True)
            assert wait_for(client, ext.id, flags_written)["status"] == "succeeded"
            # The same space analysed in full, with the same labels, for comparison.
            full = client.post("/api/jobs", json={"kind": "analyse", "config": {"space": train}})
            assert full.status_code == 201, full.text
            assert wait_for(client, full.json()["id"], flags_written)["status"] == "succeeded"
            with db.reading() as s:
                got = {k: analyses.of_job(settings, s.get(Job, j)) for k, j in
                       (("base", base.id), ("ext", ext.id), ("full", full.json()["id"]))}
            yield SimpleNamespace(client=client, settings=settings, db=db, train=train, new=new, **got)
        finally:
            stop(worker)


def _a(analysis, name):
    return np.asarray(analysis.array(name))


def test_images_imported_after_the_analysis_are_placed_into_it_not_analysed_again(world):
    base, ext = world.base, world.ext
    with world.db.reading() as s:
        job = s.get(Job, ext.job)
        assert job.metrics["placed"] == len(world.new) and job.artifacts["extends"] == base.job
        assert job.metrics["stamp"]["label_event"] == base.stamp["label_event"]  # the labels are still the base's
    assert ext.extends == base.job and set(ext.borrowed) <= {"diverse", "ann_index", "ann_ids"}
    assert _a(ext, "ids").tolist() == sorted(_a(base, "ids").tolist() + world.new)
    old = np.searchsorted(_a(ext, "ids"), _a(base, "ids"))
    rows = np.searchsorted(_a(ext, "ids"), world.new)
    # Every old row's numbers are the base's; the new rows have a point in the box and a score.
    for name in ("xy", "outlier", "outlier_class", "outlier_usual", "neighbour_share", "map_class"):
        assert np.array_equal(_a(ext, name)[old], _a(base, name), equal_nan=True), name
    assert np.array_equal(_a(base, "ids")[_a(base, "outlier_knn")], _a(ext, "ids")[_a(ext, "outlier_knn")[old]])
    xy = _a(ext, "xy")[rows]
    assert np.isfinite(xy).all() and (np.abs(xy) <= 1).all()
    assert np.isfinite(_a(ext, "outlier")[rows]).all() and np.isnan(_a(ext, "neighbour_share")[rows]).all()
    # The map shows them, says when they were placed, and that the labels are as of the base analysis.
    body = world.client.get("/api/embeddings/map", params={"job": ext.job}).json()
    assert set(world.new) <= {it["image"] for it in body["items"]}
    assert body["as_of"]["extends"] == base.job and body["as_of"]["placed_at"]
    page = world.client.get("/map", params={"job": ext.job}).text
    assert f"images embedded since #{base.job} placed at" in page
    job_page = world.client.get(f"/jobs/{ext.job}")
    assert job_page.status_code == 200 and f"placed into analysis #{base.job}" in job_page.text
    # Its outlier flags say which labels they were scored against, and so does the review page.
    with world.db.reading() as s:
        flag = s.scalars(select(Flag).where(Flag.kind == "outlier", Flag.status == "open")).first()
        assert flag is not None
        at = s.get(Job, flag.details["analysis"]).metrics["stamp"]["at"]
        assert flag.details["labels_as_of"] == at
    review = world.client.get("/review", params={"kind": "outlier"}).text
    assert "scored against the labels as of " + at[:16].replace("T", " ") in review


def test_the_extension_measures_what_a_full_analysis_with_the_same_labels_does(world):
    ext, full = world.ext, world.full
    assert _a(ext, "ids").tolist() == _a(full, "ids").tolist()
    rows = np.searchsorted(_a(ext, "ids"), world.new)
    ids = _a(ext, "ids")
    # The outlier distance (to the K-th nearest labelled image): the same for every row, new or old (new
    # unlabelled images do not change the labelled reference). 2e-3: float16 storage of dot products summed
    # in another order.
    d_ext, d_full = outliers.kth_distance(_a(ext, "outlier_knn_distance")), outliers.kth_distance(
        _a(full, "outlier_knn_distance"))
    assert np.allclose(d_ext, d_full, atol=2e-3)
    assert np.array_equal(_a(ext, "outlier_reference"), _a(full, "outlier_reference"))
    # The group a new row is measured in (the model's guess) is the full analysis' too.
    assert _a(ext, "outlier_class")[rows].tolist() == _a(full, "outlier_class")[rows].tolist()
    # Each new row's K nearest images among all: the same distances as the full analysis' graph.
    assert np.allclose(_a(ext, "knn_distance")[rows].astype(np.float32),
                       _a(full, "knn_distance")[rows].astype(np.float32), atol=2e-3)
    same = [len(set(ids[_a(ext, "knn")[r]]) & set(ids[_a(full, "knn")[r]])) for r in rows]
    assert min(same) >= knn.K - 1, same  # a tie at the K-th place may go either way
    # z: the base's group statistics against the full analysis' (which count the 7 new rows too): close.
    z_ext, z_full = _a(ext, "outlier")[rows], _a(full, "outlier")[rows]
    # Measured: differences 0 to 0.13 on the ordinary new images (|z| < 3.2), 0.27 on the noise image's z of 15.6.
    assert np.allclose(z_ext, z_full, rtol=0.05, atol=0.2), (z_ext, z_full)
    # And the noise image is the strangest new image in both.
    noise = world.new[-1]
    assert ids[rows[np.argmax(z_ext)]] == noise and ids[rows[np.argmax(z_full)]] == noise


def test_the_map_is_stale_after_a_label_and_fresh_after_the_next_analysis(world):
    client = world.client
    assert client.get("/api/embeddings/map").json()["as_of"]["since"] == {"labels": 0, "exclusions": 0, "images": 0}
    assert "no label or exclusion changed since" in client.get("/map").text
    label(client, world.new[0], fmnist.CLASSES[CLASSES[0]])
    assert client.get("/api/embeddings/map").json()["as_of"]["since"]["labels"] == 1
    page = client.get("/map").text
    assert 'data-stale="true"' in page and "1 label change and 0 exclusion changes since" in page
    again = client.post("/api/jobs", json={"kind": "analyse", "config": {"space": world.train}}).json()["id"]
    assert wait_for(client, again, flags_written)["status"] == "succeeded"
    when = client.get("/api/embeddings/map").json()["as_of"]
    assert when["job"] == again and when["since"] == {"labels": 0, "exclusions": 0, "images": 0}
    assert 'data-stale="false"' in client.get("/map").text
