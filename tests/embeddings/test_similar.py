"""Embeddings as data and similar images: real Fashion-MNIST images through the real worker process."""

from __future__ import annotations

import time

import numpy as np
import pytest

from app.db.models import Job
from app.embeddings import files, similar
from tests.factories import labelled_snapshot, upload, upload_fmnist
from tests.training.test_predict import exported_model_and_images, fmnist_files
from tests.workers import FAST, finished, start_worker, stop, wait_for


def test_nearest_finds_the_planted_cluster_and_leaves_the_query_out():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 32))
    labels = np.repeat(np.arange(5), 40)
    rows = similar.normalise((centres[labels] + 0.2 * rng.normal(size=(200, 32))).astype(np.float16))
    assert np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)
    for q in (0, 57, 199):
        got, dist = similar.nearest(rows, rows[q], 10, exclude=q)
        assert q not in got and len(got) == 10
        assert (labels[got] == labels[q]).all()                      # every neighbour from the query's cluster
        assert (np.diff(dist) >= 0).all() and (dist >= 0).all()      # nearest first
        full = 1 - rows @ rows[q]
        full[q] = np.inf
        assert np.allclose(np.sort(full)[:10], dist, atol=1e-5)      # exactly the 10 smallest distances
    got, _ = similar.nearest(rows[:3], rows[0], 20, exclude=0)
    assert sorted(got.tolist()) == [1, 2]                            # k larger than what there is


def test_the_writer_lays_rows_out_by_id_and_drops_rows_never_written(tmp_path):
    writer = files.Writer(tmp_path, [30, 10, 20, 40], 3)
    writer.write([40, 10], np.array([[4, 4, 4], [1, 1, 1]], dtype=np.float32))
    writer.write([30], np.array([[3, 3, 3]], dtype=np.float32))          # 20 never comes (an unreadable image)
    with pytest.raises(ValueError):
        writer.write([99], np.zeros((1, 3)))
    info = writer.finish()
    ids, rows = files.load(tmp_path / files.VECTORS, tmp_path / files.IDS)
    assert ids.tolist() == [10, 30, 40] and rows.dtype == np.float16 and info["embedded"] == 3
    assert rows[:, 0].tolist() == [1, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([files.VECTORS, files.IDS])


def same_class_share(client, ids: list[int], truth: dict[int, str], k: int) -> float:
    shares = []
    for image_id in ids:
        r = client.get(f"/api/images/{image_id}/similar", params={"k": k})
        assert r.status_code == 200, r.text
        items = r.json()["items"]
        assert len(items) == k and image_id not in {it["image"] for it in items}
        assert [it["distance"] for it in items] == sorted(it["distance"] for it in items)
        shares.append(np.mean([truth.get(it["image"]) == truth[image_id] for it in items]))
    return float(np.mean(shares))


@pytest.mark.slow  # a real worker trains 3 small models and runs a predict job: ~20-30 s on two busy cores
def test_a_train_job_stores_embeddings_and_similar_images_share_the_class(client, settings, db):
    snap = labelled_snapshot(client, 400, classes=10, folds=2)
    items = client.get(f"/api/snapshots/{snap['id']}/items").json()["items"]
    truth = {it["image"]: it["class"] for it in items}
    unlabelled = upload_fmnist(client, 30, start=5000, source="later")
    first = items[0]["image"]
    r = client.get(f"/api/images/{first}/similar")
    assert r.status_code == 404 and "no embeddings" in r.json()["detail"]
    assert "train a model" in client.get(f"/images/{first}").text                   # the page still shows, and says why

    train = client.post("/api/jobs", json={"snapshot": snap["id"], "config": {**FAST, "epochs": 6}}).json()["id"]
    worker = start_worker(settings.data_dir)
    try:
        assert wait_for(client, train, finished)["status"] == "succeeded"
        with db.reading() as s:
            art = s.get(Job, train).artifacts
        ids, rows = files.load(*(settings.jobs_dir / f"job-{train}" / n for n in (files.VECTORS, files.IDS)))
        assert art["embedded"] == len(ids) == 430 and art["embedding_dim"] == 256
        assert ids.tolist() == sorted([*truth, *unlabelled]) and rows.dtype == np.float16
        assert np.isfinite(rows.astype(np.float32)).all() and (np.abs(rows).sum(axis=1) > 0).all()
        # The out-of-sample pair: every labelled image, from the fold model that did not train on it.
        oof_ids, oof_rows = files.load(*(settings.jobs_dir / f"job-{train}" / f"{files.OOF}{n}"
                                         for n in (files.VECTORS, files.IDS)))
        assert oof_ids.tolist() == sorted(truth) and art["oof_embedded"] == 400
        labelled = np.searchsorted(ids, oof_ids)
        assert not np.allclose(oof_rows.astype(np.float32), rows[labelled].astype(np.float32))
        # Resume-only files (checkpoints, the folds' unmerged embeddings) go once the job is finished: they
        # doubled a job's disk use. What the app reads stays.
        # The worker drops them right after it records the job's end: give it a moment to get there.
        deadline = time.monotonic() + 15
        while True:
            left = sorted(p.name for p in (settings.jobs_dir / f"job-{train}").iterdir())
            resume = [n for n in left if n.startswith(("ckpt-", "emb-fold", "oof-fold"))]
            if not resume or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert not resume, left
        assert {"model.pt", files.VECTORS, files.IDS, f"{files.OOF}{files.VECTORS}"} <= set(left)

        share = same_class_share(client, sorted(truth), truth, 10)
        print(f"mean share of same-class neighbours at k=10: {share:.3f} (chance 0.1)")
        assert share >= 0.6

        # One space: an unlabelled image's neighbours are found among the labelled ones too (and the reverse).
        body = client.get(f"/api/images/{unlabelled[0]}/similar", params={"k": 10}).json()
        assert sum(it["class"] is not None for it in body["items"]) >= 5

        body = client.get(f"/api/images/{unlabelled[0]}/similar", params={"k": 5}).json()
        assert body["job"] == train and len(body["items"]) == 5
        assert all(it["class"] in set(truth.values()) | {None} for it in body["items"])

        # New images: a predict job embeds them in the same model's space, so they are searchable at once.
        report = upload(client, fmnist_files(12, 6000), "new")
        done = wait_for(client, report["predict_job"], finished, timeout=60)
        assert done["status"] == "succeeded", done["error"]
        new = [x["id"] for x in report["imported"]]
        r = client.get(f"/api/images/{new[0]}/similar", params={"k": 10})
        assert r.status_code == 200 and r.json()["job"] == train                     # the model job's space
        assert client.get(f"/api/images/{new[0]}/similar", params={"job": done["id"]}).json()["job"] == train
        with db.reading() as s:
            index = similar.load_index(s, settings, train)                           # the cache saw the new job
        assert set(new) <= set(index.ids.tolist()) and len(index.ids) == 442         # so they are found too

        page = client.get(f"/images/{first}").text
        assert "Similar images" in page and page.count('class="similar-label"') == 12
        top = client.get(f"/api/images/{first}/similar", params={"k": 12}).json()["items"]
        assert f'href="/images/{top[0]["image"]}"' in page and f"/api/images/{top[0]['image']}/thumb" in page

        assert client.get("/api/images/999999/similar").status_code == 404
        assert client.get(f"/api/images/{first}/similar", params={"k": 0}).status_code == 422
        assert client.get(f"/api/images/{first}/similar", params={"job": 999999}).status_code == 404
    finally:
        stop(worker)


def test_a_predict_run_writes_the_models_penultimate_layer(tmp_path):
    """predict.run with a workdir embeds what it predicts: model.pt's embed method, the same numbers as the
    model in memory; an unreadable image gets no row."""
    import torch

    from app.training import data, nets, predict
    from tests.training.test_train import Recorder

    model, mean, std, path, images = exported_model_and_images(tmp_path, 4)
    out = predict.run(path, 28, ["a", "b", "c"], images, Recorder(), "cpu", workdir=tmp_path / "job")
    assert out.embeddings["embedded"] == 4 and out.embeddings["embedding_dim"] == 256
    ids, rows = files.load(tmp_path / "job" / files.VECTORS, tmp_path / "job" / files.IDS)
    assert ids.tolist() == [1, 2, 3, 4]
    x, _ = data.decode_all([p for _, p in images[:4]], 28, progress=lambda d: None, cancelled=lambda: False)
    with torch.no_grad():
        x = (x.float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        expected = nets.penultimate(model, "smallcnn", x).numpy()
    assert np.allclose(rows.astype(np.float32), expected, rtol=1e-2, atol=1e-2)
