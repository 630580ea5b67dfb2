"""Row ids and numbers that arrive from outside (URLs, JSON, the command line).

Integer keys are 32-bit on PostgreSQL and 64-bit on SQLite; a larger number
makes the driver raise instead of matching nothing, so a number outside the
range names no row, and says so, before it reaches a query.
"""

from __future__ import annotations

MAX_ID = 2**31 - 1


def as_id(ref: object) -> int | None:
    """`ref` as a row id (an int, or a string of ASCII digits, from 1 to MAX_ID); None when it is not one."""
    if isinstance(ref, bool):
        return None
    if isinstance(ref, str):
        text = ref.strip()
        if not (text.isascii() and text.isdigit()):
            return None
        ref = int(text)
    if isinstance(ref, int) and 1 <= ref <= MAX_ID:
        return ref
    return None

