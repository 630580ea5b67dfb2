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
from app.keyboard import check_key, keys_in_use
from app.taxonomy import relabel
from app.taxonomy.keys import fresh_key, key_change, previous_holder
from app.taxonomy.queries import MULTI, SINGLE, resolve_class

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


def _create(ctx: Ctx, name: str, description: str = "", shortcut: str | None = None) -> tuple[LabelClass, dict]:
    """A new class and the "keys" entry that records the key it got (a chosen one, a fresh one, or none)."""
    s = ctx.session
    position = (s.scalar(select(func.max(LabelClass.position))) or 0) + 1
    was = previous_holder(s, shortcut) if shortcut else None
    cls = LabelClass(name=name, description=description, shortcut=shortcut or fresh_key(s), position=position,
                     created_version_id=ctx.version.id)
    s.add(cls)
    s.flush()
    _revise(ctx, cls)
    why = "chosen" if shortcut else ("fresh" if cls.shortcut else "none free")
    return cls, key_change(cls, None, cls.shortcut, why=why, was=was.name if was else None)


def _new_ref(cls: LabelClass) -> dict:
    return {**_ref(cls), "shortcut": cls.shortcut, "description": cls.description}


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
    cls, key = _create(ctx, name, str(change.get("description") or "").strip(), shortcut)
    return {**_ref(cls), "description": cls.description, "shortcut": cls.shortcut, "keys": [key]}


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
    created, keys = into is None, []
    if created:  # with a fresh key: the merged classes keep theirs, for an undo and for muscle memory
        stub = f"Merged from {_names(sources)} in version {ctx.version.number}."
        into, key = _create(ctx, new_name, _text(change.get("description")) or stub)
        keys.append(key)
    for c in sources:
        c.replaced_by_id = into.id
    moved = relabel.move_labels(ctx.session, from_ids=[c.id for c in sources], to_id=into.id, version=ctx.version)
    return {"classes": [{**_ref(c), "shortcut": c.shortcut} for c in sources],
            "into": _new_ref(into) if created else _ref(into), "created": created, "moved": moved, "keys": keys}


def _names(classes: list[LabelClass]) -> str:
    names = [c.name for c in classes]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def op_split(ctx: Ctx, change: dict) -> dict:
    cls = _active(ctx, change.get("class"))
    names = change.get("into")
    if not isinstance(names, list) or len(names) < 2:
        raise InvalidInput("a split needs at least two new class names in 'into'")
    clean = [clean_name(ctx.session, n) for n in names]
    if len({n.lower() for n in clean}) != len(clean):
        raise InvalidInput("the new class names must differ from each other")
    given = change.get("descriptions")
    given = given if isinstance(given, list) else []
    _retire(ctx, cls)
    stub = f"Split from {cls.name} in version {ctx.version.number}."
    created = [_create(ctx, n, (_text(given[i]) if i < len(given) else "") or stub) for i, n in enumerate(clean)]
    new = [c for c, _ in created]
    flagged = relabel.flag_for_rereview(ctx.session, class_id=cls.id, version=ctx.version,
                                        offered=[c.id for c in new], reason=f"'{cls.name}' was split")
    return {**_ref(cls), "shortcut": cls.shortcut, "into": [_new_ref(c) for c in new], "flagged": flagged,
            "keys": [k for _, k in created]}


def op_retire(ctx: Ctx, change: dict) -> dict:
    cls = _active(ctx, change.get("class"))
    _retire(ctx, cls)
    if ctx.version.mode == MULTI:  # a set without the class is still a whole answer: nothing to re-review
        removed = relabel.rewrite_sets(ctx.session, from_ids=[cls.id], to_id=None, version=ctx.version)
        return {**_ref(cls), "flagged": 0, "removed": removed}
    flagged = relabel.flag_for_rereview(ctx.session, class_id=cls.id, version=ctx.version, offered=None,
                                        reason=f"'{cls.name}' was retired")
    return {**_ref(cls), "flagged": flagged}


def new_mode(current: str, change: dict) -> str:
    """The mode a set-mode change asks for, checked against the current one: only ever single -> multi-label
    (going back would have to drop classes from images that carry several). Read before the version is made:
    versions are append-only, so a version's mode is written with it."""
    mode = change.get("mode")
    if mode not in (SINGLE, MULTI):
        raise InvalidInput(f"'mode' must be '{MULTI}' (or '{SINGLE}'), not '{mode}'")
    if current == mode:
        raise InvalidInput(f"the taxonomy is already {mode}")
    if mode == SINGLE:
        raise InvalidInput("a multi-label taxonomy cannot become single-label again: that would silently drop "
                           "classes from images that carry several")
    return mode


def op_set_mode(ctx: Ctx, change: dict) -> dict:
    """Make the taxonomy multi-label (the version was made so, by `new_mode`): each image's current class
    becomes a set of that one class, as a migration event each."""
    return {"from": SINGLE, "to": MULTI, "converted": relabel.to_sets(ctx.session, version=ctx.version)}


def restore(ctx: Ctx, cls: LabelClass) -> tuple[dict, list[dict]]:
    """Bring a retired class back (the inverse of retire, merge and split) with the key it always had.

    Only when someone explicitly gave that key to another class since does it
    get a fresh one, and the returned "keys" entry says so.
    """
    clean_name(ctx.session, cls.name)  # its name may have been taken since
    keys = []
    if cls.shortcut and cls.shortcut in (used := keys_in_use(ctx.session)):
        old, cls.shortcut = cls.shortcut, fresh_key(ctx.session)
        keys.append(key_change(cls, old, cls.shortcut, why=f"key {old} is now used by {used[old]}"))
    cls.retired_version_id, cls.replaced_by_id = None, None
    ctx.session.flush()
    _revise(ctx, cls)
    return {**_ref(cls), "shortcut": cls.shortcut}, keys


def op_set_shortcut(ctx: Ctx, change: dict) -> dict:
    """Give a class another key (or none, with an empty or null shortcut): the one explicit way a key moves."""
    cls = _active(ctx, change.get("class"))
    raw = change.get("shortcut")
    wanted = raw.strip().lower() if isinstance(raw, str) else raw
    if (wanted or None) == cls.shortcut:
        raise InvalidInput(f"class '{cls.name}' already has key {wanted}" if wanted
                           else f"class '{cls.name}' has no key")
    key = check_key(ctx.session, raw) if raw not in (None, "") else None
    was = previous_holder(ctx.session, key, besides=cls.id) if key else None
    old, cls.shortcut = cls.shortcut, key
    ctx.session.flush()
    entry = key_change(cls, old, key, why="chosen", was=was.name if was else None)
    return {**_ref(cls), "from": old, "to": key, "keys": [entry]}


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
