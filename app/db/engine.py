"""Engines and sessions: every SQLite connection gets WAL, foreign keys and a busy timeout.

PostgreSQL (LOUPE_DATABASE_URL) gets the same two engines from app.db.postgres;
everything below is about SQLite.

Two engines share one file. Reads begin a deferred transaction; writes begin
with BEGIN IMMEDIATE so that a writer waits for the lock up front (busy
timeout) instead of failing half-way when it upgrades from reader to writer.

SQLite has one writer at a time. Writers in this process wait their turn on a
Python lock (roughly first come, first served) rather than in SQLite's busy
handler, whose growing sleeps (up to 100 ms each) showed as latency spikes with
several labellers; writers in other processes (worker, CLI) still meet at
BEGIN IMMEDIATE and the busy timeout.

Durability: the write engine runs `synchronous=FULL`, so a commit is on disk
(WAL fsynced) before a request is acknowledged, even across a power cut or an
OS crash; NORMAL is only safe against the process dying. The WAL fsync costs
0.2 ms a commit at the median and 4 ms at p95 on the 2-core dev VM, about 1 ms
on save_next's p50; readers never write, so they keep NORMAL.

Checkpoints: by default SQLite copies the WAL back into the database file
inside whichever commit pushes the WAL past 1,000 pages, while that writer
still holds the lock: one save in a few hundred then took tens of
milliseconds, and every labeller queued behind it. The web app's Database
(`background_checkpoint=True`) turns that off for its write connections and
runs a PASSIVE checkpoint from a thread of its own every CHECKPOINT_S instead;
WAL checkpoints run beside writers without blocking them. Other processes
(worker, CLI) keep SQLite's automatic checkpoints, so a WAL never grows
unchecked when no app runs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from app.db import postgres

BUSY_TIMEOUT_MS = 10_000
CHECKPOINT_S = 1.0

log = logging.getLogger("loupe.db")


def _make_engine(url: str, *, immediate: bool, auto_checkpoint: bool = True) -> Engine:
    if not url.startswith("sqlite"):
        return postgres.make_engine(url, immediate=immediate)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000})
    synchronous = "FULL" if immediate else "NORMAL"
    write_turn = threading.Lock() if immediate else None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Let SQLAlchemy's "begin" event own transaction start (pysqlite's own is off).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        if not auto_checkpoint:
            cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        if write_turn is None:
            conn.exec_driver_sql("BEGIN")
            return
        _take_turn(write_turn, conn.connection.info)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _end_turn(write_turn, conn.connection.info)
            raise

    if write_turn is not None:
        # A session hands its connection back to the pool right after COMMIT or
        # ROLLBACK, so check-in is when SQLite's write lock is free again.
        @event.listens_for(engine, "checkin")
        def _on_checkin(_dbapi_conn, record):
            if record is not None:
                _end_turn(write_turn, record.info)

    return engine


def _take_turn(lock: threading.Lock, info: dict) -> None:
    """Wait for this process's write turn; a connection that already has it keeps it."""
    if info.get("write_turn") or _on_event_loop():
        # An async route writing on the event loop must not wait here: the holder may need
        # that loop to finish its request and let go. It waits in SQLite's busy handler.
        return
    # Bounded by the busy timeout so that a stuck holder degrades into SQLite's
    # own "database is locked" error instead of a hang.
    if lock.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
        info["write_turn"] = True


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _end_turn(lock: threading.Lock, info: dict) -> None:
    if info.pop("write_turn", False):
        lock.release()


class _Checkpointer:
    """WAL checkpoints every `interval_s` from a thread of its own (see the module docstring).

    A PASSIVE checkpoint copies back what it can while writers go on; but SQLite
    starts the WAL file over only when a write transaction begins with every
    frame copied back, which under steady writes (one begun while the
    checkpoint ran) rarely happens, and the file would grow for ever. When it
    holds more than FINISH_FRAMES, the checkpoint is finished inside a write
    transaction: writers wait for a few frames' copy, not a thousand pages'.
    """

    FINISH_FRAMES = 4000  # about 16 MB of 4 KB pages

    def __init__(self, read_engine: Engine, write_engine: Engine, interval_s: float):
        self._read, self._write, self._interval_s = read_engine, write_engine, interval_s
        self._done = threading.Event()
        self.runs = 0
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if not self.running:
            self._done.clear()
            self._thread = threading.Thread(target=self._loop, name="loupe-checkpoint", daemon=True)
            self._thread.start()

    def checkpoint(self) -> tuple[int, int, int]:
        """(busy, WAL frames, frames copied back), as PRAGMA wal_checkpoint reports them."""
        # A raw connection: outside any transaction (the engine's "begin" hook would open one).
        raw = self._read.raw_connection()
        try:
            cur = raw.cursor()
            row = cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            cur.close()
        finally:
            raw.close()
        self.runs += 1
        return tuple(row)

    def run_once(self) -> tuple[int, int, int]:
        busy, frames, copied = self.checkpoint()
        if frames > self.FINISH_FRAMES:
            with self._write.connect() as conn:  # the write turn and lock: nobody appends meanwhile
                conn.exec_driver_sql("SELECT 1")
                busy, frames, copied = self.checkpoint()
                conn.rollback()
        return busy, frames, copied

    def _loop(self) -> None:
        while not self._done.wait(self._interval_s):
            try:
                self.run_once()
            except Exception:  # a checkpoint that fails now is simply tried again next time
                log.exception("WAL checkpoint failed")

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


@dataclass
class Database:
    """The read and write engines for one database file."""

    url: str
    # SQLite: checkpoint the WAL from a thread instead of inside commits (the web app's choice; its
    # lifespan calls start_checkpoints, so an app object that is never started runs no thread).
    background_checkpoint: bool = False

    def __post_init__(self) -> None:
        background = self.background_checkpoint and self.url.startswith("sqlite")
        self.read_engine = _make_engine(self.url, immediate=False)
        self.write_engine = _make_engine(self.url, immediate=True, auto_checkpoint=not background)
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)
        self.checkpointer = _Checkpointer(self.read_engine, self.write_engine, CHECKPOINT_S) if background else None

    def start_checkpoints(self) -> None:
        """Start the checkpoint thread (background_checkpoint on SQLite; otherwise nothing to do)."""
        if self.checkpointer is not None:
            self.checkpointer.start()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session whose first statement takes the write lock; rolled back unless committed."""
        with self._write() as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer.checkpoint()  # leave the file as self-contained as SQLite would
            self.checkpointer = None
        self.read_engine.dispose()
        self.write_engine.dispose()
