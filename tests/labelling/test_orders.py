"""Queue orders "diverse" and "weakest-source" on real images in the database, through the page and the API."""

from __future__ import annotations

import re

import numpy as np

from app.artifacts import job_dir
from app.db.models import Job
from app.embeddings import analyses
from app.labelling.queries import queue_ids
from tests.factories import add_class, finish_train, label, labelled_snapshot, stage_image, upload_fmnist


def write_analysis(db, settings, *, diverse: list[int], analysed: list[int]) -> int:
    """A succeeded analyse job whose result files hold this diverse order, as the worker records one."""
    with db.writing() as s:
        job = Job(kind="analyse", snapshot_id=None, config={"space": 0}, status="succeeded", notes=[], artifacts={})
        s.add(job)
        s.flush()
        folder = job_dir(settings, job.id)
        files = {"ids": analyses.save(folder, "ids", np.array(sorted(analysed), dtype=np.int64)),
                 "diverse": analyses.save(folder, "diverse", np.array(diverse, dtype=np.int64))}
        job.artifacts = {"space": 0, "files": files}
        s.commit()
        return job.id


def note_of(html: str) -> str | None:
    found = re.search(r'<p class="order-note">([^<]*)</p>', html)
    return found.group(1) if found else None


def test_diverse_order_follows_the_analysis_and_passes_over_images_labelled_since(client, db, settings):
    add_class(client, "top")
    ids = upload_fmnist(client, 10)

    def diverse(**kw):
        with db.reading() as s:
            return queue_ids(s, order="diverse", settings=settings, **kw)

    # No analysis yet: import order (no model either), and the page and the API say so.
    assert diverse(n=3) == ids[:3]
    r = client.get("/api/queue", params={"order": "diverse", "n": 3}).json()
    assert r["images"] == ids[:3] and r["in_force"] == "import"
    assert r["note"] == "No analysis of the embeddings yet, so this is import order."
    assert note_of(client.get("/label", params={"order": "diverse"}).text) == r["note"]

    order = [ids[7], ids[2], ids[9], ids[0], ids[5]]
    write_analysis(db, settings, diverse=order, analysed=ids)
    assert diverse(n=4) == order[:4]
    label(client, ids[2], "top")                                          # labelled since the analysis
    assert client.post(f"/api/images/{ids[9]}/exclude", json={"reason": "blurred"}).status_code == 201
    assert diverse(n=3) == [ids[7], ids[0], ids[5]]
    # Then the rest, in import order.
    assert diverse(n=6) == [ids[7], ids[0], ids[5], ids[1], ids[3], ids[4]]
    assert diverse(n=2, skip=[ids[7]]) == [ids[0], ids[5]]
    # After an image of the order, it goes on from there, and wraps round to what was passed.
    assert diverse(n=3, after=ids[0]) == [ids[5], ids[7], ids[0]]

    r = client.get("/api/queue", params={"order": "diverse", "n": 2}).json()
    assert r == {"queue": "unlabelled", "order": "diverse", "in_force": "diverse", "note": None,
                 "images": [ids[7], ids[0]]}
    html = client.get("/label", params={"order": "diverse"}).text
    assert stage_image(html) == ids[7] and note_of(html) is None
    assert '<b aria-current="true">diverse</b>' in html
    top = client.get("/api/taxonomy").json()["classes"][0]["id"]
    r = client.post(f"/label/{ids[7]}", data={"class": str(top), "order": "diverse"})
    assert stage_image(r.text) == ids[0]                                  # the label page goes on in the order
    label(client, ids[0], "top")
    assert diverse(n=2) == [ids[5], ids[1]]                               # the labelled stretch is passed over


def test_weakest_source_first_draws_from_the_source_the_model_does_worst_on(client, db, settings):
    snap = labelled_snapshot(client, 12, classes=3, folds=2, source="stock")
    stock = upload_fmnist(client, 2, start=2000, source="stock")
    web = upload_fmnist(client, 3, start=3000, source="web")
    new = upload_fmnist(client, 2, start=4000, source="new")

    def weakest(**kw):
        with db.reading() as s:
            return queue_ids(s, order="weakest-source", settings=settings, **kw)

    assert weakest(n=3) == stock[:2] + web[:1]                            # nothing measured: import order
    assert client.get("/api/queue", params={"order": "weakest-source"}).json()["note"] == (
        "No out-of-sample accuracy per source yet, so this is import order.")

    job = finish_train(client, db, snap, per_source={"stock": 0.94, "web": 0.61},
                       suggestions={web[2]: [0.4, 0.35, 0.25], web[0]: [0.9, 0.05, 0.05], stock[1]: [0.5, 0.3, 0.2]})
    # web (61 %) before stock (94 %), most uncertain first within each, then the source never measured.
    assert weakest(n=7) == [web[2], web[0], web[1], stock[1], stock[0], new[0], new[1]]
    assert weakest(n=2, skip=[web[2]]) == [web[0], web[1]]
    html = client.get("/label", params={"order": "weakest-source"}).text
    assert stage_image(html) == web[2]
    assert note_of(html) == f"From web: 61% out-of-sample accuracy (job #{job}), the weakest source."

    top = client.get("/api/taxonomy").json()["classes"][0]["id"]
    for image in web:
        label(client, image, top)
    r = client.post(f"/label/{stock[1]}", data={"class": str(top), "order": "weakest-source"})
    assert stage_image(r.text) == stock[0]
    assert note_of(r.text) == f"From stock: 94% out-of-sample accuracy (job #{job}), weakest source no. 2."
    label(client, stock[0], top)
    r = client.get("/api/queue", params={"order": "weakest-source"}).json()
    assert r["images"] == new and r["in_force"] == "weakest-source"
    assert r["note"] == "From new: no out-of-sample accuracy measured for it yet (the measured sources are done)."


def test_unknown_orders_and_queues_are_refused_with_the_list(client):
    for path in ("/label", "/api/queue", "/label/stage"):
        r = client.get(path, params={"order": "sideways"})
        assert r.status_code == 422, path
        assert "import, uncertain, diverse, weakest-source" in r.text
    assert client.get("/api/queue", params={"queue": "nowhere"}).status_code == 422
    assert client.get("/api/queue", params={"n": 0}).status_code == 422
    # The other queues take any known order and keep to theirs.
    r = client.get("/api/queue", params={"queue": "rereview", "order": "diverse"})
    assert r.status_code == 200 and r.json()["images"] == [] and r.json()["in_force"] == "import"


def test_the_diverse_walk_keeps_its_frontier_and_an_image_unlabelled_behind_it_still_comes(client, db, settings,
                                                                                         monkeypatch):
    from app.labelling import orders

    monkeypatch.setattr(orders, "FIRST_BATCH", 2)
    monkeypatch.setattr(orders, "BATCH_MAX", 2)
    add_class(client, "top")
    ids = upload_fmnist(client, 10)
    order = [ids[i] for i in (3, 8, 1, 6, 0, 9, 4)]
    job = write_analysis(db, settings, diverse=order, analysed=ids)
    events = {i: label(client, i, "top")["id"] for i in order[:4]}   # labelled since the analysis

    def diverse(**kw):
        with db.reading() as s:
            return queue_ids(s, order="diverse", settings=settings, **kw)

    monkeypatch.setattr(orders, "FRONTIER_MAX", 2)                      # too short to reach the first waiting
    assert diverse(n=2) == [ids[0], ids[2]]                               # so import order, this time
    monkeypatch.setattr(orders, "FRONTIER_MAX", 64)
    assert diverse(n=2) == [order[4], order[5]]                           # on from where the last walk stopped
    key = next(k for k in orders._frontier if k[1] == job)
    assert orders._frontier[key] == 4
    # An undo behind the frontier: the image is not walked again, but the import-order tail brings it.
    r = client.post(f"/api/images/{order[0]}/labels/undo", json={"event": events[order[0]]})
    assert r.status_code == 201, r.text
    assert diverse(n=5) == [order[4], order[5], order[6], ids[2], order[0]]


def test_most_uncertain_first_without_a_model_says_it_is_import_order(client):
    add_class(client, "top")
    ids = upload_fmnist(client, 2)
    html = client.get("/label", params={"order": "uncertain"}).text
    assert stage_image(html) == ids[0]
    assert note_of(html) == "No trained model yet, so this is import order."
    assert '<b aria-current="true">most uncertain first</b>' in html
    assert note_of(client.get("/label").text) is None


def test_every_order_with_nothing_to_label(client, db, settings):
    add_class(client, "top")
    write_analysis(db, settings, diverse=[], analysed=[])
    for order in ("import", "uncertain", "diverse", "weakest-source"):
        r = client.get("/label", params={"order": order})
        assert r.status_code == 200 and "Nothing left to label." in r.text, order
        assert client.get("/api/queue", params={"order": order}).json()["images"] == []


def test_a_source_whose_suggestions_are_used_up_goes_on_in_import_order(client, db, settings):
    snap = labelled_snapshot(client, 12, classes=3, folds=2, source="stock")
    web = upload_fmnist(client, 3, start=3000, source="web")
    finish_train(client, db, snap, per_source={"stock": 0.94, "web": 0.61},
                 suggestions={web[2]: [0.4, 0.35, 0.25], web[1]: [0.9, 0.05, 0.05]})

    def weakest(**kw):
        with db.reading() as s:
            return queue_ids(s, order="weakest-source", settings=settings, **kw)

    event = label(client, web[2], "t-shirt")["id"]
    assert weakest(n=1, skip=[web[1]]) == [web[0]]      # web[1] is passed over (shown elsewhere): not used up
    assert weakest(n=2) == [web[1], web[0]]             # the model's guess first, then the unguessed
    label(client, web[1], "t-shirt")
    assert weakest(n=2) == [web[0]]                     # no guessed web image waits: web goes on in import order
    assert client.post(f"/api/images/{web[2]}/labels/undo", json={"event": event}).status_code == 201
    assert weakest(n=2) == [web[0], web[2]]             # and one unlabelled again waits in import order there


def test_two_labellers_share_the_diverse_order_without_seeing_the_same_image(client, db, settings):
    from fastapi.testclient import TestClient

    add_class(client, "top")
    ids = upload_fmnist(client, 10)
    order = [ids[i] for i in (9, 2, 7, 4, 0, 5, 8, 1, 3, 6)]
    write_analysis(db, settings, diverse=order, analysed=ids)
    other = TestClient(client.app)   # a second browser: its own cookie jar, same server
    a = stage_image(client.get("/label", params={"order": "diverse"}).text)
    b = stage_image(other.get("/label", params={"order": "diverse"}).text)
    assert (a, b) == (order[0], order[4])   # each holds the image it shows and the three it prefetches
    seen = [a, b]
    for _ in range(3):
        a = stage_image(client.post(f"/label/{a}", data={"class": "top", "order": "diverse"}).text)
        b = stage_image(other.post(f"/label/{b}", data={"class": "top", "order": "diverse"}).text)
        seen += [a, b]
    assert sorted(seen) == sorted(order[:8])
    assert seen[::2] == order[:4] and seen[1::2] == order[4:8]
