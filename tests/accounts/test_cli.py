"""`loupe user` and `loupe token`: what they print, their refusals, and a token that works over HTTP."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient

from app.cli import main
from app.config import Settings
from app.main import create_app


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("LOUPE_DATA", str(tmp_path / "data"))  # the CLI sets it; this puts it back afterwards
    return str(tmp_path / "data")


def _run(monkeypatch, argv: list[str], stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


def test_users_and_tokens_from_the_command_line(data, monkeypatch, capsys):
    assert _run(monkeypatch, ["user", "add", "root", "--role", "admin", "--password-stdin", "--data", data],
                "correct horse\n") == 0
    assert _run(monkeypatch, ["user", "add", "root", "--role", "labeller", "--password-stdin", "--data", data],
                "correct horse\n") == 2
    assert _run(monkeypatch, ["user", "add", "lou", "--role", "labeller", "--password-stdin", "--data", data],
                "short\n") == 2
    err = capsys.readouterr().err
    assert "loupe user: there is already a user 'root'" in err and "at least 8 characters" in err
    assert _run(monkeypatch, ["user", "list", "--data", data]) == 0
    assert capsys.readouterr().out.startswith("root\tadmin\tcreated ")

    assert _run(monkeypatch, ["token", "create", "nightly", "--user", "root", "--data", data]) == 0
    captured = capsys.readouterr()
    token = captured.out.strip()
    assert token.startswith("loupe_") and "shown only now" in captured.err
    assert _run(monkeypatch, ["token", "create", "nightly", "--user", "root", "--data", data]) == 2
    assert _run(monkeypatch, ["token", "create", "other", "--user", "nobody", "--data", data]) == 2

    app = create_app(Settings(data=data, login="required"))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.post("/api/taxonomy/changes", json={"op": "add", "name": "shirt"}).status_code == 201
        assert _run(monkeypatch, ["token", "list", "--data", data]) == 0
        assert "nightly\troot\t" in capsys.readouterr().out
        assert _run(monkeypatch, ["token", "revoke", "nightly", "--data", data]) == 0
        assert c.get("/api/taxonomy").status_code == 401

    assert _run(monkeypatch, ["user", "passwd", "root", "--password-stdin", "--data", data], "new password\n") == 0
    with TestClient(app) as c:
        assert c.post("/login", data={"name": "root", "password": "correct horse"}).status_code == 401
        r = c.post("/login", data={"name": "root", "password": "new password"}, follow_redirects=False)
        assert r.status_code == 303
