"""`loupe import --labels`: ImageFolder trees and CSV / JSONL manifests become label events of kind "import"."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.db.engine import Database
from app.db.models import Image, LabelClass, LabelEvent, TaxonomyVersion
from app.errors import InvalidInput
from app.labelling.imported import import_labelled
from tests import databases, fmnist
from tests.factories import add_class, label, upload
from tests.images import broken
from tests.snapshots.conftest import run_loupe


def _tree(root: Path) -> dict[str, str]:
    """An ImageFolder tree with split folders, plus two files no folder names a class for. Returns file -> class."""
    images, labels = fmnist.load("train", 40)
    where = {}
    for i in range(36):
        split = "train" if i < 28 else "val"
        cls = fmnist.CLASSES[labels[i]]
        path = root / split / cls / f"img-{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(broken.encoded(broken.Image.fromarray(images[i]), "PNG"))
        where[f"{root.name}/{split}/{cls}/{path.name}"] = cls
    (root / "train" / "loose.png").write_bytes(broken.encoded(broken.Image.fromarray(images[36]), "PNG"))
    (root / "README.png").write_bytes(broken.encoded(broken.Image.fromarray(images[37]), "PNG"))
    return where


def _events(db) -> list[LabelEvent]:
    with db.reading() as s:
        return list(s.scalars(select(LabelEvent).order_by(LabelEvent.id)))


def test_cli_imports_an_imagefolder_tree_with_its_labels(tmp_path):
    root = tmp_path / "cifar"
    where = _tree(root)
    data = tmp_path / "data"
    done = run_loupe("import", root, "--source", "public", "--labels", "folders", "--data", data)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "imported 38, duplicates 0, rejected 0, ignored 0 (not images)"
    classes = sorted(set(where.values()))
    assert lines[1] == (f"labels: 36 added, 0 unchanged, 0 conflicts (kept the existing label), 0 not found, "
                        f"2 files without a label; new classes in taxonomy version 1: {', '.join(classes)}")

    db = Database(databases.settings_for(data).database_url)
    events = _events(db)
    with db.reading() as s:
        names = dict(s.execute(select(Image.id, Image.original_filename)).all())
        assert s.scalar(select(func.count(TaxonomyVersion.id))) == 1
        class_names = dict(s.execute(select(LabelClass.id, LabelClass.name)).all())
    db.dispose()
    assert {names[e.image_id]: class_names[e.class_id] for e in events} == where
    assert {(e.kind, e.annotator, e.confidence) for e in events} == {("import", "import:public", 1.0)}


def test_existing_labels_are_kept_and_conflicts_reported(client, db, settings, tmp_path):
    root = tmp_path / "set"
    where = _tree(root)
    files = sorted(where)
    person, same, unlabelled = files[0], files[1], files[2]
    add_class(client, where[same].upper())  # an existing class, in other case
    add_class(client, "other")
    ids = {}
    for name in (person, same, unlabelled):
        ids[name] = upload(client, [(Path(name).name, (tmp_path / name).read_bytes())])["imported"][0]["id"]
    label(client, ids[person], "other", annotator="ana")
    label(client, ids[same], where[same].upper(), annotator="bo")

    report, labels = import_labelled(db, settings, [root], source="public", labels="folders")
    assert len(report.imported) == 35 and len(report.duplicates) == 3
    assert labels.labelled == 34 and labels.unchanged == 1
    assert labels.conflicts == [{"file": person, "image": ids[person], "current": "other", "given": where[person],
                                 "reason": "already labelled 'other' by ana (manual)"}]
    after = client.get(f"/api/images/{ids[person]}").json()["label"]
    assert after["class"] == "other" and after["annotator"] == "ana"  # never overwritten
    assert client.get(f"/api/images/{ids[unlabelled]}").json()["label"]["class"].lower() == where[unlabelled]
    assert client.get(f"/api/images/{ids[same]}").json()["label"]["annotator"] == "bo"
    taxonomy = client.get("/api/taxonomy").json()
    assert taxonomy["version"] == 3  # two adds, then ONE version for every missing class
    assert where[same] not in [c["name"] for c in taxonomy["classes"]]  # matched case-insensitively


def _manifest_dir(tmp_path: Path) -> tuple[Path, list[str]]:
    images = tmp_path / "shoot" / "images"
    images.mkdir(parents=True)
    for i in range(6):
        (images / f"p{i}.png").write_bytes(broken.fmnist_png(i))
    (tmp_path / "shoot" / "other").mkdir()
    (tmp_path / "shoot" / "other" / "p0.png").write_bytes(broken.fmnist_png(10))  # same basename as images/p0.png
    return tmp_path / "shoot", [f"p{i}.png" for i in range(6)]


def test_csv_manifest_with_confidence_tags_and_unmatched_rows(client, db, settings, tmp_path):
    root, names = _manifest_dir(tmp_path)
    manifest = root / "labels.csv"
    manifest.write_text(
        "File,Class,confidence,tags\n"
        "images/p0.png,boot,0.6,dark;blurred\n"
        f"{root}/images/p1.png,boot,,\n"  # an absolute path
        "./images/p2.png,bag,1,\n"
        "p3.png,bag,0.3,occluded\n"
        "images/missing.png,bag,,\n"
        "p0.png,bag,,\n"  # two files are called p0.png: ambiguous
    )
    report, labels = import_labelled(db, settings, [root], source="studio", labels=str(manifest))
    assert len(report.imported) == 7
    assert labels.labelled == 4 and len(labels.unlabelled) == 3
    assert [u["file"] for u in labels.unmatched] == ["images/missing.png", "p0.png"]
    assert "matches 2 files" in labels.unmatched[1]["reason"]
    by_file = {x["filename"]: x["id"] for x in report.imported}
    byimg = {e.image_id: e for e in _events(db)}
    p0 = byimg[by_file["shoot/images/p0.png"]]
    assert (p0.confidence, p0.tags, p0.annotator, p0.kind) == (0.6, ["dark", "blurred"], "import:labels.csv", "import")
    assert byimg[by_file["shoot/images/p1.png"]].confidence == 1.0
    assert byimg[by_file["shoot/images/p3.png"]].tags == ["occluded"]
    assert by_file["shoot/other/p0.png"] not in byimg


def test_jsonl_manifest_and_one_image_given_two_classes(client, db, settings, tmp_path):
    root, _ = _manifest_dir(tmp_path)
    shutil.copy(root / "images" / "p4.png", root / "images" / "p4-copy.png")  # same bytes, another name
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(x) for x in [
        {"path": "images/p4.png", "label": "coat", "confidence": 0.9, "tags": ["dark"]},
        {"path": "images/p4-copy.png", "label": "dress"},
        {"path": "images/p5.png", "label": "coat"},
    ]) + "\n")
    report, labels = import_labelled(db, settings, [root / "images"], source="s", labels=str(manifest))
    assert len(report.imported) == 6 and len(report.duplicates) == 1
    assert labels.labelled == 1
    assert len(labels.conflicts) == 1 and "coat and dress" in labels.conflicts[0]["reason"]
    assert Counter(e.kind for e in _events(db)) == {"import": 1}


@pytest.mark.parametrize("content, suffix, words", [
    ("name,label\nx.png,a\n", ".csv", "no file column"),
    ("file,kind\nx.png,a\n", ".csv", "no label column"),
    ("file,label,confidence\nimages/p0.png,a,lots\n", ".csv", "line 2: confidence must be a number"),
    ("file,label,confidence\nimages/p0.png,a,2\n", ".csv", "confidence must be from 0 to 1"),
    ("file,label\nimages/p0.png,\n", ".csv", "line 2: the label is empty"),
    ("file,label,tags\nimages/p0.png,a,sparkly\n", ".csv", "unknown tag 'sparkly'"),
    ("file,label\nimages/p0.png,42\n", ".csv", "cannot be only digits"),
    ("file,label\nelsewhere/q.png,a\n", ".csv", "none of the 1 files listed"),
    ('{"file": "images/p0.png", "label": "a"}\nnot json\n', ".jsonl", "line 2: not JSON"),
    ("file,label\n", ".txt", "neither a .csv nor a .jsonl"),
])
def test_bad_manifests_are_refused_before_anything_is_imported(db, settings, tmp_path, content, suffix, words):
    root, _ = _manifest_dir(tmp_path)
    manifest = tmp_path / f"labels{suffix}"
    manifest.write_text(content)
    with pytest.raises(InvalidInput, match=words):
        import_labelled(db, settings, [root], source="s", labels=str(manifest))
    with db.reading() as s:
        assert s.scalar(select(func.count(Image.id))) == 0
        assert s.scalar(select(func.count(TaxonomyVersion.id))) == 0


def test_cli_reports_bad_labels_with_exit_2(tmp_path):
    root, _ = _manifest_dir(tmp_path)
    data = tmp_path / "data"
    missing = run_loupe("import", root, "--source", "s", "--labels", tmp_path / "nope.csv", "--data", data)
    assert missing.returncode == 2 and "no such manifest file" in missing.stderr
    (tmp_path / "digits" / "7").mkdir(parents=True)
    (tmp_path / "digits" / "7" / "a.png").write_bytes(broken.fmnist_png(1))
    digits = run_loupe("import", tmp_path / "digits", "--source", "mnist", "--labels", "folders", "--data", data)
    assert digits.returncode == 2 and "cannot be only digits" in digits.stderr
    db = Database(databases.settings_for(data).database_url)
    with db.reading() as s:
        assert s.scalar(select(func.count(Image.id))) == 0
    db.dispose()
