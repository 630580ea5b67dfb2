"""The health report: plain numbers about a set of labelled images (a snapshot or the live dataset).

Definitions (the page and the tests use the same ones):

- *confident*: annotator confidence >= CONFIDENT (the "sure" level; imports default to 1.0);
- *flagged*: the image has an open flag today (flags are not frozen with a snapshot);
- *near-duplicates*: pHashes at most `neardup.MAX_DISTANCE` bits apart and confirmed by the thumbnails'
  looks when the caller passes `confirm` (`app.snapshots.looks`), grouped transitively;
- *effective size*: the number of near-duplicate groups among the confident, unflagged images,
  i.e. confident, unflagged images counting each near-duplicate group once;
- *edge-case density*: the share of images whose label carries at least one difficulty tag;
- *leakage*: a near-duplicate group whose images fall into more than one split;
- *no_train*: a class of a snapshot none of whose images is in train (splits hash each image, so a class
  of a few images can land in val/test alone).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from app.snapshots import neardup
from app.snapshots.rows import Row

CONFIDENT = 0.8
CONFIDENCE_EDGES = (0.2, 0.4, 0.6, 0.8)  # bins [0, .2), [.2, .4), [.4, .6), [.6, .8), [.8, 1]
CONFIDENCE_LABELS = ("0–0.2", "0.2–0.4", "0.4–0.6", "0.6–0.8", "0.8–1")
TIME_EDGES_MS = (1000, 2000, 5000, 10000, 30000)
TIME_LABELS = ("< 1 s", "1–2 s", "2–5 s", "5–10 s", "10–30 s", "≥ 30 s")
EXAMPLES = 10


def _bins(values: list[float], edges: Sequence[float], labels: Sequence[str]) -> list[dict]:
    counts = np.bincount(np.digitize(values, edges), minlength=len(labels)) if values else [0] * len(labels)
    return [{"label": label, "count": int(n)} for label, n in zip(labels, counts)]


def _confidence(rows: Sequence[Row]) -> dict:
    known = [r.confidence for r in rows if r.confidence is not None]
    return {
        "bins": _bins(known, CONFIDENCE_EDGES, CONFIDENCE_LABELS),
        "unknown": len(rows) - len(known),
        "mean": float(np.mean(known)) if known else None,
    }


def _time(rows: Sequence[Row]) -> dict:
    known = [r.ms for r in rows if r.ms is not None]
    return {
        "bins": _bins(known, TIME_EDGES_MS, TIME_LABELS),
        "unknown": len(rows) - len(known),
        "median_ms": float(np.median(known)) if known else None,
        "p90_ms": float(np.percentile(known, 90)) if known else None,
    }


def _tags(rows: Sequence[Row]) -> dict:
    tagged = sum(1 for r in rows if r.tags)
    per_tag = Counter(t for r in rows for t in r.tags)
    return {
        "tagged": tagged,
        "share": tagged / len(rows) if rows else 0.0,
        "per_tag": dict(sorted(per_tag.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def _effective(rows: Sequence[Row], group: np.ndarray, confirm=None) -> tuple[dict, set[tuple[int, int]]]:
    confident = np.array([r.confidence is not None and r.confidence >= CONFIDENT for r in rows], dtype=bool)
    unflagged = np.array([not r.flagged for r in rows], dtype=bool)
    usable = confident & unflagged
    phashes = np.array([r.phash for r in rows], dtype=np.int64)
    idx = np.flatnonzero(usable)
    sub = (lambda a, b: confirm(idx[a], idx[b])) if confirm is not None else None
    usable_groups = neardup.groups(phashes[usable], confirm=sub) if usable.any() else np.empty(0, np.int64)
    classes = np.array([r.class_id for r in rows], dtype=np.int64)[usable]
    per_class = set(zip(classes.tolist(), usable_groups.tolist()))
    return {
        "size": len(set(usable_groups.tolist())),
        "raw": len(rows),
        "confident": int(confident.sum()),
        "unflagged": int(unflagged.sum()),
        "non_duplicate": len(set(group.tolist())),
    }, per_class


def _leakage(rows: Sequence[Row], group: np.ndarray) -> dict | None:
    if not rows or rows[0].split is None:
        return None
    splits: dict[int, set[str]] = defaultdict(set)
    members: dict[int, list[int]] = defaultdict(list)
    for r, g in zip(rows, group.tolist()):
        splits[g].add(r.split)
        members[g].append(r.image_id)
    leaking = [g for g, s in splits.items() if len(s) > 1]
    leaking.sort(key=lambda g: members[g][0])
    return {
        "groups": len(leaking),
        "images": sum(len(members[g]) for g in leaking),
        "examples": [members[g][:EXAMPLES] for g in leaking[:EXAMPLES]],
    }


def report(rows: Sequence[Row], class_names: dict[int, str], *, folds: int, confirm=None) -> dict:
    """All the health numbers for `rows`.

    Parameters
    ----------
    rows : sequence of Row
        The images to describe, with split and fold when they come from a snapshot.
    class_names : dict
        Class id -> the name to show.
    folds : int
        Classes with fewer images than this get a warning.
    confirm : callable, optional
        The second near-duplicate check over indices into `rows` (see `neardup.groups`).
    """
    phashes = np.array([r.phash for r in rows], dtype=np.int64)
    group = neardup.groups(phashes, confirm=confirm) if rows else np.empty(0, np.int64)
    effective, usable_pairs = _effective(rows, group, confirm) if rows else (
        {"size": 0, "raw": 0, "confident": 0, "unflagged": 0, "non_duplicate": 0}, set())
    sources = sorted({r.source for r in rows})
    per_class: dict[int, dict] = {}
    for r in rows:
        c = per_class.get(r.class_id)
        if c is None:
            c = per_class[r.class_id] = {"count": 0, "tagged": 0, "sources": Counter(), "splits": Counter()}
        c["count"] += 1
        c["tagged"] += bool(r.tags)
        c["sources"][r.source] += 1
        if r.split:
            c["splits"][r.split] += 1
    class_effective = Counter(cls for cls, _ in usable_pairs)
    classes = [
        {"id": cid, "name": class_names.get(cid, f"#{cid}"), "count": c["count"],
         "share": c["count"] / len(rows), "tagged": c["tagged"], "effective": class_effective.get(cid, 0),
         "sources": {s: c["sources"].get(s, 0) for s in sources}, "splits": dict(c["splits"])}
        for cid, c in per_class.items()
    ]
    classes.sort(key=lambda c: (-c["count"], c["name"].lower()))
    split_counts = Counter(r.split for r in rows if r.split)
    warnings = [
        {"kind": "small_class", "class": c["name"], "count": c["count"], "folds": folds,
         "message": f"'{c['name']}' has {c['count']} image{'s' if c['count'] != 1 else ''}, "
                    f"fewer than the {folds} folds"}
        for c in classes if c["count"] < folds
    ]
    if split_counts:  # splits by hash are not stratified: a small class can miss a split entirely
        warnings += [
            {"kind": "no_train", "class": c["name"], "count": c["count"],
             "message": f"'{c['name']}' has no training images (its {c['count']} are all in val/test): "
                        f"label more, or freeze with another seed"}
            for c in classes if not c["splits"].get("train")]
    leakage = _leakage(rows, group)
    if leakage and leakage["groups"]:
        warnings.append({"kind": "leakage", **leakage,
                         "message": f"{leakage['groups']} near-duplicate group{'s' if leakage['groups'] != 1 else ''}"
                                    f" ({leakage['images']} images) span more than one split"})
    return {
        "total": len(rows),
        "classes": classes,
        "sources": sources,
        "splits": dict(split_counts) if split_counts else None,
        "confidence": _confidence(rows),
        "tags": _tags(rows),
        "time": _time(rows),
        "effective": effective,
        "leakage": leakage,
        "warnings": warnings,
        "definitions": {"confident_at": CONFIDENT, "near_duplicate_bits": neardup.MAX_DISTANCE, "folds": folds},
    }
