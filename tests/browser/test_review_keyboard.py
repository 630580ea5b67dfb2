"""Resolve flags with the keyboard alone on the review page, then read the label events from the database."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from tests.quality.helpers import planted_job_on_server

pytestmark = pytest.mark.browser


def _flag_shown(page) -> str:
    """The flag now shown, once its image was on screen long enough for a decision key to act."""
    page.wait_for_selector("#stage [data-flag-id]", timeout=5000)
    flag = page.get_attribute("#stage [data-flag-id]", "data-flag-id")
    page.wait_for_selector(f'#reviewer[data-armed="{flag}"]', timeout=5000)
    return flag


def _next(page, previous: str) -> str:
    # A selector, not wait_for_function: Playwright polls a function with eval, which the page's CSP refuses.
    page.wait_for_selector(f'#stage [data-flag-id]:not([data-flag-id="{previous}"])', timeout=5000)
    return _flag_shown(page)


def _planted(ids: list[int], labels: dict[int, int]) -> dict[int, int]:
    """Four images the model takes for the next class."""
    return {ids[i]: (labels[ids[i]] + 1) % 3 for i in (1, 6, 11, 16)}


def test_review_flags_by_keyboard(live_server, page):
    base, data = live_server
    with httpx.Client(base_url=base, timeout=60) as client:
        classes, labels = planted_job_on_server(client, data, n=24, folds=2, wrong=_planted)
        wrong = _planted(sorted(labels), labels)
        flags = client.get("/api/flags", params={"kind": "mislabel"}).json()["items"]
    assert {f["image"] for f in flags} == set(wrong)

    page.goto(f"{base}/review")
    page.keyboard.type("rita")           # the name dialog has focus on a first visit
    page.keyboard.press("Enter")
    decided = {}

    first = _flag_shown(page)
    page.keyboard.press("Enter")          # keep
    decided[first] = "keep"

    second = _next(page, first)
    suggested = page.text_content("#suggested-class")
    key = page.get_attribute(f'.class-btn[data-name="{suggested}"]', "data-key")
    page.keyboard.press(key)              # relabel as the model's suggestion
    decided[second] = "relabel"

    third = _next(page, second)
    page.keyboard.press("s")              # skip: comes back later
    fourth = _next(page, third)
    page.keyboard.press("w")              # ambiguous
    decided[fourth] = "ambiguous"

    assert _next(page, fourth) == third
    page.keyboard.press("x")              # exclude
    decided[third] = "exclude"
    page.wait_for_selector("text=Nothing left to review", timeout=5000)

    con = sqlite3.connect(data / "loupe.db")
    rows = con.execute("SELECT id, image_id, status, resolution, resolved_by, resolution_event_id FROM flags "
                       "WHERE kind = 'mislabel'").fetchall()
    by_id = {str(r[0]): r for r in rows}
    assert {k: by_id[k][3] for k in decided} == decided
    assert all(r[2] == "resolved" and r[4] == "rita" for r in rows)
    events = con.execute(
        "SELECT e.id, e.image_id, c.name, e.kind, e.annotator, e.ms FROM label_events e "
        "JOIN classes c ON c.id = e.class_id WHERE e.kind = 'review' ORDER BY e.id").fetchall()
    excluded = {r[0] for r in con.execute("SELECT id FROM images WHERE excluded = 1")}
    con.close()
    given = {f["image"]: f["given"] for f in flags}
    keep_image, relabel_image = by_id[first][1], by_id[second][1]
    assert [(e[1], e[2], e[3], e[4]) for e in events] == [
        (keep_image, given[keep_image], "review", "rita"),
        (relabel_image, suggested, "review", "rita"),
    ]
    assert by_id[first][5] == events[0][0] and by_id[second][5] == events[1][0]
    assert by_id[fourth][5] is None and by_id[third][5] is None
    assert excluded == {by_id[third][1]}
    assert all(e[5] is not None for e in events)   # time on the flag, measured in the browser


def test_review_accept_suggestion_undo_and_double_press(live_server, page):
    base, data = live_server
    with httpx.Client(base_url=base, timeout=60) as client:
        classes, labels = planted_job_on_server(client, data, n=24, folds=2, wrong=_planted)
        flags = {str(f["id"]): f for f in client.get("/api/flags", params={"kind": "mislabel"}).json()["items"]}

    page.goto(f"{base}/review")
    page.keyboard.type("uma")
    page.keyboard.press("Enter")
    first = _flag_shown(page)
    assert "accept the model's suggestion" in page.text_content("#cheatsheet")
    page.keyboard.press("a")              # accept: relabel as the model's suggestion
    _next(page, first)                    # the next flag, decided by nobody yet
    page.keyboard.press("u")              # take it back: the same flag comes back, open
    page.wait_for_selector(f'#reviewer[data-armed="{first}"]', timeout=5000)
    with httpx.Client(base_url=base) as client:
        back = client.get(f"/api/flags/{first}").json()
        image = client.get(f"/api/images/{flags[first]['image']}").json()
    assert back["status"] == "open" and back["resolution"] is None
    undone = back["details"]["undone"][0]
    assert undone["resolution"] == "relabel" and undone["undone_by"] == "uma"
    assert image["label"]["class"] == flags[first]["given"]      # the label before the decision, restored

    # A double press 40 ms apart keeps this flag and does nothing to the next one, unseen.
    page.keyboard.press("Enter")
    page.wait_for_timeout(40)
    page.keyboard.press("Enter")
    nxt = _next(page, first)
    page.wait_for_timeout(300)
    assert page.get_attribute("#stage [data-flag-id]", "data-flag-id") == nxt

    # A held key decides once: its auto-repeats do nothing to the flags that follow.
    page.keyboard.down("w")               # ambiguous
    after = _next(page, nxt)
    for _ in range(4):
        page.keyboard.down("w")           # repeat: true
        page.wait_for_timeout(30)
    page.keyboard.up("w")
    page.wait_for_timeout(200)
    assert page.get_attribute("#stage [data-flag-id]", "data-flag-id") == after

    con = sqlite3.connect(data / "loupe.db")
    rows = dict(con.execute("SELECT id, status FROM flags WHERE kind = 'mislabel'").fetchall())
    events = con.execute("SELECT e.image_id, c.name, e.kind, e.reverts_event_id IS NOT NULL FROM label_events e "
                         "LEFT JOIN classes c ON c.id = e.class_id WHERE e.kind IN ('review', 'undo') "
                         "ORDER BY e.id").fetchall()
    con.close()
    img = flags[first]["image"]
    assert events == [(img, flags[first]["suggested"], "review", 0), (img, flags[first]["given"], "undo", 1),
                      (img, flags[first]["given"], "review", 0)]
    assert rows[int(first)] == "resolved" and rows[int(nxt)] == "resolved" and rows[int(after)] == "open"
    assert sum(status == "resolved" for status in rows.values()) == 2
