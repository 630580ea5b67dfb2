"""The taxonomy operations. Each runs inside a new version and returns the detail it records.

Details name every class involved by id and by name, so the change log alone
replays every version (see `history.state_at`) and shows readable diffs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.ids import as_id
from app.db.models import ClassExample, ClassRevision, Image, LabelClass, TaxonomyVersion
from app.errors import Conflict, InvalidInput, NotFound
from app.labelling.shortcuts import check_key, free_shortcut, keys_in_use
from app.taxonomy import relabel
from app.taxonomy.queries import resolve_class

MAX_NAME = 100
EXAMPLE_KINDS = ("this", "not_this")


@dataclass
class Ctx:
    session: Session
    version: TaxonomyVersion


def _ref(cls: LabelClass) -> dict:
    return {"class_id": cls.id, "name": cls.name}


def clean_name(session: Session, name: Any, *, renaming: LabelClass | None = None) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("a class name is required")
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise InvalidInput(f"class names are at most {MAX_NAME} characters")
    if name.isdigit():
        raise InvalidInput("a class name cannot be only digits (it would read as a class id)")
    taken = session.scalars(
        select(LabelClass).where(LabelClass.retired_version_id.is_(None), func.lower(LabelClass.name) == name.lower())
    ).first()
    if taken is not None and taken is not renaming:
        raise InvalidInput(f"a class named '{taken.name}' already exists")
    return name


def _revise(ctx: Ctx, cls: LabelClass) -> None:
    ctx.session.add(ClassRevision(class_id=cls.id, version_id=ctx.version.id, name=cls.name,
                                  description=cls.description))


def _create(ctx: Ctx, name: str, description: str = "", shortcut: str | None = None) -> LabelClass:
    s = ctx.session
    position = (s.scalar(select(func.max(LabelClass.position))) or 0) + 1
    cls = LabelClass(name=name, description=description, shortcut=shortcut or free_shortcut(s), position=position,
                     created_version_id=ctx.version.id)
    s.add(cls)
    s.flush()
    _revise(ctx, cls)
    return cls


def _retire(ctx: Ctx, cls: LabelClass) -> None:
    cls.retired_version_id = ctx.version.id
    ctx.session.flush()


def _active(ctx: Ctx, ref: Any, what: str = "class") -> LabelClass:
    if ref is None:
        raise InvalidInput(f"'{what}' is required")
    return resolve_class(ctx.session, ref, active_only=True)


def op_add(ctx: Ctx, change: dict) -> dict:
    name = clean_name(ctx.session, change.get("name"))
    shortcut = change.get("shortcut")
    shortcut = check_key(ctx.session, shortcut) if shortcut else None
    cls = _create(ctx, name, str(change.get("description") or "").strip(), shortcut)
    return {**_ref(cls), "description": cls.description, "shortcut": cls.shortcut}


def op_rename(ctx: Ctx, change: dict) -> dict:
    cls = _active(ctx, change.get("class"))
    new = clean_name(ctx.session, change.get("name"), renaming=cls)
    if new == cls.name:
        raise InvalidInput(f"class '{cls.name}' already has that name")
    old, cls.name = cls.name, new
    _revise(ctx, cls)
    return {"class_id": cls.id, "from": old, "to": new}


def op_describe(ctx: Ctx, change: dict) -> dict:
    cls = _active(ctx, change.get("class"))
    new = str(change.get("description") or "").strip()
    old, cls.description = cls.description, new
    _revise(ctx, cls)
    return {"class_id": cls.id, "name": cls.name, "from": old, "to": new}


def op_merge(ctx: Ctx, change: dict) -> dict:
    refs = change.get("classes")
    if not isinstance(refs, list) or not refs:
        raise InvalidInput("'classes' must list the classes to merge")
    classes = [_active(ctx, r) for r in refs]
    if len({c.id for c in classes}) != len(classes):
        raise InvalidInput("a class is listed twice in 'classes'")
    into_ref = change.get("into")
    try:
        into, new_name = _active(ctx, into_ref, "into"), None
    except NotFound:
        if not isinstance(into_ref, str) or into_ref.strip().isdigit():
            raise
        into, new_name = None, clean_name(ctx.session, into_ref)
    sources = [c for c in classes if into is None or c.id != into.id]
    if not sources:
        raise InvalidInput("merging a class into itself changes nothing; list at least one other class")
    for c in sources:
        _retire(ctx, c)
    created = into is None
    if created:  # the new class takes over the first merged class's key, so fingers need not relearn
        into = _create(ctx, new_name, shortcut=sources[0].shortcut)
    for c in sources:
        c.replaced_by_id = into.id
    moved = relabel.move_labels(ctx.session, from_ids=[c.id for c in sources], to_id=into.id, version=ctx.version)
    return {"classes": [_ref(c) for c in sources], "into": _ref(into), "created": created, "moved": moved}


def op_split(ctx: Ctx, change: dict) -> dict:
    cls = _active(ctx, change.get("class"))
    names = change.get("into")
    if not isinstance(names, list) or len(names) < 2:
        raise InvalidInput("a split needs at least two new class names in 'into'")
    clean = [clean_name(ctx.session, n) for n in names]
    if len({n.lower() for n in clean}) != len(clean):
        raise InvalidInput("the new class names must differ from each other")
    _retire(ctx, cls)
    new = [_create(ctx, n, shortcut=cls.shortcut if i == 0 else None) for i, n in enumerate(clean)]
    flagged = relabel.flag_for_rereview(ctx.session, class_id=cls.id, version=ctx.version,
                                        offered=[c.id for c in new], reason=f"'{cls.name}' was split")
    return {**_ref(cls), "into": [_ref(c) for c in new], "flagged": flagged}


def op_retire(ctx: Ctx, change: dict) -> dict:
    cls = _active(ctx, change.get("class"))
    _retire(ctx, cls)
    flagged = relabel.flag_for_rereview(ctx.session, class_id=cls.id, version=ctx.version, offered=None,
                                        reason=f"'{cls.name}' was retired")
    return {**_ref(cls), "flagged": flagged}


def restore(ctx: Ctx, cls: LabelClass) -> dict:
    """Bring a retired class back (the inverse of retire, merge and split)."""
    clean_name(ctx.session, cls.name)  # its name may have been taken since
    if cls.shortcut and cls.shortcut in keys_in_use(ctx.session):
        cls.shortcut = free_shortcut(ctx.session)
    cls.retired_version_id, cls.replaced_by_id = None, None
    ctx.session.flush()
    _revise(ctx, cls)
    return _ref(cls)


def _example(ctx: Ctx, change: dict) -> tuple[LabelClass, int, str]:
    cls = _active(ctx, change.get("class"))
    kind = change.get("kind", "this")
    if kind not in EXAMPLE_KINDS:
        raise InvalidInput(f"example kind must be one of {', '.join(EXAMPLE_KINDS)}")
    image_id = as_id(change.get("image"))
    if image_id is None or ctx.session.get(Image, image_id) is None:
        raise NotFound(f"no image {change.get('image')}")
    return cls, image_id, kind


def _pinned(ctx: Ctx, cls: LabelClass, image_id: int, kind: str) -> ClassExample | None:
    return ctx.session.scalars(select(ClassExample).where(
        ClassExample.class_id == cls.id, ClassExample.image_id == image_id, ClassExample.kind == kind,
        ClassExample.removed_version_id.is_(None))).first()


def op_pin(ctx: Ctx, change: dict) -> dict:
    cls, image_id, kind = _example(ctx, change)
    if _pinned(ctx, cls, image_id, kind):
        raise Conflict(f"image {image_id} is already pinned to '{cls.name}' as {kind}")
    ctx.session.add(ClassExample(class_id=cls.id, image_id=image_id, kind=kind, added_version_id=ctx.version.id))
    return {**_ref(cls), "image_id": image_id, "kind": kind}


def op_unpin(ctx: Ctx, change: dict) -> dict:
    cls, image_id, kind = _example(ctx, change)
    pinned = _pinned(ctx, cls, image_id, kind)
    if pinned is None:
        raise NotFound(f"image {image_id} is not pinned to '{cls.name}' as {kind}")
    pinned.removed_version_id = ctx.version.id
    return {**_ref(cls), "image_id": image_id, "kind": kind}
