"""GET /api/snapshots/{id}/items pages (issue 16: a 300,000-item snapshot was 22 MB in one answer): `limit`,
`offset` and the keyset cursor `after`/`next` walk every item exactly once, in image id order."""

from __future__ import annotations

from tests.factories import labelled_snapshot


def test_pages_cover_every_item_once_by_cursor_and_by_offset(client):
    snap = labelled_snapshot(client, 23, classes=3, folds=3)
    whole = client.get(f"/api/snapshots/{snap['id']}/items").json()   # the default page holds a small snapshot
    assert whole["total"] == snap["count"] == len(whole["items"]) == 23 and whole["next"] is None
    ids = [item["image"] for item in whole["items"]]
    assert ids == sorted(ids)
    assert set(whole["items"][0]) >= {"image", "class", "split", "fold"}

    seen, after = [], None
    while True:
        page = client.get(f"/api/snapshots/{snap['id']}/items",
                          params={"limit": 5, **({"after": after} if after is not None else {})}).json()
        assert page["total"] == 23 and len(page["items"]) <= 5
        seen += page["items"]
        after = page["next"]
        if after is None:
            break
        assert after == page["items"][-1]["image"]
    assert seen == whole["items"]

    by_offset = [client.get(f"/api/snapshots/{snap['id']}/items", params={"limit": 10, "offset": o}).json()
                 for o in (0, 10, 20)]
    assert [i for p in by_offset for i in p["items"]] == whole["items"]
    assert [p["next"] is None for p in by_offset] == [False, False, True]


def test_bad_paging_is_a_clear_error(client):
    snap = labelled_snapshot(client, 4, classes=2, folds=2)
    for params, says in (({"limit": 0}, "limit must be from 1 to 50,000"),
                         ({"limit": 50_001}, "limit must be from 1 to 50,000"),
                         ({"offset": 1, "after": 2}, "give one of offset and after")):
        r = client.get(f"/api/snapshots/{snap['id']}/items", params=params)
        assert r.status_code == 422 and r.json()["detail"] == says, (params, r.text)
    assert client.get(f"/api/snapshots/{snap['id']}/items", params={"limit": "x"}).status_code == 422
