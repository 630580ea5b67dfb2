"""Browse in a real browser: select all matching, choose a class (none preselected), read the confirmation's
counts, apply, undo; then exclude one image from its page and put it back."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.factories import add_class, label, upload_fmnist

pytestmark = pytest.mark.browser


def _classes(client, ids) -> list[str | None]:
    out = []
    for i in ids:
        lab = client.get(f"/api/images/{i}").json()["label"]
        out.append(lab["class"] if lab else None)
    return out


def test_bulk_relabel_confirms_counts_and_undoes(live_server, page):
    base, _ = live_server
    with httpx.Client(base_url=base, timeout=60) as client:
        add_class(client, "coat")
        add_class(client, "shirt")
        ids = upload_fmnist(client, 12)
        for i in ids[:3]:
            label(client, i, "coat")
    page.add_init_script("localStorage.setItem('loupe.annotator', 'ana')")

    page.goto(base + "/browse")
    apply = page.locator("#bulk button[type=submit]")
    assert apply.is_disabled()  # no class preselected
    assert "page 1 of 1" in page.inner_text(".grid-meta")
    page.click("#select-all")
    assert page.inner_text("#selection-count") == "all 12 matching selected"
    page.select_option("#bulk select[name=class]", label="shirt")
    assert apply.is_enabled()
    apply.click()
    page.wait_for_selector("#bulk-confirm:not([hidden])")
    assert page.inner_text("#bulk-confirm-text") == "Relabel 12 images: 9 unlabelled, 3 coat → shirt"
    with httpx.Client(base_url=base, timeout=60) as client:
        assert _classes(client, ids) == ["coat"] * 3 + [None] * 9  # nothing written before the confirmation

    page.click("#bulk-confirm-yes")
    page.wait_for_selector("#bulk-done:not([hidden])")
    assert "Relabel 12 images" in page.inner_text("#bulk-done-text")
    expect(page.locator(".tile-label", has_text="shirt")).to_have_count(12)  # the grid refreshed itself
    with httpx.Client(base_url=base, timeout=60) as client:
        assert _classes(client, ids) == ["shirt"] * 12
        history = client.get(f"/api/images/{ids[0]}").json()["history"]
        assert [(e["kind"], e["annotator"]) for e in history][-1] == ("bulk", "ana")

    page.click("#bulk-undo")
    page.wait_for_selector("#bulk-done-text:has-text('Undid 12 images')")
    with httpx.Client(base_url=base, timeout=60) as client:
        assert _classes(client, ids) == ["coat"] * 3 + [None] * 9
        assert client.get(f"/api/images/{ids[5]}").json()["history"][-1]["kind"] == "undo"


def test_exclude_and_include_from_the_image_page(live_server, page):
    base, _ = live_server
    with httpx.Client(base_url=base, timeout=60) as client:
        image = upload_fmnist(client, 2)[1]
    page.add_init_script("localStorage.setItem('loupe.annotator', 'ana')")
    page.goto(f"{base}/images/{image}")
    page.fill("#exclusion input[name=reason]", "a photo of a screen")
    page.click("#exclusion button[type=submit]")
    page.wait_for_selector("text=Include again")
    assert "a photo of a screen" in page.inner_text(".exclusions")
    page.click("#exclusion button[type=submit]")  # include again, no reason needed
    page.wait_for_selector("text=Exclude from the dataset")
    with httpx.Client(base_url=base, timeout=60) as client:
        body = client.get(f"/api/images/{image}").json()
        assert body["excluded"] is False
        assert [(e["excluded"], e["annotator"]) for e in body["exclusions"]] == [(True, "ana"), (False, "ana")]
