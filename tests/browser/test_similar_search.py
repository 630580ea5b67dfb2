"""Search by image in a real browser: /similar uploads a file, shows "searching…", then the nearest images with
their labels, answered by a real worker in an embed job's space (a resnet18 state_dict the test writes)."""

from __future__ import annotations

import httpx
import pytest
import torch
from playwright.sync_api import expect
from torchvision import models

from tests import fmnist
from tests.factories import png_bytes
from tests.workers import finished, start_worker, stop, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real worker starts and runs an embed job: ~30-60 s


@pytest.fixture
def console_allow() -> list[str]:
    return [r"status of 422"]  # the file that is not an image, refused on purpose


def test_upload_an_image_and_its_neighbours_appear_with_their_labels(live_server, page, tmp_path):
    base, data = live_server
    client = httpx.Client(base_url=base, timeout=60)
    page.goto(f"{base}/similar")
    expect(page.locator("main")).to_contain_text("No embeddings to search yet")  # 0 spaces: says what to do

    _, labels = fmnist.load("train", 30)
    files = [("files", (f"f{i}.png", png_bytes(i), "image/png")) for i in range(30)]
    imported = client.post("/api/images", data={"source": "fmnist"}, files=files).json()["imported"]
    client.post("/api/taxonomy/changes", json={"op": "add", "name": fmnist.CLASSES[labels[3]]})
    client.post(f"/api/images/{imported[3]['id']}/labels", json={"class": fmnist.CLASSES[labels[3]],
                                                                   "annotator": "ana"})
    torch.manual_seed(0)
    torch.save(models.resnet18(weights=None).state_dict(), tmp_path / "resnet18.pth")
    space = client.post("/api/jobs", json={"kind": "embed", "config": {"weights": str(tmp_path / "resnet18.pth"),
                                                                        "image_size": 32}}).json()["id"]
    worker = start_worker(data)
    try:
        assert wait_for(client, space, finished, timeout=120)["status"] == "succeeded"
        query = tmp_path / "query.png"
        query.write_bytes(png_bytes(3))  # image 3 again: it must come first, with its label
        page.goto(f"{base}/browse")
        page.get_by_role("link", name="Search by image…").click()
        page.locator('#search-form input[type="file"]').set_input_files(str(query))
        expect(page.locator("#query-preview")).to_be_visible()                  # the chosen image, not yet sent
        page.locator('#search-form input[name="k"]').fill("8")
        page.get_by_role("button", name="Search").click()
        items = page.locator("#search-results .similar-strip .strip-item")
        expect(items).to_have_count(8, timeout=30_000)
        assert int(items.first.get_attribute("data-id")) == imported[3]["id"]
        expect(items.first.locator(".similar-label")).to_have_text(fmnist.CLASSES[labels[3]])
        expect(page.locator("#search-results")).to_contain_text("query.png")
        assert "search=" in page.url
        page.reload()  # the address keeps the search: its answer shows again
        expect(items).to_have_count(8)

        bad = tmp_path / "notes.png"
        bad.write_bytes(b"not an image at all")
        page.locator('#search-form input[type="file"]').set_input_files(str(bad))
        page.get_by_role("button", name="Search").click()
        expect(page.locator("#search-results .error")).to_contain_text("cannot search with notes.png")
    finally:
        stop(worker)
