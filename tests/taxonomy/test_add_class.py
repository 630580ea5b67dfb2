"""The minimal taxonomy: adding classes creates versions; bad input creates none."""

from __future__ import annotations

import pytest

from tests.factories import add_class


def test_add_classes_creates_versions_and_shortcuts(client):
    assert client.get("/api/taxonomy").json() == {"version": 0, "mode": "single-label", "classes": []}
    add_class(client, "cat", description="Felines, any age")
    add_class(client, "dog", shortcut="k")
    body = client.get("/api/taxonomy").json()
    assert body["version"] == 2
    assert [(c["name"], c["shortcut"], c["count"]) for c in body["classes"]] == [("cat", "1", 0), ("dog", "k", 0)]
    assert body["classes"][0]["description"] == "Felines, any age"
    versions = client.get("/api/taxonomy/versions").json()["items"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[1]["changes"][0]["op"] == "add" and versions[1]["changes"][0]["name"] == "dog"


@pytest.mark.parametrize(
    "change, status, words",
    [
        ({"op": "add", "name": "  "}, 422, "name is required"),
        ({"op": "add", "name": "CAT"}, 422, "already exists"),
        ({"op": "add", "name": "12"}, 422, "digits"),
        ({"op": "add", "name": "x" * 101}, 422, "at most"),
        ({"op": "add", "name": "lynx", "shortcut": "q"}, 422, "reserved"),
        ({"op": "add", "name": "lynx", "shortcut": "1"}, 422, "already used"),
        ({"op": "add", "name": "lynx", "shortcut": "b"}, 422, "tag 'blurred'"),
        ({"op": "add", "name": "lynx", "shortcut": "!!"}, 422, "single letter"),
        ({"op": "explode", "name": "lynx"}, 422, "'explode' found using 'op' does not match any of the expected tags: 'add'"),
        ({"name": "lynx"}, 422, "discriminator 'op'"),
        ({"op": "add", "name": "lynx", "base_version": 0}, 409, "current version is 1"),
    ],
)
def test_bad_changes_create_no_version(client, change, status, words):
    add_class(client, "cat")
    r = client.post("/api/taxonomy/changes", json=change)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert client.get("/api/taxonomy").json()["version"] == 1


def test_base_version_matching_current_is_accepted(client):
    r = client.post("/api/taxonomy/changes", json={"op": "add", "name": "cat", "base_version": 0})
    assert r.status_code == 201 and r.json()["version"] == 1


def test_taxonomy_page_form_adds_class_and_shows_errors(client):
    r = client.post("/taxonomy/changes", data={"op": "add", "name": "bird", "description": "feathers", "base_version": "0"})
    assert r.status_code == 200 and "bird" in r.text
    r = client.post("/taxonomy/changes", data={"op": "add", "name": "Bird", "base_version": "1"})
    assert "already exists" in r.text
    assert client.get("/api/taxonomy").json()["version"] == 1
