"""Label Studio: its full JSON and JSON-MIN exports import with who, when and how long; its predictions become
suggestions, never labels; the label-studio export carries the latest model's guesses as pre-annotations."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.db.engine import Database
from app.db.models import LabelEvent
from app.main import create_app
from tests import databases, fmnist
from tests.factories import finish_train
from tests.formats.common import export, refused, reimport
from tests.snapshots.conftest import freeze


def _full_json(names: list[str]) -> list[dict]:
    """Three tasks shaped as labelstud.io/guide/task_format shows them, for a <Choices> project: an upload
    labelled by user 10, a local file labelled twice (the cancelled one does not count), and an unlabelled
    upload with a model's prediction."""
    return [
        {"id": 1, "created_at": "2021-03-09T21:52:49.513742Z", "updated_at": "2021-03-09T22:16:08.746926Z",
         "project": 83, "data": {"image": f"/data/upload/83/6bd8ee0e-{names[0]}"},
         "annotations": [{"id": "1001", "result": [{"from_name": "choice", "id": "Dx_aB91ISN", "source": "$image",
                                                    "to_name": "image", "type": "choices",
                                                    "value": {"choices": ["Coat"]}}],
                          "was_cancelled": False, "ground_truth": False,
                          "created_at": "2021-03-09T22:16:08.728353Z", "updated_at": "2021-03-09T22:16:08.728378Z",
                          "lead_time": 4.288, "result_count": 0, "task": 1, "completed_by": 10}],
         "predictions": []},
        {"id": 2, "project": 83, "data": {"image": f"/data/local-files/?d=fashion/{names[1]}"},
         "annotations": [
             {"id": "1002", "result": [{"from_name": "choice", "to_name": "image", "type": "choices",
                                        "value": {"choices": ["Sneaker"]}}], "was_cancelled": False,
              "created_at": "2021-03-10T08:00:00.000000Z", "lead_time": 2.5,
              "completed_by": {"id": 11, "email": "ana@example.com"}},
             {"id": "1003", "result": [], "was_cancelled": True, "created_at": "2021-03-11T08:00:00.000000Z",
              "completed_by": 12}],
         "predictions": [{"created_ago": "3 hours", "model_version": "model 1", "score": 0.6,
                          "result": [{"from_name": "choice", "to_name": "image", "type": "choices",
                                      "value": {"choices": ["Coat"]}}]}]},
        {"id": 3, "project": 83, "data": {"image": f"/data/upload/83/0a1b2c3d-{names[2]}"}, "annotations": [],
         "predictions": [{"model_version": "model 1", "score": 0.83,
                          "result": [{"from_name": "choice", "to_name": "image", "type": "choices",
                                      "value": {"choices": ["Bag"]}}]}]},
    ]


def _by_name(data) -> dict[str, dict]:
    with TestClient(create_app(databases.settings_for(data))) as client:
        items = client.get("/api/images", params={"limit": 100}).json()["items"]
        return {x["filename"].rsplit("/", 1)[-1]: client.get(f"/api/images/{x['id']}").json() for x in items}


def test_a_full_json_export_imports_labels_people_times_and_suggestions(tmp_path):
    folder = tmp_path / "fashion"
    names = [p.name for p in fmnist.write_pngs(folder, 3)]
    (tmp_path / "project-83.json").write_text(json.dumps(_full_json(names), indent=2))
    fresh = tmp_path / "fresh"
    done = reimport(folder, tmp_path / "project-83.json", fresh, source="studio")
    assert done.returncode == 0, done.stderr
    assert "labels: 2 added" in done.stdout and "1 files without a label" in done.stdout
    assert "new classes in taxonomy version 1: Bag, Coat, Sneaker" in done.stdout  # Bag: a suggestion's class
    assert "2 model suggestions" in done.stdout

    images = _by_name(fresh)
    first, second, third = (images[n] for n in names)
    assert first["history"][-1]["annotator"] == "label-studio user 10"
    assert first["history"][-1]["created_at"] == "2021-03-09T22:16:08.728Z" and first["history"][-1]["ms"] == 4288
    assert (second["label"]["class"], second["history"][-1]["annotator"], second["history"][-1]["ms"]) == (
        "Sneaker", "ana@example.com", 2500)
    assert third["label"] is None and third["history"] == []  # a prediction is never a label
    assert (third["prediction"]["class"], third["prediction"]["p"]) == ("Bag", 0.83)
    assert second["prediction"]["class"] == "Coat"  # suggested, while its label stays Sneaker
    db = Database(databases.settings_for(fresh).database_url)
    with db.reading() as s:
        assert s.scalar(select(func.count(LabelEvent.id))) == 2
    db.dispose()
    with TestClient(create_app(databases.settings_for(fresh))) as client:
        job = client.get(f"/api/jobs/{second['prediction']['job']}").json()
        assert (job["kind"], job["status"], job["snapshot"]) == ("import", "succeeded", None)
        assert "suggestions from project-83.json" in client.get("/jobs").text


def test_a_json_min_export_imports(tmp_path):
    folder = tmp_path / "fashion"
    names = [p.name for p in fmnist.write_pngs(folder, 2)]
    # labelstud.io/guide/export, JSON-MIN: one flat object per annotation
    (tmp_path / "min.json").write_text(json.dumps([
        {"image": f"/data/upload/1/6bd8ee0e-{names[0]}", "id": 1, "choice": "Coat", "annotator": "bo@example.com",
         "annotation_id": 1, "created_at": "2021-05-04T12:29:01.584312Z",
         "updated_at": "2021-05-04T12:29:01.584312Z", "lead_time": 1.5},
        {"image": f"/data/upload/1/0a1b2c3d-{names[1]}", "id": 2, "choice": {"choices": ["Bag"]}, "annotator": 3,
         "annotation_id": 2, "created_at": "2021-05-04T12:30:00Z", "updated_at": "2021-05-04T12:30:00Z",
         "lead_time": 0.75},
    ], indent=2))
    done = reimport(folder, tmp_path / "min.json", tmp_path / "fresh")
    assert done.returncode == 0, done.stderr
    images = _by_name(tmp_path / "fresh")
    assert [(images[n]["label"]["class"], images[n]["history"][-1]["annotator"], images[n]["history"][-1]["ms"])
            for n in names] == [("Coat", "bo@example.com", 1500), ("Bag", "label-studio user 3", 750)]


def test_the_export_carries_the_latest_models_guesses(labelled, db, settings, tmp_path):
    client = labelled.client
    snap = freeze(client, "before", split={"seed": 1})
    classes = snap["classes"]
    guessed = labelled.ids[:5]
    finish_train(client, db, snap, suggestions={i: [0.1, 0.2, 0.7][:len(classes)] for i in guessed})
    out = tmp_path / "ls"
    export(labelled, settings, out, "label-studio", name="with guesses")
    tasks = json.loads((out / "tasks.json").read_text())
    assert len(tasks) == snap["count"]
    with_guess = {t["data"]["loupe"]["image"]: t["predictions"][0] for t in tasks if t.get("predictions")}
    assert set(with_guess) == set(guessed)
    assert {(p["result"][0]["value"]["choices"][0], p["score"]) for p in with_guess.values()} == {(classes[2], 0.7)}
    assert all(t["data"]["image"].startswith("/data/local-files/?d=images/") for t in tasks)
    assert all((out / t["data"]["image"].split("?d=", 1)[1]).is_file() for t in tasks)
    config = (out / "label_config.xml").read_text()
    assert all(f'<Choice value="{c}"/>' in config for c in classes)


def test_bad_label_studio_files_are_refused_with_the_task(tmp_path):
    folder = tmp_path / "fashion"
    names = [p.name for p in fmnist.write_pngs(folder, 3)]
    tasks = _full_json(names)
    bad = tmp_path / "bad.json"
    two = json.loads(json.dumps(tasks))
    two[0]["annotations"][0]["result"][0]["value"]["choices"] = ["Coat", "Bag"]
    boxes = json.loads(json.dumps(tasks))
    boxes[0]["annotations"][0]["result"] = [{"type": "rectanglelabels", "value": {"rectanglelabels": ["Coat"]}}]
    no_image = json.loads(json.dumps(tasks))
    no_image[1]["data"] = {}
    late = json.loads(json.dumps(tasks))
    late[0]["annotations"][0]["lead_time"] = "slow"
    cases = {
        json.dumps(two): "the label file gives sets of classes (e.g. for fashion/fmnist-00000.png), and this taxonomy "
                         "is single-label: make it multi-label first",
        json.dumps(boxes): "bad.json task 1 annotation 1001: no choices result (found rectanglelabels)",
        json.dumps(no_image): "bad.json task 2: no image in \"data\"",
        json.dumps(late): "bad.json task 1: lead_time must be a number of seconds, not \"slow\"",
    }
    for i, (text, sentence) in enumerate(cases.items()):
        bad.write_text(text)
        assert sentence in refused(folder, bad, tmp_path / f"fresh{i}")
    (folder / "tasks.json").write_text(json.dumps(tasks)[:-3])  # --labels label-studio finds it in the folder
    assert "tasks.json: not JSON" in refused(folder, "label-studio", tmp_path / "fresh-cut")
