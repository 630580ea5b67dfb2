"""Browser sessions: the cookie holds a random id, the database only its sha256 (a copy of the
database logs nobody in), with a CSRF token per session and a fixed expiry."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.accounts import ratelimit, users
from app.db.engine import Database
from app.db.models import User, UserSession
from app.errors import LoupeError
from app.timeutil import utcnow


class LoginFailed(LoupeError):
    status_code = 401


class LoginLocked(LoupeError):
    status_code = 429

    def __init__(self, retry_after: int):
        minutes = max(1, round(retry_after / 60))
        super().__init__(f"too many failed logins: try again in {minutes} minute{'s' if minutes > 1 else ''}")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Identity:
    """Who a request comes from. via: "session" (a browser; needs a CSRF token) or "token" (a script)."""

    user_id: int
    name: str
    role: str
    via: str
    csrf: str = ""


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def start_session(session: Session, *, user_id: int, lifetime_s: float) -> str:
    """A new session row (no commit); returns the raw id for the cookie, never stored."""
    now = utcnow()
    session.execute(delete(UserSession).where(UserSession.expires_at <= now))
    raw = secrets.token_urlsafe(32)
    session.add(UserSession(token_hash=digest(raw), user_id=user_id, csrf_token=secrets.token_urlsafe(32),
                            created_at=now, expires_at=now + timedelta(seconds=lifetime_s)))
    return raw


def find_session(session: Session, raw: str) -> Identity | None:
    """The live session with this cookie value, or None (unknown or expired)."""
    if not raw:
        return None
    row = session.execute(
        select(UserSession.csrf_token, User.id, User.name, User.role)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.token_hash == digest(raw), UserSession.expires_at > utcnow())
    ).first()
    if row is None:
        return None
    return Identity(user_id=row.id, name=row.name, role=row.role, via="session", csrf=row.csrf_token)


def end_session(session: Session, raw: str) -> None:
    session.execute(delete(UserSession).where(UserSession.token_hash == digest(raw)))
    session.commit()


def log_in(db: Database, *, name: str, password: str, ip: str, limits: ratelimit.Limits,
           lifetime_s: float) -> tuple[str, User]:
    """Check the limit, then the password (outside any transaction: argon2 is slow), then open a session.

    Raises LoginLocked while the limit holds (even for the right password) and
    LoginFailed for an unknown name or a wrong password, with one message for both.
    """
    with db.writing() as session:
        wait, attempt_id = ratelimit.reserve_attempt(session, username=name, ip=ip, limits=limits)
    if wait:
        raise LoginLocked(wait)
    with db.reading() as session:
        user = users.find_user(session, name)
    if not users.check_password(user, password):
        raise LoginFailed("wrong user name or password")  # the reserved attempt stays as a failure
    with db.writing() as session:
        ratelimit.clear_failures(session, username=name, ip=ip)
        users.upgrade_hash(session, user_id=user.id, password=password)
        raw = start_session(session, user_id=user.id, lifetime_s=lifetime_s)
        session.commit()
    return raw, user
