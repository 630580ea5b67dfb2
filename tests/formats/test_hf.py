"""Hugging Face `datasets` image folders: `--format hf` loads with `datasets.load_dataset("imagefolder")` with its
metadata columns, and `--labels hf` / a metadata file reads them back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

from tests import fmnist
from tests.formats.common import export, frozen, library, refused, reimport

# The loader runs in a child process: `datasets` is heavy to import, and its cache and offline switches must be
# set before it is. Prints {split: {"n", "columns", "rows": [{file-less record}]}}.
LOAD = """
import json, sys
import datasets
ds = datasets.load_dataset("imagefolder", data_dir=sys.argv[1])
print(json.dumps({name: {"n": len(split), "columns": split.column_names,
                         "rows": [{k: v for k, v in r.items() if k != "image"} for r in split],
                         "size": list(split[0]["image"].size)} for name, split in ds.items()}))
"""


def _load(folder, tmp_path) -> dict:
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", LOAD, str(folder)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_hf_export_loads_with_datasets_and_round_trips(labelled, settings, tmp_path):
    out = tmp_path / "hf"
    snap = export(labelled, settings, out, "hf")
    rows = frozen(labelled.client, snap["id"])
    assert json.loads((out / "loupe-export.json").read_text())["drops"] == []

    loaded = _load(out, tmp_path)
    splits = Counter(r["split"] for r in rows.values())
    assert {name: part["n"] for name, part in loaded.items()} == {
        {"val": "validation"}.get(k, k): v for k, v in splits.items()}
    for part in loaded.values():
        assert {"image", "label", "source", "confidence", "annotator", "tags", "labelled_at"} <= set(part["columns"])
        assert part["size"] == [28, 28]
        for r in part["rows"]:
            want = rows[r["sha256"]]
            assert (r["label"], r["source"], r["confidence"], r["tags"]) == (
                want["label"], want["source"], want["confidence"], want["tags"])
            assert r["annotator"] == "ana"

    fresh = tmp_path / "fresh"
    back = reimport(out, "hf", fresh)
    assert back.returncode == 0, back.stderr
    assert f"labels: {snap['count']} added" in back.stdout
    got = library(fresh)
    assert got.keys() == rows.keys()
    for sha, want in rows.items():
        assert (got[sha]["class"], got[sha]["confidence"], got[sha]["tags"], got[sha]["annotator"]) == (
            want["label"], want["confidence"], want["tags"], "ana")
        assert got[sha]["kind"] == "import" and got[sha]["made_at"] < snap["created_at"]
    assert any(x["tags"] for x in rows.values()) and any(x["confidence"] < 1 for x in rows.values())


def _hand_written(root):
    """The layout of the datasets docs ("Create an image dataset", ImageFolder with metadata), with real images:
    a metadata.jsonl in train/ and a metadata.csv in test/."""
    paths = fmnist.write_pngs(root / "train", 3) + fmnist.write_pngs(root / "test", 2, start=3)
    train = [p.name for p in paths[:3]]
    (root / "train" / "metadata.jsonl").write_text(
        f'{{"file_name": "{train[0]}", "label": "Coat"}}\n'
        f'{{"file_name": "{train[1]}", "label": "Sneaker"}}\n'
        f'{{"file_name": "{train[2]}", "label": "Coat"}}\n')
    (root / "test" / "metadata.csv").write_text(
        f"file_name,label\n{paths[3].name},Bag\n{paths[4].name},Sneaker\n")
    return paths


def test_a_hand_written_metadata_folder_imports(tmp_path):
    root = tmp_path / "my_dataset"
    _hand_written(root)
    fresh = tmp_path / "fresh"
    done = reimport(root, "hf", fresh, source="hub")
    assert done.returncode == 0, done.stderr
    assert "labels: 5 added" in done.stdout and "new classes in taxonomy version 1: Bag, Coat, Sneaker" in done.stdout
    got = library(fresh)
    assert Counter(x["class"] for x in got.values()) == {"Coat": 2, "Sneaker": 2, "Bag": 1}
    assert {x["annotator"] for x in got.values()} == {"import:my_dataset"}

    # one metadata file given by path: only its folder's images get labels
    other = tmp_path / "other"
    done = reimport(root / "train", root / "train" / "metadata.jsonl", other)
    assert done.returncode == 0, done.stderr
    assert "labels: 3 added" in done.stdout


def test_bad_metadata_files_are_refused_with_the_line(tmp_path):
    root = tmp_path / "ds"
    paths = _hand_written(root)
    meta = root / "train" / "metadata.jsonl"
    cases = {
        '{"label": "Coat"}\n': "train/metadata.jsonl line 1: the file_name is empty",
        f'{{"file_name": "{paths[0].name}", "label": "Coat"}}\n{{"file_name": \n':
            "train/metadata.jsonl line 2: not JSON",
        '{"file_name": "../x.png", "label": "Coat"}\n':
            "train/metadata.jsonl line 1: file_name '../x.png' must be a path inside the dataset folder",
        f'{{"file_name": "{paths[0].name}", "label": "Coat", "confidence": 3}}\n':
            "train/metadata.jsonl line 1: confidence must be from 0 to 1, not 3",
        f'{{"file_name": "{paths[0].name}", "kind": "Coat", "colour": "red"}}\n':
            "train/metadata.jsonl: which column is the label? it has colour, kind; name it 'label'",
    }
    for i, (text, sentence) in enumerate(cases.items()):
        meta.write_text(text)
        assert sentence in refused(root, "hf", tmp_path / f"fresh{i}")


def test_a_multi_label_snapshot_goes_out_with_its_sets_as_a_list_column(client, tmp_path):
    import zipfile

    from tests.factories import add_class, upload_fmnist

    for name in ("red", "dress"):
        add_class(client, name)
    assert client.post("/api/taxonomy/changes", json={"op": "set-mode", "mode": "multi-label"}).status_code == 201
    ids = upload_fmnist(client, 6)
    for i, classes in zip(ids, (["red"], ["red", "dress"], [], ["dress"], ["red"], ["dress", "red"])):
        assert client.post(f"/api/images/{i}/labels", json={"classes": classes}).status_code == 201
    snap = client.post("/api/snapshots", json={"name": "sets", "split": {"val": 0.34, "folds": 2}}).json()
    r = client.get(f"/api/snapshots/{snap['id']}/export", params={"format": "hf"})
    assert r.status_code == 200, r.text
    (tmp_path / "sets.zip").write_bytes(r.content)
    with zipfile.ZipFile(tmp_path / "sets.zip") as z:
        z.extractall(tmp_path / "sets")
    loaded = _load(tmp_path / "sets", tmp_path)
    rows = [row for split in loaded.values() for row in split["rows"]]
    assert all("labels" in split["columns"] and "label" not in split["columns"] for split in loaded.values())
    assert sorted(sorted(row["labels"]) for row in rows) == sorted(
        [["red"], ["dress", "red"], [], ["dress"], ["red"], ["dress", "red"]])
    assert sum(split["n"] for split in loaded.values()) == 6
