"""Every page and htmx fragment writes user strings as text: markup in them is escaped, never parsed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests import databases
from tests.hostile import PAYLOAD, RAW_MARKERS, Library, escaped, fill, hostile

HTML = {"Accept": "text/html"}
HTMX = {**HTML, "HX-Request": "true"}


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory, database_template):
    """One app with the hostile library for the whole module (filling it takes seconds)."""
    data = tmp_path_factory.mktemp("hostile") / "data"
    url = database_template.fresh(data)
    app = create_app(Settings(data=data, database_url=url))
    with TestClient(app) as client:
        yield client, fill(client, app.state.db)
    databases.drop(url)


@pytest.fixture
def client(hostile_app) -> TestClient:
    return hostile_app[0]


@pytest.fixture
def lib(hostile_app) -> Library:
    return hostile_app[1]


def _pages(lib: Library) -> list[tuple[str, dict, list[str]]]:
    """(url, headers, fields whose escaped text the page must show)."""
    a, img = lib.strings, lib.images
    return [
        ("/", HTML, ["source", "class_a"]),
        ("/browse", HTML, ["class_a", "class_b", "tag_script", "tag_attr", "source"]),
        (f"/browse?class={a['class_a']}", HTMX, ["class_a"]),
        (f"/images/{img[0]}", HTML, ["stored_filename", "source", "class_a", "annotator", "note", "tag_script"]),
        ("/label", HTML, ["class_a", "description", "tag_script", "tag_attr"]),
        (f"/label/stage?image={img[0]}", HTML, ["stored_filename", "source"]),
        ("/label?queue=rereview", HTML, ["split_from", "split_a", "split_b"]),
        ("/taxonomy", HTML, ["class_a", "description", "tag_attr", "message", "author"]),
        ("/snapshots", HTML, ["snapshot", "source", "class_b", "tag_script"]),
        (f"/snapshots/{lib.snapshot}", HTML, ["snapshot", "source", "class_a"]),
        (f"/snapshots/{lib.other_snapshot}?diff_with={lib.snapshot}", HTMX, ["snapshot"]),
        ("/snapshots/live", HTML, ["class_a", "source", "tag_script"]),
        ("/jobs", HTML, ["snapshot", "source"]),
        ("/jobs", HTMX, []),
        (f"/jobs/{lib.queued_job}", HTML, ["source"]),
        (f"/jobs/{lib.job}", HTML, ["source", "tag_script", "class_a"]),
        ("/review", HTML, ["stored_filename", "source", "class_a", "class_b", "annotator", "note"]),
        ("/review/stage", HTML, ["stored_filename", "annotator"]),
        ("/quality", HTML, ["class_a", "class_b", "source"]),
    ]


def _assert_escaped(html: str, where: str, expect: list[str], strings: dict[str, str]) -> None:
    for marker in RAW_MARKERS:
        assert marker not in html, f"{where}: raw markup {marker!r} reached the page"
    for name in expect:
        assert escaped(strings[name]) in html, f"{where}: {name} is not shown as escaped text"


def test_every_page_shows_user_strings_as_text(client, lib):
    for url, headers, expect in _pages(lib):
        r = client.get(url, headers=headers)
        assert r.status_code == 200, (url, r.text[:300])
        _assert_escaped(r.text, url, expect, lib.strings)
    assert "{{7*7}}" in client.get("/taxonomy", headers=HTML).text  # stored text, never a template


def test_errors_that_echo_input_escape_it(client, lib):
    missing = hostile("nobody")
    r = client.get("/browse", params={"class": missing}, headers=HTML)
    assert r.status_code == 404
    _assert_escaped(r.text, "error page", [], lib.strings)
    assert escaped(missing) in r.text
    r = client.post("/taxonomy/changes", data={"op": "add", "name": lib.strings["class_a"]}, headers=HTMX)
    assert "already exists" in r.text
    _assert_escaped(r.text, "taxonomy form error", ["class_a"], lib.strings)
    name = hostile("another")
    r = client.post("/snapshots", data={"name": name, "sources": [missing]}, headers=HTML)
    assert r.status_code == 422
    _assert_escaped(r.text, "snapshot form error", [], lib.strings)
    assert escaped(name) in r.text and escaped(missing) in r.text


def test_html_never_comes_back_from_the_json_api(client, lib):
    """JSON carries the strings raw, so it must never be sent as something a browser would render."""
    for url in ["/api/taxonomy", f"/api/images/{lib.images[1]}", "/api/flags", f"/api/snapshots/{lib.snapshot}",
                "/api/images?class=" + lib.strings["class_a"]]:
        r = client.get(url, headers=HTML)
        assert r.status_code == 200, url
        assert r.headers["content-type"].startswith("application/json"), url
        assert r.headers.get("x-content-type-options") == "nosniff", url



def test_login_form_echoes_what_was_typed_as_text(login_app):
    typed = hostile("user")
    with TestClient(login_app) as c:
        r = c.post("/login", data={"name": typed, "password": PAYLOAD, "next": "/" + PAYLOAD}, headers=HTML)
        assert r.status_code in (400, 401, 403, 422), r.status_code
        _assert_escaped(r.text, "login form", [], {})
        assert escaped(typed) in r.text and PAYLOAD not in r.text
