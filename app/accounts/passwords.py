"""Password hashing: argon2id (RFC 9106's low-memory profile, argon2-cffi's defaults)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
MAX_LENGTH = 1024  # argon2 takes any length; this only bounds the work a request can ask for

_hasher = PasswordHasher()  # argon2id: memory-hard, the current OWASP recommendation


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    return _hasher.hash("no such user: this hash only spends the same time")


def verify_password(stored: str | None, password: str) -> bool:
    """True when `password` matches `stored`; an unknown user (None) costs as long as a wrong password."""
    try:
        return _hasher.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored)
