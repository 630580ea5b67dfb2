"""The labelling page's server side under the issue's first-hour moves: a label lands on the image the
page showed, a re-review's "none of these" takes any class, counts above 1,000 stay numbers, and the page
carries the key map it announces changes from."""

from __future__ import annotations

import html as htmllib
import json
import re

from tests.factories import add_class, label, upload_fmnist


def _stage_image(text: str) -> str:
    return re.search(r'data-image-id="(\d*)"', text).group(1)


def test_a_label_lands_on_the_image_in_the_path_whatever_else_is_leased(client):
    add_class(client, "shirt")
    ids = upload_fmnist(client, 4)
    first = client.get("/label")                        # this browser is shown (and leased) ids[0]
    assert _stage_image(first.text) == str(ids[0])
    # The page posts the id of the image it showed; the server labels exactly that one, even one leased to
    # nobody and behind in the queue, and only then picks what comes next.
    r = client.post(f"/label/{ids[2]}", data={"class": "shirt", "annotator": "ana", "ms": "400"})
    assert r.status_code == 200
    assert client.get(f"/api/images/{ids[2]}").json()["label"]["class"] == "shirt"
    assert [client.get(f"/api/images/{i}").json()["label"] for i in (ids[0], ids[1], ids[3])] == [None] * 3
    assert _stage_image(r.text) != str(ids[2])
    # A label for an image that does not exist is a clear 404, not a label on some other image.
    missing = client.post(f"/label/{ids[-1] + 100}", data={"class": "shirt"})
    assert missing.status_code == 404 and "no image" in missing.json()["detail"]


def _rereview_setup(client) -> list[int]:
    add_class(client, "trousers")
    add_class(client, "bag")
    ids = upload_fmnist(client, 2)
    for i in ids:
        label(client, i, "bag")
    r = client.post("/api/taxonomy/changes", json={"op": "split", "class": "bag", "into": ["backpack", "tote"]})
    assert r.status_code == 201, r.text
    return ids


def test_rereview_refuses_an_unoffered_class_unless_none_of_these(client):
    ids = _rereview_setup(client)
    before = client.get(f"/api/images/{ids[0]}").json()["history"]
    r = client.post(f"/label/{ids[0]}", data={"class": "trousers", "queue": "rereview"})
    assert r.status_code == 422 and "choose one of: backpack, tote" in r.json()["detail"]
    assert client.get(f"/api/images/{ids[0]}").json()["history"] == before          # nothing changed
    flag = client.get("/api/flags", params={"kind": "rereview", "image": ids[0]}).json()["items"][0]
    assert flag["details"]["classes"] and "none_of_these_by" not in flag["details"]  # nor was the offer widened

    r = client.post(f"/label/{ids[0]}", data={"class": "trousers", "queue": "rereview", "any_class": "1",
                                             "annotator": "bo"})
    assert r.status_code == 200
    assert client.get(f"/api/images/{ids[0]}").json()["label"]["class"] == "trousers"
    closed = client.get(f"/api/flags/{flag['id']}").json()
    assert (closed["status"], closed["resolution"], closed["resolved_by"]) == ("resolved", "relabel", "bo")
    assert closed["details"]["none_of_these_by"] == "bo" and len(closed["details"]["offered"]) == 2
    # The other image still waits, offering the split's classes only.
    other = client.get("/api/flags", params={"kind": "rereview", "image": ids[1]}).json()["items"][0]
    assert other["status"] == "open" and other["details"]["classes"] == flag["details"]["classes"]


def test_none_of_these_with_a_bad_class_changes_nothing(client):
    ids = _rereview_setup(client)
    r = client.post(f"/label/{ids[0]}", data={"class": "no such", "queue": "rereview", "any_class": "1"})
    assert r.status_code in (404, 422)
    flag = client.get("/api/flags", params={"kind": "rereview", "image": ids[0]}).json()["items"][0]
    assert flag["status"] == "open" and flag["details"]["classes"] and "none_of_these_by" not in flag["details"]


def test_remaining_is_a_number_for_the_page_and_capped_counts_are_not(client):
    add_class(client, "shirt")
    upload_fmnist(client, 3)
    text = client.get("/label").text
    assert 'id="remaining" data-n="3">3<' in text
    rereview = client.get("/label?queue=rereview").text
    assert 'id="remaining" data-n="0">0<' in rereview


def test_the_page_carries_the_key_map(client):
    add_class(client, "sandal")
    add_class(client, "bag", shortcut="k")
    text = client.get("/label").text
    raw = re.search(r"data-keymap='([^']*)'", text).group(1)
    keymap = json.loads(htmllib.unescape(raw))
    assert sorted((v["name"], v["key"]) for v in keymap.values()) == [("bag", "k"), ("sandal", "1")]
