"""The per kind, status and resolution flag counts that triggers keep (migration 0013) agree with counting the
flags, through every writer: new flags, review decisions and their undo, stale-flag cancellation, raw SQL; and
the audit statistics kept between views follow every answer, pick and taxonomy change."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from app.db.models import Flag
from app.quality.audits import pick_audits
from app.timeutil import utcnow
from tests.factories import add_class, label, upload_fmnist


def _agree(client, db) -> dict:
    with db.reading() as s:
        truth = {(k, st, r or ""): n for k, st, r, n in s.execute(text(
            "SELECT kind, status, resolution, count(*) FROM flags GROUP BY kind, status, resolution")).all()}
        kept = {(k, st, r): n for k, st, r, n in s.execute(text(
            "SELECT kind, status, resolution, n FROM flag_counts")).all()}
    assert {key: n for key, n in kept.items() if n} == truth and min(kept.values(), default=0) >= 0
    flags = client.get("/api/quality").json()["flags"]
    for (kind, status, _), n in truth.items():
        assert flags["by_kind"][kind][status] == sum(m for (k, st, _), m in truth.items() if (k, st) == (kind, status))
    resolved = {}
    for (_, status, resolution), n in truth.items():
        if status == "resolved":
            resolved[resolution or None] = resolved.get(resolution or None, 0) + n
    assert {k or None: v for k, v in flags["resolutions"].items()} == resolved
    return flags


def test_flag_counts_follow_every_writer(client, db):
    add_class(client, "shirt")
    add_class(client, "coat")
    ids = upload_fmnist(client, 6)
    events = [label(client, i, "shirt")["id"] for i in ids]
    assert _agree(client, db)["by_kind"]["mislabel"] == {"open": 0, "pending": 0, "resolved": 0, "cancelled": 0}
    with db.writing() as s:
        made = [Flag(image_id=i, kind=kind, status="open", score=0.5, details={"label_event_id": e})
                for i, e, kind in zip(ids, events, ["mislabel", "mislabel", "duplicate", "outlier", "mislabel", "audit"])]
        s.add_all(made)
        s.commit()
        flags = [f.id for f in made]
    assert _agree(client, db)["by_kind"]["mislabel"]["open"] == 3
    resolve = lambda f, **body: client.post(f"/api/flags/{f}/resolve", json={"annotator": "a", **body})  # noqa: E731
    assert resolve(flags[0], action="keep").status_code == 200
    assert resolve(flags[1], action="relabel", **{"class": "coat"}).status_code == 200
    assert resolve(flags[2], action="ambiguous").status_code == 200
    assert resolve(flags[3], action="exclude").status_code == 200
    got = _agree(client, db)
    assert got["by_kind"]["mislabel"] == {"open": 1, "pending": 0, "resolved": 2, "cancelled": 0}
    assert got["resolutions"] == {"keep": 1, "relabel": 1, "ambiguous": 1, "exclude": 1}
    assert client.post(f"/api/flags/{flags[1]}/undo", json={"annotator": "a"}).status_code == 200
    assert _agree(client, db)["resolutions"] == {"keep": 1, "ambiguous": 1, "exclude": 1}
    label(client, ids[4], "coat")  # a person's relabel: the open mislabel flag on it is stale, cancelled
    assert _agree(client, db)["by_kind"]["mislabel"] == {"open": 1, "pending": 0, "resolved": 1, "cancelled": 1}
    with db.writing() as s:  # raw SQL: a whole statement of updates, then deletes
        s.execute(text("UPDATE flags SET status = 'cancelled', resolution = 'cancelled' WHERE status = 'open'"))
        s.execute(text("DELETE FROM flags WHERE kind = 'audit'"))
        s.commit()
    got = _agree(client, db)
    assert sum(got["by_kind"][k]["open"] for k in got["by_kind"]) == 0 and got["by_kind"]["audit"]["cancelled"] == 0


def test_audit_stats_follow_answers_picks_and_the_taxonomy(client, db):
    for name in ("shirt", "coat", "bag"):
        add_class(client, name)
    ids = upload_fmnist(client, 12)
    for n, i in enumerate(ids):
        label(client, i, ("shirt", "coat", "bag")[n % 3], annotator="ana")
    stats = lambda: client.get("/api/quality/audits").json()  # noqa: E731
    assert (stats()["n"], stats()["pending"]) == (0, 0)
    with db.writing() as s:
        assert pick_audits(s, share=0.5, seed=1, now=utcnow() + timedelta(days=2))["picked"] == 6
    assert (stats()["n"], stats()["pending"]) == (0, 6)
    pending = sorted(f["image"] for f in client.get("/api/flags", params={"kind": "audit", "status": "pending"})
                     .json()["items"])
    given = {i: client.get(f"/api/images/{i}").json()["label"]["class"] for i in pending[:2]}
    assert client.post(f"/api/images/{pending[0]}/audit", json={"class": given[pending[0]]}).status_code == 201
    got = stats()
    assert (got["n"], got["pending"], got["agreement"]) == (1, 5, 1.0)
    other = next(c for c in ("shirt", "coat", "bag") if c != given[pending[1]])
    assert client.post(f"/api/images/{pending[1]}/audit", json={"class": other}).status_code == 201
    got = stats()
    assert (got["n"], got["pending"], got["agreement"]) == (2, 4, 0.5)
    # A merge makes the two answers one class: the pair agrees now (classes are followed to their heirs).
    r = client.post("/api/taxonomy/changes", json={"op": "merge", "classes": [other], "into": given[pending[1]]})
    assert r.status_code == 201, r.text
    assert stats()["agreement"] == 1.0
