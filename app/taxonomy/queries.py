"""Reading the taxonomy: the current version, classes, counts, names by id or name."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.ids import as_id
from app.db.models import ClassCount, ClassExample, LabelClass, TaxonomyVersion
from app.errors import InvalidInput, NotFound

SINGLE, MULTI = "single-label", "multi-label"


def current_version(session: Session) -> TaxonomyVersion | None:
    return session.scalars(select(TaxonomyVersion).order_by(TaxonomyVersion.number.desc()).limit(1)).first()


def taxonomy_mode(session: Session) -> str:
    """single-label (one class per image) or multi-label (a set of classes per image), as of the current
    version; a taxonomy with no version yet is single-label until someone says otherwise."""
    version = current_version(session)
    return version.mode if version is not None else SINGLE


def active_classes(session: Session) -> list[LabelClass]:
    return list(
        session.scalars(
            select(LabelClass).where(LabelClass.retired_version_id.is_(None))
            .order_by(LabelClass.position, LabelClass.id)
        )
    )


def retired_keys(session: Session) -> list[tuple[str, str]]:
    """(key, class name) held by retired classes: kept for them, never handed to another class silently."""
    rows = session.execute(
        select(LabelClass.shortcut, LabelClass.name)
        .where(LabelClass.retired_version_id.is_not(None), LabelClass.shortcut.is_not(None))
        .order_by(LabelClass.shortcut, LabelClass.id)
    )
    return [tuple(r) for r in rows]


def class_counts(session: Session) -> dict[int, int]:
    """Current labels per class id (classes with none left out), from the counts triggers keep (migration 0011)."""
    return dict(session.execute(select(ClassCount.class_id, ClassCount.labels).where(ClassCount.labels > 0)).all())


def resolve_class(session: Session, ref: Any, *, active_only: bool = True) -> LabelClass:
    """A class named by its id or its current name (NAME_OR_ID in the API)."""
    if ref is None or (isinstance(ref, str) and not ref.strip()):
        raise InvalidInput("a class is required")
    cls = None
    if (class_id := as_id(ref)) is not None:
        cls = session.get(LabelClass, class_id)
    if cls is None and isinstance(ref, str):
        name = " ".join(ref.split())
        cls = session.scalars(
            select(LabelClass)
            .where(func.lower(LabelClass.name) == name.lower())
            .order_by(LabelClass.retired_version_id.is_not(None), LabelClass.id.desc())
        ).first()
    if cls is None:
        raise NotFound(f"no class named or numbered '{ref}'")
    if active_only and cls.retired_version_id is not None:
        raise InvalidInput(f"class '{cls.name}' is retired; use one of the active classes")
    return cls


def examples(session: Session) -> dict[int, list[dict]]:
    """Pinned example images per active class id: [{"image", "kind"}]."""
    out: dict[int, list[dict]] = {}
    rows = session.execute(
        select(ClassExample.class_id, ClassExample.image_id, ClassExample.kind)
        .where(ClassExample.removed_version_id.is_(None))
        .order_by(ClassExample.id)
    )
    for class_id, image_id, kind in rows:
        out.setdefault(class_id, []).append({"image": image_id, "kind": kind})
    return out


def class_view(cls: LabelClass, counts: dict[int, int], pinned: dict[int, list[dict]] | None = None) -> dict:
    return {
        "id": cls.id,
        "name": cls.name,
        "description": cls.description,
        "shortcut": cls.shortcut,
        "count": counts.get(cls.id, 0),
        "examples": (pinned or {}).get(cls.id, []),
    }


def taxonomy_view(session: Session) -> dict:
    version = current_version(session)
    counts, pinned = class_counts(session), examples(session)
    return {
        "version": version.number if version else 0,
        "mode": version.mode if version else SINGLE,
        "classes": [class_view(c, counts, pinned) for c in active_classes(session)],
    }
