"""GET /api/images's `total` read off counters (one class: class_counts; one split: the latest snapshot's frozen
sizes) or after a substring test (tags) equals the images the filter lists, through relabels, a new snapshot
and tags that contain one another (issue 16: those counts read every match at a million images)."""

from __future__ import annotations

from tests.factories import add_class, label, upload_fmnist


def _walk(client, params: dict) -> tuple[int, list[int]]:
    """(total, every listed id) of a filter, following the keyset cursor."""
    ids, after, total = [], None, None
    while True:
        r = client.get("/api/images", params={**params, "limit": 3, **({"after": after} if after else {})})
        assert r.status_code == 200, (params, r.text)
        body = r.json()
        total = body["total"] if total is None else total
        assert body["total"] == total
        ids += [i["id"] for i in body["items"]]
        if not (after := body["next"]):
            return total, ids


def test_totals_equal_the_listed_images(client):
    add_class(client, "shirt")
    shoe = add_class(client, "shoe")
    for name, key in (("motion blur", "m"), ("blur", "k"), ("50%_off", "j")):
        assert client.post("/api/tags", json={"name": name, "key": key}).status_code == 201
    ids = upload_fmnist(client, 7) + upload_fmnist(client, 3, start=50, source="web")
    label(client, ids[0], "shirt", tags=["motion blur"])
    label(client, ids[1], "shirt", tags=["blur", "dark"])
    label(client, ids[2], "shoe", tags=["odd angle"])
    label(client, ids[3], "shoe", tags=["50%_off"])
    label(client, ids[7], "shirt")
    assert _walk(client, {"split": "none"}) == (10, ids) and _walk(client, {"split": "val"}) == (0, [])  # no snapshot
    r = client.post("/api/snapshots", json={"name": "half", "split": {"val": 0.5, "seed": 1, "folds": 2}})
    assert r.status_code == 201, r.text
    label(client, ids[7], "shoe")            # relabelled after the snapshot: a class count moves, a split's does not
    label(client, ids[4], "shirt", tags=["blur"])   # labelled after it: in no split of the latest snapshot

    filters = [{"class": "shirt"}, {"class": shoe["id"]}, {"class": "shoe", "status": "labelled"},
               {"class": "shirt", "status": "unlabelled"}, {"class": "shirt", "source": "web"},
               {"split": "train"}, {"split": "val"}, {"split": "none"}, {"split": "val", "status": "labelled"},
               {"split": "test"}, {"split": "train", "source": "web"}, {"split": "none", "status": "unlabelled"},
               {"tag": "blur"}, {"tag": "motion blur"}, {"tag": "odd angle"}, {"tag": "50%_off"}, {"tag": "dark"},
               {"tag": "blur", "class": "shirt"}]
    seen = {}
    for params in filters:
        total, listed = _walk(client, params)
        assert total == len(listed) == len(set(listed)), (params, total, listed)
        seen[tuple(params.items())] = listed
    assert seen[(("class", "shirt"),)] == [ids[0], ids[1], ids[4]]
    assert seen[(("class", "shirt"), ("status", "unlabelled"))] == []
    assert seen[(("tag", "blur"),)] == [ids[1], ids[4]]   # not "motion blur"
    assert seen[(("tag", "50%_off"),)] == [ids[3]]
    assert seen[(("split", "test"),)] == []   # an empty split (test 0.0)
    in_snapshot = set(seen[(("split", "train"),)]) | set(seen[(("split", "val"),)])
    assert in_snapshot == set(ids[:4] + ids[7:8]) and set(seen[(("split", "none"),)]) == set(ids) - in_snapshot
    assert client.get("/api/images", params={"split": "later"}).status_code == 422
