"""Labelling a multi-label taxonomy in a real browser: class keys switch classes on the image showing, Enter
saves the set (nothing switched on: none of these), u undoes, and a double Enter never answers for an image
nobody saw."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.factories import classes_and_images

pytestmark = pytest.mark.browser


def _showing(page, image_id: int) -> None:
    page.wait_for_selector(f'#labeller[data-armed="{image_id}"] #stage [data-image-id="{image_id}"]', timeout=5000)


def _label(base: str, image_id: int):
    return httpx.get(f"{base}/api/images/{image_id}").json()["label"]


def test_keys_switch_classes_and_enter_saves_the_set(live_server, page, tmp_path):
    base, _ = live_server
    ids = classes_and_images(base, 4, ("red", "dress", "on a model with a very long class name"))
    page.goto(f"{base}/taxonomy")
    page.fill("#taxonomy-author", "ana")
    page.once("dialog", lambda d: d.accept())   # the page asks first: there is no way back
    page.click("#set-mode-form button")
    page.wait_for_selector("h1:has-text('multi-label')")
    assert "0 labels became sets of one class" in page.text_content(".notice")
    assert page.locator("#set-mode-form").count() == 0

    page.goto(f"{base}/label")        # the name given on the taxonomy page signs the labels too: no dialog
    _showing(page, ids[0])
    assert "switch red on or off" in page.text_content("#cheatsheet")
    page.keyboard.press("1")
    page.keyboard.press("3")
    page.keyboard.press("1")          # red off again
    page.keyboard.press("2")
    assert page.text_content("#set-summary") == "dress, on a model with a very long class name"
    page.screenshot(path=str(tmp_path / "label-multi.png"), full_page=True)
    page.keyboard.press("w")          # unsure
    page.keyboard.press("Enter")
    _showing(page, ids[1])
    assert "✓ dress, on a model with a very long class name · unsure" in page.text_content("#applied")
    first = _label(base, ids[0])
    assert sorted(first["classes"]) == ["dress", "on a model with a very long class name"]
    assert first["annotator"] == "ana" and first["confidence"] == 0.6 and first["tags"] == [] and first["note"] == ""
    assert page.get_attribute('[data-class]', "aria-pressed") == "false"          # switched off for the next

    page.keyboard.press("Enter")      # nothing switched on: none of these ...
    page.keyboard.press("Enter")      # ... and a second press at once lands on an image not yet seen: ignored
    _showing(page, ids[2])
    assert _label(base, ids[1])["classes"] == [] and _label(base, ids[2]) is None
    page.keyboard.press("u")          # back to the "none of these" image, unlabelled again
    _showing(page, ids[1])
    assert _label(base, ids[1]) is None
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    _showing(page, ids[2])
    assert _label(base, ids[1])["classes"] == ["red"]
    assert httpx.get(f"{base}/api/images", params={"class": "red"}).json()["total"] == 1

    page.goto(f"{base}/browse?status=labelled")
    tiles = page.locator(".tile-label").all_text_contents()
    assert any("dress, on a model with a very long class name" in t for t in tiles) and any("red" in t for t in tiles)
    page.goto(f"{base}/browse?class=dress")
    assert len(page.locator(".tile-label").all_text_contents()) == 1
    page.goto(f"{base}/images/{ids[0]}")
    badges = page.locator("h1 .badge").all_text_contents()
    assert sorted(badges) == ["dress", "on a model with a very long class name"]
    page.screenshot(path=str(tmp_path / "image-multi.png"), full_page=True)
    page.goto(f"{base}/taxonomy")
    page.screenshot(path=str(tmp_path / "taxonomy-multi.png"), full_page=True)


def test_browse_filters_sets_and_adds_a_class_to_a_selection_with_undo(live_server, page, tmp_path):
    base, _ = live_server
    ids = classes_and_images(base, 5, ("red", "dress", "shoe"))
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.post("/api/taxonomy/changes", json={"op": "set-mode", "mode": "multi-label"}).status_code == 201
        for i, classes in zip(ids, (["red"], ["red", "dress"], ["dress"], [])):
            assert client.post(f"/api/images/{i}/labels", json={"classes": classes}).status_code == 201
    page.add_init_script("localStorage.setItem('loupe.annotator', 'ana')")

    page.goto(base + "/browse")
    page.select_option("#filters select[name=lacks]", label="red")
    page.wait_for_url("**lacks=red**")
    expect(page.locator(".grid-meta")).to_contain_text("2 images · page 1 of 1")
    assert sorted(page.locator(".tile-label").all_text_contents()) == ["dress", "none of these"]
    page.click("#select-all")
    page.select_option("#bulk select[name=action]", value="add")
    page.select_option("#bulk select[name=class]", label="shoe")
    page.locator("#bulk button[type=submit]").click()
    page.wait_for_selector("#bulk-confirm:not([hidden])")
    assert page.inner_text("#bulk-confirm-text") == "Add shoe to 2 images"
    page.click("#bulk-confirm-yes")
    page.wait_for_selector("#bulk-done:not([hidden])")
    page.screenshot(path=str(tmp_path / "browse-multi.png"), full_page=True)
    with httpx.Client(base_url=base, timeout=60) as client:
        got = {i: sorted(client.get(f"/api/images/{i}").json()["label"]["classes"]) for i in ids[2:4]}
        assert got == {ids[2]: ["dress", "shoe"], ids[3]: ["shoe"]}
    page.click("#bulk-undo")
    expect(page.locator("#bulk-done-text")).to_contain_text("Undid")
    with httpx.Client(base_url=base, timeout=60) as client:
        assert client.get(f"/api/images/{ids[3]}").json()["label"]["classes"] == []
        snap = client.post("/api/snapshots", json={"name": "sets", "split": {"folds": 2}}).json()
    page.goto(f"{base}/snapshots/{snap['id']}")
    expect(page.locator("body")).to_contain_text("holds sets of classes")
    assert page.locator("a.button[href*='format=']").all_text_contents() == [
        "CSV manifest", "JSONL manifest", "Hugging Face datasets (zip)", "Label Studio (zip)"]
    expect(page.locator("[data-metric=set-size]")).to_have_text("1.00")         # (1 + 2 + 1 + 0) / 4 after the undo
    page.screenshot(path=str(tmp_path / "snapshot-multi.png"), full_page=True)
