"""What every format's tests do: export a snapshot of the labelled library with the real CLI, import it into a
fresh data folder, and read both back over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from app.main import create_app
from tests import databases
from tests.snapshots.conftest import freeze, run_loupe


def library(data: Path) -> dict[str, dict]:
    """sha256 -> {class, confidence, tags, annotator, kind, made_at} of every image in a data dir, over HTTP."""
    with TestClient(create_app(databases.settings_for(data))) as client:
        listed = client.get("/api/images", params={"limit": 1000}).json()["items"]
        out = {}
        for x in listed:
            full = client.get(f"/api/images/{x['id']}").json()
            last = full["history"][-1] if full["history"] else {}
            out[x["sha256"]] = {"class": x["class"], "confidence": x["confidence"], "tags": x["tags"],
                                "annotator": last.get("annotator"), "kind": last.get("kind"),
                                "made_at": last.get("created_at"), "source": full.get("source")}
        return out


def frozen(client, snapshot_id: int) -> dict[str, dict]:
    """sha256 -> the snapshot's row (label, source, confidence, tags, split, fold, image) as exported."""
    rows = client.get(f"/api/snapshots/{snapshot_id}/export?format=jsonl").text.splitlines()
    return {r["sha256"]: r for r in map(json.loads, rows)}


def export(labelled, settings, out: Path, fmt: str, name: str = "snap") -> dict:
    snap = freeze(labelled.client, name, split={"seed": 1})
    done = run_loupe("export", str(snap["id"]), "--format", fmt, "--out", out, "--data", settings.data_dir)
    assert done.returncode == 0, done.stderr
    info = json.loads((out / "loupe-export.json").read_text())
    assert info["format"] == fmt and info["images"] == snap["count"] and info["snapshot"]["hash"] == snap["hash"]
    return snap


def reimport(folder: Path, labels: str | Path, fresh: Path, source: str = "back"):
    return run_loupe("import", folder, "--source", source, "--labels", labels, "--data", fresh)


def refused(folder: Path, labels: str | Path, fresh: Path) -> str:
    """The one sentence a bad label file gets; nothing was imported."""
    done = reimport(folder, labels, fresh)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert not fresh.exists() or not library(fresh)
    return lines[0]
