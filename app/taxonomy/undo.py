"""Undo a version by applying its inverse as a new version; nothing is deleted.

A version can be undone while the classes it touched are still as it left
them; otherwise the request gets 409 and says which class changed since.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.ids import as_id
from app.db.models import LabelClass, TaxonomyChange, TaxonomyVersion
from app.errors import Conflict, InvalidInput, NotFound
from app.taxonomy import operations as ops
from app.taxonomy import relabel


def _version(session: Session, number) -> TaxonomyVersion:
    if not isinstance(number, int) or isinstance(number, bool):
        raise InvalidInput("'version' must be the number of the version to undo")
    v = None if as_id(number) is None else session.scalars(
        select(TaxonomyVersion).where(TaxonomyVersion.number == number)).first()
    if v is None:
        raise NotFound(f"no taxonomy version {number}")
    return v


def _class(session: Session, class_id: int, *, active: bool, undone: int) -> LabelClass:
    cls = session.get(LabelClass, class_id)
    if (cls.retired_version_id is None) != active:
        state = "retired" if active else "active again"
        raise Conflict(f"version {undone} can no longer be undone: class '{cls.name}' is {state} since")
    return cls


def op_undo(ctx: ops.Ctx, change: dict) -> dict:
    s = ctx.session
    undone = _version(s, change.get("version"))
    changes = s.scalars(select(TaxonomyChange).where(TaxonomyChange.version_id == undone.id)
                        .order_by(TaxonomyChange.id.desc())).all()
    if any(c.op == "undo" for c in changes):
        raise InvalidInput(f"version {undone.number} is itself an undo; apply the change again instead")
    for earlier in s.scalars(select(TaxonomyChange).where(TaxonomyChange.op == "undo")):
        if earlier.detail.get("undoes") == undone.number:
            raise Conflict(f"version {undone.number} was already undone")
    if any(c.op == "set-mode" for c in changes):
        raise InvalidInput("making the taxonomy multi-label cannot be undone: that would silently drop classes "
                           "from images that carry several")
    steps = []
    for ch in changes:  # newest first, so a version with several changes unwinds in reverse
        steps.extend(_inverse(ctx, undone, ch))
    return {"undoes": undone.number, "steps": steps}


def _inverse(ctx: ops.Ctx, undone: TaxonomyVersion, ch: TaxonomyChange) -> list[dict]:
    s, d, n = ctx.session, ch.detail, undone.number
    if ch.op == "add":
        cls = _class(s, d["class_id"], active=True, undone=n)
        return [{"op": "retire", **ops.op_retire(ctx, {"class": cls.id})}]
    if ch.op == "rename":
        cls = _class(s, d["class_id"], active=True, undone=n)
        if cls.name != d["to"]:
            raise Conflict(f"version {n} can no longer be undone: class '{cls.name}' was renamed since")
        return [{"op": "rename", **ops.op_rename(ctx, {"class": cls.id, "name": d["from"]})}]
    if ch.op == "describe":
        cls = _class(s, d["class_id"], active=True, undone=n)
        return [{"op": "describe", **ops.op_describe(ctx, {"class": cls.id, "description": d["from"]})}]
    if ch.op in ("pin", "unpin"):
        other = "unpin" if ch.op == "pin" else "pin"
        fn = ops.op_unpin if ch.op == "pin" else ops.op_pin
        return [{"op": other, **fn(ctx, {"class": d["class_id"], "image": d["image_id"], "kind": d["kind"]})}]
    if ch.op == "set-shortcut":
        cls = _class(s, d["class_id"], active=True, undone=n)
        if cls.shortcut != d["to"]:
            raise Conflict(f"version {n} can no longer be undone: class '{cls.name}' has another key since")
        return [{"op": "set-shortcut", **ops.op_set_shortcut(ctx, {"class": cls.id, "shortcut": d["from"]})}]
    if ch.op == "retire":
        cls = _class(s, d["class_id"], active=False, undone=n)
        restored, keys = ops.restore(ctx, cls)
        # In a multi-label taxonomy the retire took the class out of sets: the images nobody relabelled since
        # get their earlier sets back.
        return [{"op": "restore", "classes": [restored], "keys": keys,
                 "cancelled": relabel.cancel_rereviews(s, undone.id),
                 "moved_back": relabel.move_back(s, undone=undone, version=ctx.version)}]
    if ch.op == "merge":
        into = _class(s, d["into"]["class_id"], active=True, undone=n)
        restored, keys = _restore_all(ctx, [_class(s, c["class_id"], active=False, undone=n) for c in d["classes"]])
        steps = [{"op": "restore", "classes": restored, "keys": keys,
                  "moved_back": relabel.move_back(s, undone=undone, version=ctx.version)}]
        if d["created"]:  # after the move back, so only labels given to it since go to re-review
            steps.append({"op": "retire", **ops.op_retire(ctx, {"class": into.id})})
        return steps
    if ch.op == "split":
        source = _class(s, d["class_id"], active=False, undone=n)
        parts = [_class(s, c["class_id"], active=True, undone=n) for c in d["into"]]
        cancelled = relabel.cancel_rereviews(s, undone.id)
        restored, keys = ops.restore(ctx, source)
        merged = ops.op_merge(ctx, {"classes": [c.id for c in parts], "into": source.id})
        return [{"op": "restore", "classes": [restored], "keys": keys, "cancelled": cancelled},
                {"op": "merge", **merged}]
    raise InvalidInput(f"a '{ch.op}' change cannot be undone")


def _restore_all(ctx: ops.Ctx, classes: list[LabelClass]) -> tuple[list[dict], list[dict]]:
    restored, keys = [], []
    for cls in classes:
        ref, changed = ops.restore(ctx, cls)
        restored.append(ref)
        keys.extend(changed)
    return restored, keys
