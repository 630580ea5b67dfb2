"""A snapshot never changes: not under relabelling, renames, merges, undo, nor direct SQL."""

from __future__ import annotations

import pytest

from tests.databases import ON_POSTGRES, refused
from tests.factories import label
from tests.snapshots.conftest import freeze, items


def _change(client, **change):
    r = client.post("/api/taxonomy/changes", json=change)
    assert r.status_code == 201, r.text


def test_relabels_and_taxonomy_changes_leave_a_snapshot_as_frozen(labelled):
    client = labelled.client
    snap = freeze(client, "frozen", split={"val": 0.3, "seed": 1, "folds": 3})
    before = {
        "meta": client.get(f"/api/snapshots/{snap['id']}").json(),
        "items": items(client, snap["id"]),
        "csv": client.get(f"/api/snapshots/{snap['id']}/export?format=csv").text,
        "health": client.get(f"/api/snapshots/{snap['id']}/health").json(),
    }
    first, second = labelled.ids[0], labelled.ids[1]
    assert labelled.given[first]["class"] == "shirt"
    label(client, first, "bag", annotator="bo")  # relabel
    undo_target = label(client, second, "bag")
    client.post(f"/api/images/{second}/labels/undo", json={"event": undo_target["id"]})
    _change(client, op="rename", **{"class": "shirt"}, name="top")
    _change(client, op="merge", classes=["bag"], into="shoe")
    _change(client, op="add", name="hat")

    after = {
        "meta": client.get(f"/api/snapshots/{snap['id']}").json(),
        "items": items(client, snap["id"]),
        "csv": client.get(f"/api/snapshots/{snap['id']}/export?format=csv").text,
        "health": client.get(f"/api/snapshots/{snap['id']}/health").json(),
    }
    assert after == before
    assert after["meta"]["classes"] == ["bag", "shirt", "shoe"] and after["meta"]["taxonomy_version"] == 3
    frozen_first = next(x for x in after["items"] if x["image"] == first)
    assert frozen_first["class"] == "shirt"
    # ... while the live labels did move on, and a new snapshot sees them.
    assert client.get(f"/api/images/{first}").json()["label"]["class"] == "shoe"  # bag, merged into shoe
    fresh = freeze(client, "fresh", split={"val": 0.3, "seed": 1, "folds": 3})
    assert fresh["hash"] != snap["hash"] and fresh["taxonomy_version"] == 6
    assert set(fresh["classes"]) == {"top", "shoe"}


@pytest.mark.parametrize("sql", [
    "UPDATE snapshot_items SET split = 'train'",
    "DELETE FROM snapshot_items",
    "UPDATE snapshots SET name = 'renamed'",
    "DELETE FROM snapshots",
    *(["TRUNCATE snapshot_items, snapshots CASCADE"] if ON_POSTGRES else []),
])
def test_the_database_refuses_to_rewrite_a_snapshot(labelled, settings, sql):
    freeze(labelled.client, "locked")
    assert "append-only" in refused(settings.database_url, sql)
