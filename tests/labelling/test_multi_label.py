"""Multi-label taxonomies over HTTP: set-mode converts every label into a set through events, labels are sets
with their own confidences ("none of these" is an answer, not "unlabelled"), class filters and counts follow
the sets, merge / retire / split keep their meaning, and what is not built yet says so instead of degrading."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.db.models import CurrentLabelClass, LabelEvent
from tests.factories import add_class, label, upload_fmnist


def _multi(client) -> dict:
    r = client.post("/api/taxonomy/changes", json={"op": "set-mode", "mode": "multi-label"})
    assert r.status_code == 201, r.text
    return r.json()


def _sets(client, image_id: int):
    got = client.get(f"/api/images/{image_id}").json()["label"]
    return None if got is None else sorted(got["classes"])


def _label_set(client, image_id: int, classes, **fields) -> dict:
    r = client.post(f"/api/images/{image_id}/labels", json={"classes": classes, **fields})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def shop(client):
    for name in ("red", "dress", "on a model", "shoe"):
        add_class(client, name)
    return upload_fmnist(client, 6)


def test_set_mode_turns_each_label_into_a_set_through_events_and_never_goes_back(client, db, shop):
    label(client, shop[0], "red", confidence=0.7, tags=[], note="first look")
    label(client, shop[1], "dress")
    r = client.post(f"/api/images/{shop[2]}/labels", json={"classes": ["red"]})
    assert r.status_code == 422 and "needs a multi-label taxonomy" in r.json()["detail"]

    view = _multi(client)
    assert view["mode"] == "multi-label" and {c["name"]: c["count"] for c in view["classes"]} == {
        "red": 1, "dress": 1, "on a model": 0, "shoe": 0}
    image = client.get(f"/api/images/{shop[0]}").json()
    assert image["label"]["classes"] == ["red"] and image["label"]["class"] is None
    assert image["label"]["confidences"] == {"red": 0.7}
    assert [e["kind"] for e in image["history"]] == ["manual", "migration"]
    assert image["history"][-1]["note"] == "first look"                       # the event carries the rest forward
    assert client.get("/api/images", params={"status": "labelled"}).json()["total"] == 2
    last = client.get("/api/taxonomy/versions").json()["items"][-1]
    assert last["mode"] == "multi-label" and last["changes"][0]["op"] == "set-mode"
    assert last["changes"][0]["converted"] == 2 and "2 labels became sets" in last["changes"][0]["summary"]

    for change, words in (({"op": "set-mode", "mode": "multi-label"}, "already multi-label"),
                          ({"op": "set-mode", "mode": "single-label"}, "cannot become single-label"),
                          ({"op": "set-mode", "mode": "many"}, "'mode' must be")):
        r = client.post("/api/taxonomy/changes", json=change)
        assert r.status_code == 422 and words in r.json()["detail"], r.text
    number = client.get("/api/taxonomy").json()["version"]
    r = client.post("/api/taxonomy/changes", json={"op": "undo", "version": number})
    assert r.status_code == 422 and "cannot be undone" in r.json()["detail"]
    with db.reading() as s:  # nothing half-written by the refusals
        assert s.scalar(select(func.count()).select_from(LabelEvent)) == 4


def test_a_label_is_a_set_with_its_own_confidences_and_none_of_these_is_an_answer(client, shop):
    _multi(client)
    got = _label_set(client, shop[0], ["red", "dress"], confidence=0.9, confidences={"dress": 0.5}, tags=[])
    assert got["label"]["classes"] == ["red", "dress"] and got["label"]["confidences"] == {"red": 0.9, "dress": 0.5}
    assert got["classes"] == ["red", "dress"] and got["kind"] == "manual"
    none = _label_set(client, shop[1], [])
    assert none["label"] is not None and none["label"]["classes"] == []           # answered: none of these
    assert client.get("/api/images", params={"status": "unlabelled"}).json()["total"] == 4
    assert client.get("/api/images", params={"status": "labelled"}).json()["total"] == 2

    for body, status, words in (
            ({"class": "red"}, 422, "send 'classes'"),
            ({"classes": ["red", "red"]}, 422, "listed twice"),
            ({"classes": ["red"], "class": "red"}, 422, "not both"),
            ({"classes": ["purple"]}, 404, "no class named"),
            ({"classes": ["red"], "confidences": {"shoe": 0.5}}, 422, "not in 'classes'"),
            ({"classes": ["red"], "confidences": {"red": 2}}, 422, "from 0 to 1")):
        r = client.post(f"/api/images/{shop[2]}/labels", json=body)
        assert r.status_code == status and words in r.json()["detail"], (body, r.text)
    assert _sets(client, shop[2]) is None                                           # refusals wrote nothing

    # Undo puts the previous set back; undoing the first answer leaves the image unlabelled again.
    second = _label_set(client, shop[0], ["shoe"])
    r = client.post(f"/api/images/{shop[0]}/labels/undo", json={"event": second["id"]})
    assert r.status_code == 201 and r.json()["label"]["classes"] == ["red", "dress"], r.text
    assert r.json()["label"]["confidences"] == {"red": 0.9, "dress": 0.5}
    r = client.post(f"/api/images/{shop[1]}/labels/undo", json={"event": none["id"]})
    assert r.status_code == 201 and r.json()["label"] is None


def test_class_filters_and_counts_follow_the_sets(client, db, shop):
    _multi(client)
    _label_set(client, shop[0], ["red", "dress"])
    _label_set(client, shop[1], ["red"])
    _label_set(client, shop[2], ["dress", "on a model"])
    _label_set(client, shop[3], [])
    counts = {c["name"]: c["count"] for c in client.get("/api/taxonomy").json()["classes"]}
    assert counts == {"red": 2, "dress": 2, "on a model": 1, "shoe": 0}
    page = client.get("/api/images", params={"class": "dress", "limit": 1}).json()
    assert page["total"] == 2 and page["items"][0]["classes"] == ["red", "dress"]
    rest = client.get("/api/images", params={"class": "dress", "after": page["next"]}).json()
    assert [i["id"] for i in rest["items"]] == [shop[2]] and rest["next"] is None
    _label_set(client, shop[0], ["shoe"])                                            # a relabel moves the counts
    counts = {c["name"]: c["count"] for c in client.get("/api/taxonomy").json()["classes"]}
    assert counts == {"red": 1, "dress": 1, "on a model": 1, "shoe": 1}
    with db.reading() as s:
        assert s.scalar(select(func.count()).select_from(CurrentLabelClass)) == 4


def test_merge_unites_sets_retire_removes_a_class_and_split_rereviews_only_its_images(client, shop):
    _multi(client)
    _label_set(client, shop[0], ["red", "dress"], confidence=0.6, confidences={"dress": 0.8})
    _label_set(client, shop[1], ["red", "shoe"])
    _label_set(client, shop[2], ["on a model"])
    r = client.post("/api/taxonomy/changes", json={"op": "merge", "classes": ["red", "dress"], "into": "red dress"})
    assert r.status_code == 201, r.text
    first = client.get(f"/api/images/{shop[0]}").json()
    assert first["label"]["classes"] == ["red dress"] and first["label"]["confidences"] == {"red dress": 0.8}
    assert first["history"][-1]["kind"] == "migration"
    assert _sets(client, shop[1]) == ["red dress", "shoe"] and _sets(client, shop[2]) == ["on a model"]
    counts = {c["name"]: c["count"] for c in client.get("/api/taxonomy").json()["classes"]}
    assert counts == {"on a model": 1, "shoe": 1, "red dress": 2}

    r = client.post("/api/taxonomy/changes", json={"op": "retire", "class": "shoe"})
    assert r.status_code == 201, r.text
    assert _sets(client, shop[1]) == ["red dress"] and not client.get("/api/flags").json()["items"]

    r = client.post("/api/taxonomy/changes", json={"op": "split", "class": "red dress", "into": ["crimson", "scarlet"]})
    assert r.status_code == 201, r.text
    flagged = {f["image"] for f in client.get("/api/flags", params={"kind": "rereview"}).json()["items"]}
    assert flagged == {shop[0], shop[1]}

    # Undone newest first: the split's re-reviews close and its classes go; the retire's class comes back into
    # the sets it was taken out of.
    number = client.get("/api/taxonomy").json()["version"]
    r = client.post("/api/taxonomy/changes", json={"op": "undo", "version": number})
    assert r.status_code == 201, r.text
    assert not client.get("/api/flags", params={"kind": "rereview", "status": "open"}).json()["items"]
    assert {c["name"] for c in client.get("/api/taxonomy").json()["classes"]} == {"on a model", "shoe",
                                                                                  "red dress"} - {"shoe"}
    r = client.post("/api/taxonomy/changes", json={"op": "undo", "version": number - 1})
    assert r.status_code == 201, r.text
    assert _sets(client, shop[1]) == ["red dress", "shoe"] and _sets(client, shop[0]) == ["red dress"]
    counts = {c["name"]: c["count"] for c in client.get("/api/taxonomy").json()["classes"]}
    assert counts == {"on a model": 1, "shoe": 1, "red dress": 2}


def test_undoing_a_merge_gives_each_untouched_image_its_earlier_set_back(client, shop):
    _multi(client)
    _label_set(client, shop[0], ["red", "dress"], confidence=0.6, confidences={"dress": 0.8})
    _label_set(client, shop[1], ["red", "shoe"])
    _label_set(client, shop[2], ["dress"])
    r = client.post("/api/taxonomy/changes", json={"op": "merge", "classes": ["red", "dress"], "into": "red dress"})
    assert r.status_code == 201, r.text
    _label_set(client, shop[2], ["red dress", "shoe"])       # relabelled since: keeps what the person said
    number = client.get("/api/taxonomy").json()["version"]
    r = client.post("/api/taxonomy/changes", json={"op": "undo", "version": number})
    assert r.status_code == 201, r.text
    first = client.get(f"/api/images/{shop[0]}").json()
    assert sorted(first["label"]["classes"]) == ["dress", "red"] and first["label"]["confidences"] == {"dress": 0.8,
                                                                                             "red": 0.6}
    assert [e["kind"] for e in first["history"]][-2:] == ["migration", "migration"]   # appended, none rewritten
    assert _sets(client, shop[1]) == ["red", "shoe"]
    assert _sets(client, shop[2]) == ["shoe"]                 # the merged class it was given since is retired
    counts = {c["name"]: c["count"] for c in client.get("/api/taxonomy").json()["classes"]}
    assert counts == {"red": 2, "dress": 1, "shoe": 2, "on a model": 0}


def test_a_single_class_bulk_label_refuses_and_a_label_file_gives_sets_of_one(client, shop, tmp_path):
    label(client, shop[0], "red")
    _multi(client)
    r = client.post("/api/labels/bulk", json={"images": shop[1:3], "class": "red"})
    assert r.status_code == 422 and "multi-label" in r.json()["detail"]
    manifest = tmp_path / "labels.csv"
    manifest.write_text("file,label\nnew.png,red\n")
    from tests.factories import png_bytes
    r = client.post("/api/images", data={"source": "more"}, files=[
        ("files", ("new.png", png_bytes(99), "image/png")), ("labels", ("labels.csv", manifest.read_bytes(), "text/csv"))])
    assert r.status_code == 200 and r.json()["labels"]["labelled"] == 1, r.text   # one label: a set of one
    new = client.get("/api/images", params={"source": "more"}).json()["items"]
    assert len(new) == 1 and _sets(client, new[0]["id"]) == ["red"]


def test_browse_filters_has_lacks_exactly_and_none_of_these(client, shop):
    _multi(client)
    _label_set(client, shop[0], ["red", "dress"])
    _label_set(client, shop[1], ["red"])
    _label_set(client, shop[2], ["dress", "on a model"])
    _label_set(client, shop[3], [])

    def ids(**params):
        got = client.get("/api/images", params=params)
        assert got.status_code == 200, got.text
        assert got.json()["total"] == len(got.json()["items"])
        return [i["id"] for i in got.json()["items"]]

    assert ids(**{"class": "red"}) == [shop[0], shop[1]]
    assert ids(lacks="red") == [shop[2], shop[3]]                   # answered sets only: not the unlabelled
    assert ids(**{"class": "dress"}, lacks="red") == [shop[2]]
    assert ids(exactly="red") == [shop[1]]
    assert ids(exactly="dress, red") == [shop[0]]
    assert ids(status="none-of-these") == [shop[3]]
    page = client.get("/browse", params={"lacks": "red"}, headers={"Accept": "text/html"})
    assert page.status_code == 200 and "none of these" in page.text


def test_bulk_add_and_remove_a_class_say_their_count_first_and_undo_as_one(client, shop):
    r = client.post("/api/labels/bulk", json={"images": shop[:2], "action": "add", "class": "red"})
    assert r.status_code == 422 and "multi-label" in r.json()["detail"]
    _multi(client)
    _label_set(client, shop[0], ["dress"], confidence=0.6)
    _label_set(client, shop[1], ["red"])
    _label_set(client, shop[2], [])
    selection = {"images": shop[:4], "action": "add", "class": "red", "confidence": 0.9}
    preview = client.post("/api/labels/bulk", json={**selection, "dry_run": True}).json()
    assert preview["count"] == 2 and preview["text"] == (
        "Add red to 2 images (1 have it already; 1 not labelled yet, left out)")
    done = client.post("/api/labels/bulk", json={**selection, "expect": 2})
    assert done.status_code == 201, done.text
    first = client.get(f"/api/images/{shop[0]}").json()
    assert first["label"]["classes"] == ["red", "dress"] and first["label"]["confidences"] == {"red": 0.9, "dress": 0.6}
    assert first["history"][-1]["kind"] == "bulk"
    assert _sets(client, shop[2]) == ["red"] and _sets(client, shop[3]) is None

    removed = client.post("/api/labels/bulk", json={"filter": {"class": "red"}, "action": "remove", "class": "red"})
    assert removed.status_code == 201 and removed.json()["count"] == 3, removed.text
    assert client.get("/api/images", params={"class": "red"}).json()["total"] == 0
    assert _sets(client, shop[0]) == ["dress"]

    undone = client.post(f"/api/labels/bulk/{removed.json()['id']}/undo", json={"annotator": "ana"})
    assert undone.status_code == 201 and undone.json()["undone"] == 3, undone.text
    assert _sets(client, shop[0]) == ["dress", "red"] and _sets(client, shop[1]) == ["red"]
    assert client.get(f"/api/images/{shop[0]}").json()["label"]["confidences"] == {"red": 0.9, "dress": 0.6}


def test_a_set_settles_a_rereview_and_the_pages_say_what_is_not_built_for_sets(client, shop):
    _multi(client)
    _label_set(client, shop[0], ["red", "dress"])
    assert client.post("/api/taxonomy/changes", json={"op": "split", "class": "dress",
                                                      "into": ["gown", "frock"]}).status_code == 201
    flag = client.get("/api/flags", params={"kind": "rereview"}).json()["items"][0]
    r = client.post(f"/api/images/{shop[0]}/labels", json={"classes": ["red", "dress"]})
    assert r.status_code == 422 and "retired" in r.json()["detail"]
    _label_set(client, shop[0], ["red", "gown"])
    assert client.get(f"/api/flags/{flag['id']}").json()["status"] == "resolved"

    _label_set(client, shop[1], ["red"])
    _label_set(client, shop[2], [])
    for page in ("/quality", "/snapshots/live", "/label", "/browse", "/taxonomy", f"/images/{shop[0]}"):
        assert client.get(page, headers={"Accept": "text/html"}).status_code == 200, page
    health = client.get("/api/snapshots/live/health").json()
    assert health["total"] == 3 and {c["name"]: c["count"] for c in health["classes"]} == {"red": 2, "gown": 1}
    assert health["sets"]["none"] == 1 and health["sets"]["together"] == [{"classes": ["red", "gown"], "count": 1}]
    assert "Classes that come together" in client.get("/snapshots/live", headers={"Accept": "text/html"}).text
    quality = client.get("/api/quality").json()
    assert quality["multi"] is True and quality["effective"]["raw"] == 3


def test_a_snapshot_freezes_sets_with_stratified_splits_that_later_snapshots_keep(client, settings):
    for name in ("red", "dress", "shoe", "rare"):
        add_class(client, name)
    _multi(client)
    ids = upload_fmnist(client, 48)
    patterns = [["red"], ["red", "dress"], ["dress"], ["shoe"], [], ["red", "shoe"]]
    for n, i in enumerate(ids[:40]):
        _label_set(client, i, patterns[n % 6] + (["rare"] if n % 10 == 0 else []))
    r = client.post("/api/snapshots", json={"name": "sets v1", "split": {"val": 0.25, "folds": 2}})
    assert r.status_code == 201, r.text
    snap = r.json()
    assert snap["mode"] == "multi-label" and snap["count"] == 40
    assert sorted(snap["classes"]) == ["dress", "rare", "red", "shoe"]
    items = client.get(f"/api/snapshots/{snap['id']}/items").json()["items"]
    by_image = {it["image"]: it for it in items}
    assert all(it["class"] is None for it in items)
    assert sorted(by_image[ids[1]]["classes"]) == ["dress", "red"] and by_image[ids[4]]["classes"] == []
    rare_val = [by_image[i]["split"] for n, i in enumerate(ids[:40]) if n % 10 == 0]
    assert rare_val.count("val") == 1                                             # 4 rare images, a quarter in val

    # Filtering classes keeps every image, its set cut to those classes ("none of these" is still an answer).
    cut = client.post("/api/snapshots", json={"name": "red only", "filter": {"classes": ["red"]}}).json()
    cut_items = {it["image"]: it for it in client.get(f"/api/snapshots/{cut['id']}/items").json()["items"]}
    assert cut["classes"] == ["red"] and cut_items[ids[1]]["classes"] == ["red"] and cut_items[ids[2]]["classes"] == []

    for n, i in enumerate(ids[40:]):
        _label_set(client, i, patterns[n % 6])
    _label_set(client, ids[0], ["dress"])                                           # was red + rare
    later = client.post("/api/snapshots", json={"name": "sets v2", "split": {"val": 0.25, "folds": 2}}).json()
    again = {it["image"]: it for it in client.get(f"/api/snapshots/{later['id']}/items").json()["items"]}
    assert all((again[i]["split"], again[i]["fold"]) == (it["split"], it["fold"]) for i, it in by_image.items())

    csv_text = client.get(f"/api/snapshots/{snap['id']}/export", params={"format": "csv"}).text
    header, first = csv_text.splitlines()[:2]
    assert header.endswith(",classes") and "label" in header
    jsonl = client.get(f"/api/snapshots/{snap['id']}/export", params={"format": "jsonl"}).text
    assert '"classes": ["dress", "red"]' in jsonl or '"classes": ["red", "dress"]' in jsonl
    for fmt in ("imagefolder", "cvat"):
        r = client.get(f"/api/snapshots/{snap['id']}/export", params={"format": fmt})
        assert r.status_code == 422 and "carries one class per image" in r.json()["detail"], r.text
    health = client.get(f"/api/snapshots/{snap['id']}/health").json()
    counts = {c["name"]: c for c in health["classes"]}
    assert health["total"] == 40 and counts["rare"]["count"] == 4 and counts["rare"]["splits"] == {"train": 3, "val": 1}
    assert health["splits"] == {k: v for k, v in snap["splits"].items() if v}      # images, not (image, class)
    assert health["sets"]["none"] == sum(1 for it in items if not it["classes"])
    diff = client.get(f"/api/snapshots/{snap['id']}/diff/{later['id']}").json()
    assert diff["counts"] == {"added": 8, "removed": 0, "relabelled": 1, "moved": 0, "unchanged": 39}
    assert diff["relabelled"] == [{"image": ids[0], "from": "red + rare", "to": "dress"}]
    back = client.get(f"/api/snapshots/{later['id']}/diff/{snap['id']}").json()
    assert back["relabelled"] == [{"image": ids[0], "from": "dress", "to": "red + rare"}]
    single = client.get(f"/api/snapshots/{snap['id']}/diff/{cut['id']}")
    assert single.status_code == 200                                                 # both multi-label: fine
    r = client.post("/api/jobs", json={"snapshot": snap["id"]})     # sets train (tests/training/test_multi_label_*)
    assert r.status_code == 201, r.text
    r = client.post("/api/jobs", json={"snapshot": snap["id"], "config": {"folds": 5}})
    assert r.status_code == 422 and "frozen with" in r.json()["detail"]
    page = client.get(f"/snapshots/{snap['id']}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "holds sets of classes" in page.text and "format=imagefolder" not in page.text
