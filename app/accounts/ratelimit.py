"""Failed logins, kept in the database so that a limit survives restarts and holds across processes.

An attempt reserves its row before the password is checked (in one write
transaction with the count), so parallel guesses cannot slip past the limit;
a successful login removes its own reservation and the earlier failures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.db.models import LoginAttempt
from app.timeutil import utcnow


@dataclass(frozen=True)
class Limits:
    max_failures: int = 5  # per (user name, client address) and window
    max_failures_per_ip: int = 50  # per client address, whatever the names: password spraying
    window_s: int = 300


def _key(username: str) -> str:
    return username.strip().lower()[:100]


def _wait(session: Session, where, limit: int, cutoff: datetime, now: datetime, window_s: int) -> int:
    count, oldest = session.execute(
        select(func.count(), func.min(LoginAttempt.created_at)).where(where, LoginAttempt.created_at > cutoff)
    ).one()
    if count < limit:
        return 0
    return max(1, int((oldest + timedelta(seconds=window_s) - now).total_seconds()) + 1)


def reserve_attempt(session: Session, *, username: str, ip: str, limits: Limits) -> tuple[int, int | None]:
    """Commit a row for this attempt unless the limit is reached; returns (seconds to wait, attempt id)."""
    now = utcnow()
    cutoff = now - timedelta(seconds=limits.window_s)
    session.execute(delete(LoginAttempt).where(LoginAttempt.created_at <= cutoff))
    ip = ip[:45]
    wait = max(
        _wait(session, (LoginAttempt.username == _key(username)) & (LoginAttempt.ip == ip), limits.max_failures,
              cutoff, now, limits.window_s),
        _wait(session, LoginAttempt.ip == ip, limits.max_failures_per_ip, cutoff, now, limits.window_s),
    )
    if wait:
        session.commit()
        return wait, None
    attempt = LoginAttempt(username=_key(username), ip=ip, created_at=now)
    session.add(attempt)
    session.commit()
    return 0, attempt.id


def clear_failures(session: Session, *, username: str, ip: str) -> None:
    """After a successful login (no commit: part of the login's transaction)."""
    session.execute(delete(LoginAttempt).where(LoginAttempt.username == _key(username), LoginAttempt.ip == ip[:45]))
