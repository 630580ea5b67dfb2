"""Shortcut keys stay with their class for life: the sequence reported in issue 13, and the explicit ways a key moves."""

from __future__ import annotations

import re

import pytest

from tests.factories import add_class, label, upload_fmnist
from tests.fmnist import CLASSES

NAMES = [n.capitalize().replace("-", " ") for n in CLASSES]  # T shirt, Trouser, ..., Sandal, Shirt, Sneaker, Bag, ...


def change(client, **body) -> dict:
    r = client.post("/api/taxonomy/changes", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def keys(client) -> dict[str, str | None]:
    return {c["name"]: c["shortcut"] for c in client.get("/api/taxonomy").json()["classes"]}


def last_version(client) -> dict:
    return client.get("/api/taxonomy/versions").json()["items"][-1]


@pytest.fixture
def fashion(client) -> dict[str, str]:
    for name in NAMES:
        add_class(client, name)
    before = keys(client)
    assert before == dict(zip(NAMES, "1234567890"))
    return before


def test_merge_split_undo_never_moves_a_key(client, fashion):
    ids = upload_fmnist(client, 3)
    label(client, ids[0], "Sandal")
    label(client, ids[1], "Sneaker")
    label(client, ids[2], "Bag")

    change(client, op="merge", classes=["Sandal", "Sneaker"], into="Shoe")
    after_merge = keys(client)
    assert after_merge["Shoe"] not in set(fashion.values())  # not 6 or 8, nor any key a class ever held
    assert after_merge == {**{n: k for n, k in fashion.items() if n not in ("Sandal", "Sneaker")},
                           "Shoe": after_merge["Shoe"]}
    merge = last_version(client)
    assert merge["message"] == "merge Sandal, Sneaker → Shoe"
    assert merge["changes"][0]["keys"] == [
        {"class_id": merge["changes"][0]["into"]["class_id"], "name": "Shoe", "from": None, "to": after_merge["Shoe"],
         "why": "fresh"}]
    assert f"'Shoe' gets key {after_merge['Shoe']}" in merge["changes"][0]["summary"]

    change(client, op="split", **{"class": "Bag"}, into=["Backpack", "Handbag"])
    after_split = keys(client)
    new_keys = {after_split["Backpack"], after_split["Handbag"]}
    assert not new_keys & (set(fashion.values()) | {after_merge["Shoe"]})  # neither takes 8 (nor Bag's 9)
    assert last_version(client)["message"] == "split Bag → Backpack, Handbag"

    merge_number = merge["version"]
    change(client, op="undo", version=merge_number)
    after_undo = keys(client)
    assert (after_undo["Sandal"], after_undo["Sneaker"]) == ("6", "8")
    assert "Shoe" not in after_undo
    assert all(after_undo[n] == k for n, k in fashion.items() if n != "Bag")
    assert (after_undo["Backpack"], after_undo["Handbag"]) == (after_split["Backpack"], after_split["Handbag"])
    undo = last_version(client)
    assert undo["message"] == f"undo version {merge_number}"
    assert "restored 'Sandal' (key 6), 'Sneaker' (key 8)" in undo["changes"][0]["summary"]
    assert client.get(f"/api/images/{ids[0]}").json()["label"]["class"] == "Sandal"

    # The labelling page binds the original keys to the original classes again.
    page = client.get("/label").text
    for name in ("Sandal", "Sneaker"):
        class_id = next(c["id"] for c in client.get("/api/taxonomy").json()["classes"] if c["name"] == name)
        assert re.search(f'data-class="{class_id}"[^>]* data-key="{fashion[name]}"', page), name
    page = client.get("/taxonomy").text
    assert "restored &#39;Sandal&#39; (key 6)" in page and f"&#39;Shoe&#39; gets key {after_merge['Shoe']}" in page


def test_undo_of_a_split_and_a_retire_gives_the_old_keys_back(client, fashion):
    split = change(client, op="split", **{"class": "Bag"}, into=["Backpack", "Handbag"])["version"]
    change(client, op="undo", version=split)
    assert keys(client)["Bag"] == "9"
    retire = change(client, op="retire", **{"class": "Coat"})["version"]
    add_class(client, "Parka")  # takes a fresh key, never Coat's 5
    assert keys(client)["Parka"] not in set(fashion.values()) | {"f", "h"}  # f, h went to Backpack and Handbag
    change(client, op="undo", version=retire)
    assert keys(client)["Coat"] == "5"


def test_a_key_given_away_explicitly_is_said_and_the_restored_class_gets_a_fresh_one(client, fashion):
    retire = change(client, op="retire", **{"class": "Bag"})["version"]
    change(client, op="add", name="Tote", shortcut="9")  # explicit: allowed, and the log says whose key it was
    added = last_version(client)["changes"][0]
    assert "'Tote' gets key 9 (key 9 was held by retired 'Bag')" in added["summary"]

    change(client, op="undo", version=retire)
    now = keys(client)
    assert now["Tote"] == "9" and now["Bag"] not in set(fashion.values()) and now["Bag"] is not None
    undo = last_version(client)["changes"][0]
    (entry,) = undo["steps"][0]["keys"]
    assert (entry["name"], entry["from"], entry["to"]) == ("Bag", "9", now["Bag"])
    assert f"'Bag' key 9 → {now['Bag']}" in undo["summary"] and "class 'Tote'" in entry["why"]


def test_set_shortcut_is_the_explicit_way_and_undoes(client, fashion):
    body = change(client, op="set-shortcut", **{"class": "Sneaker"}, shortcut="K")
    assert {c["name"]: c["shortcut"] for c in body["classes"]}["Sneaker"] == "k"
    v = last_version(client)
    assert v["message"] == "key of Sneaker → K"
    assert "'Sneaker' key 8 → k" in v["changes"][0]["summary"]
    add_class(client, "Boot")
    assert keys(client)["Boot"] not in ("8", "k")  # a key moved away by hand is not handed out either
    change(client, op="undo", version=v["version"])
    assert keys(client)["Sneaker"] == "8"
    change(client, op="set-shortcut", **{"class": "Sneaker"}, shortcut=None)
    assert keys(client)["Sneaker"] is None and "'Sneaker' lost key 8" in last_version(client)["changes"][0]["summary"]


@pytest.mark.parametrize("body, words", [
    ({"class": "Sneaker", "shortcut": "6"}, "already used by class 'Sandal'"),
    ({"class": "Sneaker", "shortcut": "8"}, "already has key 8"),
    ({"class": "Sneaker", "shortcut": "q"}, "reserved"),
    ({"class": "Sneaker", "shortcut": "ab"}, "single letter"),
])
def test_bad_set_shortcut_changes_nothing(client, fashion, body, words):
    r = client.post("/api/taxonomy/changes", json={"op": "set-shortcut", **body})
    assert r.status_code == 422 and words in r.json()["detail"], r.text
    assert client.get("/api/taxonomy").json()["version"] == len(NAMES) and keys(client) == fashion


def test_when_every_automatic_key_is_spent_a_new_class_gets_none_and_says_so(client):
    for i in range(21):  # 1-9, 0 and the eleven letters that are not reserved on the labelling page
        add_class(client, f"class {chr(97 + i)}")
    assert None not in keys(client).values() and len(set(keys(client).values())) == 21
    assert last_version(client)["changes"][0]["summary"] == "added 'class u' with key y"
    assert add_class(client, "one too many")["shortcut"] is None
    assert "'one too many' has no key" in last_version(client)["changes"][0]["summary"]
