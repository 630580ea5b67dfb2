"""UTC timestamps: stored naive-UTC in SQLite, shown as ISO 8601 with a Z."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000).isoformat(timespec="milliseconds") + "Z"
