"""The map: GET /api/embeddings/map, the /map page, and map regions as a Browse filter (bulk actions too)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.db.models import Flag, Job
from app.embeddings import regions
from app.errors import InvalidInput
from tests.embeddings.maps_data import stored_analysis
from tests.factories import add_class, label, upload_fmnist

LONG = "bag" + " with a very long name" * 4


def test_point_in_polygon_by_the_even_odd_rule_concave_lassos_too():
    # A "U": two uprights joined at the bottom; the notch between them is outside.
    u = np.array([[0, 0], [3, 0], [3, 3], [2, 3], [2, 1], [1, 1], [1, 3], [0, 3]], dtype=float)
    points = np.array([[0.5, 2], [2.5, 2], [1.5, 0.5], [1.5, 2], [4, 1], [-1, 1], [1.5, 3.5]])
    assert regions.inside(points, u).tolist() == [True, True, True, False, False, False, False]
    # A bow tie crossing itself: both lobes are inside, the space above and below the crossing is not.
    bow = np.array([[0, 0], [2, 2], [2, 0], [0, 2]], dtype=float)
    assert regions.inside(np.array([[0.2, 1], [1.8, 1], [1, 1.8], [1, 0.2]]), bow).tolist() == [True, True, False, False]
    assert regions.inside(np.zeros((0, 2)), u).tolist() == []


def test_the_even_odd_test_agrees_with_a_brute_force_winding_count():
    rng = np.random.default_rng(3)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 40))
    radius = rng.uniform(0.2, 1.0, 40)  # a star-shaped, very concave lasso
    poly = np.c_[radius * np.cos(angles), radius * np.sin(angles)]
    pts = rng.uniform(-1, 1, (2000, 2))
    got = regions.inside(pts, poly)

    def winding(p):
        total = 0.0
        for a, b in zip(poly, np.roll(poly, -1, axis=0)):
            u, v = a - p, b - p
            total += math.atan2(u[0] * v[1] - u[1] * v[0], u @ v)
        return abs(total) > np.pi

    assert got.tolist() == [winding(p) for p in pts]
    assert 0.1 < got.mean() < 0.9


@pytest.mark.parametrize("text", ["", "1,2,3", "1,2,3,4", "a,b,c,d,e,f", "1,2,3,4,5,nan", "1,2,3,4,5,inf",
                                  ",".join(["0"] * (2 * regions.MAX_VERTICES + 2))])
def test_a_region_that_is_no_polygon_is_refused_with_a_reason(text):
    with pytest.raises(InvalidInput):
        regions.parse(text)


def test_without_an_analysis_the_api_says_so_and_the_page_says_how_to_get_one(client):
    r = client.get("/api/embeddings/map")
    assert r.status_code == 404 and "Train a model" in r.json()["detail"]
    page = client.get("/map")
    assert page.status_code == 200 and "No map yet" in page.text and 'href="/jobs"' in page.text
    assert client.get("/browse", params={"region": "0,0,1,0,1,1"}).status_code == 404


@pytest.fixture
def mapped(client, settings, db):
    """40 real images on a 2-D map laid out on a grid: some labelled, one excluded, one flagged, a snapshot."""
    add_class(client, "coat")
    add_class(client, LONG)
    ids = upload_fmnist(client, 30) + upload_fmnist(client, 10, start=100, source="web")
    for i in ids[:12]:
        label(client, i, "coat")
    for i in ids[12:20]:
        label(client, i, LONG)
    r = client.post(f"/api/images/{ids[25]}/exclude", json={"reason": "not clothing"})
    assert r.status_code == 201, r.text
    with db.writing() as s:
        s.add(Flag(image_id=ids[3], kind="outlier", score=0.99, status="open", details={}))
        s.commit()
    r = client.post("/api/snapshots", json={"name": "s1", "split": {"val": 0.25, "seed": 0, "folds": 2}})
    assert r.status_code == 201, r.text
    # Image k sits at ((k % 8) / 4 - 1, (k // 8) / 4 - 1): columns of 8, rows of 5.
    xy = np.array([[(k % 8) / 4 - 1, (k // 8) / 4 - 1] for k in range(len(ids))], dtype=np.float32)
    job = stored_analysis(db, settings, ids, xy, space=7)
    return {"ids": ids, "xy": xy, "job": job}


def test_the_map_has_every_image_with_finite_coordinates_and_its_marks(client, mapped):
    ids, job = mapped["ids"], mapped["job"]
    r = client.get("/api/embeddings/map")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["job"] == job and body["space"] == 7 and body["snapshot"] is not None
    items = {it["image"]: it for it in body["items"]}
    assert sorted(items) == sorted(ids)
    assert all(math.isfinite(it["x"]) and math.isfinite(it["y"]) for it in items.values())
    k = ids.index(ids[9])
    assert (items[ids[9]]["x"], items[ids[9]]["y"]) == pytest.approx(tuple(mapped["xy"][k]))
    assert items[ids[0]]["class"] == "coat" and not items[ids[0]]["unlabelled"]
    assert items[ids[12]]["class"].startswith("bag with") and items[ids[30]]["class"] is None
    assert items[ids[30]]["unlabelled"] and items[ids[30]]["source"] == "web" and items[ids[0]]["source"] == "fmnist"
    assert items[ids[25]]["excluded"] and not items[ids[24]]["excluded"]
    assert items[ids[3]]["flagged"] and sum(it["flagged"] for it in items.values()) == 1
    assert {items[i]["split"] for i in ids[:20]} <= {"train", "val", "test"} and items[ids[30]]["split"] is None
    # The page's shape carries the same facts, column by column.
    c = client.get("/api/embeddings/map", params={"job": job, "format": "columns"}).json()
    assert c["image"] == [it["image"] for it in body["items"]]
    # Fixed-point coordinates that divide back into exactly the items' floats (the page tests regions on them).
    assert [v / c["scale"] for v in c["x"]] == [it["x"] for it in body["items"]]
    assert [v / c["scale"] for v in c["y"]] == [it["y"] for it in body["items"]]
    for i, image in enumerate(c["image"]):
        it = items[image]
        assert (c["classes"][c["class"][i]] if c["class"][i] >= 0 else None) == it["class"]
        assert c["sources"][c["source"][i]] == it["source"]
        assert (c["splits"][c["split"][i]] if c["split"][i] >= 0 else None) == it["split"]
        assert (bool(c["flagged"][i]), bool(c["unlabelled"][i]), bool(c["excluded"][i])) == \
            (it["flagged"], it["unlabelled"], it["excluded"])
    # A label given after the analysis shows at once (the marks are read now, the points are the analysis').
    label(client, ids[30], "coat")
    again = {it["image"]: it for it in client.get("/api/embeddings/map").json()["items"]}
    assert again[ids[30]]["class"] == "coat" and not again[ids[30]]["unlabelled"]


def test_a_bad_job_is_refused_with_a_reason(client, mapped, db):
    with db.writing() as s:
        other = Job(kind="train", config={}, status="succeeded", artifacts={})
        failed = Job(kind="analyse", config={"space": 1}, status="failed", artifacts={})
        s.add_all([other, failed])
        s.commit()
        other_id, failed_id = other.id, failed.id
    assert client.get("/api/embeddings/map", params={"job": 10**9}).status_code == 404
    r = client.get("/api/embeddings/map", params={"job": other_id})
    assert r.status_code == 422 and "not an analysis" in r.json()["detail"]
    assert client.get("/api/embeddings/map", params={"job": failed_id}).status_code == 404
    for bad in ("0", "-1", "x", "1.5"):
        assert client.get("/api/embeddings/map", params={"job": bad}).status_code == 422
    assert client.get("/api/embeddings/map", params={"format": "csv"}).status_code == 422
    page = client.get("/map", params={"job": other_id})
    assert page.status_code == 422
    assert "has no map: it is failed" in client.get("/map", params={"job": failed_id}).text


def test_a_region_filters_browse_and_the_api_to_exactly_its_images(client, mapped):
    ids, job = mapped["ids"], mapped["job"]
    # A concave "L" over the map: the left column (x = -1) and the bottom row (y = -1).
    region = "-1.1,-1.1,1,-1.1,1,-0.9,-0.9,-0.9,-0.9,0.1,-1.1,0.1"
    want = sorted(ids[k] for k in range(len(ids)) if k % 8 == 0 or k // 8 == 0)
    got = client.get("/api/images", params={"analysis": job, "region": region, "limit": 100}).json()
    assert sorted(it["id"] for it in got["items"]) == want and got["total"] == len(want)
    # With the other filters: the region's images that are also labelled coat.
    coats = client.get("/api/images", params={"analysis": job, "region": region, "class": "coat"}).json()
    assert sorted(it["id"] for it in coats["items"]) == [i for i in want if ids.index(i) < 12]
    page = client.get("/browse", params={"analysis": job, "region": region})
    assert page.status_code == 200 and 'id="browse-region"' in page.text
    assert f'data-total="{len(want)}"' in page.text  # counted exactly, as the map counts it
    assert sorted(int(x) for x in _tile_ids(page.text)) == want
    assert client.get("/api/images", params={"analysis": job, "region": "1,2,3"}).status_code == 422
    assert client.get("/api/images", params={"analysis": job}).status_code == 422


def _tile_ids(html: str) -> list[str]:
    import re

    return re.findall(r'class="tile" data-id="(\d+)"', html)


def test_a_bulk_label_over_a_region_labels_exactly_its_images_and_undoes(client, mapped):
    ids, job = mapped["ids"], mapped["job"]
    region = "0.4,-0.6,1.1,-0.6,1.1,0.1,0.4,0.1"  # the top-right corner: x >= 0.5, y >= -0.5
    inside = [ids[k] for k in range(len(ids)) if (k % 8) / 4 - 1 >= 0.5 and (k // 8) / 4 - 1 >= -0.5]
    assert inside
    f = {"analysis": job, "region": region}
    dry = client.post("/api/labels/bulk", json={"filter": f, "class": "coat", "dry_run": True})
    assert dry.status_code == 200 and dry.json()["count"] == len(inside), dry.text
    done = client.post("/api/labels/bulk", json={"filter": f, "class": "coat", "expect": len(inside)})
    assert done.status_code == 201, done.text
    labelled = {i for i in ids if client.get(f"/api/images/{i}").json()["label"]}
    assert set(inside) <= labelled
    assert not (labelled - set(inside)) - set(ids[:20]) - {ids[25]}  # nothing outside the region changed
    undo = client.post(f"/api/labels/bulk/{done.json()['id']}/undo", json={})
    assert undo.status_code == 201, undo.text
    missing = client.post("/api/labels/bulk", json={"filter": {"analysis": job}, "class": "coat", "dry_run": True})
    assert missing.status_code == 422


def test_the_split_filter_reads_the_latest_snapshot(client, mapped):
    ids = mapped["ids"]
    items = {it["image"]: it for it in client.get("/api/embeddings/map").json()["items"]}
    for split in ("train", "val", "none"):
        got = client.get("/api/images", params={"split": split, "limit": 100}).json()["items"]
        want = sorted(i for i in ids if (items[i]["split"] or "none") == split)
        assert sorted(it["id"] for it in got) == want
    assert client.get("/api/images", params={"split": "nope"}).status_code == 422


def test_fixed_point_columns_divide_back_into_the_rounded_floats_for_any_coordinate():
    from app.embeddings import maps

    xy = np.random.default_rng(5).uniform(-1, 1, 100_000).astype(np.float32)
    rounded = np.round(xy.astype(np.float64), maps.ROUND)
    assert (np.array(maps._fixed(rounded)) / 10**maps.ROUND == rounded).all()


def test_an_analysis_of_no_images_is_an_empty_map_not_an_error(client, settings, db):
    job = stored_analysis(db, settings, [], np.zeros((0, 2), dtype=np.float32))
    body = client.get("/api/embeddings/map").json()
    assert {k: v for k, v in body.items() if k != "as_of"} == {"job": job, "space": 0, "snapshot": None, "items": []}
    c = client.get("/api/embeddings/map", params={"format": "columns"}).json()
    assert c["image"] == [] and c["x"] == [] and c["classes"] == []
    assert client.get("/map").status_code == 200
    assert client.get("/api/images", params={"analysis": job, "region": "0,0,1,0,1,1"}).json()["items"] == []


def test_images_imported_since_the_analysis_are_said_to_be_missing_from_the_map(client, mapped):
    """The map is the analysis' moment: images imported after it are not drawn, and the page says how many
    and offers the analysis again (the walk found 30 new images silently missing)."""
    assert 'id="map-newer"' not in client.get("/map").text
    new = upload_fmnist(client, 3, start=300, source="later")
    assert client.post(f"/api/images/{new[0]}/exclude", json={"reason": "blurred"}).status_code == 201
    page = client.get("/map").text
    assert 'id="map-newer"' in page and "2 images imported since this analysis are not on the map yet" in page
    assert 'action="/jobs/analyse"' in page
