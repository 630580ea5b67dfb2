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
    page.set_input_files('input[type="file"]', [*map(str, good), str(bad)])
    page.wait_for_selector("#upload-result:has-text('imported')")
    text = page.text_content("#upload-result")
    assert "3 imported, 0 already there, 1 rejected." in text
    assert "notes.png" in text

    listed = httpx.get(f"{base}/api/images", params={"source": "phone"}).json()
    assert listed["total"] == 3
