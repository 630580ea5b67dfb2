"""PostgreSQL engines that keep the contract the SQLite engines give the domain code.

The domain code was written for SQLite's one writer at a time: it reads a max
and inserts max + 1 (taxonomy version numbers), appends a label event and then
points the current label at it, checks a base version before changing it. Under
PostgreSQL's READ COMMITTED two such writers could interleave, so every write
transaction first takes one transaction-scoped advisory lock, the equivalent of
BEGIN IMMEDIATE: writers queue, readers never wait. Reads run at REPEATABLE
READ, one snapshot per transaction, like a SQLite read transaction in WAL mode.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event

from app.errors import InvalidInput

# Arbitrary 64-bit keys for pg_advisory_xact_lock; only Loupe takes them.
WRITE_LOCK = 0x4C6F7570_65000001
MIGRATE_LOCK = 0x4C6F7570_65000002


def make_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(
        url,
        pool_pre_ping=True,  # a server restart must not cost the next request its connection
        isolation_level="READ COMMITTED" if immediate else "REPEATABLE READ",
    )
    if immediate:
        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
    event.listen(engine, "before_cursor_execute", _refuse_nul)
    return engine


def _refuse_nul(_conn, _cursor, _statement, parameters, _context, executemany) -> None:
    """PostgreSQL cannot store NUL in text (SQLite can): say so (422), not fail in the driver (500)."""
    for row in parameters if executemany else [parameters]:
        values = row.values() if isinstance(row, dict) else row or ()
        if any(isinstance(v, str) and "\x00" in v for v in values):
            raise InvalidInput("text may not contain NUL characters (\\x00): PostgreSQL cannot store them")
