"""Taxonomy versions and classes. Every change is a new, append-only version."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import CurrentLabel, LabelClass, TaxonomyChange, TaxonomyVersion
from app.errors import Conflict, InvalidInput, NotFound
from app.labelling.shortcuts import check_key, free_shortcut
from app.timeutil import iso

MAX_NAME = 100


def current_version(session: Session) -> TaxonomyVersion | None:
    return session.scalars(select(TaxonomyVersion).order_by(TaxonomyVersion.number.desc()).limit(1)).first()


def active_classes(session: Session) -> list[LabelClass]:
    return list(
        session.scalars(
            select(LabelClass).where(LabelClass.retired_version_id.is_(None)).order_by(LabelClass.position, LabelClass.id)
        )
    )


def class_counts(session: Session) -> dict[int, int]:
    """Current labels per class id."""
    rows = session.execute(
        select(CurrentLabel.class_id, func.count()).where(CurrentLabel.class_id.is_not(None)).group_by(CurrentLabel.class_id)
    )
    return dict(rows.all())


def resolve_class(session: Session, ref: Any, *, active_only: bool = True) -> LabelClass:
    """A class named by its id or its current name (NAME_OR_ID in the API)."""
    if ref is None or (isinstance(ref, str) and not ref.strip()):
        raise InvalidInput("a class is required")
    cls = None
    if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
        cls = session.get(LabelClass, int(ref))
    if cls is None and isinstance(ref, str):
        cls = session.scalars(
            select(LabelClass).where(LabelClass.name == ref.strip()).order_by(LabelClass.retired_version_id.is_not(None))
        ).first()
    if cls is None:
        raise NotFound(f"no class named or numbered '{ref}'")
    if active_only and cls.retired_version_id is not None:
        raise InvalidInput(f"class '{cls.name}' is retired; label with one of the active classes")
    return cls


def class_view(cls: LabelClass, counts: dict[int, int]) -> dict:
    return {
        "id": cls.id,
        "name": cls.name,
        "description": cls.description,
        "shortcut": cls.shortcut,
        "count": counts.get(cls.id, 0),
    }


def taxonomy_view(session: Session) -> dict:
    version = current_version(session)
    counts = class_counts(session)
    return {
        "version": version.number if version else 0,
        "classes": [class_view(c, counts) for c in active_classes(session)],
    }


def list_versions(session: Session) -> list[dict]:
    versions = session.scalars(select(TaxonomyVersion).order_by(TaxonomyVersion.number)).all()
    changes: dict[int, list[dict]] = {}
    for ch in session.scalars(select(TaxonomyChange).order_by(TaxonomyChange.id)):
        changes.setdefault(ch.version_id, []).append({"op": ch.op, **ch.detail})
    return [
        {
            "version": v.number,
            "message": v.message,
            "author": v.author,
            "created_at": iso(v.created_at),
            "changes": changes.get(v.id, []),
        }
        for v in versions
    ]


def _new_version(session: Session, *, message: str, author: str) -> TaxonomyVersion:
    parent = current_version(session)
    version = TaxonomyVersion(
        number=(parent.number + 1) if parent else 1,
        parent_id=parent.id if parent else None,
        message=message,
        author=author,
    )
    session.add(version)
    session.flush()
    return version


def _clean_name(session: Session, name: Any) -> str:
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
    if taken:
        raise InvalidInput(f"a class named '{taken.name}' already exists")
    return name


def _add(session: Session, change: dict, version: TaxonomyVersion) -> dict:
    name = _clean_name(session, change.get("name"))
    description = str(change.get("description") or "").strip()
    shortcut = change.get("shortcut")
    shortcut = check_key(session, shortcut) if shortcut else free_shortcut(session)
    position = (session.scalar(select(func.max(LabelClass.position))) or 0) + 1
    cls = LabelClass(
        name=name, description=description, shortcut=shortcut, position=position, created_version_id=version.id
    )
    session.add(cls)
    session.flush()
    return {"class_id": cls.id, "name": name, "description": description, "shortcut": shortcut}


OPERATIONS = {"add": _add}


def apply_change(session: Session, *, change: dict, author: str = "") -> dict:
    """Apply one operation as a new taxonomy version; returns the taxonomy after it."""
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
    message = str(change.get("message") or "").strip() or f"{op} {change.get('name') or change.get('class') or ''}".strip()
    version = _new_version(session, message=message, author=author or str(change.get("author") or ""))
    detail = OPERATIONS[op](session, change, version)
    session.add(TaxonomyChange(version_id=version.id, op=op, detail=detail))
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
        for name in missing:
            detail = _add(session, {"op": "add", "name": name}, version)
            session.add(TaxonomyChange(version_id=version.id, op="add", detail=detail))
            active[detail["name"].lower()] = session.get(LabelClass, detail["class_id"])
    return {n: active[" ".join(n.split()).lower()] for n in names}
