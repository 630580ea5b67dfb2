"""Two tabs of one browser on /label share a lease, so both can show the same image: the second tab's key on
an image the first one labelled is refused with a sentence, not saved as a silent second label."""

from __future__ import annotations

import sqlite3

import pytest

from tests.browser.conftest import watch
from tests.factories import classes_and_images

pytestmark = pytest.mark.browser


def _showing(page, image_id: int) -> None:
    """The image is on screen and has been seen long enough for a decision key to act on it."""
    page.wait_for_selector(f'#labeller[data-armed="{image_id}"] #stage [data-image-id="{image_id}"]', timeout=5000)


def test_a_key_on_an_image_another_tab_labelled_changes_nothing(live_server, page):
    base, data = live_server
    ids = classes_and_images(base, 4, ("shirt", "shoe", "bag"))

    tab_a = page
    tab_a.goto(f"{base}/label")
    tab_a.keyboard.type("ana")  # the name dialog has focus on a first visit; the name is kept for tab B
    tab_a.keyboard.press("Enter")
    _showing(tab_a, ids[0])

    tab_b = page.context.new_page()  # a second tab: same cookies, same lease, so it shows ids[0] too
    errors: list[str] = []
    # Chromium logs every 4xx answer to fetch as a console error; this one is the refusal the test provokes.
    watch(tab_b, errors, [r"status of 409 \(Conflict\)"])
    tab_b.goto(f"{base}/label")
    _showing(tab_b, ids[0])
    assert tab_b.text_content("#remaining") == "4"

    tab_a.bring_to_front()
    tab_a.keyboard.press("1")           # shirt, from tab A
    _showing(tab_a, ids[1])
    assert tab_a.text_content("#remaining") == "3"

    tab_b.bring_to_front()
    tab_b.keyboard.press("2")           # shoe, from tab B, on the image it still shows
    tab_b.wait_for_selector("#label-notice:not([hidden])", timeout=5000)
    assert tab_b.text_content("#label-notice") == (
        f"image {ids[0]} was labelled 'shirt' meanwhile (in another tab or by someone else); your key changed nothing")
    _showing(tab_b, ids[1])             # moved on, as after a save
    assert tab_b.text_content("#remaining") == "3"   # the server's count, not a local count-down from 4
    assert tab_b.text_content("#applied") == ""      # no "✓ shoe": nothing was applied

    # Tab B goes on labelling as usual: its next key saves, and the notice goes away.
    tab_b.keyboard.press("3")
    _showing(tab_b, ids[2])
    assert tab_b.is_hidden("#label-notice")
    assert tab_b.text_content("#remaining") == "2"

    con = sqlite3.connect(data / "loupe.db")
    rows = con.execute("SELECT e.image_id, c.name, e.annotator FROM label_events e "
                       "JOIN classes c ON c.id = e.class_id ORDER BY e.id").fetchall()
    con.close()
    assert rows == [(ids[0], "shirt", "ana"), (ids[1], "bag", "ana")]
    tab_b.close()
    assert not errors, f"tab B: {errors}"
