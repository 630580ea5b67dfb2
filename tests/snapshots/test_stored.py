"""Past `quality_live_max` images a frozen snapshot's health and a diff are computed once by the real worker and
read back: pending before, the same numbers as the live computation after, flag changes shown as "since"
(issue 16). Runs on SQLite and PostgreSQL alike."""

from __future__ import annotations

import os
import subprocess
import sys

from app.db.models import Flag, Job
from tests.snapshots.conftest import freeze, freeze_change_freeze

HTML = {"Accept": "text/html"}
BIG = 5  # quality_live_max here: the 90-image snapshots are big


def _run_worker(settings) -> None:
    done = subprocess.run([sys.executable, "-m", "app.cli", "worker", "--once", "--data", str(settings.data_dir)],
                          env={**os.environ}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def _live(client, settings, url: str) -> dict:
    """The same request computed per view (as a small dataset gets it)."""
    settings.quality_live_max, before = 1_000_000, settings.quality_live_max
    try:
        r = client.get(url)
        assert r.status_code == 200, r.text
        return r.json()
    finally:
        settings.quality_live_max = before


def test_a_big_snapshot_reads_its_health_from_a_job_and_says_how_old_its_flags_are(labelled, settings, db):
    client = labelled.client
    settings.quality_live_max = BIG
    snap = freeze(client, "big")
    assert len(snap["queued"]) == 1                   # its health; no snapshot before it, so no diff
    job = snap["queued"][0]
    url = f"/api/snapshots/{snap['id']}/health"

    # Before the worker: pending, never a number shown as if computed.
    r = client.get(url)
    assert r.status_code == 202 and r.json()["pending"] == job and r.json()["as_of"]["job"] is None
    page = client.get(f"/snapshots/{snap['id']}", headers=HTML).text
    assert f"being computed by <a href=\"/jobs/{job}\">report job #{job}</a>" in page
    assert 'data-metric="total"' not in page
    assert client.post(f"/api/snapshots/{snap['id']}/health/refresh").json()["job"] == job   # one at a time

    _run_worker(settings)
    assert client.get(f"/api/jobs/{job}").json()["status"] == "succeeded"
    body = client.get(url).json()
    as_of = body.pop("as_of")
    assert as_of["job"] == job and as_of["flags_since"] == 0 and as_of["refreshing"] is None
    assert body == _live(client, settings, url)      # the stored numbers are the live computation's
    assert body["total"] == 90 and body["effective"]["unflagged"] == 90
    page = client.get(f"/snapshots/{snap['id']}", headers=HTML).text
    assert "no flag on its images changed since" in page and 'data-metric="total">90<' in page
    assert f"/jobs/{job}" in page and "snapshot" in client.get(f"/jobs/{job}", headers=HTML).text

    # A flag opened on one of its images afterwards: the stored report says so; the live one counts it.
    with db.writing() as s:
        s.add(Flag(image_id=labelled.ids[0], kind="mislabel", status="open", details={}))
        s.commit()
    stale = client.get(url).json()
    assert stale["as_of"]["flags_since"] == 1 and stale["effective"]["unflagged"] == 90
    assert _live(client, settings, url)["effective"]["unflagged"] == 89
    assert "1 flag change(s) on its images since" in client.get(f"/snapshots/{snap['id']}", headers=HTML).text

    # Refresh (the page's button) queues another job; the worker brings the flags up to date.
    r = client.post(f"/snapshots/{snap['id']}/actions/refresh", headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    again = client.get(url).json()["as_of"]["refreshing"]
    assert again > job and "Refreshing:" in client.get(f"/snapshots/{snap['id']}", headers=HTML).text
    _run_worker(settings)
    fresh = client.get(url).json()
    assert fresh.pop("as_of")["job"] == again and fresh == _live(client, settings, url)
    assert fresh["effective"]["unflagged"] == 89

    # The quality page's own stored report is a different job: these never stand in for it.
    assert client.get("/api/quality").json()["as_of"]["job"] is None


def test_a_big_diff_is_stored_once_and_paged(labelled, settings, db):
    client = labelled.client
    settings.quality_live_max = BIG
    changed = freeze_change_freeze(labelled, db)
    old, new, gone, new_id = changed.old, changed.new, changed.gone, changed.added
    assert len(new["queued"]) == 2                   # its health, and its diff with "old"
    url = f"/api/snapshots/{old['id']}/diff/{new['id']}"

    r = client.get(url)
    assert r.status_code == 202 and r.json()["pending"] in new["queued"]
    page = client.get(f"/snapshots/{new['id']}?diff_with={old['id']}", headers=HTML).text
    assert "being computed by" in page and "+1 added" not in page

    _run_worker(settings)
    d = client.get(url).json()
    assert d.pop("job") in new["queued"]
    live = _live(client, settings, url)
    assert d == live and d["added"] == [new_id] and d["removed"] == [gone] and len(d["relabelled"]) == 1
    assert d["counts"]["moved"] == len(d["moved"]) > 1
    back = client.get(f"/api/snapshots/{new['id']}/diff/{old['id']}").json()   # the same files, mirrored
    back.pop("job")
    assert back == _live(client, settings, f"/api/snapshots/{new['id']}/diff/{old['id']}")
    assert back["added"] == [gone] and back["relabelled"][0]["from"] == d["relabelled"][0]["to"]

    # Bounded lists, exact counts; pages put back together give the whole list.
    one = client.get(url, params={"limit": 1}).json()
    assert one["counts"] == d["counts"] and len(one["moved"]) == 1 and one["limit"] == 1
    pages = [client.get(url, params={"limit": 2, "offset": o}).json()["moved"] for o in range(0, len(d["moved"]), 2)]
    assert [x for p in pages for x in p] == d["moved"]
    assert client.get(url, params={"limit": -1}).status_code == 422
    assert client.get(url, params={"limit": 100_001}).status_code == 422
    assert client.get(url, params={"offset": -1}).status_code == 422
    html = client.get(f"/snapshots/{new['id']}?diff_with={old['id']}", headers={**HTML, "HX-Request": "true"}).text
    assert "+1 added" in html and "−1 removed" in html and "1 relabelled" in html and "report job #" in html

    # A pair nobody queued: 202 with nothing pending; the page's button queues it, the worker computes it.
    third = freeze(client, "third", split={"seed": 0})
    _run_worker(settings)
    pair = f"/api/snapshots/{old['id']}/diff/{third['id']}"
    r = client.get(pair)
    assert r.status_code == 202 and r.json()["pending"] is None
    page = client.get(f"/snapshots/{third['id']}?diff_with={old['id']}", headers=HTML).text
    assert f'action="/snapshots/{third["id"]}/actions/diff"' in page and "Compute the diff" in page
    r = client.post(f"/snapshots/{third['id']}/actions/diff", data={"diff_with": str(old["id"])}, headers=HTML,
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith(f"?diff_with={old['id']}")
    queued = client.get(pair).json()["pending"]
    assert client.post(pair).json()["job"] == queued                                # one at a time
    _run_worker(settings)
    got = client.get(pair).json()
    assert got.pop("job") == queued and got == _live(client, settings, pair)
    assert client.get(f"/api/snapshots/{old['id']}/diff/{old['id']}").status_code == 422


def test_small_snapshots_stay_live_and_queue_nothing(labelled, settings, db):
    client = labelled.client
    first, second = freeze(client, "a"), freeze(client, "b", split={"seed": 3})
    assert "queued" not in first and "queued" not in second
    assert "as_of" not in client.get(f"/api/snapshots/{first['id']}/health").json()
    d = client.get(f"/api/snapshots/{first['id']}/diff/{second['id']}").json()
    assert "job" not in d and d["limit"] == 1000 and d["counts"]["unchanged"] + d["counts"]["moved"] == 90
    assert client.post(f"/api/snapshots/{first['id']}/health/refresh").status_code == 422
    assert client.post(f"/api/snapshots/{first['id']}/diff/{second['id']}").status_code == 422
    assert 'id="as-of"' not in client.get(f"/snapshots/{first['id']}", headers=HTML).text
    with db.reading() as s:
        assert s.query(Job).filter(Job.kind == "report").count() == 0


def test_a_cancelled_report_job_says_so_and_the_page_queues_another(labelled, settings):
    client = labelled.client
    settings.quality_live_max = BIG
    snap = freeze(client, "big")
    job = snap["queued"][0]
    assert client.post(f"/api/jobs/{job}/cancel").status_code == 200
    r = client.get(f"/api/snapshots/{snap['id']}/health")
    assert r.status_code == 202 and r.json()["pending"] is None and r.json()["as_of"]["failed"] == job
    page = client.get(f"/snapshots/{snap['id']}", headers=HTML).text
    assert f"job #{job}</a> did not finish" in page and "Compute it" in page
    assert client.post(f"/snapshots/{snap['id']}/actions/refresh", headers=HTML, follow_redirects=False).status_code == 303
    assert client.get(f"/api/snapshots/{snap['id']}/health").json()["pending"] > job
    assert client.post(f"/snapshots/{snap['id']}/actions/nothing", headers=HTML).status_code == 404


def test_a_stored_diff_of_two_big_multi_label_snapshots_reads_as_sets(client, settings):
    from tests.factories import add_class, upload_fmnist

    for name in ("red", "dress", "shoe"):
        add_class(client, name)
    ids = upload_fmnist(client, 12)
    assert client.post("/api/taxonomy/changes", json={"op": "set-mode", "mode": "multi-label"}).status_code == 201
    sets = [["red"], ["red", "dress"], [], ["shoe"]]
    for k, image_id in enumerate(ids):
        assert client.post(f"/api/images/{image_id}/labels", json={"classes": sets[k % 4]}).status_code == 201
    settings.quality_live_max = BIG
    first = freeze(client, "sets 1")
    client.post(f"/api/images/{ids[0]}/labels", json={"classes": ["red", "shoe"]})
    client.post(f"/api/images/{ids[2]}/labels", json={"classes": ["dress"]})
    second = freeze(client, "sets 2")
    assert len(second["queued"]) == 2                  # its health and the diff with the one before
    url = f"/api/snapshots/{first['id']}/diff/{second['id']}"
    r = client.get(url)
    assert r.status_code == 202 and r.json()["pending"] in second["queued"]      # pending until the worker ran
    _run_worker(settings)
    _run_worker(settings)
    stored = client.get(url).json()
    assert stored["relabelled"] == [{"image": ids[0], "from": "red", "to": "red + shoe"},
                                    {"image": ids[2], "from": "none of these", "to": "dress"}]
    assert stored == _live(client, settings, url) | {"job": stored["job"]}
    back = client.get(f"/api/snapshots/{second['id']}/diff/{first['id']}").json()
    assert back["relabelled"][0] == {"image": ids[0], "from": "red + shoe", "to": "red"}
