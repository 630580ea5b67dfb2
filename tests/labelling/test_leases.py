"""Labellers working one queue at once are shown different images; a lease that runs out frees its image."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from app.labelling.leases import LEASE_S, Leases
from tests.factories import add_class, upload_fmnist
from tests.labelling.test_label_page import stage_of


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def shown(response) -> int:
    assert response.status_code == 200, response.text
    return int(stage_of(response.text)["image"])


def test_two_labellers_get_different_images_all_the_way(client):
    add_class(client, "shirt")
    ids = upload_fmnist(client, 8)
    other = TestClient(client.app)   # a second browser: its own cookie jar, same server
    page_a, page_b = stage_of(client.get("/label").text), stage_of(other.get("/label").text)
    # Each is shown a different image, and what each prefetches is kept for it too.
    assert (page_a["image"], page_a["prefetch"]) == (str(ids[0]), ",".join(map(str, ids[1:4])))
    assert (page_b["image"], page_b["prefetch"]) == (str(ids[4]), ",".join(map(str, ids[5:8])))
    a, b = ids[0], ids[4]
    seen_a, seen_b = [a], [b]
    for _ in range(3):
        a = shown(client.post(f"/label/{a}", data={"class": "shirt", "annotator": "ana"}))
        b = shown(other.post(f"/label/{b}", data={"class": "shirt", "annotator": "bo"}))
        seen_a.append(a)
        seen_b.append(b)
    assert (seen_a, seen_b) == (ids[:4], ids[4:])   # what was prefetched is what came next
    # A reload keeps this browser's cookie: its own lease does not hide its image from it.
    assert shown(client.get("/label")) == a


def test_many_labellers_at_once_get_distinct_images(client):
    add_class(client, "shirt")
    ids = upload_fmnist(client, 12)
    browsers = [TestClient(client.app) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda c: shown(c.get("/label")), browsers))
    assert len(set(first)) == 8 and set(first) <= set(ids)


def test_an_expired_lease_brings_the_image_back(client):
    clock = Clock()
    client.app.state.leases = Leases(clock=clock)
    add_class(client, "shirt")
    ids = upload_fmnist(client, 4)
    walked_away = TestClient(client.app)
    assert shown(walked_away.get("/label")) == ids[0]
    assert shown(client.get("/label")) == ids[1]
    # A script without the cookie holds nothing, and is not shown leased images either.
    assert shown(TestClient(client.app).get("/label/stage")) == ids[2]
    clock.now += LEASE_S + 1
    assert shown(TestClient(client.app).get("/label/stage")) == ids[0]
    assert shown(client.get("/label")) == ids[0]
