"""Every page and htmx fragment writes user strings as text: markup in them is escaped, never parsed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.hostile import RAW_MARKERS, Library, escaped, fill, hostile

HTML = {"Accept": "text/html"}
HTMX = {**HTML, "HX-Request": "true"}


@pytest.fixture
def lib(client, db) -> Library:
    return fill(client, db)


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
        (f"/jobs/{lib.job}", HTML, []),
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


def test_upload_filename_cannot_inject_headers(client: TestClient):
    name = 'evil";\r\nX-Injected: yes\r\n.png'
    report = client.post("/api/images", data={"source": "s"},
                         files=[("files", (name, _png(), "image/png"))]).json()
    (item,) = report["imported"]
    r = client.get(f"/api/images/{item['id']}/file")
    assert r.status_code == 200
    assert "x-injected" not in r.headers
    disposition = r.headers["content-disposition"]
    assert "\r" not in disposition and "\n" not in disposition
    assert disposition.count('"') in (0, 2)


def _png() -> bytes:
    from tests.factories import png_bytes

    return png_bytes(0)
