"""The map as of its analysis: the stamp, the changes since, the stored colours plus those changes (the
same as reading every row now), and the binary shape the page reads. Both databases."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from app.db.models import Flag
from app.embeddings import maps
from tests.embeddings.maps_data import stored_analysis
from tests.factories import add_class, label, upload_fmnist


@pytest.fixture
def mapped(client, settings, db):
    """30 real images, 12 labelled, one excluded, one flagged, a snapshot; an analysis that stored its state."""
    add_class(client, "coat")
    add_class(client, "bag")
    ids = upload_fmnist(client, 20) + upload_fmnist(client, 10, start=100, source="web")
    for i in ids[:8]:
        label(client, i, "coat")
    for i in ids[8:12]:
        label(client, i, "bag")
    assert client.post(f"/api/images/{ids[25]}/exclude", json={"reason": "not clothing"}).status_code == 201
    with db.writing() as s:
        s.add(Flag(image_id=ids[3], kind="outlier", score=0.9, status="open", details={}))
        s.commit()
    r = client.post("/api/snapshots", json={"name": "s1", "split": {"val": 0.25, "seed": 0, "folds": 2}})
    assert r.status_code == 201, r.text
    xy = np.array([[(k % 6) / 3 - 1, (k // 6) / 3 - 1] for k in range(len(ids))], dtype=np.float32)
    return {"ids": ids, "xy": xy, "job": stored_analysis(db, settings, ids, xy, space=5, state=True)}


def _same(a: maps.MapData, b: maps.MapData) -> None:
    assert a.ids.tolist() == b.ids.tolist() and np.array_equal(a.xy, b.xy)
    for field in ("class_id", "source_id", "unlabelled", "excluded", "flagged", "split"):
        assert getattr(a, field).tolist() == getattr(b, field).tolist(), field
    assert a.snapshot == b.snapshot


def test_a_fresh_analysis_says_nothing_changed_and_its_stored_colours_are_the_live_ones(client, settings, db, mapped):
    body = client.get("/api/embeddings/map").json()
    when = body["as_of"]
    assert when["job"] == mapped["job"] and when["at"] and when["colours"] == "current"
    assert when["since"] == {"labels": 0, "exclusions": 0, "images": 0} and when["refreshing"] is None
    page = client.get("/map").text
    assert 'data-stale="false"' in page and "no label or exclusion changed since" in page
    assert 'id="map-refresh"' not in page  # nothing to refresh
    with db.reading() as s:
        analysis = maps.map_analysis(s, settings)
        _same(maps._stored_data(s, analysis), maps._live_data(s, analysis))


def test_labels_exclusions_and_imports_since_are_counted_and_shown_current_and_the_page_says_stale(
        client, settings, db, mapped):
    ids = mapped["ids"]
    label(client, ids[0], "bag")  # relabelled
    label(client, ids[15], "coat")  # labelled for the first time
    event = label(client, ids[16], "coat")
    r = client.post(f"/api/images/{ids[16]}/labels/undo", json={"event": event["id"]})  # and taken back
    assert r.status_code == 201, r.text
    assert client.post(f"/api/images/{ids[25]}/include", json={"reason": "it is"}).status_code == 201
    assert client.post(f"/api/images/{ids[5]}/exclude", json={"reason": "blurred"}).status_code == 201
    upload_fmnist(client, 2, start=300, source="later")
    body = client.get("/api/embeddings/map").json()
    since = body["as_of"]["since"]
    assert since["labels"] >= 4 and since["exclusions"] == 2 and since["images"] == 2
    items = {it["image"]: it for it in body["items"]}
    assert items[ids[0]]["class"] == "bag" and items[ids[15]]["class"] == "coat"
    assert items[ids[16]]["class"] is None and items[ids[16]]["unlabelled"]
    assert not items[ids[25]]["excluded"] and items[ids[5]]["excluded"]
    with db.reading() as s:  # stored state + the events since == every row read now
        analysis = maps.map_analysis(s, settings)
        _same(maps._stored_data(s, analysis), maps._live_data(s, analysis))
    page = client.get("/map").text
    assert 'data-stale="true"' in page and "label changes and 2 exclusion changes since" in page
    assert "2 images imported since this analysis are not on the map yet" in page
    assert 'id="map-refresh"' in page and 'action="/jobs/analyse"' in page
    # The next analysis saw all of it: fresh again.
    stored_analysis(db, settings, ids, mapped["xy"], space=5, state=True)
    fresh = client.get("/api/embeddings/map").json()["as_of"]
    assert fresh["since"] == {"labels": 0, "exclusions": 0, "images": 2}  # the two new ones are still not on it
    stored_analysis(db, settings, ids + list(range(ids[-1] + 1, ids[-1] + 3)),
                    np.zeros((len(ids) + 2, 2), np.float32), space=5, state=True)
    assert client.get("/api/embeddings/map").json()["as_of"]["since"] == {"labels": 0, "exclusions": 0, "images": 0}
    assert "no label or exclusion changed since" in client.get("/map").text


def test_a_new_snapshot_since_the_analysis_gives_its_splits(client, settings, db, mapped):
    ids = mapped["ids"]
    label(client, ids[14], "bag")
    r = client.post("/api/snapshots", json={"name": "s2", "split": {"val": 0.5, "seed": 1, "folds": 2}})
    assert r.status_code == 201, r.text
    body = client.get("/api/embeddings/map").json()
    assert body["snapshot"] == r.json()["id"]
    assert {it["image"]: it for it in body["items"]}[ids[14]]["split"] in ("train", "val", "test")
    with db.reading() as s:
        analysis = maps.map_analysis(s, settings)
        _same(maps._stored_data(s, analysis), maps._live_data(s, analysis))


def test_the_binary_shape_carries_what_the_columns_do(client, mapped):
    label(client, mapped["ids"][19], "bag")
    c = client.get("/api/embeddings/map", params={"format": "columns"}).json()
    r = client.get("/api/embeddings/map", params={"format": "binary"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    raw = r.content
    (length,) = struct.unpack("<I", raw[:4])
    import json

    header = json.loads(raw[4:4 + length])
    assert header["n"] == len(c["image"]) and header["classes"] == c["classes"] and header["as_of"] == c["as_of"]
    col = {}
    for spec in header["columns"]:
        assert spec["offset"] % 4 == 0 and spec["offset"] >= 4 + length
        col[spec["name"]] = np.frombuffer(raw, dtype=spec["dtype"], count=header["n"], offset=spec["offset"])
    assert col["image"].tolist() == c["image"] and col["x"].tolist() == c["x"] and col["y"].tolist() == c["y"]
    assert col["class"].tolist() == c["class"] and col["source"].tolist() == c["source"]
    assert col["split"].tolist() == c["split"]
    bits = header["marks"]
    for name in ("flagged", "unlabelled", "excluded"):
        assert ((col["marks"] & bits[name]) > 0).astype(int).tolist() == c[name], name
    assert len(raw) <= 4 + length + 14 * header["n"] + 4 * len(header["columns"])


def test_an_analysis_that_recorded_no_stamp_is_read_live_and_says_it_is_undated(client, settings, db):
    add_class(client, "coat")
    ids = upload_fmnist(client, 5)
    stored_analysis(db, settings, ids, np.zeros((5, 2), np.float32))
    label(client, ids[0], "coat")
    body = client.get("/api/embeddings/map").json()
    assert body["as_of"]["at"] is None and body["as_of"]["colours"] == "live"
    assert {it["image"]: it for it in body["items"]}[ids[0]]["class"] == "coat"
    page = client.get("/map").text
    assert "did not record when it read the labels" in page and 'id="map-refresh"' in page
