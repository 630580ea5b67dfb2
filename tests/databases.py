"""Test databases: a copy of a migrated SQLite file per test, or, when LOUPE_TEST_DATABASE_URL
names a PostgreSQL server (scripts/pg.sh starts one), a fresh database per test made
from a migrated template database (CREATE DATABASE ... TEMPLATE: a file copy, ~0.1 s)."""

from __future__ import annotations

import itertools
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from app.config import Settings
from app.db.migrate import upgrade_head

SERVER = os.environ.get("LOUPE_TEST_DATABASE_URL", "")
ON_POSTGRES = SERVER.startswith("postgres")

_names = itertools.count()


def url_of(name: str) -> str:
    return make_url(SERVER).set(database=name).render_as_string(hide_password=False)


def _admin(sql: str) -> None:
    engine = create_engine(SERVER, isolation_level="AUTOCOMMIT")  # CREATE / DROP DATABASE refuse transactions
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


# PostgreSQL: the database each data dir of this run uses (SQLite keeps it in the dir itself).
_by_dir: dict[Path, str] = {}
_template: list[str] = []


class Template:
    """A migrated database that each test gets a copy of."""

    def __init__(self, root: Path):
        if ON_POSTGRES:
            self.name = f"loupe_template_{os.getpid()}"
            _admin(f"DROP DATABASE IF EXISTS {self.name}")
            _admin(f"CREATE DATABASE {self.name}")
            upgrade_head(url_of(self.name))
            _template[:] = [self.name]
        else:
            self.path = root / "loupe.db"
            upgrade_head(f"sqlite:///{self.path}")

    def fresh(self, data_dir: Path) -> str:
        """A new database for `data_dir` (created); returns its URL."""
        data_dir.mkdir(parents=True, exist_ok=True)
        if not ON_POSTGRES:
            shutil.copy(self.path, data_dir / "loupe.db")
            return f"sqlite:///{data_dir / 'loupe.db'}"
        _by_dir[data_dir.resolve()] = copy_database(self.name)
        return _by_dir[data_dir.resolve()]

    def close(self) -> None:
        if ON_POSTGRES:
            for url in list(_by_dir.values()):
                drop(url)
            _admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def database_for(data_dir: Path) -> str:
    """The database URL for a data dir a test made: on PostgreSQL its own database
    (a fresh migrated one the first time), on SQLite "" (the default file in it)."""
    if not ON_POSTGRES:
        return ""
    key = Path(data_dir).resolve()
    if key not in _by_dir:
        _by_dir[key] = copy_database(_template[0])
    return _by_dir[key]


def env_for(data_dir: Path) -> dict[str, str]:
    """Environment for a `loupe ... --data data_dir` subprocess."""
    url = database_for(data_dir)
    return {"LOUPE_DATABASE_URL": url} if url else {}


def settings_for(data_dir: Path) -> Settings:
    return Settings(data=data_dir, database_url=database_for(data_dir))


def data_env(args) -> dict[str, str]:
    """env_for the `--data DIR` among command-line arguments (none: {})."""
    args = [str(a) for a in args]
    return env_for(Path(args[args.index("--data") + 1])) if "--data" in args else {}


def copy_database(template: str) -> str:
    """PostgreSQL only: a new database with the contents of `template` (which nobody may be connected to)."""
    name = f"loupe_test_{os.getpid()}_{next(_names)}"
    _admin(f"CREATE DATABASE {name} TEMPLATE {template}")
    return url_of(name)


def empty_database() -> str:
    """PostgreSQL only: a new database with no tables (to migrate)."""
    name = f"loupe_empty_{os.getpid()}_{next(_names)}"
    _admin(f"CREATE DATABASE {name}")
    return url_of(name)


def drop(url: str) -> None:
    """Drop a database copy_database made (a no-op for SQLite files, which live in tmp_path)."""
    for key in [k for k, v in _by_dir.items() if v == url]:
        del _by_dir[key]
    if url.startswith("postgres"):
        # FORCE: a test that failed half-way may leave a worker or an engine connected.
        _admin(f"DROP DATABASE IF EXISTS {make_url(url).database} WITH (FORCE)")


def restore(url: str, template_url: str) -> None:
    """Make the database at `url` a copy of the one at `template_url`."""
    if not url.startswith("postgres"):
        shutil.copy(make_url(template_url).database, make_url(url).database)
        return
    name = make_url(url).database
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _admin(f"CREATE DATABASE {name} TEMPLATE {make_url(template_url).database}")


def refused(url: str, sql: str) -> str:
    """Run `sql` on its own connection; returns the database's error text (fails the test if it ran)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn, pytest.raises(IntegrityError) as caught:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()
    return str(caught.value.orig)


@contextmanager
def module_app(template: Template, data: Path):
    """A fresh database for `data` with the app on it, for module-scoped fixtures: (settings, db, client);
    the database is dropped afterwards."""
    from fastapi.testclient import TestClient

    from app.db.engine import Database
    from app.main import create_app

    with pytest.MonkeyPatch.context() as mp:
        url = template.fresh(data)
        if ON_POSTGRES:
            mp.setenv("LOUPE_DATABASE_URL", url)
        settings = Settings(data=data, database_url=url)
        settings.ensure_dirs()
        db = Database(url)
        try:
            with TestClient(create_app(settings)) as client:
                yield settings, db, client
        finally:
            db.dispose()
    drop(url)
