"""A library whose every user-typed string carries markup, made through the public HTTP API.

Each field gets its own marker in front of the same payload, so a leak names the
field. The payload tries an element, breaking out of double- and single-quoted
attributes, and a template expression.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from markupsafe import escape

from tests.factories import png_bytes
from tests.quality.helpers import finish_job, snapshot_labels

PAYLOAD = "<script>window.__pwned=1</script>\"'><img src=x onerror=window.__pwned=1>{{7*7}}"
RAW_MARKERS = ("<script>window.__pwned", "<img src=x")  # what must never reach a page unescaped


def hostile(name: str) -> str:
    return f"{name}{PAYLOAD}"


def escaped(text: str) -> str:
    """`text` as Jinja's autoescape writes it into a page."""
    return str(escape(text))


@dataclass
class Library:
    strings: dict[str, str] = field(default_factory=dict)  # field -> the exact string stored
    images: list[int] = field(default_factory=list)
    unlabelled: int = 0
    flagged: int = 0
    snapshot: int = 0
    other_snapshot: int = 0
    job: int = 0
    queued_job: int = 0


def _ok(r, status: int = 200) -> dict:
    assert r.status_code == status, r.text
    return r.json()


def fill(client, db) -> Library:
    """Classes, tags, sources, images, labels, snapshots, jobs, flags and a re-review, all hostile."""
    lib = Library()
    s = lib.strings
    s["class_a"], s["class_b"] = hostile("class-a"), hostile("class-b")
    s["description"], s["message"], s["author"] = hostile("def"), hostile("msg"), hostile("who")
    s["tag_script"], s["tag_attr"] = "t<script>window.__pwned=1</script>", "t\"'><img src=x onerror=window.__pwned=1>"
    s["source"], s["annotator"], s["note"] = hostile("src"), hostile("ann"), hostile("note")
    s["snapshot"], s["filename"] = hostile("snap"), hostile("file") + ".png"
    for name in ("class_a", "class_b"):
        _ok(client.post("/api/taxonomy/changes", json={
            "op": "add", "name": s[name], "description": s["description"], "message": s["message"],
            "author": s["author"]}), 201)
    for name in ("tag_script", "tag_attr"):
        _ok(client.post("/api/tags", json={"name": s[name]}), 201)

    files = [("files", (f"{i}{s['filename']}", png_bytes(i), "application/octet-stream")) for i in range(9)]
    report = _ok(client.post("/api/images", data={"source": s["source"]}, files=files))
    assert len(report["imported"]) == 9, report
    s["stored_filename"] = report["imported"][0]["filename"]  # as the multipart parser handed it over
    lib.images = [x["id"] for x in report["imported"]]
    for n, image in enumerate(lib.images[:8]):
        _ok(client.post(f"/api/images/{image}/labels", json={
            "class": s["class_a"] if n % 2 else s["class_b"], "tags": [s["tag_script"]] if n < 3 else [],
            "note": s["note"], "annotator": s["annotator"], "ms": 1200}), 201)
    lib.unlabelled = lib.images[8]

    snap = _ok(client.post("/api/snapshots", json={
        "name": s["snapshot"], "filter": {"sources": [s["source"]], "classes": [s["class_a"], s["class_b"]]},
        "split": {"val": 0.25, "folds": 2}}), 201)
    lib.snapshot = snap["id"]
    classes, labels = snapshot_labels(client, snap)
    lib.flagged = lib.images[0]
    # Every label believed at 0.8 except the flagged image's, firmly believed to be the other class.
    probs = {i: [0.8, 0.2] if k == 0 else [0.2, 0.8] for i, k in labels.items()}
    probs[lib.flagged] = [0.01, 0.99] if labels[lib.flagged] == 0 else [0.99, 0.01]
    per_class = {c: {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 4} for c in classes}
    metrics = {"accuracy": 0.9, "macro_f1": 0.85, "ece": 0.05, "per_source": {s["source"]: 0.9},
               "per_tag": {s["tag_script"]: 0.5}, "per_class": per_class, "confusion": [[3, 1], [0, 4]]}
    lib.job = finish_job(client, db, snap, probs, metrics=metrics)  # its mislabel flag opens for the review page
    lib.queued_job = _ok(client.post("/api/jobs", json={
        "snapshot": lib.snapshot, "config": {"epochs": 1, "holdout_source": s["source"]}}), 201)["id"]
    lib.other_snapshot = _ok(client.post("/api/snapshots", json={"name": hostile("snap2")}), 201)["id"]

    # A class split after labelling sends its image to re-review with the new names offered.
    s["split_from"], s["split_a"], s["split_b"] = hostile("whole"), hostile("half-1"), hostile("half-2")
    _ok(client.post("/api/taxonomy/changes", json={"op": "add", "name": s["split_from"]}), 201)
    _ok(client.post(f"/api/images/{lib.unlabelled}/labels", json={
        "class": s["split_from"], "annotator": s["annotator"], "note": s["note"]}), 201)
    _ok(client.post("/api/taxonomy/changes", json={
        "op": "split", "class": s["split_from"], "into": [s["split_a"], s["split_b"]]}), 201)
    return lib
