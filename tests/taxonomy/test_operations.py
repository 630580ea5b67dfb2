"""Each taxonomy operation over HTTP: versions, label migration, re-review, undo, bad input."""

from __future__ import annotations

import pytest

from tests.factories import add_class, label, upload_fmnist


def change(client, **body):
    r = client.post("/api/taxonomy/changes", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def names(client) -> list[str]:
    return [c["name"] for c in client.get("/api/taxonomy").json()["classes"]]


def current(client, image_id):
    return client.get(f"/api/images/{image_id}").json()


def rereview_images(client) -> list[int]:
    items = client.get("/api/flags", params={"kind": "rereview", "limit": 1000}).json()["items"]
    return sorted(f["image"] for f in items)


@pytest.fixture
def labelled(client):
    """Classes shirt, top, shoe; six images: 0,1 shirt; 2,3 top; 4 shoe; 5 unlabelled."""
    for name in ("shirt", "top", "shoe"):
        add_class(client, name)
    ids = upload_fmnist(client, 6)
    label(client, ids[0], "shirt", confidence=0.6, tags=["dark"], note="n0", annotator="ana")
    label(client, ids[1], "shirt")
    label(client, ids[2], "top")
    label(client, ids[3], "top", confidence=0.3)
    label(client, ids[4], "shoe")
    return ids


def test_rename_keeps_labels_and_history_shows_old_name(client, labelled):
    body = change(client, op="rename", **{"class": "shirt"}, name="blouse")
    assert body["version"] == 4 and "blouse" in names(client) and "shirt" not in names(client)
    img = current(client, labelled[0])
    assert img["label"]["class"] == "blouse"
    assert img["history"][0]["class"] == "shirt" and img["history"][0]["class_now"] == "blouse"
    # a new label made now is made under the new name
    label(client, labelled[0], "blouse")
    assert current(client, labelled[0])["history"][-1]["class"] == "blouse"


def test_describe_is_versioned_and_history_shows_the_definition_then(client, labelled):
    change(client, op="describe", **{"class": "shirt"}, description="Buttons down the front")
    label(client, labelled[1], "shirt")
    change(client, op="describe", **{"class": "shirt"}, description="Any upper-body garment with a collar")
    hist = current(client, labelled[1])["history"]
    assert hist[0]["definition"] == "" and hist[1]["definition"] == "Buttons down the front"
    shirt = next(c for c in client.get("/api/taxonomy").json()["classes"] if c["name"] == "shirt")
    assert shirt["description"] == "Any upper-body garment with a collar"


def test_merge_moves_labels_keeping_confidence_tags_and_note(client, labelled):
    body = change(client, op="merge", classes=["shirt", "top"], into="upper")
    counts = {c["name"]: c["count"] for c in body["classes"]}
    assert counts == {"shoe": 1, "upper": 4}
    img = current(client, labelled[0])
    assert img["label"]["class"] == "upper"
    moved = img["history"][-1]
    assert (moved["kind"], moved["confidence"], moved["tags"], moved["note"], moved["annotator"]) == (
        "migration", 0.6, ["dark"], "n0", "ana")
    assert len(img["history"]) == 2  # the original event is still there
    assert current(client, labelled[3])["label"]["confidence"] == 0.3


def test_label_undo_cannot_resurrect_a_retired_class(client, labelled):
    change(client, op="merge", classes=["shirt"], into="top")
    moved = current(client, labelled[0])["history"][-1]
    r = client.post(f"/api/images/{labelled[0]}/labels/undo", json={"event": moved["id"]})
    assert r.status_code == 409 and "taxonomy change" in r.json()["detail"]
    relabel = label(client, labelled[0], "shoe")
    change(client, op="retire", **{"class": "shoe"})
    flagged = label(client, labelled[0], "top")  # resolves the re-review
    client.post(f"/api/images/{labelled[0]}/labels/undo", json={"event": flagged["id"]})
    assert rereview_images(client) == [labelled[0], labelled[4]]  # undoing the re-review label reopens it
    assert relabel["class"] == "shoe"


def test_merge_into_existing_class(client, labelled):
    body = change(client, op="merge", classes=["shirt", "top"], into="top")
    assert {c["name"]: c["count"] for c in body["classes"]} == {"top": 4, "shoe": 1}
    assert len(current(client, labelled[2])["history"]) == 1  # already top: not touched


def test_split_sends_images_to_rereview_offering_only_new_classes(client, labelled):
    body = change(client, op="split", **{"class": "top"}, into=["tank top", "crop top"])
    assert "top" not in names(client) and {"tank top", "crop top"} <= set(names(client))
    assert body["version"] == 4
    assert rereview_images(client) == sorted(labelled[2:4])
    assert current(client, labelled[2])["label"]["class"] == "top"  # kept until a person decides

    r = client.post(f"/api/images/{labelled[2]}/labels", json={"class": "shirt"})
    assert r.status_code == 422 and "tank top, crop top" in r.json()["detail"]
    label(client, labelled[2], "crop top")
    assert rereview_images(client) == [labelled[3]]
    html = client.get("/label", params={"queue": "rereview"}).text
    assert f'data-image-id="{labelled[3]}"' in html and "was split" in html


def test_retire_offers_remaining_classes_and_undo_brings_it_back(client, labelled):
    change(client, op="retire", **{"class": "shoe"})
    assert "shoe" not in names(client) and rereview_images(client) == [labelled[4]]
    r = client.post(f"/api/images/{labelled[0]}/labels", json={"class": "shoe"})
    assert r.status_code == 422 and "retired" in r.json()["detail"]

    body = change(client, op="undo", version=4)
    assert "shoe" in names(client) and body["version"] == 5
    assert rereview_images(client) == []
    assert client.get("/api/flags", params={"status": "cancelled"}).json()["total"] == 1
    assert current(client, labelled[4])["label"]["class"] == "shoe"


def test_undo_merge_moves_labels_back_except_relabelled_ones(client, labelled):
    change(client, op="merge", classes=["shirt", "top"], into="upper")
    label(client, labelled[0], "shoe")            # a person's decision after the merge
    change(client, op="undo", version=4)
    assert set(names(client)) == {"shirt", "top", "shoe"}
    assert current(client, labelled[0])["label"]["class"] == "shoe"
    assert [current(client, i)["label"]["class"] for i in labelled[1:4]] == ["shirt", "top", "top"]
    assert current(client, labelled[3])["label"]["confidence"] == 0.3
    versions = client.get("/api/taxonomy/versions").json()["items"]
    assert versions[-1]["changes"][0]["op"] == "undo"
    # undo twice, or undo an undo: refused
    assert client.post("/api/taxonomy/changes", json={"op": "undo", "version": 4}).status_code == 409
    assert client.post("/api/taxonomy/changes", json={"op": "undo", "version": 5}).status_code == 422


def test_undo_split_merges_back_and_closes_rereview(client, labelled):
    change(client, op="split", **{"class": "top"}, into=["tank", "crop"])
    label(client, labelled[2], "tank")
    change(client, op="undo", version=4)
    assert "top" in names(client) and "tank" not in names(client)
    assert rereview_images(client) == []
    assert [current(client, i)["label"]["class"] for i in labelled[2:4]] == ["top", "top"]


def test_undo_rename_and_add(client, labelled):
    change(client, op="rename", **{"class": "shoe"}, name="footwear")
    change(client, op="undo", version=4)
    assert "shoe" in names(client)
    change(client, op="add", name="bag")
    change(client, op="undo", version=6)
    assert "bag" not in names(client)


def test_pin_examples_show_on_taxonomy_and_can_be_unpinned(client, labelled):
    change(client, op="pin", **{"class": "shirt"}, image=labelled[0], kind="this")
    change(client, op="pin", **{"class": "shirt"}, image=labelled[4], kind="not_this")
    shirt = next(c for c in client.get("/api/taxonomy").json()["classes"] if c["name"] == "shirt")
    assert shirt["examples"] == [{"image": labelled[0], "kind": "this"}, {"image": labelled[4], "kind": "not_this"}]
    assert f"/api/images/{labelled[4]}/thumb" in client.get("/label").text
    page = client.post("/taxonomy/changes", data={"op": "pin", "class": "top", "image": str(labelled[2]), "kind": "this"})
    assert "Saved as a new version" in page.text and "<html" in page.text  # the image page's form: a whole page
    assert "Pin as an example" in client.get(f"/images/{labelled[2]}").text
    change(client, op="unpin", **{"class": "shirt"}, image=labelled[4], kind="not_this")
    shirt = next(c for c in client.get("/api/taxonomy").json()["classes"] if c["name"] == "shirt")
    assert len(shirt["examples"]) == 1


def test_versions_list_diffs_and_counts(client, labelled):
    change(client, op="merge", classes=["shirt", "top"], into="upper")
    v = client.get("/api/taxonomy/versions").json()["items"][-1]
    assert v["changes"][0]["summary"] == "merged 'shirt', 'top' into 'upper' (new); 4 labels moved; 'upper' gets key 4"
    assert v["message"] == "merge shirt, top → upper" and v["changes"][0]["into"]["shortcut"] == "4"
    assert v["label_counts"] == {"shoe": 1, "upper": 4}
    assert "merged &#39;shirt&#39;, &#39;top&#39; into &#39;upper&#39;" in client.get("/taxonomy").text


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"op": "rename", "class": "shirt", "name": "TOP"}, 422, "already exists"),
        ({"op": "rename", "class": "shirt", "name": " "}, 422, "name is required"),
        ({"op": "rename", "class": "nope", "name": "x"}, 404, "no class"),
        ({"op": "merge", "classes": ["shirt"], "into": "shirt"}, 422, "into itself"),
        ({"op": "merge", "classes": ["shirt", "shirt"], "into": "top"}, 422, "twice"),
        ({"op": "merge", "classes": [], "into": "top"}, 422, "classes"),
        ({"op": "merge", "classes": ["shirt"], "into": 999}, 404, "999"),
        ({"op": "split", "class": "shirt", "into": ["a"]}, 422, "at least two"),
        ({"op": "split", "class": "shirt", "into": ["a", "A"]}, 422, "differ"),
        ({"op": "split", "class": "shirt", "into": ["a", "shoe"]}, 422, "already exists"),
        ({"op": "describe", "class": "old"}, 422, "retired"),
        ({"op": "rename", "class": "old", "name": "new"}, 422, "retired"),
        ({"op": "merge", "classes": ["old", "shirt"], "into": "shirt"}, 422, "retired"),
        ({"op": "split", "class": "old", "into": ["a", "b"]}, 422, "retired"),
        ({"op": "retire", "class": "old"}, 422, "retired"),
        ({"op": "pin", "class": "shirt", "image": 99999}, 404, "no image"),
        ({"op": "undo", "version": 99}, 404, "no taxonomy version"),
        ({"op": "rename", "class": "shirt", "name": "x", "base_version": 2}, 409, "current version is 5"),
    ],
)
def test_bad_operations_create_no_version(client, labelled, body, status, words):
    add_class(client, "old")
    change(client, op="retire", **{"class": "old"})
    before = client.get("/api/taxonomy/versions").json()["items"]
    r = client.post("/api/taxonomy/changes", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert client.get("/api/taxonomy/versions").json()["items"] == before
    assert len(current(client, labelled[0])["history"]) == 1


def test_taxonomy_page_forms_merge_and_undo(client, labelled):
    shirt, top = (c["id"] for c in client.get("/api/taxonomy").json()["classes"][:2])
    r = client.post("/taxonomy/changes", data={"op": "merge", "classes": [str(shirt), str(top)], "into": "upper",
                                               "base_version": "3", "author": "ana"})
    assert "Saved as a new version" in r.text and "upper" in names(client)
    assert client.get("/api/taxonomy/versions").json()["items"][-1]["author"] == "ana"
    r = client.post("/taxonomy/changes", data={"op": "split", "class": str(shirt), "into": "a, b", "base_version": "4"})
    assert "retired" in r.text
    r = client.post("/taxonomy/changes", data={"op": "undo", "version": "4", "base_version": "4"})
    assert "Undone" in r.text and "shirt" in names(client)
