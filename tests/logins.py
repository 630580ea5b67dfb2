"""Users and logins for tests with logins required: made through the accounts domain and /login."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.accounts.tokens import create_token
from app.accounts.users import add_user

PASSWORD = "correct horse battery"
HTML = {"Accept": "text/html"}


def make_user(db, name: str, role: str, password: str = PASSWORD) -> None:
    with db.writing() as s:
        add_user(s, name=name, role=role, password=password)


def make_token(db, name: str, user: str) -> str:
    with db.writing() as s:
        return create_token(s, name=name, user_name=user)


def csrf_of(client: TestClient) -> str:
    """The CSRF token base.html puts in its <meta> for this client's session."""
    html = client.get("/", headers=HTML).text
    return re.search(r'<meta name="csrf-token" content="([^"]*)">', html).group(1)


def log_in(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token."""
    r = client.post("/login", data={"name": name, "password": password, "next": "/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    token = csrf_of(client)
    assert token
    return token


def user_client(app, db, name: str, role: str) -> tuple[TestClient, dict]:
    """A new user, logged in on their own client; returns (client, headers with the CSRF token)."""
    make_user(db, name, role)
    client = TestClient(app)
    return client, {"X-CSRF-Token": log_in(client, name)}


def fill_accounts(db) -> None:
    """A row in every accounts table: a user with a session and an API token, and a failed login."""
    from app.accounts.ratelimit import Limits
    from app.accounts.sessions import LoginFailed
    from app.accounts.sessions import log_in as start

    make_user(db, "root", "admin")
    make_token(db, "script", "root")
    start(db, name="root", password=PASSWORD, ip="127.0.0.1", limits=Limits(), lifetime_s=3600)
    try:
        start(db, name="root", password="a wrong guess", ip="127.0.0.1", limits=Limits(), lifetime_s=3600)
    except LoginFailed:
        pass
