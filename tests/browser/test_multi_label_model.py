"""A multi-label model in a real browser: train on sets through the real worker, read its set metrics on the job
page, take its probable set on the labelling page by keyboard (=, then Enter), and review a suspect tag it
flagged (the page names the class as missing or wrong; a accepts the suggested set)."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests import tiles
from tests.factories import tiles_snapshot, upload
from tests.workers import FAST, finished, start_worker, stop, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real training job: about 20 s


def _label(base: str, image_id: int):
    return httpx.get(f"{base}/api/images/{image_id}").json()["label"]


def test_train_on_sets_take_the_probable_set_and_review_a_suspect_tag(live_server, page, tmp_path):
    base, data = live_server
    with httpx.Client(base_url=base, timeout=60) as client:
        made = tiles_snapshot(client, 180, n_classes=3, folds=3, missing=0.15, wrong=0.05)
        images, _, _ = tiles.load("fmnist", 4, seed=7, n_classes=3)
        files = []
        for i, pixels in enumerate(images):
            buf = io.BytesIO()
            Image.fromarray(np.asarray(pixels)).save(buf, format="PNG")
            files.append((f"new-{i}.png", buf.getvalue()))
        new = [x["id"] for x in upload(client, files, "new")["imported"]]
        job = client.post("/api/jobs", json={"snapshot": made["snapshot"]["id"], "config": FAST}).json()["id"]
        worker = start_worker(data)
        try:
            assert wait_for(client, job, finished)["status"] == "succeeded"
            wait_for(client, job, lambda b: "set_noise" in b["metrics"], timeout=60)
        finally:
            stop(worker)
    page.add_init_script("localStorage.setItem('loupe.annotator', 'ana')")

    page.goto(f"{base}/jobs/{job}")
    assert page.is_visible("text=out-of-sample micro-F1") and page.is_visible("text=mAP")
    assert page.is_visible("text=Tags likely missing or wrong")
    page.screenshot(path=str(tmp_path / "job-multi.png"), full_page=True)

    page.goto(f"{base}/label")
    showing = int(page.get_attribute("#stage [data-image-id]", "data-image-id"))
    assert showing in new
    page.wait_for_selector(f'#labeller[data-armed="{showing}"]', timeout=5000)
    wanted = page.get_attribute("#stage figure", "data-suggested-set").split(",")
    wanted = [w for w in wanted if w]
    if wanted:
        assert "switches on" in page.text_content("#stage .suggestions")
    page.screenshot(path=str(tmp_path / "label-suggested.png"), full_page=True)
    page.keyboard.press("=")
    on = sorted(b.get_attribute("data-class") for b in page.locator('.class-btn[aria-pressed="true"]').all())
    assert on == sorted(wanted)
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#stage [data-image-id]:not([data-image-id="{showing}"])', timeout=5000)
    names = {str(c["id"]): c["name"] for c in httpx.get(f"{base}/api/taxonomy").json()["classes"]}
    assert sorted(_label(base, showing)["classes"]) == sorted(names[w] for w in wanted)

    page.goto(f"{base}/review?kind=mislabel")
    page.wait_for_selector("#suspect-tags")
    evidence = page.locator("article.evidence")
    flag, image = evidence.get_attribute("data-flag-id"), int(evidence.get_attribute("data-image-id"))
    first = page.text_content("#suspect-tags li")
    assert "probably missing" in first or "probably wrong" in first
    suggested = [w for w in evidence.get_attribute("data-suggested-set").split(",") if w]
    page.screenshot(path=str(tmp_path / "review-multi.png"), full_page=True)
    page.wait_for_selector(f'#reviewer[data-armed="{flag}"]', timeout=5000)
    page.keyboard.press("a")
    page.wait_for_selector(f'.evidence:not([data-flag-id="{flag}"])', timeout=5000)
    assert sorted(_label(base, image)["classes"]) == sorted(names[w] for w in suggested)
    assert httpx.get(f"{base}/api/flags/{flag}").json()["resolution"] in ("relabel", "keep")
