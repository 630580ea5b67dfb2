"""Importing from the overview page in a real browser (file picker and drop use the same path)."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import png_bytes

pytestmark = pytest.mark.browser


def test_upload_from_overview_reports_each_file(live_server, page, tmp_path):
    base, _ = live_server
    good = [tmp_path / f"good{i}.png" for i in range(3)]
    for i, p in enumerate(good):
        p.write_bytes(png_bytes(i))
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture")

    page.goto(base + "/")
    page.fill('input[name="source"]', "phone")
    page.set_input_files('input[name="files"]', [*map(str, good), str(bad)])
    page.wait_for_selector("#upload-result:has-text('imported')")
    text = page.text_content("#upload-result")
    assert "3 imported, 0 already there, 1 rejected." in text
    assert "notes.png" in text

    listed = httpx.get(f"{base}/api/images", params={"source": "phone"}).json()
    assert listed["total"] == 3


def test_upload_with_a_label_file_from_overview(live_server, page, tmp_path):
    """The label file is chosen first; choosing the images starts the import, and the page says what became of
    each label (a conflict is reported, the existing label kept)."""
    base, _ = live_server
    images = [tmp_path / f"img{i}.png" for i in range(3)]
    for i, p in enumerate(images):
        p.write_bytes(png_bytes(10 + i))
    manifest = tmp_path / "labels.csv"
    manifest.write_text("file,label\nimg0.png,Sneaker\nimg1.png,Sneaker\nimg2.png,Ankle boot\nmissing.png,Bag\n")

    page.goto(base + "/")
    page.fill('input[name="source"]', "catalogue")
    page.set_input_files('input[name="labels"]', str(manifest))
    page.set_input_files('input[name="files"]', [str(p) for p in images])
    page.wait_for_selector("#upload-result:has-text('labels (loupe)')")
    text = page.text_content("#upload-result")
    assert "3 imported" in text and "labels (loupe): 3 added" in text and "1 not found" in text
    assert "new classes: Ankle boot, Sneaker" in text and "missing.png" in text
    listed = httpx.get(f"{base}/api/images", params={"class": "Sneaker"}).json()
    assert listed["total"] == 2
    page.screenshot(path=str(tmp_path / "upload-labels.png"), full_page=True)

