"""Difficulty tags (blurred, occluded, ...): an editable list; retired tags stay in history."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Tag
from app.errors import InvalidInput, NotFound
from app.keyboard import check_key

MAX_TAG = 50


def active_tags(session: Session) -> list[Tag]:
    return list(session.scalars(select(Tag).where(Tag.active).order_by(Tag.position, Tag.id)))


def tag_view(tag: Tag) -> dict:
    return {"name": tag.name, "key": tag.key, "active": tag.active}


def add_tag(session: Session, *, name: str, key: str | None = None) -> Tag:
    name = " ".join((name or "").split()).lower()
    if not name:
        raise InvalidInput("a tag name is required")
    if len(name) > MAX_TAG:
        raise InvalidInput(f"tag names are at most {MAX_TAG} characters")
    existing = session.scalars(select(Tag).where(Tag.name == name)).first()
    if existing and existing.active:
        raise InvalidInput(f"tag '{name}' already exists")
    key = check_key(session, key) if key else None
    if existing:  # bring a retired tag back rather than making a second one
        existing.active, existing.key = True, key
        tag = existing
    else:
        tag = Tag(name=name, key=key, position=(session.scalar(select(func.max(Tag.position))) or 0) + 1)
        session.add(tag)
    session.commit()
    return tag


def retire_tag(session: Session, *, name: str) -> Tag:
    tag = session.scalars(select(Tag).where(Tag.name == name, Tag.active)).first()
    if tag is None:
        raise NotFound(f"no active tag '{name}'")
    tag.active = False
    session.commit()
    return tag


def check_tags(session: Session, tags: list[str]) -> list[str]:
    """Normalise and validate tags against the active list; keeps the user's order, no repeats."""
    if not tags:
        return []
    known = {t.name for t in active_tags(session)}
    clean: list[str] = []
    for raw in tags:
        tag = " ".join(str(raw).split()).lower()
        if tag not in known:
            raise InvalidInput(f"unknown tag '{raw}'; known tags: {', '.join(sorted(known))}")
        if tag not in clean:
            clean.append(tag)
    return clean
