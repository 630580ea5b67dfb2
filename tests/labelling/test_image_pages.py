"""Paging through images by keyset (`after` an id) over HTTP, bounded counts, and images.labelled."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.db.models import Image
from app.labelling.queries import ImageFilter, _filtered, count_rows, count_text, queue_count
from tests.factories import add_class, label, upload_fmnist


@pytest.fixture
def images(client):
    """12 images from two sources: 0-3 shirt, 4-5 shoe, the rest unlabelled."""
    add_class(client, "shirt")
    add_class(client, "shoe")
    ids = upload_fmnist(client, 8) + upload_fmnist(client, 4, start=8, source="web")
    for i in ids[:4]:
        label(client, i, "shirt")
    for i in ids[4:6]:
        label(client, i, "shoe")
    return ids


def walk(client, params: dict, limit: int) -> list[int]:
    """Every page of GET /api/images by its `next` cursor; the ids in the order served."""
    seen, after = [], None
    for _ in range(100):
        body = client.get("/api/images", params={**params, "limit": limit, **({"after": after} if after else {})})
        assert body.status_code == 200, body.text
        body = body.json()
        seen += [it["id"] for it in body["items"]]
        after = body["next"]
        if after is None:
            return seen
    raise AssertionError("the cursor never ran out")


@pytest.mark.parametrize("limit", [1, 5, 6, 100])
def test_cursor_pages_cover_every_match_exactly_once(client, images, limit):
    ids = images
    expected = {
        (): ids,
        (("status", "labelled"),): ids[:6],
        (("status", "unlabelled"),): ids[6:],
        (("class", "shirt"),): ids[:4],
        (("class", "shoe"), ("status", "labelled")): ids[4:6],
        (("source", "web"),): ids[8:],
        (("source", "fmnist"), ("status", "unlabelled")): ids[6:8],
    }
    for params, want in expected.items():
        got = walk(client, dict(params), limit)
        assert got == sorted(want), (params, got)
        total = client.get("/api/images", params={**dict(params), "limit": limit}).json()["total"]
        assert total == len(want)


def test_cursor_is_stable_while_images_are_labelled_and_imported(client, images):
    """Offset paging skips images when earlier ones leave the filter; the cursor neither skips nor repeats."""
    ids = images
    first = client.get("/api/images", params={"status": "unlabelled", "limit": 2}).json()
    assert [it["id"] for it in first["items"]] == ids[6:8]
    label(client, ids[6], "shirt")  # both leave "unlabelled" while someone pages through it
    label(client, ids[7], "shoe")
    new = upload_fmnist(client, 3, start=20)
    by_offset = client.get("/api/images", params={"status": "unlabelled", "limit": 2, "offset": 2}).json()
    assert [it["id"] for it in by_offset["items"]] == ids[10:12]  # ids[8:10] were skipped

    rest = walk(client, {"status": "unlabelled", "after": first["next"]}, 2)
    assert rest == ids[8:] + new
    assert first["next"] == ids[7]


@pytest.mark.parametrize("query, fragment", [
    ("after=abc", "after: Input should be a valid integer"),
    ("after=-1", "after: Input should be greater than or equal to 0"),
    (f"after={2**31}", "after: Input should be less than or equal to"),
    ("after=3&offset=2", "give one of offset, after and before"),
])
def test_a_bad_cursor_is_refused_with_its_reason(client, images, query, fragment):
    r = client.get(f"/api/images?{query}")
    assert r.status_code == 422
    assert fragment in r.json()["detail"]


def test_browse_pages_forward_and_back_by_cursor(client, images, monkeypatch):
    monkeypatch.setattr("app.web.routes.images.PAGE_SIZE", 5)
    html = {"Accept": "text/html"}

    def tiles(page: str) -> list[int]:
        return [int(i) for i in re.findall(r'class="tile" data-id="(\d+)"', page)]

    def link(page: str, text: str) -> str | None:
        found = re.search(rf'href="(/browse\?[^"]*)">{text}', page)
        return found.group(1).replace("&amp;", "&") if found else None

    page = client.get("/browse?source=fmnist", headers=html).text
    pages = [tiles(page)]
    assert link(page, "← previous") is None
    while (nxt := link(page, "next →")) is not None:
        assert "source=fmnist" in nxt
        page = client.get(nxt, headers=html).text
        pages.append(tiles(page))
    assert pages == [images[0:5], images[5:8]]
    back = client.get(link(page, "← previous"), headers=html).text
    assert tiles(back) == images[0:5]
    assert "8 images" in back


def test_counts_stop_at_the_cap(db, images):
    with db.reading() as s:
        everything = _filtered(s, ImageFilter(), [Image.id], labels=False)
        assert count_rows(s, everything) == 12
        assert count_rows(s, everything, cap=5) == 6
        assert count_rows(s, everything, cap=12) == 12
        # The unlabelled queue is read off the per-source counters: exact, whatever the cap.
        assert queue_count(s, "unlabelled", cap=3) == queue_count(s, "unlabelled") == 6
    assert (count_text(6, cap=5), count_text(5, cap=5), count_text(1001)) == ("5+", "5", "1,000+")
    assert count_text(1001, exact=True) == "1,001"


def test_labelled_follows_the_current_label_through_undo(client, db, images):
    def labelled(image_id):
        with db.reading() as s:
            return s.scalar(select(Image.labelled).where(Image.id == image_id))

    relabelled, undone = images[10], images[11]
    assert labelled(relabelled) is False
    label(client, relabelled, "shirt")
    label(client, relabelled, "shoe")
    assert labelled(relabelled) is True
    event = label(client, undone, "shirt")
    assert labelled(undone) is True
    r = client.post(f"/api/images/{undone}/labels/undo", json={"event": event["id"]})
    assert r.status_code == 201, r.text
    assert labelled(undone) is False  # its current label now has no class
    assert walk(client, {"status": "unlabelled"}, 100) == images[6:10] + [undone]
