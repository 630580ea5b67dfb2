"""The review and quality pages render with and without data, and their buttons work."""

from __future__ import annotations

import re

import numpy as np

from tests.factories import labelled_snapshot
from tests.quality.helpers import confident_probs, finish_job, snapshot_labels


def test_pages_render_empty(client):
    html = client.get("/review").text
    assert "Nothing left to review" in html and 'href="/quality"' in html
    html = client.get("/quality").text
    assert "No finished job with out-of-sample predictions yet" in html
    assert client.get("/api/quality").status_code == 200
    assert client.get("/review", params={"kind": "bogus"}).status_code == 422


def test_review_and_quality_pages_show_the_evidence(client, db):
    snap = labelled_snapshot(client, 30, classes=3, folds=3)
    classes, labels = snapshot_labels(client, snap)
    ids = sorted(labels)
    wrong = {ids[4]: (labels[ids[4]] + 1) % 3, ids[7]: (labels[ids[7]] + 2) % 3}
    job = finish_job(client, db, snap, confident_probs(labels, 3, wrong=wrong))

    html = client.get("/review").text
    flag_id = int(re.search(r'data-flag-id="(\d+)"', html).group(1))
    image = int(re.search(r'data-image-id="(\d+)"', html).group(1))
    assert image in wrong
    assert f"job #{job}" in html and "by truth" in html and "taxonomy v" in html
    assert re.findall(r'<span class="name">([^<]+)</span>', html)[0] == classes[wrong[image]]   # model's top class
    assert 'id="suggested-class">' + classes[wrong[image]] in html

    stage = client.get("/review/stage", params={"skip": str(flag_id)}).text
    assert stage.lstrip().startswith("<article") and f'data-flag-id="{flag_id}"' not in stage
    assert "Nothing left" in client.get("/review/stage", params={"kind": "audit"}).text

    page = client.get("/quality").text
    assert f"job #{job}" in page and "Estimated noise per class" in page
    for name in classes:
        assert name in page
    report = client.get("/api/quality").json()
    assert report["flags"]["by_kind"]["mislabel"]["open"] == 2
    assert report["noise"]["examined"] == 30 and 0 < report["noise"]["noise"] < 0.2
    assert report["noise"]["pairs"] and report["effective"]["raw"] == 30

    r = client.post("/quality/actions/audits", headers={"HX-Request": "true"})
    assert r.status_code == 200 and "wait for a blind audit" in r.text and "<nav" not in r.text
    r = client.post("/quality/actions/duplicates", headers={"HX-Request": "true"})
    assert "conflicting group" in r.text
    r = client.post("/quality/actions/mislabels", headers={"HX-Request": "true"})
    assert f"job #{job}: 2 suspected" in r.text
    assert "unknown action" in client.post("/quality/actions/nope", headers={"HX-Request": "true"}).text


def test_a_model_that_learnt_nothing_gives_no_estimate_and_no_flags(client, db):
    snap = labelled_snapshot(client, 60, classes=3, folds=3)
    _, labels = snapshot_labels(client, snap)
    rng = np.random.default_rng(3)
    job = finish_job(client, db, snap, {i: rng.dirichlet(np.ones(3)).tolist() for i in labels})
    page = client.get("/quality").text
    assert 'id="noise-uninformative"' in page and f"Job #{job}'s model learnt too little" in page
    assert re.search(r'data-metric="noise">—<', page)
    report = client.get("/api/quality").json()
    assert report["noise"]["job"] == job and not report["noise"]["informative"]
    assert report["flags"]["by_kind"]["mislabel"]["open"] == 0


def test_the_noise_estimate_follows_a_merge(client, db):
    snap = labelled_snapshot(client, 60, classes=3, folds=3)
    classes, labels = snapshot_labels(client, snap)
    ids = sorted(labels)
    # The model takes six of class 0's images for class 1: noise between the two classes that are merged next.
    wrong = {i: 1 for i in [i for i in ids if labels[i] == 0][:6]}
    finish_job(client, db, snap, confident_probs(labels, 3, wrong=wrong))
    before = client.get("/api/quality").json()["noise"]
    assert before["noise"] > 0.05 and not before["changed"]
    assert {frozenset((p["a_name"], p["b_name"])) for p in before["pairs"][:1]} == {frozenset(classes[:2])}
    r = client.post("/api/taxonomy/changes", json={"op": "merge", "classes": classes[:2], "into": "top"})
    assert r.status_code == 201, r.text
    after = client.get("/api/quality").json()["noise"]
    assert after["changed"] and after["noise"] < before["noise"] / 3
    rows = {c["class"]: c for c in after["per_class"]}
    assert set(rows) == {"top", classes[2]} and rows["top"]["n"] == sum(labels[i] in (0, 1) for i in ids)
    assert all("top" not in (p["a_name"], p["b_name"]) or p["count"] < 1 for p in after["pairs"])
    assert "Classes changed since that job" in client.get("/quality").text
