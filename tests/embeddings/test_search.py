"""Search by an uploaded image: POST /api/similar -> a search job the real worker runs -> GET /api/similar/{job}."""

from __future__ import annotations

import time

import pytest
import torch
from torchvision import models

from app.embeddings.search import QUERIES
from tests.factories import labelled_snapshot, png_bytes, upload_fmnist
from tests.workers import FAST, finished, start_worker, stop, wait_for


def search(client, data: bytes, name: str = "query.png", **form) -> dict:
    r = client.post("/api/similar", files={"file": (name, data, "image/png")}, data=form)
    assert r.status_code == 202, r.text
    return r.json()


def answer(client, job: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/similar/{job}").json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.05)
    pytest.fail(f"search {job} never finished: {body}")


def test_search_by_upload_in_an_embed_space_finds_the_image_itself_and_imports_nothing(client, settings, tmp_path):
    r = client.post("/api/similar", files={"file": ("q.png", png_bytes(0), "image/png")})
    assert r.status_code == 422 and r.json()["detail"].startswith("no embeddings to search yet")
    ids = upload_fmnist(client, 40, start=300)
    torch.manual_seed(0)
    torch.save(models.resnet18(weights=None).state_dict(), tmp_path / "resnet18.pth")
    space = client.post("/api/jobs", json={"kind": "embed", "config": {"weights": str(tmp_path / "resnet18.pth"),
                                                                        "image_size": 32}}).json()["id"]
    worker = start_worker(settings.data_dir)
    try:
        assert wait_for(client, space, finished, timeout=120)["status"] == "succeeded"
        queued = search(client, png_bytes(305), "fmnist-00305.png", k="5")  # the 6th uploaded image, sent again
        assert queued["space"] == space and queued["status"] == "queued"
        body = answer(client, queued["job"])
        assert body["status"] == "succeeded", body["error"]
        assert body["space"] == space and body["filename"] == "fmnist-00305.png" and len(body["items"]) == 5
        top = body["items"][0]
        assert top["image"] == ids[5] and top["distance"] < 1e-3          # the same pixels, the same space
        assert [it["distance"] for it in body["items"]] == sorted(it["distance"] for it in body["items"])

        started = time.monotonic()  # a warm worker: model and index already loaded
        again = answer(client, search(client, png_bytes(7), job=str(space))["job"])
        print(f"search-by-upload latency with a warm worker: {time.monotonic() - started:.2f} s "
              f"(worker polls every 0.2 s here)")
        assert again["status"] == "succeeded" and len(again["items"]) == 20

        # Nothing imported, and the uploaded files are gone.
        assert client.get("/api/images", params={"limit": 1}).json()["total"] == 40
        assert not list((settings.data_dir / QUERIES).glob("*"))
        kinds = [j["kind"] for j in client.get("/api/jobs").json()["items"]]
        assert "embed" in kinds and "search" not in kinds                        # one per query: not listed
        assert client.get(f"/jobs/{queued['job']}").status_code == 200
        page = client.get(f"/similar?search={queued['job']}").text
        assert page.count('class="similar-label"') == 5 and f'href="/images/{ids[5]}"' in page
    finally:
        stop(worker)


def test_a_search_needs_a_finished_space(client):
    r = client.post("/api/similar", files={"file": ("notes.txt", b"hello", "text/plain")})
    assert r.status_code == 422  # no space yet: said first
    job = client.post("/api/jobs", json={"kind": "embed"}).json()["id"]
    r = client.post("/api/similar", files={"file": ("q.png", png_bytes(0), "image/png")}, data={"job": str(job)})
    assert r.status_code == 422 and f"job {job} is not a succeeded train or embed job" in r.json()["detail"]
    assert client.get(f"/api/similar/{job}").status_code == 404                     # not a search
    assert client.get("/api/similar/999999").status_code == 404
    assert client.post("/api/similar", files={"file": ("q.png", png_bytes(0), "image/png")},
                       data={"job": "999999"}).status_code == 404


@pytest.mark.slow  # a real worker trains two small folds and a final model (~20 s on two busy cores)
def test_search_by_upload_in_a_train_jobs_space_uses_its_model_and_says_what_it_cannot_read(client, settings):
    snap = labelled_snapshot(client, 60, classes=3, folds=2)
    items = client.get(f"/api/snapshots/{snap['id']}/items").json()["items"]
    train = client.post("/api/jobs", json={"snapshot": snap["id"], "config": {**FAST, "epochs": 2}}).json()["id"]
    worker = start_worker(settings.data_dir)
    try:
        assert wait_for(client, train, finished)["status"] == "succeeded"
        first = client.get(f"/api/images/{items[0]['image']}/file").content
        body = answer(client, search(client, first, k="10")["job"])
        assert body["status"] == "succeeded" and body["space"] == train, body["error"]
        assert body["items"][0]["image"] == items[0]["image"] and body["items"][0]["distance"] < 1e-3
        assert body["items"][0]["class"] == items[0]["class"]
        r = client.post("/api/similar", files={"file": ("notes.txt", b"not an image", "text/plain")})
        assert r.status_code == 422
        assert r.json()["detail"].startswith("cannot search with notes.txt: not an image Loupe can read")
        r = client.post("/api/similar", files={"file": ("q.png", first[:60], "image/png")})
        assert r.status_code == 422 and "cannot search with q.png" in r.json()["detail"]
        r = client.post("/api/similar", files={"file": ("q.png", first, "image/png")}, data={"k": "0"})
        assert r.status_code == 422
    finally:
        stop(worker)
