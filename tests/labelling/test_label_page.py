"""The labelling page's server side: save-and-next, skip, go back to one image."""

from __future__ import annotations

import re

from tests.factories import add_class, label, upload_fmnist


def stage_of(html: str) -> dict:
    m = re.search(r'data-image-id="(\d*)" data-prefetch="([\d,]*)"\s+data-last-event="(\d*)"', html)
    assert m, html[:500]
    return {"image": m.group(1), "prefetch": m.group(2), "last_event": m.group(3)}


def test_label_page_shows_first_unlabelled_with_keys(client):
    add_class(client, "shirt")
    add_class(client, "trouser", shortcut="t")
    ids = upload_fmnist(client, 5)
    label(client, ids[0], "shirt")
    html = client.get("/label").text
    assert stage_of(html) == {"image": str(ids[1]), "prefetch": ",".join(map(str, ids[2:5])), "last_event": ""}
    assert '<kbd>t</kbd> trouser' in html and "cheatsheet" in html
    assert 'id="remaining" data-n="4">4<' in html   # the count as a number too, for the page to count down


def test_save_and_next_records_everything_and_advances(client):
    add_class(client, "shirt")
    ids = upload_fmnist(client, 4)
    r = client.post(f"/label/{ids[0]}", data={
        "class": "1", "confidence": "0.3", "tags": ["dark", "cluttered"], "note": "hm", "annotator": "ana",
        "ms": "2345", "skip": "",
    })
    assert r.status_code == 200
    stage = stage_of(r.text)
    assert stage["image"] == str(ids[1]) and stage["last_event"]
    ev = client.get(f"/api/images/{ids[0]}").json()["history"][-1]
    assert ev["id"] == int(stage["last_event"])
    assert (ev["class"], ev["confidence"], ev["tags"], ev["note"], ev["annotator"], ev["ms"]) == (
        "shirt", 0.3, ["dark", "cluttered"], "hm", "ana", 2345)

    # Skipped images stay out of the queue; the queue wraps around to earlier ones.
    r = client.post(f"/label/{ids[1]}", data={"class": "shirt", "skip": f"{ids[2]}"})
    assert stage_of(r.text)["image"] == str(ids[3])
    r = client.get("/label/stage", params={"after": ids[3], "skip": ""})
    assert stage_of(r.text)["image"] == str(ids[2])


def test_stage_for_one_image_and_done(client):
    add_class(client, "shirt")
    ids = upload_fmnist(client, 2)
    r = client.get("/label/stage", params={"image": ids[1]})
    assert stage_of(r.text)["image"] == str(ids[1])
    client.post(f"/label/{ids[0]}", data={"class": "shirt"})
    r = client.post(f"/label/{ids[1]}", data={"class": "shirt"})
    assert "Nothing left to label" in r.text
    bad = client.post(f"/label/{ids[1]}", data={"class": "nope"})
    assert bad.status_code == 404 and "nope" in bad.json()["detail"]
    assert client.get("/label/stage", params={"skip": "a,b"}).status_code == 422


def test_label_page_without_classes_points_to_taxonomy(client):
    assert "taxonomy page" in client.get("/label").text
