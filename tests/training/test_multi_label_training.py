"""Multi-label training and label issues: per-class thresholds, set metrics, the trainer on tiled real images,
and the real worker from a set-labelled snapshot to flags that name a class as missing or wrong."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.quality.set_issues import detect_sets
from app.training import multilabel
from app.training.spec import Item, TrainConfig
from tests import tiles
from tests.factories import tiles_snapshot
from tests.workers import FAST, finished, start_worker, stop, wait_for


def test_each_class_gets_the_threshold_of_its_best_f1_and_a_rare_class_keeps_one_half():
    probs = np.array([[0.9, 0.8], [0.35, 0.7], [0.3, 0.1], [0.2, 0.6], [0.1, 0.2], [0.32, 0.3]] * 2)
    targets = np.array([[1, 1], [1, 0], [0, 0], [1, 0], [0, 0], [0, 0]] * 2)
    cuts = multilabel.choose_thresholds(targets, probs)
    # Class 0: positives at 0.9, 0.35, 0.2 (twice each); the best F1 takes 0.9 and 0.35 (F1 0.8), cut below 0.35.
    assert cuts[0] == pytest.approx((0.35 + 0.32) / 2)
    assert cuts[1] == 0.5                       # two positives: fewer than MIN_POSITIVES, left at 0.5
    assert multilabel.choose_thresholds(np.ones((10, 1)), np.full((10, 1), 0.01))[0] == multilabel.THRESHOLD_CLIP[0]


def test_set_metrics_match_a_hand_count():
    targets = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    probs = np.array([[0.9, 0.2, 0.4], [0.1, 0.8, 0.7], [0.6, 0.3, 0.1], [0.2, 0.1, 0.1]])
    m = multilabel.evaluate_sets(targets, probs, [0.5, 0.5, 0.5], classes=["a", "b", "c"], sources=list("xxyy"))
    # predicted: {a}, {b, c}, {a}, {}: exact 1 of 4 ({} = {}), plus... row 0 misses c, row 1 adds c, row 2 misses b.
    assert m["accuracy"] == 0.25 and m["hamming"] == pytest.approx(9 / 12)
    # tp a=2, b=1, c=0; predicted a=2, b=1, c=1; support a=2, b=2, c=1.
    assert m["per_class"]["a"]["f1"] == 1.0 and m["per_class"]["b"]["recall"] == 0.5
    assert m["per_class"]["c"]["precision"] == 0.0
    assert m["micro_f1"] == pytest.approx(2 * 3 / (5 + 4))
    assert m["macro_f1"] == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)
    # AP: a ranks its 2 positives first (1.0); b: 0.8 (pos), 0.3 (pos) after 0.2? order 0.8, 0.3, 0.2, 0.1 -> 1.0;
    # c: 0.7 (neg), 0.4 (pos) -> 0.5.
    assert m["map"] == pytest.approx((1.0 + 1.0 + 0.5) / 3)
    assert m["confusion"] is None and m["per_source"] == {"x": 0.0, "y": 0.5}


def test_planted_missing_and_wrong_tags_are_found_and_named_and_noise_alone_flags_nothing():
    rng = np.random.default_rng(0)
    n, k = 3000, 6
    truth = rng.random((n, k)) < 0.3
    # A fair model: about right, sometimes unsure.
    logits = np.where(truth, 2.5, -2.5) + rng.normal(0, 1.6, (n, k))
    probs = 1 / (1 + np.exp(-logits))
    given = truth.copy()
    missing = truth & (rng.random((n, k)) < 0.1)
    wrong = ~truth & (rng.random((n, k)) < 0.03)
    given[missing], given[wrong] = False, True
    found = detect_sets(given, probs)
    flags, planted = found["issues"], missing | wrong
    precision = (flags & planted).sum() / flags.sum()
    recall = (flags & planted).sum() / planted.sum()
    assert precision > 0.7 and recall > 0.6, (precision, recall)
    assert (flags & missing).sum() > 0 and (flags & wrong).sum() > 0   # both kinds
    assert not (flags & ~given & (probs < 0.5)).any()                # a pair the model agrees with is left alone
    assert found["noise"]["missing"].mean() == pytest.approx(0.1, abs=0.04)
    assert not detect_sets(given, rng.random((n, k)))["issues"].any()  # probabilities that carry nothing


class _Quiet:
    def progress(self, *_):
        pass

    def epoch(self, *_):
        pass

    def log(self, *_):
        pass

    def cancelled(self):
        return False


def test_the_trainer_learns_sets_with_sigmoids_and_exports_its_thresholds(tmp_path):
    from app.training import predict, train

    images, sets, classes = tiles.load("fmnist", 160, n_classes=3)
    items = []
    for i, (pixels, s) in enumerate(zip(images, sets)):
        path = tmp_path / f"{i}.png"
        Image.fromarray(pixels).save(path)
        items.append(Item(image_id=i, path=str(path), label=-1, split="val" if i % 5 == 0 else "train",
                          fold=i % 3, source="tiles", classes=s))
    config = TrainConfig(epochs=5, image_size=28, batch_size=16)
    result = train.run(items, classes, config, _Quiet(), tmp_path / "work",
                       unlabelled=[(1000, items[0].path)])
    assert result.multi_label and len(result.thresholds) == 3
    assert all(multilabel.THRESHOLD_CLIP[0] <= t <= multilabel.THRESHOLD_CLIP[1] for t in result.thresholds)
    probs = np.array([result.out_of_sample[i] for i in range(len(items))])
    assert probs.shape == (160, 3) and not np.allclose(probs.sum(axis=1), 1)   # one sigmoid per class
    m = result.metrics
    assert m["multi_label"] and {"micro_f1", "macro_f1", "map", "hamming"} <= set(m)
    assert m["micro_f1"] > 0.6 and m["map"] > 0.6, m            # it learnt the tiles, not a constant
    assert set(m["per_class"]["trouser"]) >= {"precision", "recall", "f1", "ap", "threshold"}
    assert result.final["val"]["thresholds"] == result.thresholds
    info = json.loads(Path(result.model_path).with_name("model.json").read_text())
    assert info["multi_label"] and info["thresholds"] == result.thresholds
    predicted = predict.run(Path(result.model_path), 28, classes, [(7, items[0].path)], _Quiet(), "cpu")
    assert predicted.thresholds == result.thresholds
    assert np.allclose(predicted.probs[7], result.suggestions[1000], atol=1e-4)   # the same image, same model


def test_a_set_that_names_a_class_outside_the_list_is_refused(tmp_path):
    from app.errors import TrainingError
    from app.training import train

    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(path)
    items = [Item(image_id=i, path=str(path), label=-1, split="train", fold=i % 2, source="s", classes=(0, 5))
             for i in range(4)]
    with pytest.raises(TrainingError, match=r"image 0 has label \(0, 5\)"):
        train.run(items, ["a", "b"], TrainConfig(epochs=1), _Quiet(), tmp_path / "w")


def test_the_worker_trains_a_multi_label_snapshot_and_flags_missing_and_wrong_tags(client, settings):
    made = tiles_snapshot(client, 240, n_classes=3, folds=3, missing=0.15, wrong=0.05)
    snap, ids, classes = made["snapshot"], made["ids"], made["classes"]
    job_id = client.post("/api/jobs", json={"snapshot": snap["id"], "config": FAST}).json()["id"]
    worker = start_worker(settings.data_dir)
    try:
        body = wait_for(client, job_id, finished)
        assert body["status"] == "succeeded", body["error"]
        # The flags follow the job's end (the worker's after_finish): their noise estimate marks them written.
        body = wait_for(client, job_id, lambda b: "set_noise" in b["metrics"], timeout=60)
    finally:
        stop(worker)
    m = body["metrics"]
    assert m["multi_label"] and m["micro_f1"] > 0.6 and len(m["thresholds"]) == 3, m
    assert {row["class"] for row in m["set_noise"]} == set(classes)
    page = client.get(f"/jobs/{job_id}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "micro-F1" in page.text and "mAP" in page.text
    quality = client.get("/api/quality").json()["noise"]
    assert quality["multi_label"] and quality["job"] == job_id and quality["pairs"] == []
    assert {c["class"] for c in quality["per_class"]} == set(classes) and all(
        c["missing"] is not None and c["wrong"] is not None for c in quality["per_class"])
    page = client.get("/quality", headers={"Accept": "text/html"})
    assert page.status_code == 200 and 'id="noise-sets"' in page.text
    html = {"Accept": "text/html"}
    for url in ("/", "/jobs", "/snapshots", f"/snapshots/{snap['id']}", "/snapshots/live", f"/images/{ids[0]}",
                "/browse", "/label", "/label?order=uncertain", "/review", "/map", "/taxonomy", "/similar"):
        assert client.get(url, headers=html).status_code == 200, url    # every page reads a set job's results
    for url in (f"/api/images/{ids[0]}", "/api/jobs", f"/api/snapshots/{snap['id']}/health", "/api/flags"):
        assert client.get(url).status_code == 200, url

    preds = client.get(f"/api/jobs/{job_id}/predictions").json()
    oof = [p for p in preds["items"] if p["role"] == "oof"]
    assert len(oof) == len(set(ids)) == snap["count"] and all(len(p["probs"]) == 3 for p in oof)  # blank tiles: dups
    assert not all(abs(sum(p["probs"]) - 1) < 1e-3 for p in oof)

    flags = client.get("/api/flags", params={"kind": "mislabel", "limit": 500}).json()["items"]
    assert flags, "no pair was flagged"
    row_of = {image_id: r for r, image_id in enumerate(ids)}
    hits = 0
    for f in flags:
        d = f["details"]
        r, c = row_of[f["image"]], classes.index(d["class"])
        assert d["detail"] == ("wrong" if c in made["given"][r] else "missing")
        assert d["pairs"][0]["class"] == d["class"] and d["multi_label"]
        hits += made["planted"][r, c] != 0
    base = (made["planted"] != 0).mean()
    assert hits / len(flags) > 2 * base, (hits, len(flags), base)   # far better than flagging pairs at random

    # Review: the page names the suspect tags; accepting the suggested set, turning one class over and keeping
    # each write one review event with the set decided.
    def classes_of(image_id):
        return sorted(client.get(f"/api/images/{image_id}").json()["label"]["classes"])

    first, second, third = flags[0], flags[1], flags[2]
    page = client.get("/review", params={"flag": first["id"]}, headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Suspect tags" in page.text and first["details"]["class"] in page.text
    wanted = sorted(_names(client, first["details"]["suggested_set"]))
    r = client.post(f"/api/flags/{first['id']}/resolve",
                    json={"action": "relabel", "classes": first["details"]["suggested_set"], "annotator": "rev"})
    assert r.status_code == 200, r.text
    assert classes_of(first["image"]) == wanted
    before = set(classes_of(second["image"]))
    r = client.post(f"/api/flags/{second['id']}/resolve",
                    json={"action": "relabel", "class": second["details"]["class"], "annotator": "rev"})
    assert r.status_code == 200, r.text
    assert set(classes_of(second["image"])) == before ^ {second["details"]["class"]}
    before = classes_of(third["image"])
    r = client.post(f"/api/flags/{third['id']}/resolve", json={"action": "keep", "annotator": "rev"})
    assert r.status_code == 200 and r.json()["flag"]["resolution"] == "keep", r.text
    history = client.get(f"/api/images/{third['image']}").json()["history"]
    assert classes_of(third["image"]) == before and history[-1]["kind"] == "review"
    assert sorted(history[-1]["classes"]) == before


def _names(client, class_ids):
    by_id = {c["id"]: c["name"] for c in client.get("/api/taxonomy").json()["classes"]}
    return [by_id[i] for i in class_ids]
