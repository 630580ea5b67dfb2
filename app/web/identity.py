"""Who is asking, as the auth middleware left it on the request: for routes and templates."""

from __future__ import annotations

from fastapi import Request

from app.accounts.sessions import Identity


def current_user(request: Request) -> Identity | None:
    return getattr(request.state, "user", None)


def csrf_token(request: Request) -> str:
    return getattr(request.state, "csrf", "")


def signed(request: Request, given: str) -> str:
    """The logged-in user's name (nobody labels as someone else), else the name the client sent."""
    user = current_user(request)
    return user.name if user else given
