"""Label with the keyboard alone in a real browser, then read the database file."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest
from playwright.sync_api import expect

from tests.factories import classes_and_images

pytestmark = pytest.mark.browser


def _setup(base: str, n: int, classes=("shirt", "shoe", "bag")) -> list[int]:
    return classes_and_images(base, n, classes)


def _showing(page, image_id: int) -> None:
    """The image is on screen and has been seen long enough for a decision key to act on it."""
    page.wait_for_selector(f'#labeller[data-armed="{image_id}"] #stage [data-image-id="{image_id}"]', timeout=5000)


def test_keyboard_only_labelling_is_recorded(live_server, page):
    base, data = live_server
    ids = _setup(base, 5)

    page.goto(f"{base}/label")
    page.keyboard.type("ana")  # the name dialog has focus on a first visit
    page.keyboard.press("Enter")
    _showing(page, ids[0])

    page.keyboard.press("w")          # unsure
    page.keyboard.press("d")          # dark
    page.keyboard.press("b")          # blurred on ...
    page.keyboard.press("b")          # ... and off again
    page.wait_for_timeout(150)        # a little time on the image
    page.keyboard.press("2")          # shoe
    _showing(page, ids[1])
    assert page.get_attribute('[data-confidence="1.0"]', "aria-checked") == "true"  # reset for the next image

    page.keyboard.press("1")          # shirt ...
    _showing(page, ids[2])
    page.keyboard.press("u")          # ... undone: back to the same image
    _showing(page, ids[1])
    page.keyboard.press("e")          # guess
    page.keyboard.press("3")          # bag
    _showing(page, ids[2])

    page.keyboard.press("s")          # skip
    _showing(page, ids[3])
    page.keyboard.press("n")
    page.keyboard.type("odd one")
    page.keyboard.press("Enter")
    page.keyboard.press("1")
    _showing(page, ids[4])
    assert page.text_content("#remaining") == "2"   # ids[2] skipped, ids[4] showing

    con = sqlite3.connect(data / "loupe.db")
    rows = con.execute(
        "SELECT e.image_id, c.name, e.confidence, e.tags, e.note, e.annotator, e.kind, e.ms "
        "FROM label_events e LEFT JOIN classes c ON c.id = e.class_id ORDER BY e.id"
    ).fetchall()
    con.close()
    events = [(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6]) for r in rows]
    assert events == [
        (ids[0], "shoe", 0.6, ["dark"], "", "ana", "manual"),
        (ids[1], "shirt", 1.0, [], "", "ana", "manual"),
        (ids[1], None, None, [], "", "ana", "undo"),
        (ids[1], "bag", 0.3, [], "", "ana", "manual"),
        (ids[3], "shirt", 1.0, [], "odd one", "ana", "manual"),
    ]
    assert rows[0][7] >= 100  # ms on the first image, measured in the browser


def test_cheatsheet_toggles_and_definitions_show(live_server, page):
    base, _ = live_server
    _setup(base, 1)
    page.goto(f"{base}/label")
    page.keyboard.type("bo")
    page.keyboard.press("Enter")
    expect(page.locator("#annotator-dialog")).to_be_hidden()  # keys go to the page once the name is given
    assert page.is_visible("#cheatsheet")
    page.keyboard.press("?")
    expect(page.locator("#cheatsheet")).to_be_hidden()
    page.keyboard.press("g")
    assert page.is_visible("#definitions")
    page.keyboard.press("Escape")
    assert not page.is_visible("#definitions")


def test_browse_shift_click_labels_a_range(live_server, page):
    base, _ = live_server
    ids = _setup(base, 6)
    page.goto(f"{base}/label")
    page.evaluate("localStorage.setItem('loupe.annotator', 'cy')")
    page.goto(f"{base}/browse")
    tiles = page.locator(".tile")
    tiles.nth(1).click()
    tiles.nth(3).click(modifiers=["Shift"])
    assert page.text_content("#selection-count") == "3 selected"
    page.select_option('#bulk select[name="class"]', label="bag")
    page.click('#bulk button[type="submit"]')
    page.wait_for_selector("#bulk-confirm:not([hidden])")
    assert page.inner_text("#bulk-confirm-text") == "Relabel 3 images: 3 unlabelled → bag"
    page.click("#bulk-confirm-yes")
    page.wait_for_selector(".tile-label:has-text('bag')")
    got = httpx.get(f"{base}/api/images", params={"class": "bag"}).json()
    assert sorted(i["id"] for i in got["items"]) == ids[1:4]
    assert httpx.get(f"{base}/api/images/{ids[1]}").json()["label"]["annotator"] == "cy"
