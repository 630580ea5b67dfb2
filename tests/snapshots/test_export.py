"""Export a snapshot (ImageFolder, CSV, JSONL; CLI and download) and import it back into a fresh data dir."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path

from fastapi.testclient import TestClient

from app.formats import WRITERS
from app.main import create_app
from tests import databases
from tests.snapshots.conftest import freeze, items, run_loupe


def _manifest(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _library(data: Path) -> dict[str, dict]:
    """sha256 -> {class, confidence, tags, annotator, kind} of every image in a data dir, read over HTTP."""
    with TestClient(create_app(databases.settings_for(data))) as client:
        listed = client.get("/api/images", params={"limit": 1000}).json()["items"]
        out = {}
        for x in listed:
            full = client.get(f"/api/images/{x['id']}").json()
            last = full["history"][-1] if full["history"] else {}
            out[x["sha256"]] = {"class": x["class"], "confidence": x["confidence"], "tags": x["tags"],
                                "annotator": last.get("annotator"), "kind": last.get("kind")}
        return out


def _frozen(client, snapshot_id: int) -> dict[str, dict]:
    """sha256 -> class, confidence and tags as the snapshot froze them."""
    rows = client.get(f"/api/snapshots/{snapshot_id}/export?format=jsonl").text.splitlines()
    return {r["sha256"]: r for r in map(json.loads, rows)}


def test_imagefolder_export_round_trips_through_import(labelled, settings, tmp_path):
    client = labelled.client
    snap = freeze(client, "release 1", split={"val": 0.2, "test": 0.1, "seed": 2, "folds": 3})
    out = tmp_path / "export"
    done = run_loupe("export", "release 1", "--format", "imagefolder", "--out", out, "--data", settings.data_dir)
    assert done.returncode == 0, done.stderr
    assert f"exported snapshot 'release 1' ({snap['count']} images" in done.stdout

    rows = _manifest(out / "manifest.csv")
    got = {x["image"]: x for x in items(client, snap["id"])}
    assert len(rows) == snap["count"] == len(got)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                   if p.is_file() and p.name not in ("manifest.csv", "loupe-export.json"))
    assert files == sorted(r["path"] for r in rows)
    info = json.loads((out / "loupe-export.json").read_text())  # which snapshot, under which taxonomy version
    assert info["snapshot"] == {"id": snap["id"], "name": "release 1", "hash": snap["hash"]}
    assert info["taxonomy_version"] == snap["taxonomy_version"] and info["format"] == "imagefolder"
    assert info["images"] == snap["count"] and info["drops"] == [] and sorted(info["classes"]) == info["classes"]
    for r in rows:
        split, cls, _ = r["path"].split("/")
        frozen = got[int(r["image"])]
        assert (split, cls, r["label"], r["split"], int(r["fold"])) == (
            frozen["split"], frozen["class"], frozen["class"], frozen["split"], frozen["fold"])
        assert hashlib.sha256((out / r["path"]).read_bytes()).hexdigest() == r["sha256"]  # original bytes

    fresh = tmp_path / "fresh"
    back = run_loupe("import", out, "--source", "release", "--labels", "folders", "--data", fresh)
    assert back.returncode == 0, back.stderr
    assert back.stdout.splitlines()[0] == f"imported {snap['count']}, duplicates 0, rejected 0, ignored 2 (not images)"  # the two manifests
    assert f"labels: {snap['count']} added" in back.stdout
    library, frozen = _library(fresh), _frozen(client, snap["id"])
    assert library.keys() == frozen.keys()
    assert {sha: x["class"] for sha, x in library.items()} == {sha: x["label"] for sha, x in frozen.items()}
    assert {(x["kind"], x["annotator"]) for x in library.values()} == {("import", "import:release")}
    with TestClient(create_app(databases.settings_for(fresh))) as other:
        assert sorted(c["name"] for c in other.get("/api/taxonomy").json()["classes"]) == ["bag", "shirt", "shoe"]
        assert other.get("/api/taxonomy").json()["version"] == 1  # all classes in one new version


def test_csv_export_round_trips_labels_confidence_and_tags(labelled, settings, tmp_path):
    client = labelled.client
    snap = freeze(client, "with tags", split={"seed": 1})
    out = tmp_path / "csv-export"
    done = run_loupe("export", str(snap["id"]), "--format", "csv", "--out", out, "--data", settings.data_dir)
    assert done.returncode == 0, done.stderr
    rows = _manifest(out / "manifest.csv")
    assert list(rows[0]) == ["path", "label", "source", "confidence", "tags", "split", "fold", "sha256", "image"]
    assert all(r["path"].startswith("images/") and (out / r["path"]).is_file() for r in rows)

    fresh = tmp_path / "fresh"
    back = run_loupe("import", out / "images", "--source", "csv", "--labels", out / "manifest.csv", "--data", fresh)
    assert back.returncode == 0, back.stderr
    library, frozen = _library(fresh), _frozen(client, snap["id"])
    assert library.keys() == frozen.keys()
    for sha, x in frozen.items():
        assert (library[sha]["class"], library[sha]["confidence"], library[sha]["tags"]) == (
            x["label"], x["confidence"], x["tags"])
        assert library[sha]["annotator"] == "import:manifest.csv"
    assert any(x["tags"] for x in frozen.values()) and any(x["confidence"] < 1 for x in frozen.values())


def test_jsonl_export_and_downloads(labelled, settings, tmp_path):
    client = labelled.client
    snap = freeze(client, "j", split={"seed": 1})
    out = tmp_path / "jsonl"
    assert run_loupe("export", "j", "--format", "jsonl", "--out", out, "--data", settings.data_dir).returncode == 0
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(lines) == snap["count"] and isinstance(lines[0]["tags"], list) and isinstance(lines[0]["fold"], int)
    assert set(lines[0]) == {"path", "label", "source", "confidence", "tags", "split", "fold", "sha256", "image"}

    csv_download = client.get(f"/api/snapshots/{snap['id']}/export?format=csv")
    assert csv_download.status_code == 200 and "attachment" in csv_download.headers["content-disposition"]
    assert len(list(csv.DictReader(io.StringIO(csv_download.text)))) == snap["count"]
    jsonl_download = client.get(f"/api/snapshots/{snap['id']}/export?format=jsonl").text.splitlines()
    assert [json.loads(x) for x in jsonl_download] == lines
    zipped = client.get(f"/api/snapshots/{snap['id']}/export?format=imagefolder")
    assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(zipped.content)).namelist()
    assert "manifest.csv" in names and "loupe-export.json" in names and len(names) == snap["count"] + 2
    refused = client.get(f"/api/snapshots/{snap['id']}/export?format=xml")
    assert refused.status_code == 422 and "imagefolder" in refused.json()["detail"]
    for fmt in set(WRITERS) - {"csv", "jsonl", "imagefolder"}:  # every other writer: a zip that says its format
        other = client.get(f"/api/snapshots/{snap['id']}/export?format={fmt}")
        assert other.status_code == 200 and other.headers["content-type"] == "application/zip", fmt
        info = json.loads(zipfile.ZipFile(io.BytesIO(other.content)).read("loupe-export.json"))
        assert info["format"] == fmt and info["images"] == snap["count"]
    assert not list(settings.tmp_dir.iterdir())  # the zips were cleaned up
    page = client.get(f"/snapshots/{snap['id']}").text
    assert all(f"export?format={fmt}" in page for fmt in WRITERS)


def test_export_errors_exit_2_and_write_nothing(labelled, settings, tmp_path):
    freeze(labelled.client, "e")
    missing = run_loupe("export", "nope", "--format", "csv", "--out", tmp_path / "x", "--data", settings.data_dir)
    assert missing.returncode == 2 and "no snapshot named or numbered 'nope'" in missing.stderr
    assert not (tmp_path / "x").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    taken = run_loupe("export", "e", "--format", "csv", "--out", busy, "--data", settings.data_dir)
    assert taken.returncode == 2 and "not an empty folder" in taken.stderr
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    bad = run_loupe("export", "e", "--format", "xml", "--out", tmp_path / "y", "--data", settings.data_dir)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
