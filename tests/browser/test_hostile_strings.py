"""Markup in every user string stays text in a real browser: no injected script runs, on pages or after swaps."""

from __future__ import annotations

import re

import httpx
import pytest

from app.db.engine import Database
from tests.factories import png_bytes
from tests.hostile import PAYLOAD, fill, hostile

pytestmark = pytest.mark.browser

PAGES = ["/", "/browse", "/taxonomy", "/snapshots", "/snapshots/live", "/jobs", "/review", "/quality",
         "/label", "/label?queue=rereview"]


def _not_pwned(page, where: str) -> None:
    assert page.evaluate("window.__pwned") is None, f"injected script ran on {where}"


def test_no_injected_script_runs_anywhere(live_server, page, tmp_path):
    base, data = live_server
    with httpx.Client(base_url=base, timeout=60) as client:
        db = Database(f"sqlite:///{data / 'loupe.db'}")
        try:
            lib = fill(client, db)
        finally:
            db.dispose()
        extra = [("files", (f"{i}-{hostile('more')}.png", png_bytes(20 + i), "image/png")) for i in range(2)]
        more = client.post("/api/images", data={"source": lib.strings["source"]}, files=extra).json()["imported"]
        assert len(more) == 2
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.add_init_script(f"localStorage.setItem('loupe.annotator', {hostile('me')!r})")

    urls = PAGES + [f"/images/{lib.images[0]}", f"/snapshots/{lib.snapshot}", f"/jobs/{lib.job}",
                    f"/jobs/{lib.queued_job}", f"/snapshots/{lib.other_snapshot}?diff_with={lib.snapshot}"]
    for url in urls:
        page.goto(base + url)
        page.wait_for_load_state("load")
        _not_pwned(page, url)
    page.goto(f"{base}/images/{lib.images[0]}")
    assert lib.strings["note"] in page.inner_text("body")  # shown, as text

    # The labelling page: the annotator name is set by script; labelling swaps in the next image's stage.
    page.goto(f"{base}/label")
    page.wait_for_selector(f'#labeller[data-armed="{more[0]["id"]}"]')  # seen long enough to be labelled
    assert page.inner_text("#annotator-name") == hostile("me")
    page.fill("#note", hostile("typed note"))
    page.locator(".class-btn").first.click()
    page.wait_for_selector(f'#stage [data-image-id="{more[1]["id"]}"]')
    assert more[1]["filename"] in page.inner_text("#stage")
    _not_pwned(page, "the labelling stage after a swap")

    # The review page: skipping fetches the stage again and swaps it in.
    page.goto(f"{base}/review")
    page.wait_for_selector('#reviewer[data-armed]:not([data-armed=""])')  # seen long enough to decide
    page.keyboard.press("s")
    page.wait_for_timeout(300)
    _not_pwned(page, "the review stage after a swap")

    # htmx swaps: a browse filter, and a taxonomy form whose answer echoes the name back.
    page.goto(f"{base}/browse")
    page.select_option('#filters select[name="class"]', lib.strings["class_a"])
    page.wait_for_url(re.compile(r"[?&]class="))   # not wait_for_function: the page's CSP refuses eval
    page.wait_for_selector("#grid .tile")
    _not_pwned(page, "the browse grid after a filter")
    page.goto(f"{base}/taxonomy")
    page.fill("#add-form input[name=name]", lib.strings["class_a"])
    page.click("#add-form button[type=submit]")
    page.wait_for_selector("#editor .error")
    assert "already exists" in page.inner_text("#editor .error")
    _not_pwned(page, "the taxonomy editor after an htmx answer")

    # The overview's importer writes file names and reasons into the page itself.
    bad = tmp_path / "'><img src=x onerror=window.__pwned=1>.png"
    bad.write_text("not a picture")
    page.goto(base + "/")
    page.fill('input[name="source"]', PAYLOAD)
    page.set_input_files('input[type="file"]', [str(bad)])
    page.wait_for_selector("#upload-result:has-text('rejected')")
    assert "onerror=window.__pwned=1>.png" in page.inner_text("#upload-result")
    _not_pwned(page, "the import report")
    assert not dialogs, dialogs
