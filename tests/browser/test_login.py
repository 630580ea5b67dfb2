"""With logins required: log in, label by keyboard, add a tag through htmx, log out, in a real browser.

Every change here is refused without the session's CSRF token, so this shows
that app.js sends it with fetch() and htmx requests, and that the plain logout
form carries it.
"""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from app.accounts.tokens import create_token
from app.accounts.users import add_user
from app.config import Settings
from app.db.engine import Database
from app.db.migrate import upgrade_head
from tests.factories import png_bytes
from tests.logins import PASSWORD
from tests.servers import running_server

pytestmark = pytest.mark.browser


@pytest.fixture
def login_server(tmp_path):
    """`loupe serve` with LOUPE_LOGIN=required, an admin and a labeller; yields (base_url, data_dir, admin token)."""
    data = tmp_path / "data"
    settings = Settings(data=data)
    settings.ensure_dirs()
    upgrade_head(settings.database_url)
    db = Database(settings.database_url)
    with db.writing() as s:
        add_user(s, name="root", role="admin", password=PASSWORD)
        add_user(s, name="lou", role="labeller", password=PASSWORD)
        token = create_token(s, name="setup", user_name="root")
    db.dispose()
    with running_server(data, env={"LOUPE_TOKEN": "", "LOUPE_LOGIN": "required"}) as base:
        yield base, data, token


def _showing(page, image_id: int) -> None:
    # data-armed: painted and on screen long enough for a decision key to act (see static/js/label.js)
    page.wait_for_selector(f'#labeller[data-armed="{image_id}"]', timeout=5000)


def test_log_in_then_label_by_keyboard_and_log_out(login_server, page):
    base, data, token = login_server
    auth = {"Authorization": f"Bearer {token}"}  # a script's set-up, with the admin's API token
    for name in ("shirt", "shoe"):
        assert httpx.post(f"{base}/api/taxonomy/changes", json={"op": "add", "name": name}, headers=auth).status_code == 201
    files = [("files", (f"img{i}.png", png_bytes(i), "image/png")) for i in range(3)]
    r = httpx.post(f"{base}/api/images", data={"source": "fmnist"}, files=files, headers=auth, timeout=60)
    ids = [x["id"] for x in r.json()["imported"]]

    page.goto(f"{base}/label")
    assert page.url == f"{base}/login?next=%2Flabel"
    page.fill('input[name="name"]', "lou")
    page.fill('input[name="password"]', PASSWORD)
    page.press('input[name="password"]', "Enter")
    page.wait_for_url(f"{base}/label")
    _showing(page, ids[0])
    assert page.evaluate("document.getElementById('annotator-dialog').open") is False  # no "who are you?"
    assert page.text_content("#annotator-name") == "lou"

    page.keyboard.press("1")          # shirt: fetch() POST /label/{id}
    _showing(page, ids[1])
    page.keyboard.press("u")          # undo: fetch() POST JSON
    _showing(page, ids[0])
    page.keyboard.press("2")          # shoe
    _showing(page, ids[1])

    page.goto(f"{base}/taxonomy")     # an htmx form (labellers may add difficulty tags)
    page.fill('#add-tag input[name="name"]', "glare")
    page.click('#add-tag button[type="submit"]')
    page.wait_for_selector('.badge:has-text("glare")', timeout=5000)

    page.click(".topnav .logout button")  # a plain form with the hidden csrf_token field
    page.wait_for_url(f"{base}/login")
    page.goto(f"{base}/label")
    assert page.url.startswith(f"{base}/login")

    con = sqlite3.connect(data / "loupe.db")
    events = con.execute(
        "SELECT e.image_id, c.name, e.annotator, e.kind FROM label_events e "
        "LEFT JOIN classes c ON c.id = e.class_id ORDER BY e.id"
    ).fetchall()
    tags = [r[0] for r in con.execute("SELECT name FROM tags")]
    sessions = con.execute("SELECT count(*) FROM sessions").fetchone()[0]
    con.close()
    assert events == [(ids[0], "shirt", "lou", "manual"), (ids[0], None, "lou", "undo"),
                      (ids[0], "shoe", "lou", "manual")]
    assert "glare" in tags and sessions == 0
