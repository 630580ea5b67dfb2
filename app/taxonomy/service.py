"""Changing the taxonomy: every operation is a new, append-only version.

Reads live in `queries` (re-exported here for callers), the operations in
`operations` and `undo`, label moves in `relabel`, the log in `history`.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db.models import LabelClass, TaxonomyChange, TaxonomyVersion, VersionLabelCount
from app.errors import Conflict, InvalidInput, LoupeError
from app.taxonomy import operations as ops
from app.taxonomy.history import list_versions  # noqa: F401  (re-exported)
from app.taxonomy.queries import (  # noqa: F401  (re-exported)
    SINGLE,
    active_classes,
    class_counts,
    class_view,
    current_version,
    resolve_class,
    taxonomy_view,
)
from app.taxonomy.undo import op_undo

OPERATIONS = {
    "add": ops.op_add,
    "rename": ops.op_rename,
    "describe": ops.op_describe,
    "merge": ops.op_merge,
    "split": ops.op_split,
    "retire": ops.op_retire,
    "pin": ops.op_pin,
    "unpin": ops.op_unpin,
    "set-shortcut": ops.op_set_shortcut,
    "set-mode": ops.op_set_mode,
    "undo": op_undo,
}
META_KEYS = ("base_version", "message", "author")


def _new_version(session: Session, *, message: str, author: str, mode: str | None = None) -> TaxonomyVersion:
    parent = current_version(session)
    version = TaxonomyVersion(
        number=(parent.number + 1) if parent else 1,
        parent_id=parent.id if parent else None,
        message=message,
        author=author,
        mode=mode or (parent.mode if parent else SINGLE),
    )
    session.add(version)
    session.flush()
    return version


def _record_counts(session: Session, version: TaxonomyVersion) -> None:
    session.add_all(VersionLabelCount(version_id=version.id, class_id=cid, count=n)
                    for cid, n in class_counts(session).items())


def _name(session: Session, ref) -> str:
    """A class's name for a title; the reference as given when it names no class (the operation then says why)."""
    try:
        return resolve_class(session, ref, active_only=False).name
    except LoupeError:
        return str(ref)


def _title(session: Session, op: str, change: dict) -> str:
    """A version's default title, with class names where a form sends ids: "merge Sandal, Sneaker → Shoe"."""
    c = change.get("class")
    if op == "merge":
        refs = change.get("classes") if isinstance(change.get("classes"), list) else []
        return f"merge {', '.join(_name(session, r) for r in refs)} → {_name(session, change.get('into'))}"
    if op == "split":
        into = change.get("into") if isinstance(change.get("into"), list) else []
        return f"split {_name(session, c)} → {', '.join(str(n) for n in into)}"
    if op == "rename":
        return f"rename {_name(session, c)} → {change.get('name')}"
    if op == "add":
        return f"add {change.get('name')}"
    if op == "set-shortcut":
        return f"key of {_name(session, c)} → {change.get('shortcut') or 'none'}"
    if op in ("pin", "unpin"):
        return f"{op} image {change.get('image')} for {_name(session, c)}"
    if op == "undo":
        return f"undo version {change.get('version')}"
    if op == "set-mode":
        return f"make the taxonomy {change.get('mode')}"
    return f"{op} {_name(session, c)}" if c is not None else op


def apply_change(session: Session, *, change: dict, author: str = "") -> dict:
    """Apply one operation as a new version and commit; returns the taxonomy after it.

    A `base_version` other than the current one is refused (409), so two people
    editing at once cannot silently build on a version they never saw.
    """
    if not isinstance(change, dict):
        raise InvalidInput("a change must be a JSON object with an 'op'")
    op = change.get("op")
    if op not in OPERATIONS:
        raise InvalidInput(f"unknown operation '{op}'; supported: {', '.join(OPERATIONS)}")
    base = change.get("base_version")
    current = current_version(session)
    current_number = current.number if current else 0
    if base is not None and base != current_number:
        raise Conflict(
            f"the taxonomy changed: your change was based on version {base}, the current version is {current_number}"
        )
    message = str(change.get("message") or "").strip() or _title(session, op, change)
    mode = ops.new_mode(current.mode if current else SINGLE, change) if op == "set-mode" else None
    version = _new_version(session, message=message[:500], author=(author or str(change.get("author") or "")).strip(),
                           mode=mode)
    detail = OPERATIONS[op](ops.Ctx(session, version), change)
    request = {k: v for k, v in change.items() if k not in META_KEYS}
    session.add(TaxonomyChange(version_id=version.id, op=op, detail={**detail, "request": request}))
    session.flush()
    _record_counts(session, version)
    session.commit()
    return taxonomy_view(session)


def ensure_classes(session: Session, names: list[str], *, author: str, message: str) -> dict[str, LabelClass]:
    """Active classes for `names` (case-insensitive), adding the missing ones in ONE new version.

    The caller commits. Returns {name as given: class}.
    """
    active = {c.name.lower(): c for c in active_classes(session)}
    missing = list(dict.fromkeys(n for n in names if " ".join(n.split()).lower() not in active))
    if missing:
        version = _new_version(session, message=message, author=author)
        ctx = ops.Ctx(session, version)
        for name in missing:
            detail = ops.op_add(ctx, {"op": "add", "name": name})
            session.add(TaxonomyChange(version_id=version.id, op="add", detail=detail))
            active[detail["name"].lower()] = session.get(LabelClass, detail["class_id"])
        session.flush()
        _record_counts(session, version)
    return {n: active[" ".join(n.split()).lower()] for n in names}

