"""Past `quality_live_max` images the quality page reads a stored report: stale after a change, fresh after the
refresh job that the real worker runs (issue 16). Runs on SQLite and PostgreSQL alike."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.factories import add_class, label, upload_fmnist


def _run_worker_once(settings) -> None:
    done = subprocess.run([sys.executable, "-m", "app.cli", "worker", "--once", "--data", str(settings.data_dir)],
                          env={**os.environ}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_big_dataset_reads_a_stored_report_and_says_what_changed_since(client, settings):
    settings.quality_live_max = 0  # every dataset counts as big here
    ids = upload_fmnist(client, 6)
    add_class(client, "shirt")
    for image in ids[:3]:
        label(client, image, "shirt")

    # Nothing stored yet: no number shown as if it were current.
    body = client.get("/api/quality").json()
    assert body["as_of"] == {"job": None, "at": None, "since": None, "refreshing": None}
    assert body["duplicates"] is None and body["effective"] is None and body["hard_cases"] is None
    assert body["library"]["images"] == 6 and body["library"]["labelled"] == 3   # cheap counts stay live
    page = client.get("/quality").text
    assert "none has run yet" in page and 'action="/quality/actions/refresh"' in page
    assert re.search(r'data-metric="effective">—<', page)

    job = client.post("/api/quality/refresh").json()["job"]
    assert client.post("/api/quality/refresh").json()["job"] == job        # one refresh at a time
    assert client.get("/api/quality").json()["as_of"]["refreshing"] == job
    assert f"Refreshing: <a href=\"/jobs/{job}\">job #{job}</a>" in client.get("/quality").text

    _run_worker_once(settings)
    done = client.get(f"/api/jobs/{job}").json()
    assert done["status"] == "succeeded", done["error"]
    assert done["progress"] == 1.0
    fresh = client.get("/api/quality").json()
    assert fresh["as_of"]["job"] == job and fresh["as_of"]["refreshing"] is None
    assert fresh["as_of"]["since"] == {"labels": 0, "images": 0, "exclusions": 0, "total": 0}
    assert fresh["effective"]["raw"] == 3 and fresh["duplicates"]["images"] == 6
    dup = client.get("/api/quality/duplicates").json()
    assert dup["as_of"]["job"] == job and dup["rows"] == fresh["duplicates"]["rows"]
    assert "nothing changed since" in client.get("/quality").text
    assert client.get(f"/jobs/{job}").status_code == 200 and f"/jobs/{job}" in client.get("/jobs").text

    # A change makes it stale, and the page says so next to the old numbers.
    label(client, ids[3], "shirt")
    stale = client.get("/api/quality").json()
    assert stale["as_of"]["since"]["labels"] == 1 and stale["effective"]["raw"] == 3
    page = client.get("/quality").text
    assert "1 label(s), 0 image(s) and 0 exclusion change(s) since" in page and "nothing changed since" not in page

    # The page's button queues the refresh; the worker brings it up to date.
    r = client.post("/quality/actions/refresh", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "recomputes duplicates" in r.text
    _run_worker_once(settings)
    again = client.get("/api/quality").json()
    assert again["as_of"]["job"] > job and again["as_of"]["since"]["total"] == 0 and again["effective"]["raw"] == 4


def test_a_small_dataset_stays_live(client, settings):
    ids = upload_fmnist(client, 3)
    add_class(client, "shirt")
    label(client, ids[0], "shirt")
    body = client.get("/api/quality").json()
    assert body["as_of"] is None and body["effective"]["raw"] == 1
    assert 'id="as-of"' not in client.get("/quality").text


def test_the_health_page_reads_the_stored_report_too(client, settings):
    settings.quality_live_max = 0
    ids = upload_fmnist(client, 4)
    add_class(client, "bag")
    label(client, ids[0], "bag")
    page = client.get("/snapshots/live").text
    assert "none has run yet" in page and 'data-metric="total"' not in page
    assert client.get("/api/snapshots/live/health").json()["total"] == 1     # the API computes it meanwhile
    client.post("/api/quality/refresh")
    _run_worker_once(settings)
    label(client, ids[1], "bag")
    body = client.get("/api/snapshots/live/health").json()
    assert body["total"] == 1 and body["as_of"]["since"]["labels"] == 1     # as of the report, and says so
    page = client.get("/snapshots/live").text
    assert "1 label(s), 0 image(s)" in page and 'data-metric="total">1<' in page
