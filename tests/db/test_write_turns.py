"""SQLite writers: in one process they take turns on a lock, across processes they meet at BEGIN IMMEDIATE."""

from __future__ import annotations

import sqlite3
import threading
import time

from sqlalchemy import text

from app.db.engine import Database


def _table(tmp_path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'turns.db'}")
    with db.writing() as s:
        s.execute(text("CREATE TABLE counter (n INTEGER PRIMARY KEY)"))
        s.commit()
    return db


def test_many_threads_read_modify_write_without_losing_or_failing(tmp_path):
    db = _table(tmp_path)
    errors = []

    def bump():
        try:
            for _ in range(25):
                with db.writing() as s:
                    n = s.execute(text("SELECT coalesce(max(n), 0) FROM counter")).scalar()
                    time.sleep(0.0005)   # widen the window a lost update would need
                    s.execute(text("INSERT INTO counter VALUES (:n)"), {"n": n + 1})
                    s.commit()
                    s.execute(text("SELECT count(*) FROM counter")).scalar()   # begins again after the commit
        except Exception as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.reading() as s:
        assert list(s.scalars(text("SELECT n FROM counter ORDER BY n"))) == list(range(1, 201))
    assert errors == []
    # A plain connection that commits twice keeps its turn in between instead of waiting on itself.
    with db.write_engine.connect() as c:
        c.execute(text("INSERT INTO counter VALUES (201)"))
        c.commit()
        c.execute(text("INSERT INTO counter VALUES (202)"))
        c.commit()
    db.dispose()


def test_a_writer_in_another_process_is_waited_for(tmp_path):
    db = _table(tmp_path)
    other = sqlite3.connect(tmp_path / "turns.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO counter VALUES (1)")
    releaser = threading.Timer(0.5, lambda: other.execute("COMMIT"))
    releaser.start()
    started = time.monotonic()
    with db.writing() as s:
        s.execute(text("INSERT INTO counter VALUES (2)"))
        s.commit()
    assert time.monotonic() - started >= 0.4
    with db.reading() as s:
        assert list(s.scalars(text("SELECT n FROM counter ORDER BY n"))) == [1, 2]
    releaser.join()
    other.close()
    db.dispose()
