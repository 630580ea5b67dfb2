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

In a multi-label taxonomy (`rows.sets`), an image counts once for every class in its set: class counts,
sources, splits and effective sizes are per class; totals, confidence, time and tags stay per image; `sets`
adds "none of these", the set sizes and the classes that come together most.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from app.snapshots import neardup
from app.snapshots.rows import Rows

CONFIDENT = 0.8
CONFIDENCE_EDGES = (0.2, 0.4, 0.6, 0.8)  # bins [0, .2), [.2, .4), [.4, .6), [.6, .8), [.8, 1]
CONFIDENCE_LABELS = ("0–0.2", "0.2–0.4", "0.4–0.6", "0.6–0.8", "0.8–1")
TIME_EDGES_MS = (1000, 2000, 5000, 10000, 30000)
TIME_LABELS = ("< 1 s", "1–2 s", "2–5 s", "5–10 s", "10–30 s", "≥ 30 s")
EXAMPLES = 10


def _bins(values: np.ndarray, edges: Sequence[float], labels: Sequence[str]) -> list[dict]:
    counts = np.bincount(np.digitize(values, edges), minlength=len(labels)) if len(values) else [0] * len(labels)
    return [{"label": label, "count": int(n)} for label, n in zip(labels, counts)]


def _confidence(rows: Rows) -> dict:
    known = rows.confidence[~np.isnan(rows.confidence)]
    return {
        "bins": _bins(known, CONFIDENCE_EDGES, CONFIDENCE_LABELS),
        "unknown": len(rows) - len(known),
        "mean": float(np.mean(known)) if len(known) else None,
    }


def _time(rows: Rows) -> dict:
    known = rows.ms[~np.isnan(rows.ms)]
    return {
        "bins": _bins(known, TIME_EDGES_MS, TIME_LABELS),
        "unknown": len(rows) - len(known),
        "median_ms": float(np.median(known)) if len(known) else None,
        "p90_ms": float(np.percentile(known, 90)) if len(known) else None,
    }


def _tagged(rows: Rows) -> np.ndarray:
    return np.fromiter((bool(t) for t in rows.tags), bool, len(rows))


def _tags(rows: Rows, tagged: np.ndarray) -> dict:
    per_tag = Counter(t for tags in rows.tags if tags for t in tags)
    return {
        "tagged": int(tagged.sum()),
        "share": float(tagged.sum()) / len(rows) if len(rows) else 0.0,
        "per_tag": dict(sorted(per_tag.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def _codes(values: list[str]) -> tuple[list[str], np.ndarray]:
    """Sorted distinct values and each entry's index among them (values repeat a few strings)."""
    distinct = sorted(set(values))
    at = {v: i for i, v in enumerate(distinct)}
    return distinct, np.fromiter((at[v] for v in values), np.int64, len(values))


def pairs(rows: Rows) -> tuple[np.ndarray, np.ndarray]:
    """(image index, class id) for every class an image carries: one per image, or one per member of its set
    (`rows.sets`, a multi-label taxonomy's; an empty set gives none)."""
    if rows.sets is None:
        return np.arange(len(rows)), rows.class_id
    sizes = np.fromiter((len(s) for s in rows.sets), np.int64, len(rows.sets))
    flat = np.fromiter((c for s in rows.sets for c in s), np.int64, int(sizes.sum()))
    return np.repeat(np.arange(len(rows)), sizes), flat


def _effective(rows: Rows, group: np.ndarray, confirm=None) -> tuple[dict, dict[int, int]]:
    """The effective size, and each class's number of near-duplicate groups among its usable images."""
    with np.errstate(invalid="ignore"):
        confident = rows.confidence >= CONFIDENT  # NaN (unknown) is not confident
    unflagged = ~rows.flagged
    usable = confident & unflagged
    idx = np.flatnonzero(usable)
    sub = (lambda a, b: confirm(idx[a], idx[b])) if confirm is not None else None
    usable_groups = neardup.groups(rows.phash[usable], confirm=sub) if usable.any() else np.empty(0, np.int64)
    group_of = np.full(len(rows), -1, np.int64)
    group_of[usable] = usable_groups
    image, cls = pairs(rows)
    keep = usable[image]
    pairs_ = np.unique(np.stack([cls[keep], group_of[image[keep]]], axis=1), axis=0) if keep.any() else \
        np.empty((0, 2), np.int64)
    classes, per_class = np.unique(pairs_[:, 0], return_counts=True)
    return {
        "size": len(np.unique(usable_groups)),
        "raw": len(rows),
        "confident": int(confident.sum()),
        "unflagged": int(unflagged.sum()),
        "non_duplicate": len(np.unique(group)),
    }, dict(zip(classes.tolist(), per_class.tolist()))


def _leakage(rows: Rows, group: np.ndarray) -> dict | None:
    if not len(rows) or rows.split is None:
        return None
    _, split = _codes(rows.split)
    group_split = np.unique(np.stack([group, split], axis=1), axis=0)
    spans, n_splits = np.unique(group_split[:, 0], return_counts=True)
    leaking = spans[n_splits > 1]
    inside = np.isin(group, leaking)
    order = np.lexsort((rows.image_id[inside], group[inside]))
    ids, groups = rows.image_id[inside][order], group[inside][order]
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]]) if len(groups) else np.empty(0, np.int64)
    firsts = ids[starts]
    shown = np.argsort(firsts, kind="stable")[:EXAMPLES]  # groups in order of their first image
    ends = np.r_[starts[1:], len(ids)]
    return {
        "groups": int(len(leaking)),
        "images": int(inside.sum()),
        "examples": [ids[starts[g]:min(ends[g], starts[g] + EXAMPLES)].tolist() for g in shown.tolist()],
    }


def report(rows: Rows, class_names: dict[int, str], *, folds: int, confirm=None) -> dict:
    """All the health numbers for `rows`.

    Parameters
    ----------
    rows : Rows
        The images to describe, with split and fold when they come from a snapshot.
    class_names : dict
        Class id -> the name to show.
    folds : int
        Classes with fewer images than this get a warning.
    confirm : callable, optional
        The second near-duplicate check over indices into `rows` (see `neardup.groups`).
    """
    n = len(rows)
    group = neardup.groups(rows.phash, confirm=confirm) if n else np.empty(0, np.int64)
    effective, class_effective = _effective(rows, group, confirm) if n else (
        {"size": 0, "raw": 0, "confident": 0, "unflagged": 0, "non_duplicate": 0}, {})
    tagged = _tagged(rows)
    sources, source = _codes(rows.source)
    image, carried = pairs(rows)
    class_ids, cls, counts = np.unique(carried, return_inverse=True, return_counts=True)
    cls = cls.ravel()
    per_source = np.bincount(cls * len(sources) + source[image], minlength=len(class_ids) * len(sources)) \
        .reshape(len(class_ids), len(sources)) if sources else np.zeros((len(class_ids), 0), np.int64)
    tagged_per_class = np.bincount(cls, weights=tagged[image], minlength=len(class_ids))
    split_names, split = _codes(rows.split) if rows.split is not None else ([], np.zeros(n, np.int64))
    per_split = np.bincount(cls * len(split_names) + split[image], minlength=len(class_ids) * len(split_names)) \
        .reshape(len(class_ids), len(split_names)) if split_names else np.zeros((len(class_ids), 0), np.int64)
    images_per_split = np.bincount(split, minlength=len(split_names)) if split_names else np.zeros(0, np.int64)
    classes = [
        {"id": cid, "name": class_names.get(cid, f"#{cid}"), "count": int(counts[k]),
         "share": int(counts[k]) / n, "tagged": int(tagged_per_class[k]), "effective": class_effective.get(cid, 0),
         "sources": {s: int(per_source[k, j]) for j, s in enumerate(sources)},
         "splits": {s: int(per_split[k, j]) for j, s in enumerate(split_names) if per_split[k, j]}}
        for k, cid in enumerate(class_ids.tolist())
    ]
    classes.sort(key=lambda c: (-c["count"], c["name"].lower()))
    split_counts = {s: int(c) for s, c in zip(split_names, images_per_split.tolist()) if c}
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
        "total": n,
        "classes": classes,
        "sources": sources,
        "splits": split_counts or None,
        "confidence": _confidence(rows),
        "tags": _tags(rows, tagged),
        "time": _time(rows),
        "effective": effective,
        "leakage": leakage,
        "warnings": warnings,
        "definitions": {"confident_at": CONFIDENT, "near_duplicate_bits": neardup.MAX_DISTANCE, "folds": folds},
        **(_set_numbers(rows, image, carried, class_names) if rows.sets is not None else {}),
    }


def _set_numbers(rows: Rows, image: np.ndarray, carried: np.ndarray, class_names: dict[int, str]) -> dict:
    """What only sets have: how many classes an image carries, "none of these", and the pairs of classes that
    come together most."""
    sizes = np.bincount(image, minlength=len(rows))
    together: Counter = Counter()
    for s in rows.sets:
        if len(s) > 1:
            together.update((a, b) for i, a in enumerate(s) for b in s[i + 1:])
    return {"sets": {
        "none": int((sizes == 0).sum()),
        "mean_size": float(sizes.mean()) if len(sizes) else 0.0,
        "per_size": {int(k): int(v) for k, v in zip(*np.unique(sizes, return_counts=True))},
        "together": [{"classes": [class_names.get(a, f"#{a}"), class_names.get(b, f"#{b}")], "count": n}
                     for (a, b), n in together.most_common(EXAMPLES)],
    }}
