"""The version log: readable diffs, label counts per version, names as they were, and replay."""

from __future__ import annotations

from bisect import bisect_right

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import ClassRevision, TaxonomyChange, TaxonomyVersion, VersionLabelCount
from app.taxonomy.keys import describe_key
from app.timeutil import iso


def describe_change(op: str, d: dict) -> str:
    """One line a person reads in the version log, key changes included."""
    line, entries = _describe(op, d), d.get("keys", [])
    if op == "add" and d.get("shortcut") and not any(k.get("was") for k in entries):
        line, entries = f"{line} with key {d['shortcut']}", []  # the plain case reads as one clause
    keys = "; ".join(describe_key(k) for k in entries)
    return f"{line}; {keys}" if keys else line


def _describe(op: str, d: dict) -> str:
    if op == "add":
        return f"added '{d['name']}'"
    if op == "rename":
        return f"renamed '{d['from']}' to '{d['to']}'"
    if op == "describe":
        return f"redefined '{d['name']}'"
    if op == "merge":
        names = ", ".join(f"'{c['name']}'" for c in d["classes"])
        new = " (new)" if d.get("created") else ""
        return f"merged {names} into '{d['into']['name']}'{new}; {d['moved']} labels moved"
    if op == "split":
        parts = ", ".join(f"'{c['name']}'" for c in d["into"])
        return f"split '{d['name']}' into {parts}; {d['flagged']} images to re-review"
    if op == "retire":
        if "removed" in d:  # multi-label: taken out of the sets that held it
            return f"retired '{d['name']}'; taken out of {d['removed']} images' classes"
        return f"retired '{d['name']}'; {d['flagged']} images to re-review"
    if op == "set-mode":
        return f"made the taxonomy {d['to']}; {d['converted']} labels became sets of one class"
    if op == "restore":
        return "restored " + ", ".join(f"'{c['name']}'" + (f" (key {c['shortcut']})" if c.get("shortcut") else "")
                                       for c in d["classes"])
    if op == "set-shortcut":
        return f"changed the key of '{d['name']}'"
    if op in ("pin", "unpin"):
        what = "this" if d["kind"] == "this" else "not this"
        return f"{'pinned' if op == 'pin' else 'unpinned'} image {d['image_id']} as '{what}' for '{d['name']}'"
    if op == "undo":
        return f"undid version {d['undoes']}: " + "; ".join(describe_change(s["op"], s) for s in d["steps"])
    return op


def list_versions(session: Session) -> list[dict]:
    """Every version, oldest first, with its changes and the label counts right after it."""
    versions = session.scalars(select(TaxonomyVersion).order_by(TaxonomyVersion.number)).all()
    changes: dict[int, list[dict]] = {}
    for ch in session.scalars(select(TaxonomyChange).order_by(TaxonomyChange.id)):
        changes.setdefault(ch.version_id, []).append(
            {"op": ch.op, **ch.detail, "summary": describe_change(ch.op, ch.detail)}
        )
    counts: dict[int, dict[int, int]] = {}
    for row in session.scalars(select(VersionLabelCount)):
        counts.setdefault(row.version_id, {})[row.class_id] = row.count
    names = names_by_version(session)
    out = []
    for v in versions:
        out.append({
            "version": v.number,
            "message": v.message,
            "author": v.author,
            "created_at": iso(v.created_at),
            "mode": v.mode,
            "changes": changes.get(v.id, []),
            "label_counts": {names.name(cid, v.number): n for cid, n in sorted(counts.get(v.id, {}).items())},
        })
    return out


class NamesByVersion:
    """A class's name and definition as they were at a given version number."""

    def __init__(self, rows: list[tuple[int, int, str, str]]):
        self._by_class: dict[int, tuple[list[int], list[tuple[str, str]]]] = {}
        for class_id, number, name, description in sorted(rows, key=lambda r: (r[0], r[1])):
            numbers, values = self._by_class.setdefault(class_id, ([], []))
            numbers.append(number)
            values.append((name, description))

    def _at(self, class_id: int, number: int | None) -> tuple[str, str] | None:
        if class_id not in self._by_class:
            return None
        numbers, values = self._by_class[class_id]
        i = bisect_right(numbers, number if number is not None else 10**9) - 1
        return values[max(i, 0)]

    def name(self, class_id: int, number: int | None) -> str | None:
        at = self._at(class_id, number)
        return at[0] if at else None

    def definition(self, class_id: int, number: int | None) -> str | None:
        at = self._at(class_id, number)
        return at[1] if at else None


def names_by_version(session: Session) -> NamesByVersion:
    rows = session.execute(
        select(ClassRevision.class_id, TaxonomyVersion.number, ClassRevision.name, ClassRevision.description)
        .join(TaxonomyVersion, TaxonomyVersion.id == ClassRevision.version_id)
    ).all()
    return NamesByVersion([tuple(r) for r in rows])


def state_at(changes: list[tuple[int, str, dict]], number: int) -> dict[int, tuple[str, str, bool]]:
    """Replay the change log up to version `number`: {class id: (name, definition, active)}.

    `changes` are (version number, op, detail) in log order. Pure: the log alone
    must be enough to rebuild every version (tests compare it with the database).
    """
    state: dict[int, tuple[str, str, bool]] = {}

    def apply(op: str, d: dict) -> None:
        if op == "add":
            state[d["class_id"]] = (d["name"], d.get("description", ""), True)
        elif op == "rename":
            _, desc, active = state[d["class_id"]]
            state[d["class_id"]] = (d["to"], desc, active)
        elif op == "describe":
            name, _, active = state[d["class_id"]]
            state[d["class_id"]] = (name, d["to"], active)
        elif op == "merge":
            if d["created"]:
                state[d["into"]["class_id"]] = (d["into"]["name"], d["into"].get("description", ""), True)
            for c in d["classes"]:
                name, desc, _ = state[c["class_id"]]
                state[c["class_id"]] = (name, desc, False)
        elif op == "split":
            name, desc, _ = state[d["class_id"]]
            state[d["class_id"]] = (name, desc, False)
            for c in d["into"]:
                state[c["class_id"]] = (c["name"], c.get("description", ""), True)
        elif op == "retire":
            name, desc, _ = state[d["class_id"]]
            state[d["class_id"]] = (name, desc, False)
        elif op == "restore":
            for c in d["classes"]:
                _, desc, _ = state[c["class_id"]]
                state[c["class_id"]] = (c["name"], desc, True)
        elif op == "undo":
            for step in d["steps"]:
                apply(step["op"], step)

    for v, op, detail in changes:
        if v <= number:
            apply(op, detail)
    return state
