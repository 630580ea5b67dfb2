"""People who log in, their roles and passwords. Every function that writes commits."""

from __future__ import annotations

import re

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.accounts.passwords import MAX_LENGTH, MIN_LENGTH, hash_password, needs_rehash, verify_password
from app.db.models import ApiToken, User, UserSession
from app.errors import Conflict, InvalidInput, NotFound

# Each role has the rights of those before it: a reviewer also labels, an admin does everything.
ROLES = ("labeller", "reviewer", "admin")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


def role_at_least(role: str, minimum: str) -> bool:
    return ROLES.index(role) >= ROLES.index(minimum)


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not '{role}'")
    return role


def _check_password(password: str) -> str:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"the password must have at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidInput(f"the password must have at most {MAX_LENGTH} characters")
    return password


def find_user(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def get_user(session: Session, name: str) -> User:
    user = find_user(session, name)
    if user is None:
        raise NotFound(f"no user '{name}'")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.name)))


def has_admin(session: Session) -> bool:
    return bool(session.scalar(select(func.count()).select_from(User).where(User.role == "admin")))


def add_user(session: Session, *, name: str, role: str, password: str) -> User:
    """A new user; the name is what their labels are signed with."""
    if not NAME_RE.fullmatch(name):
        raise InvalidInput("a user name is 1 to 100 letters, digits, '.', '_', '@' or '-', "
                           "starting with a letter or digit")
    _check_role(role)
    _check_password(password)
    if find_user(session, name) is not None:
        raise Conflict(f"there is already a user '{name}'")
    user = User(name=name, role=role, password_hash=hash_password(password))
    session.add(user)
    session.commit()
    return user


def set_password(session: Session, *, name: str, password: str) -> User:
    """A new password ends every session of that user: a stolen cookie stops working too."""
    user = get_user(session, name)
    user.password_hash = hash_password(_check_password(password))
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    session.commit()
    return user


def set_role(session: Session, *, name: str, role: str) -> User:
    user = get_user(session, name)
    _check_role(role)
    if user.role == "admin" and role != "admin" and _admins(session) == 1:
        raise Conflict(f"'{name}' is the last admin; make someone else admin first")
    user.role = role
    session.commit()
    return user


def remove_user(session: Session, *, name: str) -> None:
    """Remove a user with their sessions and API tokens; labels keep their annotator's name."""
    user = get_user(session, name)
    if user.role == "admin" and _admins(session) == 1:
        raise Conflict(f"'{name}' is the last admin; make someone else admin first")
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    session.delete(user)
    session.commit()


def _admins(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(User).where(User.role == "admin")) or 0


def check_password(user: User | None, password: str) -> bool:
    """Pure: no database; slow on purpose (argon2), so call it outside a write transaction."""
    return verify_password(user.password_hash if user else None, password[:MAX_LENGTH])


def upgrade_hash(session: Session, *, user_id: int, password: str) -> None:
    """Re-hash a correct password made with older parameters (no commit: part of the login's transaction)."""
    user = session.get(User, user_id)
    if user is not None and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
