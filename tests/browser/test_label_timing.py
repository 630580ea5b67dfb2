"""The labelling page in a real browser: a double press or a held key labels only the image a person saw,
"N left" counts down above 1,000, the label just applied is confirmed, key changes are announced, and a
re-review offers "none of these"."""

from __future__ import annotations

import io
import sqlite3

import httpx
import pytest
from PIL import Image

from tests import fmnist
from tests.factories import classes_and_images

pytestmark = pytest.mark.browser


def _setup(base: str, n: int, classes=("shirt", "shoe", "bag")) -> list[int]:
    return classes_and_images(base, n, classes)


def _start(page, base: str, query: str = "") -> None:
    page.goto(f"{base}/label")
    page.evaluate("localStorage.setItem('loupe.annotator', 'ada')")
    page.goto(f"{base}/label{query}")


def _armed(page, image_id) -> None:
    """Painted and on screen long enough for a decision key to act (static/js/label.js, DWELL_MS)."""
    # 15 s: a wait, not a speed check; two busy cores running the whole suite took over 5 s once.
    page.wait_for_selector(f'#labeller[data-armed="{image_id}"]', timeout=15000)


def _on_stage(page, image_id) -> None:
    page.wait_for_selector(f'#stage [data-image-id="{image_id}"]', timeout=5000)


def _events(data) -> list[tuple]:
    con = sqlite3.connect(data / "loupe.db")
    rows = con.execute("SELECT e.image_id, c.name, e.kind, e.ms FROM label_events e "
                       "LEFT JOIN classes c ON c.id = e.class_id ORDER BY e.id").fetchall()
    con.close()
    return rows


def test_double_press_and_held_key_label_only_what_was_seen(live_server, page):
    base, data = live_server
    ids = _setup(base, 5)
    _start(page, base)
    _armed(page, ids[0])

    # The double press: a second key 40 ms after the first must not label the next image.
    page.keyboard.press("1")
    page.wait_for_timeout(40)
    page.keyboard.press("1")
    _on_stage(page, ids[1])
    page.wait_for_selector("#applied.show:has-text('✓ shirt · sure')")   # the label just applied
    # A press the moment the next image is swapped in, before it can have been seen, does nothing either.
    page.keyboard.press("2")
    _armed(page, ids[1])
    page.wait_for_timeout(200)
    assert [(e[0], e[1]) for e in _events(data)] == [(ids[0], "shirt")]
    assert int(page.get_attribute("#labeller", "data-ignored")) >= 2        # each one was shown as ignored ...
    assert "show" not in (page.get_attribute("#toast", "class") or "")     # ... by a flash, not a toast

    # A held key: the first keydown labels; the repeats that follow label nothing, however long it is held.
    page.keyboard.down("3")
    _armed(page, ids[2])
    for _ in range(5):
        page.keyboard.down("3")        # Playwright marks a second keydown without keyup as repeat: true
        page.wait_for_timeout(30)
    page.keyboard.up("3")
    page.wait_for_timeout(200)
    events = _events(data)
    assert [(e[0], e[1]) for e in events] == [(ids[0], "shirt"), (ids[1], "bag")]
    assert page.get_attribute("#stage [data-image-id]", "data-image-id") == str(ids[2])
    assert all(e[3] >= 120 for e in events)       # every label came after the image was seen 120 ms

    page.keyboard.press("2")                       # seen long enough: labels as usual
    _armed(page, ids[3])
    assert [(e[0], e[1]) for e in _events(data)][-1] == (ids[2], "shoe")


def test_remaining_counts_down_past_a_thousand(live_server, page):
    base, data = live_server
    for name in ("shirt", "shoe"):
        assert httpx.post(f"{base}/api/taxonomy/changes", json={"op": "add", "name": name}).status_code == 201
    # 1,002 distinct tiny images (Fashion-MNIST, 28x28) in two uploads (at most 1,000 files each).
    images, _ = fmnist.load("train", 1002)
    files = []
    for i, a in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        files.append(("files", (f"t{i}.png", buf.getvalue(), "image/png")))
    ids = []
    for part in (files[:1000], files[1000:]):
        r = httpx.post(f"{base}/api/images", data={"source": "many"}, files=part, timeout=120)
        assert r.status_code == 200 and len(r.json()["imported"]) == len(part), r.text[:500]
        ids += [x["id"] for x in r.json()["imported"]]

    _start(page, base)
    _armed(page, ids[0])
    assert page.text_content("#remaining") == "1,002"
    page.keyboard.press("1")
    _armed(page, ids[1])
    assert page.text_content("#remaining") == "1,001"
    page.keyboard.press("2")
    _armed(page, ids[2])
    page.keyboard.press("1")
    _armed(page, ids[3])
    assert page.text_content("#remaining") == "999"
    page.keyboard.press("u")                       # an undo gives one back, across the thousand
    _armed(page, ids[2])
    assert page.text_content("#remaining") == "1,000"
    assert page.get_attribute("#remaining", "data-n") == "1000"


def test_key_changes_are_shown_once(live_server, page):
    base, _ = live_server
    _setup(base, 2, classes=("sandal", "sneaker", "bag"))
    _start(page, base)
    page.wait_for_selector("#labeller")
    assert page.is_hidden("#keys-notice")          # a first visit: nothing changed for this person
    assert page.is_hidden("#none-of-these")        # offered in a re-review only

    r = httpx.post(f"{base}/api/taxonomy/changes", json={"op": "merge", "classes": ["sandal", "sneaker"],
                                                         "into": "shoe"})
    assert r.status_code == 201, r.text
    classes = {c["name"]: c for c in httpx.get(f"{base}/api/taxonomy").json()["classes"]}
    shoe_key = classes["shoe"]["shortcut"]
    page.goto(f"{base}/label")
    page.wait_for_selector("#keys-notice:not([hidden])")
    lines = page.locator("#keys-notice li").all_inner_texts()
    assert sorted(lines) == sorted(["sandal: 1 → retired", "sneaker: 2 → retired",
                                    f"shoe: new, key {shoe_key}"])
    page.keyboard.press("Escape")
    assert page.is_hidden("#keys-notice")
    page.goto(f"{base}/label")                     # shown once: the new map is remembered
    page.wait_for_selector("#labeller")
    assert page.is_hidden("#keys-notice")


def test_rereview_none_of_these_takes_any_class(live_server, page):
    base, data = live_server
    ids = _setup(base, 2, classes=("trousers", "bag"))
    for i in ids:   # trousers labelled bag by mistake, then bag is split
        assert httpx.post(f"{base}/api/images/{i}/labels", json={"class": "bag"}).status_code == 201
    r = httpx.post(f"{base}/api/taxonomy/changes", json={"op": "split", "class": "bag", "into": ["backpack", "tote"]})
    assert r.status_code == 201, r.text
    keys = {c["name"]: c["shortcut"] for c in httpx.get(f"{base}/api/taxonomy").json()["classes"]}

    _start(page, base, "?queue=rereview")
    _armed(page, ids[0])
    assert page.is_disabled('.class-btn[data-name="trousers"]')
    assert page.is_visible("#none-of-these")
    page.keyboard.press(keys["trousers"])          # not offered: nothing happens
    page.wait_for_timeout(150)
    assert page.get_attribute("#stage [data-image-id]", "data-image-id") == str(ids[0])
    page.keyboard.press("x")                       # none of these: every class opens
    assert page.is_enabled('.class-btn[data-name="trousers"]')
    page.keyboard.press(keys["trousers"])
    _armed(page, ids[1])
    assert page.is_disabled('.class-btn[data-name="trousers"]')   # the next re-review offers the split's again
    page.keyboard.press(keys["tote"])
    _armed(page, "")

    flags = httpx.get(f"{base}/api/flags", params={"kind": "rereview", "status": "resolved"}).json()["items"]
    by_image = {f["image"]: f for f in flags}
    assert by_image[ids[0]]["resolution"] == "relabel" and by_image[ids[0]]["details"]["none_of_these_by"] == "ada"
    assert by_image[ids[1]]["details"].get("none_of_these_by") is None
    assert [(e[0], e[1], e[2]) for e in _events(data)][-2:] == [(ids[0], "trousers", "manual"),
                                                                 (ids[1], "tote", "manual")]
