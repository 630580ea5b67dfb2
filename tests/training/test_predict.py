"""Predictions for images imported after a model trained: a "predict" job runs the model, no retraining.

The real worker process, a tiny real snapshot and a tiny config (seconds on CPU).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import select, update

from app.db.models import Image, Job
from app.labelling.queries import queue_ids
from app.training import jobs, predict
from app.training.spec import Result
from tests import databases, fmnist
from tests.factories import finish_train, label, labelled_snapshot, upload
from tests.workers import FAST, finished, start_worker, stop, wait_for

LOUPE = Path(sys.executable).with_name("loupe")


def fmnist_files(n: int, start: int) -> list[tuple[str, bytes]]:
    images, _ = fmnist.load("train", start + n)
    out = []
    for i in range(start, start + n):
        buf = io.BytesIO()
        PILImage.fromarray(images[i]).save(buf, format="PNG")
        out.append((f"new-{i:05d}.png", buf.getvalue()))
    return out


def loupe(*args) -> subprocess.CompletedProcess:
    command = [str(LOUPE)] if LOUPE.exists() else [sys.executable, "-m", "app.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")} | databases.data_env(args)
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.slow  # a real worker trains, then runs three predict jobs: 10-25 s on two busy cores
def test_new_images_get_the_latest_models_guesses_without_retraining(client, settings, db, tmp_path):
    snap = labelled_snapshot(client, 24, classes=3, folds=2)
    names = client.get(f"/api/snapshots/{snap['id']}").json()["classes"]
    r = client.post("/api/jobs", json={"kind": "predict"})
    assert r.status_code == 422 and "train one" in r.json()["detail"]      # no model yet
    assert upload(client, fmnist_files(1, 900), "early")["predict_job"] is None
    train = client.post("/api/jobs", json={"snapshot": snap["id"], "config": {**FAST, "epochs": 2}}).json()["id"]
    worker = start_worker(settings.data_dir)
    try:
        assert wait_for(client, train, finished)["status"] == "succeeded"
        early = client.get("/api/images", params={"source": "early"}).json()["items"][0]["id"]
        assert client.get(f"/api/images/{early}").json()["prediction"]["job"] == train   # unlabelled at training

        # A web import of 30 images queues one predict job, which the worker runs with the train job's model.
        report = upload(client, fmnist_files(30, 1000), "new")
        new = [x["id"] for x in report["imported"]]
        assert len(new) == 30 and report["predict_job"] is not None
        body = wait_for(client, report["predict_job"], finished, timeout=60)
        assert body["status"] == "succeeded", body["error"]
        assert body["kind"] == "predict" and body["config"] == {"model_job": train} and body["snapshot"] == snap["id"]
        assert len(jobs_of(db, "train")) == 1                                       # nothing retrained
        preds = client.get(f"/api/jobs/{body['id']}/predictions").json()
        assert preds["classes"] == names
        assert {p["image"] for p in preds["items"]} == set(new)    # the early one has the train job's already
        assert all(p["role"] == "suggestion" and abs(sum(p["probs"]) - 1) < 1e-3 for p in preds["items"])

        for image_id in new:
            p = client.get(f"/api/images/{image_id}").json()["prediction"]
            assert p["job"] == body["id"] and p["model_job"] == train and p["class"] in names
            assert [t["class"] for t in p["top"]][0] == p["class"] and len(p["top"]) == 3
            assert p["p"] == p["top"][0]["p"] >= p["top"][1]["p"] >= p["top"][2]["p"]
            assert abs(sum(t["p"] for t in p["top"]) - 1) < 1e-3

        # "Most uncertain first" now walks the new images too, smallest top-1 minus top-2 margin first.
        margin = {p["image"]: sorted(p["probs"])[-1] - sorted(p["probs"])[-2] for p in preds["items"]}
        margin[early] = None
        with db.reading() as s:
            order = queue_ids(s, order="uncertain", n=31)
        assert set(order) == {*new, early}
        ranked = [i for i in order if i in new]
        assert [round(margin[i], 6) for i in ranked] == sorted(round(margin[i], 6) for i in ranked)
        first = client.get("/label", params={"order": "uncertain"}).text
        assert f'data-image-id="{order[0]}"' in first and 'class="guess' in first

        # `loupe import` queues one too; so does the jobs page's button (nothing new left: 0 predicted).
        folder = tmp_path / "more"
        folder.mkdir()
        for name, data in fmnist_files(5, 2000):
            (folder / name).write_bytes(data)
        done = loupe("import", folder, "--source", "cli", "--data", settings.data_dir)
        assert done.returncode == 0, done.stderr
        queued = int(done.stdout.split("queued predict job #")[1].split(":")[0])
        assert wait_for(client, queued, finished, timeout=60)["status"] == "succeeded"
        cli_ids = [i["id"] for i in client.get("/api/images", params={"source": "cli"}).json()["items"]]
        assert all(client.get(f"/api/images/{i}").json()["prediction"]["job"] == queued for i in cli_ids)

        page = client.get("/jobs", headers={"Accept": "text/html"}).text
        assert 'action="/jobs/predict"' in page
        r = client.post("/jobs/predict", follow_redirects=False)
        assert r.status_code == 303
        on_demand = int(r.headers["location"].rsplit("/", 1)[1])
        body = wait_for(client, on_demand, finished, timeout=60)
        assert body["status"] == "succeeded" and body["message"] == "done: 0 images predicted"
        html = client.get(f"/jobs/{on_demand}", headers={"Accept": "text/html"}).text
        assert f'href="/jobs/{train}"' in html and "images predicted" in html
    finally:
        stop(worker)


def jobs_of(db, kind: str) -> list[int]:
    with db.reading() as s:
        return list(s.scalars(select(Job.id).where(Job.kind == kind)))


def finished_model(client, db, snap, suggestions: dict[int, list[float]], model_path: str = "model.pt") -> int:
    """A train job finished the way the worker finishes one, with a (pretend) model file."""
    return finish_train(client, db, snap, suggestions=suggestions, accuracy=None, model_path=model_path)


def test_which_images_a_predict_job_takes(client, settings, db):
    snap = labelled_snapshot(client, 12, classes=3, folds=2)
    before = [x["id"] for x in upload(client, fmnist_files(3, 900), "before")["imported"]]
    model = finished_model(client, db, snap, {before[0]: [0.5, 0.3, 0.2]})
    after = [x["id"] for x in upload(client, fmnist_files(4, 1000), "after")["imported"]]
    label(client, after[0], "t-shirt")      # labelled since: not in the model's snapshot, so still predicted
    label(client, before[1], "t-shirt")     # labelled before any guess, and already in the past: skipped
    with db.writing() as s:
        s.execute(update(Image).where(Image.id == after[1]).values(excluded=True))
        s.commit()
    with db.reading() as s:
        taken = [i for i, _ in predict.to_predict(s, settings, s.get(Job, model))]
    assert taken == [before[2], after[0], after[2], after[3]]


def test_predict_jobs_are_queued_once_and_checked(client, settings, db):
    snap = labelled_snapshot(client, 12, classes=3, folds=2)
    assert client.post("/api/jobs", json={"kind": "predict"}).status_code == 422
    assert client.post("/api/jobs", json={"kind": "retrain"}).status_code == 422
    assert client.post("/api/jobs", json={"kind": "train"}).status_code == 422              # needs a snapshot
    no_model = finished_model(client, db, snap, {}, model_path=None)
    r = client.post("/api/jobs", json={"kind": "predict", "config": {"model_job": no_model}})
    assert r.status_code == 422 and "with a model" in r.json()["detail"]
    assert upload(client, fmnist_files(1, 900), "x")["predict_job"] is None       # a model job without a model
    model = finished_model(client, db, snap, {})
    first = upload(client, fmnist_files(2, 1000), "y")["predict_job"]
    assert first is not None
    assert upload(client, fmnist_files(2, 1100), "y")["predict_job"] is None      # one is already waiting
    assert upload(client, fmnist_files(2, 1000), "y")["predict_job"] is None      # duplicates: nothing new
    with db.writing() as s:
        assert jobs.claim(s, "w").id == first                                     # it starts: the next waits
    assert upload(client, fmnist_files(1, 1200), "y")["predict_job"] == first + 1
    r = client.post("/api/jobs", json={"kind": "predict", "config": {"model_job": model, "epochs": 3}})
    assert r.status_code == 422 and "model_job" in r.json()["detail"]
    r = client.post("/api/jobs", json={"kind": "predict", "config": {"model_job": model}})
    assert r.status_code == 201 and r.json()["status"] == "queued"


def exported_model_and_images(tmp_path, n: int):
    """A seeded small CNN exported as model.pt, and (id, path) of n Fashion-MNIST files plus an unreadable one
    (id 99); returns (model, mean, std, model path, images)."""
    import torch

    from app.training import nets

    torch.manual_seed(0)
    model = nets.build("smallcnn", 3).model.eval()
    mean, std = [0.3, 0.3, 0.3], [0.25, 0.25, 0.25]
    path = nets.export(model, tmp_path, name="smallcnn", classes=["a", "b", "c"], size=28, mean=mean, std=std)
    images = []
    for name, png in fmnist_files(n, 0):
        (tmp_path / name).write_bytes(png)
        images.append((len(images) + 1, str(tmp_path / name)))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    images.append((99, str(tmp_path / "bad.png")))
    return model, mean, std, path, images


def test_the_exported_model_predicts_what_the_trained_one_did(tmp_path):
    """predict.run reads model.pt as any user would: same probabilities as the model in memory; an unreadable
    file gets none (and a note); a cancel stops it."""
    import torch

    from app.errors import Cancelled
    from app.training import data
    from tests.training.test_train import Recorder

    model, mean, std, path, images = exported_model_and_images(tmp_path, 5)

    hooks = Recorder()
    out = predict.run(path, predict.image_size(None, path), ["a", "b", "c"], images, hooks, "cpu")
    assert sorted(out.probs) == [1, 2, 3, 4, 5] and "could not be read" in out.notes[0]
    x, _ = data.decode_all([p for _, p in images[:5]], 28, progress=lambda d: None, cancelled=lambda: False)
    with torch.no_grad():
        x = x.float() / 255
        expected = torch.softmax(model((x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)),
                                 dim=1)
    got = torch.tensor([out.probs[i] for i in range(1, 6)])
    assert torch.allclose(got, expected, atol=1e-4)
    assert hooks.fractions[-1] == 1.0 and hooks.messages[-1] == "predicting: 6 of 6"
    with pytest.raises(Cancelled):
        predict.run(path, 28, ["a", "b", "c"], images, Recorder(stop=lambda h: True), "cpu")


def test_a_newer_model_gets_its_own_predict_job_for_images_imported_while_it_trained(client, db):
    snap = labelled_snapshot(client, 12, classes=3, folds=2)
    old = finished_model(client, db, snap, {})
    training = client.post("/api/jobs", json={"snapshot": snap["id"], "config": {"epochs": 1}}).json()["id"]
    with db.writing() as s:
        assert jobs.claim(s, "w").id == training      # it reads its images now
    waiting = upload(client, fmnist_files(2, 1000), "meanwhile")["predict_job"]
    with db.reading() as s:
        assert s.get(Job, waiting).config == {"model_job": old}
    result = Result(classes=["a", "b", "c"], out_of_sample={}, suggestions={}, metrics={}, final={},
                    model_path="model.pt", device="cpu")
    with db.writing() as s:
        assert jobs.finish(s, training, "w", status="succeeded", result=result)
    with db.writing() as s:
        newer = jobs.queue_predictions_after_training(s, training)
        assert newer is not None and newer.config == {"model_job": training} and newer.id != waiting
    with db.writing() as s:
        assert jobs.queue_predictions(s) is None       # one for the newest model waits already
    # A train job with nothing imported while it ran queues nothing.
    for job_id in (waiting, newer.id):
        assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 200
    quiet = finished_model(client, db, snap, {})
    with db.writing() as s:
        assert jobs.queue_predictions_after_training(s, quiet) is None


def test_uncertain_first_passes_over_predicted_images_labelled_since(client, db):
    """The predict jobs' guesses are read predictions first, then their images: labelled ones are passed
    over however many come first (the read goes on in bigger batches)."""
    snap = labelled_snapshot(client, 12, classes=3, folds=2)
    finished_model(client, db, snap, {})
    report = upload(client, fmnist_files(12, 1000), "new")
    new, predict_job = [x["id"] for x in report["imported"]], report["predict_job"]
    with db.writing() as s:
        assert jobs.claim(s, "w").id == predict_job
    # Image k is the k-th least sure (margins 0.00, 0.05, 0.10, ...).
    probs = {image: [0.4 + k * 0.025, 0.4 - k * 0.025, 0.2] for k, image in enumerate(new)}
    rows = [{"image_id": i, "role": "suggestion", "out_of_sample": True, "probs": p, "margin": p[0] - p[1]}
            for i, p in probs.items()]
    with db.writing() as s:
        assert jobs.finish(s, predict_job, "w", status="succeeded", predictions=rows,
                           predicted=predict.Predicted(classes=["a", "b", "c"], probs=probs, device="cpu"))
    with db.reading() as s:
        assert queue_ids(s, order="uncertain", n=3) == new[:3]
    for image in new[:9]:   # more than the first batch (4 x n)
        label(client, image, "t-shirt")
    with db.reading() as s:
        assert queue_ids(s, order="uncertain", n=2) == new[9:11]
        assert queue_ids(s, order="uncertain", n=2, skip=[new[9]]) == new[10:12]
