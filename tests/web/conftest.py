"""An app that requires logins (as beyond loopback), on the same migrated temporary SQLite file."""

from __future__ import annotations

import pytest

from app.main import create_app


@pytest.fixture
def login_app(settings):
    settings.login = "required"
    return create_app(settings)
