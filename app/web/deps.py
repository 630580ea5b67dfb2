"""Request dependencies: settings, database sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.engine import Database


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_database(request: Request) -> Database:
    return request.app.state.db


# Async generators on purpose: FastAPI runs a sync generator dependency's set-up and tear-down
# each in the thread pool, four thread hops a request before the route's own; under 16 labellers
# those hops queued behind the GIL. Making a session is no I/O (it connects on first use, in the
# route's thread); closing one returns its connection to the pool, and rolls back a read
# transaction or a failed write: microseconds on SQLite, one loopback round trip on PostgreSQL.
async def read_session(request: Request) -> AsyncIterator[Session]:
    with request.app.state.db.reading() as session:
        yield session


async def write_session(request: Request) -> AsyncIterator[Session]:
    with request.app.state.db.writing() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
ReadSession = Annotated[Session, Depends(read_session)]
WriteSession = Annotated[Session, Depends(write_session)]
