"""Review evidence from a real model: a train job through the real worker on Fashion-MNIST images, the analysis it
queues, then the similar images, the neighbours' labels and the outlier flags the review page shows."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import numpy as np
import pytest
from sqlalchemy import select

from app.db.models import Flag, Job
from app.embeddings import analyses, knn, neighbours
from app.quality.evidence import SIMILAR, evidence
from app.quality.mislabel_flags import detect_mislabels
from tests import fmnist
from tests.embeddings import strays
from tests.factories import add_class, label, labelled_snapshot, upload
from tests.workers import FAST, finished, start_worker, stop, wait_for

pytestmark = pytest.mark.slow  # one real train job (3 small models) and its analysis: ~30 s on two busy cores


@pytest.fixture
def world(client, settings, db):
    """120 labelled images of 4 classes (2 folds), 2 photos labelled as the first class, 4 noise images unlabelled;
    one train job and the analysis it queues."""
    add_class(client, fmnist.CLASSES[0])
    photos = [x["id"] for x in upload(client, strays.photos(2, start=6), "scrape")["imported"]]
    for image_id in photos:
        label(client, image_id, fmnist.CLASSES[0], annotator="scraper")
    snap = labelled_snapshot(client, 120, classes=4, folds=2)
    noise = [x["id"] for x in upload(client, strays.noise(4), "scrape")["imported"]]
    train = client.post("/api/jobs", json={"snapshot": snap["id"], "config": {**FAST, "epochs": 3}}).json()["id"]
    worker = start_worker(settings.data_dir)
    try:
        assert wait_for(client, train, finished)["status"] == "succeeded"
        # The worker queues the analysis right after marking the train job finished.
        wait_for(client, train, lambda _: any(j["kind"] == "analyse" for j in client.get("/api/jobs").json()["items"]),
                 timeout=30)
        with db.reading() as s:
            job = s.scalars(select(Job).where(Job.kind == "analyse")).one()
        done = wait_for(client, job.id, finished, timeout=120)
        assert done["status"] == "succeeded", done["error"]
        # after_analysis (the outlier flags) runs once the job is marked finished: wait for its flags.
        wait_for(client, job.id, lambda _: client.get("/api/flags", params={"kind": "outlier"}).json()["total"] > 0,
                 timeout=30)
    finally:
        stop(worker)
    with db.reading() as s:
        analysis = analyses.latest(s, settings)
    items = client.get(f"/api/snapshots/{snap['id']}/items").json()["items"]
    return SimpleNamespace(train=train, analysis=analysis, photos=photos, noise=noise,
                           labelled={it["image"]: it["class"] for it in items})


def test_review_evidence_from_a_real_model(client, settings, db, world):
    """One train job for both (it is the slow part)."""
    similar_images_and_the_neighbours_labels(client, settings, db, world)
    real_outlier_flags_show_their_neighbours_in_review(client, db, world)
    mislabel_flags_weigh_the_neighbours(client, settings, db, world)


def mislabel_flags_weigh_the_neighbours(client, settings, db, world):
    """The worker's mislabel check read the job's out-of-sample embeddings, and stored the noise estimate that the
    quality page shows."""
    with db.reading() as s:
        found = detect_mislabels(s, job_id=world.train, settings=settings)
        stored = s.get(Job, world.train).metrics["label_noise"]
    assert found.neighbours
    assert stored["job"] == world.train and stored["noise"] == pytest.approx(float(found.wrong.mean()))
    assert {p["source"] for p in stored["per_source"]} >= {"scrape"}
    written = [f for f in client.get("/api/flags", params={"kind": "mislabel", "limit": 500}).json()["items"]
               if "quality" in f["details"]]  # the worker's (an earlier step added one by hand)
    assert {f["image"] for f in written} == {int(i) for i in found.data.image_ids[found.issues]}
    assert written and all(f["details"]["neighbours"] and 0 <= f["details"]["wrong"] <= 1 for f in written)
    shown = client.get("/api/quality").json()["noise"]
    assert shown["job"] == world.train and shown["noise"] == pytest.approx(stored["noise"]) and shown["neighbours"]
    surest = max(written, key=lambda f: f["score"])
    html = client.get("/review", params={"flag": surest["id"]}).text
    wrong = re.search(r'id="wrong-probability">Probably wrong: <b>([\d.]+)\s*%</b>', html)
    assert wrong and float(wrong.group(1)) == round(100 * surest["details"]["wrong"])
    assert "the neighbours' labels" in html.replace("&#39;", "'")
    again = client.post("/api/quality/mislabels", json={"job": world.train}).json()  # the API's re-check: the same
    assert again["neighbours"] and again["issues"] == len(written) and again["created"] == 0


def similar_images_and_the_neighbours_labels(client, settings, db, world):
    image = sorted(world.labelled)[5]
    with db.writing() as s:
        s.add(Flag(image_id=image, kind="mislabel", score=0.9, status="open", details={"job": world.train}))
        s.commit()
    with db.reading() as s:
        flag = s.scalars(select(Flag).where(Flag.image_id == image, Flag.kind == "mislabel")).one()
        ev = evidence(s, settings, flag)

    near = client.get(f"/api/images/{image}/similar", params={"k": SIMILAR}).json()
    assert ev["similar"]["job"] == world.train and not ev["similar"]["stored"]
    assert [it["image"] for it in ev["similar"]["items"]] == [it["image"] for it in near["items"]]
    assert [it["class"] for it in ev["similar"]["items"]] == [it["class"] for it in near["items"]]

    a = ev["agreement"]
    share = float(world.analysis.array("neighbour_share")[world.analysis.row(image)])
    assert a["analysis"] == world.analysis.job and a["k"] == knn.K and image not in a["neighbours"]
    assert set(a["neighbours"]) <= set(world.labelled) | set(world.photos)  # out of sample: labelled ones only
    assert a["share"] == pytest.approx(share, abs=1e-3)                    # the analysis' own number
    given = world.labelled[image]
    assert a["agree"] == a["classes"].get(given, 0)
    assert ev["agreement_text"].startswith(f"{a['agree']} of {a['k']} nearest neighbours (out of sample) ")
    print(f"image {image} ({given}): {ev['agreement_text']}")

    html = client.get("/review", params={"flag": flag.id}).text
    assert ev["agreement_text"] in html.replace("&amp;", "&")
    assert html.count('class="strip-item') == SIMILAR
    took = []
    for _ in range(20):
        start = time.perf_counter()
        assert client.get("/review/stage", params={"flag": flag.id}).status_code == 200
        took.append(time.perf_counter() - start)
    print(f"/review/stage with similar images and neighbours' labels: median {1000 * np.median(took):.1f} ms")
    shares = np.asarray(world.analysis.array("neighbour_share"))
    print(f"mean out-of-sample neighbour share over labelled images: {np.nanmean(shares):.3f}")


def real_outlier_flags_show_their_neighbours_in_review(client, db, world):
    flags = client.get("/api/flags", params={"kind": "outlier"}).json()["items"]
    assert flags  # which images an analysis flags is app.embeddings.analyse's to measure (tests/embeddings)
    z = np.asarray(world.analysis.array("outlier"))
    rank = np.argsort(np.argsort(-z, kind="stable"), kind="stable")
    ranks = {name: [int(rank[world.analysis.row(i)]) for i in ids] for name, ids in
             (("noise", world.noise), ("photos", world.photos))}
    print(f"outlier flags on {[f['image'] for f in flags]}; ranks of the planted images among {len(z)}: {ranks}")
    top = flags[0]
    html = client.get("/review", params={"kind": "outlier"}).text
    assert f'data-flag-id="{top["id"]}"' in html
    assert re.search(r"Far from every (image|[^:<]+): \d+\.\d times the usual distance", html)
    stored = top["details"]["neighbours"]
    assert 0 < len(stored) <= SIMILAR
    shown = [int(i) for i in re.findall(r'<li class="strip-item[^"]*" data-id="(\d+)"', html)]
    assert shown == stored and top["image"] not in shown
    with db.reading() as s:
        share = neighbours.evidence(s, world.analysis.settings, top["image"])
    assert (share is None) == (top["image"] in world.noise)  # unlabelled: no agreement line
