"""FiftyOne: a labels.json dataset as FiftyOne's documentation shows it, and a directory tree, import; bad files
are refused whole."""

from __future__ import annotations

import json
from collections import Counter

from tests import fmnist
from tests.formats.common import library, refused, reimport


def _dataset(root, labels):
    """FiftyOneImageClassificationDataset: data/<uuid>.<ext> and labels.json, as in FiftyOne's docs."""
    paths = fmnist.write_pngs(root / "data", 3)
    keys = [p.stem for p in paths]
    (root / "labels.json").write_text(json.dumps({"classes": ["Coat", "Sneaker"],
                                                  "labels": dict(zip(keys, labels, strict=True))}, indent=4))
    return keys


def test_a_labels_json_dataset_imports(tmp_path):
    root = tmp_path / "fo"
    _dataset(root, [0, 1, None])  # class indices; null: unlabelled
    done = reimport(root, "fiftyone", tmp_path / "fresh", source="fo")
    assert done.returncode == 0, done.stderr
    assert "labels: 2 added" in done.stdout and "1 files without a label" in done.stdout
    assert Counter(x["class"] for x in library(tmp_path / "fresh").values()) == {"Coat": 1, "Sneaker": 1, None: 1}

    # the variant with confidences ({"label", "confidence"}), given as a file, and a label by name
    other = tmp_path / "fo2"
    _dataset(other, [{"label": 1, "confidence": 0.75}, "Coat", {"label": None}])
    done = reimport(other / "data", other / "labels.json", tmp_path / "fresh2")
    assert done.returncode == 0, done.stderr
    got = {x["class"]: x["confidence"] for x in library(tmp_path / "fresh2").values()}
    assert got == {"Sneaker": 0.75, "Coat": 1.0, None: None}


def test_a_directory_tree_imports_as_folders(tmp_path):
    root = tmp_path / "tree"  # fo.types.ImageClassificationDirectoryTree: <class>/<image>
    fmnist.write_pngs(root, 6, folders=True)
    done = reimport(root, "folders", tmp_path / "fresh")
    assert done.returncode == 0, done.stderr
    assert "labels: 6 added" in done.stdout


def test_bad_labels_json_is_refused_with_the_key(tmp_path):
    root = tmp_path / "fo"
    keys = _dataset(root, [0, 1, None])
    labels = root / "labels.json"
    cases = {
        json.dumps({"classes": ["Coat"], "labels": {keys[0]: 3}}):
            f'labels.json "{keys[0]}": class index 3 is outside "classes" (it has 1)',
        json.dumps({"labels": {keys[0]: 0}}):
            f'labels.json "{keys[0]}": label 0 is a class index, but the file has no "classes" list',
        json.dumps({"classes": ["Coat"], "labels": {"../x": 0}}): 'labels.json "../x": a key must name a file under data/',
        json.dumps({"classes": ["Coat"], "labels": {keys[0]: [0]}}):
            f'labels.json "{keys[0]}": several labels (a multi-label dataset)',
        json.dumps({"classes": ["Coat"], "labels": {keys[0]: {"label": 0, "confidence": 2}}}):
            f'labels.json "{keys[0]}": confidence must be from 0 to 1, not 2',
        '{"classes": ["Coat"], "labels": {': "labels.json: not JSON",
    }
    for i, (text, sentence) in enumerate(cases.items()):
        labels.write_text(text)
        assert sentence in refused(root, "fiftyone", tmp_path / f"fresh{i}")
