"""Launch a training job from /jobs and watch it finish without reloading: the jobs list and the job page
update by themselves while it waits and runs, and stop asking once it is done."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.factories import labelled_snapshot
from tests.workers import start_worker, stop

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real training job: about 25 s
LONG = "pullover with a hood, a zip and a name far too long for one column"


def test_watch_a_job_from_the_queue_to_its_results(live_server, page):
    base, data = live_server
    with httpx.Client(base_url=base, timeout=60) as client:
        labelled_snapshot(client, 24, classes=3, folds=2)
        r = client.post("/api/taxonomy/changes", json={"op": "rename", "class": "pullover", "name": LONG})
        assert r.status_code == 201, r.text
        r = client.post("/api/snapshots", json={"name": "long names", "split": {"val": 0.2, "seed": 0, "folds": 2}})
        assert r.status_code == 201, r.text
        snapshot = r.json()["id"]

    documents, polls = [], []
    page.on("request", lambda q: q.resource_type == "document" and documents.append(q.url))
    page.on("request", lambda q: q.headers.get("hx-request") == "true" and polls.append(q.url))

    page.goto(f"{base}/jobs")
    page.select_option('#launch select[name="snapshot"]', value=str(snapshot))
    page.fill('#launch input[name="epochs"]', "3")
    page.click('#launch button[type="submit"]')
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    job = int(page.url.rsplit("/", 1)[1])
    assert page.inner_text("#live .status") == "queued"

    # The queue on /jobs polls while the job waits, and its panel stays (it used to vanish after 3 s).
    page.goto(f"{base}/jobs")
    page.wait_for_timeout(3500)
    assert any(u.endswith("/jobs") for u in polls)
    assert page.is_visible("#queue") and page.inner_text(f"#queue a[href='/jobs/{job}']") == f"#{job}"

    page.goto(f"{base}/jobs/{job}")
    loaded = len(documents)
    worker = start_worker(data)
    try:
        page.wait_for_selector("#live .status-succeeded", timeout=120_000)
    finally:
        stop(worker)
    assert len(documents) == loaded, "the page reloaded"
    assert any(u.endswith(f"/jobs/{job}") for u in polls)
    # The results came with the last poll: metrics, both charts on titled axes, the confusion matrix.
    assert page.is_visible("text=out-of-sample accuracy")
    titles = page.locator("#live svg text.axis-title").all_text_contents()
    assert titles == ["epoch", "loss", "epoch", "accuracy"]
    assert page.get_attribute(f'.heatmap th.col-head[title="{LONG}"]', "title") == LONG
    # Nothing overflows sideways: long class names are cut (tooltip) and the log wraps.
    wide = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert wide <= 0
    log = page.locator("pre.log")
    assert log.evaluate("e => getComputedStyle(e).whiteSpace") == "pre-wrap"
    assert log.evaluate("e => e.scrollWidth - e.clientWidth") <= 0

    # Done: no more polling, here or on the jobs list.
    asked = len(polls)
    page.wait_for_timeout(2500)
    assert len(polls) == asked
    page.goto(f"{base}/jobs")
    assert page.inner_text(f"#queue tr:has(a[href='/jobs/{job}']) .status") == "succeeded"
    page.wait_for_timeout(3500)
    assert len(polls) == asked
