"""Page forms: numbers typed into a field, and a refused submission shown again with its reason.

Every page form that writes follows one rule: when the domain refuses (a
LoupeError), nothing it wrote stays and the person sees the same form with the
reason, not an error page. `refusal_shows` is that rule, written once; the
numbers of a form are read by `form_number`, one way, with one wording.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.errors import InvalidInput, LoupeError


class Answered(Exception):
    """A page form was refused; `response` is the page to send instead (app.main sends it as it is)."""

    def __init__(self, response: Response):
        super().__init__("a page form was refused")
        self.response = response


@contextmanager
def refusal_shows(session: Session, page: Callable[[LoupeError], Response]) -> Iterator[None]:
    """Run a form's write; a refusal rolls back what it wrote and answers with `page(refusal)` (drawn from the
    same session, so it shows the data as it was before)."""
    try:
        yield
    except LoupeError as exc:
        session.rollback()
        raise Answered(page(exc)) from None


def form_number(value: str | None, name: str, cast: type[int] | type[float] = int, default=None,
                *, low: float | None = None, high: float | None = None):
    """A number typed into a field (or a query parameter): blank is `default`; a non-number (for `int`, anything
    but ASCII digits), a non-finite number or one outside [low, high] is refused with a sentence naming it."""
    raw = (value or "").strip()
    if not raw:
        return default
    if cast is int:
        number: float = int(raw) if raw.isascii() and raw.isdigit() else math.nan
        kind = "a whole number"
    else:
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
        kind = "a number"
    span = f" from {low:g} to {high:g}" if low is not None and high is not None else ""
    if not math.isfinite(number) or (low is not None and number < low) or (high is not None and number > high):
        raise InvalidInput(f"{name} must be {kind}{span}, not '{raw[:40]}'")
    return number
