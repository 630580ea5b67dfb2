"""The labelling page's fixed keys, and the named confidence levels.

Class shortcuts and tag keys are chosen by the user; they must not collide
with these or with each other (checked when a class or tag is created).
"""

from __future__ import annotations

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
