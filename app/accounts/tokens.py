"""API tokens for scripts: random, shown once, stored as a sha256, named and revocable."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.accounts.sessions import Identity, digest
from app.accounts.users import get_user
from app.db.models import ApiToken, User
from app.errors import Conflict, InvalidInput, NotFound
from app.timeutil import utcnow

PREFIX = "loupe_"  # recognisable in a leaked config file or a secret scanner
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")
TOUCH_EVERY = timedelta(minutes=1)  # last_used is for people; a write per request is not worth it


def create_token(session: Session, *, name: str, user_name: str) -> str:
    """A new token acting as `user_name` with that user's role; returns the secret, which is not kept."""
    if not NAME_RE.fullmatch(name):
        raise InvalidInput("a token name is 1 to 100 letters, digits, '.', '_', '@' or '-'")
    user = get_user(session, user_name)
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise Conflict(f"there is already a token '{name}'")
    raw = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, user_id=user.id, token_hash=digest(raw)))
    session.commit()
    return raw


def revoke_token(session: Session, *, name: str) -> None:
    token = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if token is None:
        raise NotFound(f"no token '{name}'")
    session.delete(token)
    session.commit()


def list_tokens(session: Session) -> list[tuple[ApiToken, str]]:
    """Every token with its user's name, by name."""
    return [(token, user) for token, user in session.execute(
        select(ApiToken, User.name).join(User, User.id == ApiToken.user_id).order_by(ApiToken.name))]


def find_token(session: Session, raw: str) -> tuple[Identity, bool] | None:
    """The identity behind a bearer token and whether its last_used is due an update; None if unknown."""
    if not raw.startswith(PREFIX):
        return None
    row = session.execute(
        select(ApiToken.id, ApiToken.last_used_at, User.id.label("user_id"), User.name, User.role)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == digest(raw))
    ).first()
    if row is None:
        return None
    due = row.last_used_at is None or utcnow() - row.last_used_at > TOUCH_EVERY
    return Identity(user_id=row.user_id, name=row.name, role=row.role, via="token"), due


def touch_token(session: Session, raw: str) -> None:
    session.execute(update(ApiToken).where(ApiToken.token_hash == digest(raw)).values(last_used_at=utcnow()))
    session.commit()
