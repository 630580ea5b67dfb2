"""The browse page's page count, previous link and empty state; the image page's flags, snapshots, exclusions
and bulk history (server-rendered HTML; the browser test clicks through the same pages)."""

from __future__ import annotations

import re

from app.db.models import Flag
from tests.factories import add_class, labelled_snapshot, upload_fmnist

HTML = {"Accept": "text/html"}


def test_browse_counts_pages_both_ways_and_says_when_nothing_matches(client, monkeypatch):
    monkeypatch.setattr("app.web.routes.images.PAGE_SIZE", 4)
    upload_fmnist(client, 10)
    first = client.get("/browse", headers=HTML).text
    assert "page 1 of 3" in first and "← previous" not in first
    nxt = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = client.get(nxt, headers=HTML).text
    assert "page 2 of 3" in second
    prev = re.search(r'rel="prev" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    assert "page 1 of 3" in client.get(prev, headers=HTML).text

    add_class(client, "coat")
    empty = client.get("/browse?class=coat", headers=HTML).text
    assert "No images match these filters" in empty and '<a href="/browse">clear filters</a>' in empty
    assert "page 1 of" not in empty
    assert "choose a class…" in first and re.search(r'<button type="submit" class="primary" disabled', first)


def test_image_page_shows_flags_snapshots_exclusions_and_the_bulk_action(client, db):
    snap = labelled_snapshot(client, 6, classes=2, folds=2)
    items = client.get(f"/api/snapshots/{snap['id']}/items").json()["items"]
    image, split = items[0]["image"], items[0]["split"]
    other = client.get(f"/api/images/{image}").json()["label"]["class"]
    with db.writing() as s:
        s.add(Flag(image_id=image, kind="mislabel", score=0.87, status="open", details={}))
        s.commit()
    page = client.get(f"/images/{image}", headers=HTML).text
    assert "mislabel" in page and "0.87" in page and re.search(r'href="/review\?flag=\d+">review', page)
    assert snap["name"] in page and f"<td>{split}</td>" in page
    assert "Never excluded." in page and "Exclude from the dataset" in page

    action = client.post("/api/labels/bulk", json={"images": [image], "class": other, "confidence": 0.5}).json()
    client.post(f"/api/images/{image}/exclude", json={"reason": "a blurred duplicate"})
    page = client.get(f"/images/{image}", headers=HTML).text
    assert f"bulk action #{action['id']}" in page and f'data-action="{action["id"]}"' in page
    assert "a blurred duplicate" in page and "Include again" in page
    assert "No open flags." in page  # the exclusion closed the flag
    undo = client.post(f"/api/labels/bulk/{action['id']}/undo", json={}).json()
    page = client.get(f"/images/{image}", headers=HTML).text
    assert f"(undone by #{undo['id']})" in page and 'class="bulk-undo-old"' not in page
