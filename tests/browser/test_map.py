"""The map in a real browser, over a real analysis: the worker trains, analyses, and /map draws every image;
a concave lasso lands in Browse with exactly the images inside it, which are then labelled in bulk."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest

from app.embeddings import regions
from tests.factories import add_class, labelled_snapshot, upload_fmnist
from tests.workers import FAST, finished, start_worker, stop, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real train job and its analysis: ~40 s on two busy cores

# A concave lasso over the canvas (fractions of its box): the left part with a notch cut in from the left.
LASSO = [(0.04, 0.04), (0.5, 0.04), (0.5, 0.96), (0.04, 0.96), (0.04, 0.62), (0.3, 0.5), (0.04, 0.38)]


def _map_when_ready(client, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get("/api/embeddings/map")
        if r.status_code == 200:
            return r.json()
        time.sleep(0.5)
    pytest.fail("no analysis with a map came after the train job")


def test_lasso_on_the_map_opens_exactly_those_images_in_browse_and_labels_them(live_server, page):
    base, data = live_server
    with httpx.Client(base_url=base, timeout=60) as client:
        page.goto(base + "/map")
        assert "No map yet" in page.inner_text("main")  # the empty state says how to get one
        snap = labelled_snapshot(client, 60, classes=3, folds=2)
        later = upload_fmnist(client, 40, start=3000, source="later")
        add_class(client, "odd one")
        train = client.post("/api/jobs", json={"snapshot": snap["id"], "config": FAST})
        assert train.status_code == 201, train.text
        worker = start_worker(data)
        try:
            assert wait_for(client, train.json()["id"], finished)["status"] == "succeeded"
            body = _map_when_ready(client)
        finally:
            stop(worker)
        points = {it["image"]: (it["x"], it["y"]) for it in body["items"]}
        assert len(points) == 100 and set(later) <= set(points)

    page.add_init_script("localStorage.setItem('loupe.annotator', 'ana')")
    page.goto(base + "/map")
    page.wait_for_selector("#map-page[data-painted]")
    assert page.inner_text("#map-count") == "100 images"
    legend = page.inner_text("#map-legend")
    assert "t-shirt" in legend and "unlabelled" in legend
    box = page.locator("#map-canvas").bounding_box()
    page.keyboard.press("l")  # lasso mode
    xs = [(box["x"] + fx * box["width"], box["y"] + fy * box["height"]) for fx, fy in LASSO]
    page.mouse.move(*xs[0])
    page.mouse.down()
    for a, b in zip(xs, xs[1:] + xs[:1]):
        for t in np.linspace(0, 1, 12)[1:]:
            page.mouse.move(a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))
    page.mouse.up()
    page.wait_for_selector("#map-selection:not([hidden])")
    n = int(re.match(r"([\d,]+) selected", page.inner_text("#map-selected")).group(1).replace(",", ""))
    assert 0 < n < 100

    page.click("#map-open")
    page.wait_for_url(re.compile(r"/browse\?"))
    query = parse_qs(urlsplit(page.url).query)
    polygon = regions.parse(query["region"][0])
    ids = np.array(sorted(points))
    xy = np.array([points[i] for i in ids])
    want = sorted(ids[regions.inside(xy, polygon)].tolist())
    assert len(want) == n  # the page counted what the server recomputes
    assert "selection drawn on the map" in page.inner_text("#browse-region")
    assert page.get_attribute(".grid-meta", "data-total") == f"{n:,}"  # exact, as the map counted
    tiles = sorted(int(t) for t in page.locator(".tile").evaluate_all("els => els.map(e => e.dataset.id)"))
    assert tiles == want

    page.click("#select-all")
    page.select_option("#bulk select[name=class]", label="odd one")
    page.click("#bulk button[type=submit]")
    page.wait_for_selector("#bulk-confirm:not([hidden])")
    assert page.inner_text("#bulk-confirm-text").startswith(f"Relabel {n} image")
    page.click("#bulk-confirm-yes")
    page.wait_for_selector("#bulk-done:not([hidden])")
    with httpx.Client(base_url=base, timeout=60) as client:
        got = client.get("/api/images", params={"class": "odd one", "limit": 200}).json()["items"]
        assert sorted(it["id"] for it in got) == want
