"""Merge two classes on the taxonomy page; the labelling page's buttons follow."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import png_bytes

pytestmark = pytest.mark.browser


def test_merge_on_taxonomy_page_changes_label_buttons(live_server, page):
    base, _ = live_server
    for name in ("shirt", "top", "shoe"):
        assert httpx.post(f"{base}/api/taxonomy/changes", json={"op": "add", "name": name}).status_code == 201
    files = [("files", (f"i{i}.png", png_bytes(i), "image/png")) for i in range(2)]
    ids = [x["id"] for x in httpx.post(f"{base}/api/images", data={"source": "s"}, files=files).json()["imported"]]
    httpx.post(f"{base}/api/images/{ids[0]}/labels", json={"class": "top"})

    page.goto(f"{base}/label")
    page.evaluate("localStorage.setItem('loupe.annotator', 'ana')")
    page.goto(f"{base}/label")
    assert page.locator(".class-btn").all_inner_texts() == ["1 shirt", "2 top", "3 shoe"]

    page.goto(f"{base}/taxonomy")
    page.select_option('#merge-form select[name="classes"]', label=["shirt", "top"])
    page.fill('#merge-form input[name="into"]', "upper")
    page.click('#merge-form button[type="submit"]')
    page.wait_for_selector(".notice")
    assert "merged 'shirt', 'top' into 'upper' (new); 1 labels moved" in page.text_content(".versions")

    page.goto(f"{base}/label")
    assert page.locator(".class-btn").all_inner_texts() == ["3 shoe", "1 upper"]  # upper took shirt's key
    version = httpx.get(f"{base}/api/taxonomy/versions").json()["items"][-1]
    assert version["author"] == "ana"
    assert httpx.get(f"{base}/api/images/{ids[0]}").json()["label"]["class"] == "upper"
