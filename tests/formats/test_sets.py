"""Sets of classes through other tools' files: a multi-label snapshot exported as CSV, JSONL, hf or a Label
Studio file with several choices comes back into a multi-label taxonomy with the same sets ("none of these"
included); a single-label taxonomy refuses a file of sets with one sentence and imports nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from tests import databases
from tests.factories import add_class, upload_fmnist
from tests.formats.common import refused, reimport
from tests.snapshots.conftest import freeze, run_loupe

SETS = [["red"], ["red", "dress"], [], ["shoe", "dress"]]


def _sets(data: Path) -> dict[str, list[str] | None]:
    """sha256 -> the image's current set (None: unlabelled) in a data folder, over HTTP."""
    with TestClient(create_app(databases.settings_for(data))) as client:
        out = {}
        for x in client.get("/api/images", params={"limit": 1000}).json()["items"]:
            label = client.get(f"/api/images/{x['id']}").json()["label"]
            out[x["sha256"]] = None if label is None else sorted(label["classes"])
        return out


def _fresh(path: Path, *, multi: bool) -> Path:
    with TestClient(create_app(databases.settings_for(path))) as client:
        if multi:
            r = client.post("/api/taxonomy/changes", json={"op": "set-mode", "mode": "multi-label"})
            assert r.status_code == 201, r.text
    return path


@pytest.fixture
def exported_sets(client, settings):
    for name in ("red", "dress", "shoe"):
        add_class(client, name)
    ids = upload_fmnist(client, 8)
    assert client.post("/api/taxonomy/changes", json={"op": "set-mode", "mode": "multi-label"}).status_code == 201
    for k, image_id in enumerate(ids):
        assert client.post(f"/api/images/{image_id}/labels", json={"classes": SETS[k % 4]}).status_code == 201
    snap = freeze(client, "sets", split={"seed": 1})
    return snap


@pytest.mark.parametrize("fmt, labels", [("jsonl", "manifest.jsonl"), ("csv", "manifest.csv"), ("hf", "hf"),
                                         ("label-studio", "tasks.json")])
def test_a_multi_label_export_comes_back_with_its_sets(fmt, labels, exported_sets, settings, tmp_path):
    out = tmp_path / "out"
    done = run_loupe("export", str(exported_sets["id"]), "--format", fmt, "--out", out, "--data", settings.data_dir)
    assert done.returncode == 0, done.stderr
    fresh = _fresh(tmp_path / "fresh", multi=True)
    spec = out / labels if "." in labels else labels
    back = reimport(out, spec, fresh)
    assert back.returncode == 0, back.stderr
    want = _sets(settings.data_dir)
    drops = json.loads((out / "loupe-export.json").read_text())["drops"]
    if fmt == "label-studio":  # an empty set is no choice at all there: it reads back as unlabelled (and says so)
        assert "none of these" in drops and 'choice="multiple"' in (out / "label_config.xml").read_text()
        want = {sha: s if s else None for sha, s in want.items()}
    else:
        assert "none of these" not in drops
        assert sorted(map(tuple, _sets(fresh).values())) == sorted(tuple(sorted(s)) for s in SETS * 2)
    assert _sets(fresh) == want

    single = tmp_path / "single"
    sentence = refused(out, spec, single)
    assert "gives sets of classes" in sentence and "make it multi-label first" in sentence


def test_label_studio_choices_of_several_classes_are_a_set(exported_sets, settings, tmp_path):
    out = tmp_path / "out"
    done = run_loupe("export", str(exported_sets["id"]), "--format", "jsonl", "--out", out, "--data",
                     settings.data_dir)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    tasks = [{"id": i + 1, "data": {"image": f"/data/local-files/?d={r['path']}"},
              "annotations": [{"id": 100 + i, "completed_by": 7, "created_at": "2026-11-01T10:00:00Z",
                               "result": [{"type": "choices", "from_name": "choice", "to_name": "image",
                                           "value": {"choices": r["classes"]}}] if r["classes"] else []}]}
             for i, r in enumerate(rows)]
    (out / "tasks.json").write_text(json.dumps(tasks))
    fresh = _fresh(tmp_path / "fresh", multi=True)
    back = reimport(out, out / "tasks.json", fresh)
    assert back.returncode == 0, back.stderr
    got = _sets(fresh)
    want = {sha: s if s else None for sha, s in _sets(settings.data_dir).items()}  # no choices: unlabelled
    assert got == want
