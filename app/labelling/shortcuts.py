"""Validation of user-chosen keys (class shortcuts, tag keys) against everything else."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import LabelClass, Tag
from app.errors import InvalidInput
from app.labelling.keys import ALLOWED_KEY_CHARS, AUTO_SHORTCUTS, RESERVED_KEYS


def keys_in_use(session: Session) -> dict[str, str]:
    """Key -> what uses it, for the active classes and tags."""
    used = {}
    for name, key in session.execute(
        select(LabelClass.name, LabelClass.shortcut).where(
            LabelClass.retired_version_id.is_(None), LabelClass.shortcut.is_not(None)
        )
    ):
        used[key] = f"class '{name}'"
    for name, key in session.execute(select(Tag.name, Tag.key).where(Tag.active, Tag.key.is_not(None))):
        used[key] = f"tag '{name}'"
    return used


def check_key(session: Session, key: str) -> str:
    """Return the normalised key or raise InvalidInput saying why it cannot be used."""
    if not isinstance(key, str):  # JSON bodies can carry any type here
        raise InvalidInput(f"shortcut {key!r} must be a single letter or digit")
    key = key.strip().lower()
    if len(key) != 1 or key not in ALLOWED_KEY_CHARS:
        raise InvalidInput(f"shortcut '{key}' must be a single letter or digit")
    if key in RESERVED_KEYS:
        raise InvalidInput(f"key '{key}' is reserved on the labelling page (confidence, skip, undo, note, help)")
    used = keys_in_use(session)
    if key in used:
        raise InvalidInput(f"key '{key}' is already used by {used[key]}")
    return key


def free_shortcut(session: Session) -> str | None:
    used = keys_in_use(session)
    return next((k for k in AUTO_SHORTCUTS if k not in used and k not in RESERVED_KEYS), None)


def key_map(classes) -> dict[int, dict]:
    """Class id -> {"key", "name"} for the active classes: the labelling page compares it with the last
    one a browser saw, to show what changed."""
    return {c.id: {"key": c.shortcut, "name": c.name} for c in classes}
