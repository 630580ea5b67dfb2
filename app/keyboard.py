"""Every key of the labelling page, one owner: the fixed keys, the named confidence levels, and the keys
classes and tags take.

Class shortcuts and tag keys are chosen by the user; they must not collide
with these or with each other (checked when a class or tag is created). The
taxonomy (class shortcuts) and labelling (tag keys) both check here, so it
sits below both.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import LabelClass, Tag
from app.errors import InvalidInput

# name, stored value, key
CONFIDENCE_LEVELS: list[tuple[str, float, str]] = [
    ("sure", 1.0, "q"),
    ("unsure", 0.6, "w"),
    ("guess", 0.3, "e"),
]

ACTIONS: list[tuple[str, str]] = [
    ("Enter", "accept the model's top suggestion (when there is one)"),
    ("s / →", "skip this image"),
    ("x", "in a re-review: none of the offered classes fits, choose any class"),
    ("u / ← / Backspace", "undo the last label and go back to it"),
    ("n", "write a note (Enter saves it, Esc leaves)"),
    ("g", "show class definitions"),
    ("?", "show or hide this cheat-sheet"),
]

# A multi-label taxonomy: class keys toggle classes on the image, Enter saves the set.
MULTI_ACTIONS: list[tuple[str, str]] = [
    ("Enter", "save the classes switched on and go on (none switched on: none of these)"),
    ("=", "switch on the model's probable set (when there is one), in place of what is on"),
    *ACTIONS[1:],
]

# x: exclude on the review page, "none of these" in a re-review; a: accept the model's suggestion in review.
RESERVED_KEYS = frozenset({level[2] for level in CONFIDENCE_LEVELS} | set("sunzgxa?"))
# Offered in this order when a class is created without a shortcut.
AUTO_SHORTCUTS = "1234567890" + "fhjklmprtvy"
ALLOWED_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def confidence_name(value: float | None) -> str:
    """The named level nearest to a stored confidence."""
    if value is None:
        return ""
    return min(CONFIDENCE_LEVELS, key=lambda level: abs(level[1] - value))[0]


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
