"""Other tools' formats in the browser: a Label Studio export uploaded from the overview (labels, and its
predictions as an import job's suggestions shown on the jobs pages), and every export format downloaded from
the snapshot page."""

from __future__ import annotations

import json
import zipfile

import httpx
import pytest

from app.formats import WRITERS
from tests import fmnist
from tests.formats.test_labelstudio import _full_json

pytestmark = pytest.mark.browser


def test_a_label_studio_file_comes_in_and_every_format_goes_out(live_server, page, tmp_path):
    base, _ = live_server
    images = fmnist.write_pngs(tmp_path / "fashion", 3)
    tasks = tmp_path / "project-83.json"
    tasks.write_text(json.dumps(_full_json([p.name for p in images])))

    page.goto(base + "/")
    page.fill('input[name="source"]', "studio")
    page.set_input_files('input[name="labels"]', str(tasks))
    page.set_input_files('input[name="files"]', [str(p) for p in images])
    page.wait_for_selector("#upload-result:has-text('labels (label-studio)')")
    text = page.text_content("#upload-result")
    assert "3 imported" in text and "labels (label-studio): 2 added" in text, text
    assert "2 model suggestions (job #1), not labels" in text and "new classes: Bag, Coat, Sneaker" in text

    page.goto(base + "/jobs")
    row = page.locator("tr", has_text="suggestions from project-83.json (model 1)")
    assert row.count() == 1 and "succeeded" in row.text_content()
    page.screenshot(path=str(tmp_path / "jobs-import.png"), full_page=True)
    row.locator("a").first.click()
    page.wait_for_url(f"{base}/jobs/1")
    assert "never counted as labels" in page.text_content("main")
    page.screenshot(path=str(tmp_path / "job-import.png"), full_page=True)

    snap = httpx.post(f"{base}/api/snapshots", json={"name": "studio v1", "split": {"folds": 2}}).json()
    page.goto(f"{base}/snapshots/{snap['id']}")
    page.screenshot(path=str(tmp_path / "snapshot-exports.png"), full_page=True)
    for name in WRITERS:
        link = page.locator(f'a[href="/api/snapshots/{snap["id"]}/export?format={name}"]')
        with page.expect_download() as got:
            link.click()
        saved = tmp_path / got.value.suggested_filename
        got.value.save_as(saved)
        if name in ("csv", "jsonl"):
            assert saved.name == f"studio-v1.{name}" and len(saved.read_text().strip().splitlines()) >= 2
            continue
        with zipfile.ZipFile(saved) as z:
            names = z.namelist()
            info = json.loads(z.read("loupe-export.json"))
            assert info["format"] == name and info["snapshot"]["hash"] == snap["hash"], info
            assert sum(n.endswith(".png") for n in names) == 2, names
            if name == "label-studio":
                exported = json.loads(z.read("tasks.json"))
                assert sorted(t["annotations"][0]["result"][0]["value"]["choices"][0] for t in exported) == [
                    "Coat", "Sneaker"]
