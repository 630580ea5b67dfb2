"""The taxonomy page: merge, split and undo in the browser; keys never move; versions are signed and titled by name;
a change refused because someone else changed the taxonomy first keeps what the person typed."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import png_bytes
from tests.fmnist import CLASSES

pytestmark = pytest.mark.browser

NAMES = [n.capitalize().replace("-", " ") for n in CLASSES]  # 1 T shirt ... 6 Sandal, 7 Shirt, 8 Sneaker, 9 Bag, 0 ...


def _class_id(base: str, name: str) -> str:
    return str(next(c["id"] for c in httpx.get(f"{base}/api/taxonomy").json()["classes"] if c["name"] == name))


def _buttons(page) -> dict[str, str]:
    return {b.get_attribute("data-key"): b.inner_text().split(" ", 1)[1] for b in page.locator(".class-btn").all()}


def test_merge_split_undo_on_the_page_keep_every_key(live_server, page):
    base, _ = live_server
    for name in NAMES:
        assert httpx.post(f"{base}/api/taxonomy/changes", json={"op": "add", "name": name}).status_code == 201
    files = [("files", (f"i{i}.png", png_bytes(i), "image/png")) for i in range(3)]
    ids = [x["id"] for x in httpx.post(f"{base}/api/images", data={"source": "s"}, files=files).json()["imported"]]
    httpx.post(f"{base}/api/images/{ids[0]}/labels", json={"class": "Sandal"})

    page.goto(f"{base}/taxonomy")
    page.select_option('#merge-form select[name="classes"]', label=["Sandal", "Sneaker"])
    page.fill('#merge-form input[name="into"]', "Shoe")
    page.click('#merge-form button[type="submit"]')
    page.wait_for_selector("#author-missing:not([hidden])")  # nobody named: no version without an author
    assert httpx.get(f"{base}/api/taxonomy").json()["version"] == len(NAMES)
    page.fill("#taxonomy-author", "ana")
    page.click('#merge-form button[type="submit"]')
    page.wait_for_selector(".notice")
    merge = page.locator(".versions > li").first
    assert "merge Sandal, Sneaker → Shoe" in merge.inner_text() and "by ana" in merge.inner_text()
    assert "merged 'Sandal', 'Sneaker' into 'Shoe' (new); 1 labels moved; 'Shoe' gets key f" in merge.inner_text()
    assert "Merged from Sandal and Sneaker in version 11." in page.text_content("table.classes")
    assert "6 Sandal, 8 Sneaker" in page.text_content(".retired-keys")

    page.select_option('#split-form select[name="class"]', label="Bag")
    page.fill('#split-form input[name="into"]', "Backpack, Handbag")
    page.click('#split-form button[type="submit"]')
    page.wait_for_selector("#version-12")
    assert "split Bag → Backpack, Handbag" in page.text_content("#version-12")
    assert "Split from Bag in version 12." in page.text_content("table.classes")

    # Someone else changes the taxonomy while a definition is being typed: refused, the text stays.
    page.select_option('#describe-form select[name="class"]', label="Coat")
    page.fill('#describe-form textarea[name="description"]', "Outerwear with sleeves, below the hip")
    assert httpx.post(f"{base}/api/taxonomy/changes", json={"op": "add", "name": "Parka", "author": "bo"}).status_code == 201
    page.click('#describe-form button[type="submit"]')
    page.wait_for_selector('#editor [role="alert"]')
    assert "someone else changed the taxonomy first" in page.text_content('#editor [role="alert"]')
    assert page.input_value('#describe-form textarea[name="description"]') == "Outerwear with sleeves, below the hip"
    assert page.input_value('#describe-form select[name="class"]') == _class_id(base, "Coat")
    page.click('#describe-form button[type="submit"]')  # the form now carries the current version
    page.wait_for_selector("#version-14")
    coat = next(c for c in httpx.get(f"{base}/api/taxonomy").json()["classes"] if c["name"] == "Coat")
    assert coat["description"] == "Outerwear with sleeves, below the hip"

    page.on("dialog", lambda d: d.accept())  # "Undo version 11?"
    page.locator("#version-11 .undo-form button").click()
    page.wait_for_selector("#version-15")
    assert "restored 'Sandal' (key 6), 'Sneaker' (key 8)" in page.text_content("#version-15")
    versions = httpx.get(f"{base}/api/taxonomy/versions").json()["items"]
    assert [v["author"] for v in versions[10:]] == ["ana", "ana", "bo", "ana", "ana"]

    page.goto(f"{base}/label")
    page.evaluate("localStorage.setItem('loupe.annotator', 'ana')")
    page.goto(f"{base}/label")
    keys = _buttons(page)
    assert {k: keys[k] for k in "12345678"} == dict(zip("12345678", NAMES[:8]))
    assert (keys["0"], keys["h"], keys["j"], keys["k"]) == ("Ankle boot", "Backpack", "Handbag", "Parka")
    assert "f" not in keys and "9" not in keys  # Shoe's and Bag's, retired with them
    shown = int(page.get_attribute("#stage [data-image-id]", "data-image-id"))
    page.wait_for_timeout(400)  # on screen long enough to be seen
    page.keyboard.press("8")
    page.wait_for_selector(f'#stage [data-image-id]:not([data-image-id="{shown}"])')
    assert httpx.get(f"{base}/api/images/{shown}").json()["label"]["class"] == "Sneaker"
