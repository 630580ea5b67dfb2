"""Bounds for the numbers a client sends: ids, counts and offsets fit the database's integer columns.

Out of range is a 422 with the reason, checked by pydantic before any query
(a larger number would make the database driver raise, not match nothing).
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le

from app.db.ids import MAX_ID, as_id
from app.errors import InvalidInput

Id = Annotated[int, Ge(1), Le(MAX_ID)]
Count = Annotated[int, Ge(0), Le(MAX_ID)]


def parse_ids(text: str, what: str) -> list[int]:
    """A comma-separated list of ids from a query or form field ("3,5,8")."""
    ids = [as_id(part) for part in text.split(",") if part.strip()]
    if None in ids:
        raise InvalidInput(f"{what} must be a comma-separated list of ids")
    return ids
