"""The map's as-of line in a real browser over real jobs: fresh after the analysis; images imported since placed
by an extension; stale (and saying how) after a label; "Analyse again" makes it fresh. Screenshots of each
state go to $LOUPE_SHOTS (default /work/helpers/shots16) when that folder can be made."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from tests import fmnist
from tests.factories import label, labelled_snapshot, upload_fmnist
from tests.workers import FAST, finished, start_worker, stop, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real train job, a predict job, three analyses: ~60 s

SHOTS = Path(os.environ.get("LOUPE_SHOTS", "/work/helpers/shots16"))


def _shot(page, name: str) -> None:
    try:
        SHOTS.mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _analysis(client, where, timeout: float = 180) -> dict:
    """The newest analyse job matching `where` once it and its outlier flags are done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [j for j in client.get("/api/jobs").json()["items"] if j["kind"] == "analyse" and where(j)]
        if found:
            job = max(found, key=lambda j: j["id"])
            body = wait_for(client, job["id"], lambda b: finished(b) and (
                b["status"] != "succeeded" or "outlier_flags" in (b["metrics"] or {})), timeout=timeout)
            assert body["status"] == "succeeded", body["error"]
            return body
        time.sleep(0.3)
    pytest.fail("the analyse job did not come")


def _painted(page, base: str) -> str:
    page.goto(base + "/map")
    page.wait_for_selector("#map-page[data-painted]")
    return page.inner_text("#map-as-of")


def test_the_map_says_how_old_it_is_and_analyse_again_makes_it_fresh(live_server, page):
    base, data = live_server
    with httpx.Client(base_url=base, timeout=60) as client:
        snap = labelled_snapshot(client, 45, classes=3, folds=2)
        upload_fmnist(client, 15, start=3000, source="later")
        worker = start_worker(data)
        try:
            train = client.post("/api/jobs", json={"snapshot": snap["id"], "config": FAST}).json()["id"]
            assert wait_for(client, train, finished)["status"] == "succeeded"
            first = _analysis(client, lambda j: not (j["config"] or {}).get("extend"))

            text = _painted(page, base)
            assert f"analysis #{first['id']}" in text and "no label or exclusion changed since" in text
            assert page.get_attribute("#map-as-of", "data-stale") == "false"
            assert page.get_attribute("#map-page", "data-points") == "60"
            assert page.locator("#map-refresh").count() == 0
            _shot(page, "map-fresh")

            # Three images imported after it: their predict job, then an extension places them on the map.
            new = upload_fmnist(client, 3, start=4000, source="latest")
            ext = _analysis(client, lambda j: (j["config"] or {}).get("extend") is True)
            assert ext["metrics"]["placed"] == 3
            # And a label given since: the colours show it at once, the layout and scores do not.
            label(client, new[0], fmnist.CLASSES[0])
            text = _painted(page, base)
            assert page.get_attribute("#map-page", "data-points") == "63"
            assert f"images embedded since #{first['id']} placed at" in text
            assert "1 label change and 0 exclusion changes since" in text and "Colours and marks are current" in text
            assert page.get_attribute("#map-as-of", "data-stale") == "true"
            _shot(page, "map-stale")

            page.click("#map-refresh button")
            page.wait_for_url(f"{base}/jobs/*")
            again = _analysis(client, lambda j: j["id"] > ext["id"] and not (j["config"] or {}).get("extend"))
            text = _painted(page, base)
            assert f"analysis #{again['id']}" in text and "no label or exclusion changed since" in text
            assert page.get_attribute("#map-as-of", "data-stale") == "false"
            assert page.get_attribute("#map-page", "data-points") == "63"
            _shot(page, "map-refreshed")
        finally:
            stop(worker)
