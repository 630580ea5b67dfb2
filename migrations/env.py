"""Alembic environment: batch mode for SQLite, the app's metadata for autogenerate; PostgreSQL too."""

from alembic import context
from sqlalchemy import create_engine

from app.db import models  # noqa: F401  (registers the tables)
from app.db.base import Base
from app.db.postgres import MIGRATE_LOCK

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")
            connection.commit()  # else Alembic sees an open transaction and never commits its own
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            if not sqlite:
                # `loupe serve` and workers on other machines may upgrade at the same
                # moment: the second waits here, then finds the schema at head.
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK})")
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
