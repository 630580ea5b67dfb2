"""The latest model's suggestions on the labelling page, and the most-uncertain-first queue."""

from __future__ import annotations

import re

from app.labelling.queries import queue_ids
from tests.factories import finish_train, labelled_snapshot, stage_image, upload_fmnist


def finish_with(client, db, snap, suggestions: dict[int, list[float]]) -> int:
    return finish_train(client, db, snap, suggestions=suggestions, accuracy=1.0)


def test_top_three_suggestions_and_uncertain_first(client, db):
    snap = labelled_snapshot(client, 12, classes=3, folds=2)
    names = client.get(f"/api/snapshots/{snap['id']}").json()["classes"]
    new = upload_fmnist(client, 3, start=1000, source="new")
    finish_with(client, db, snap, {
        new[0]: [0.9, 0.06, 0.04],     # sure
        new[1]: [0.4, 0.35, 0.25],     # unsure: smallest margin
        new[2]: [0.1, 0.2, 0.7],
    })
    html = client.get("/label", params={"image": new[1]}).text
    assert re.findall(r'class="guess[^"]*">([^<]+)<', html) == [f"{names[0]} 40%", f"{names[1]} 35%", f"{names[2]} 25%"]
    top = client.get("/api/taxonomy").json()["classes"]
    top_id = next(c["id"] for c in top if c["name"] == names[0])
    assert f'data-top-class="{top_id}"' in html

    assert stage_image(client.get("/label", params={"order": "uncertain"}).text) == new[1]
    assert stage_image(client.get("/label").text) == new[0]      # import order by default
    r = client.post(f"/label/{new[1]}", data={"class": str(top_id), "order": "uncertain"})
    assert stage_image(r.text) == new[2]                          # margin 0.5 before 0.84
    assert client.get("/label", params={"order": "sideways"}).status_code == 422


def test_suggestions_follow_a_merge(client, db):
    snap = labelled_snapshot(client, 12, classes=3, folds=2)
    names = client.get(f"/api/snapshots/{snap['id']}").json()["classes"]
    new = upload_fmnist(client, 1, start=1000, source="new")
    finish_with(client, db, snap, {new[0]: [0.3, 0.3, 0.4]})
    r = client.post("/api/taxonomy/changes", json={"op": "merge", "classes": names[:2], "into": "top wear"})
    assert r.status_code == 201
    html = client.get("/label", params={"image": new[0]}).text
    assert re.findall(r'class="guess[^"]*">([^<]+)<', html) == ["top wear 60%", f"{names[2]} 40%"]


def test_uncertain_queue_walks_suggestions_then_import_order(client, db):
    snap = labelled_snapshot(client, 12, classes=3, folds=2)
    top = client.get(f"/api/snapshots/{snap['id']}").json()["classes"][0]
    new = upload_fmnist(client, 4, start=1000, source="new")
    finish_with(client, db, snap, {new[2]: [0.5, 0.3, 0.2], new[3]: [0.4, 0.35, 0.25]})

    def uncertain(**kw):
        with db.reading() as s:
            return queue_ids(s, order="uncertain", **kw)

    # The model's suggestions by margin, then the images it never saw, in import order.
    assert uncertain(n=4) == [new[3], new[2], new[0], new[1]]
    assert uncertain(n=2, skip=[new[3]]) == [new[2], new[0]]
    assert client.post(f"/api/images/{new[3]}/labels", json={"class": top}).status_code == 201
    assert uncertain(n=4) == [new[2], new[0], new[1]]  # labelled since the job: passed over
