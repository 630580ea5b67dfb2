"""Test data made through the public HTTP API, so tests exercise what users do."""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image

from tests import fmnist


def add_class(client, name: str, **fields) -> dict:
    r = client.post("/api/taxonomy/changes", json={"op": "add", "name": name, **fields})
    assert r.status_code == 201, r.text
    return next(c for c in r.json()["classes"] if c["name"] == name)


def png_bytes(i: int) -> bytes:
    """The i-th Fashion-MNIST training image as PNG bytes."""
    images, _ = fmnist.load("train", i + 1)
    buf = io.BytesIO()
    Image.fromarray(images[i]).save(buf, format="PNG")
    return buf.getvalue()


def near_duplicates(n: int) -> list[tuple[str, bytes]]:
    """n copies of one Fashion-MNIST image, each with one pixel changed: distinct files, one pHash group."""
    images, _ = fmnist.load("train", 1)
    out = []
    for i in range(n):
        pixels = images[0].copy()
        pixels[0, i] = 255 - pixels[0, i]
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        out.append((f"variant-{i}.png", buf.getvalue()))
    return out


def upload(client, files: list[tuple[str, bytes]], source: str = "fmnist") -> dict:
    r = client.post(
        "/api/images",
        data={"source": source},
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
    )
    assert r.status_code == 200, r.text
    return r.json()


def upload_fmnist(client, n: int, *, start: int = 0, source: str = "fmnist") -> list[int]:
    """Upload n real Fashion-MNIST images; returns their ids in order."""
    images, _ = fmnist.load("train", start + n)
    files = []
    for i in range(start, start + n):
        buf = io.BytesIO()
        Image.fromarray(images[i]).save(buf, format="PNG")
        files.append((f"fmnist-{i:05d}.png", buf.getvalue()))
    report = upload(client, files, source)
    assert not report["rejected"], report["rejected"]
    by_name = {x["filename"]: x["id"] for x in report["imported"] + report["duplicates"]}
    return [by_name[name] for name, _ in files]


def label(client, image_id: int, cls, **fields) -> dict:
    r = client.post(f"/api/images/{image_id}/labels", json={"class": cls, **fields})
    assert r.status_code == 201, r.text
    return r.json()


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


def labelled_snapshot(client, n: int, *, classes: int = 3, folds: int = 3, name: str = "snap",
                      source: str = "fmnist", start: int = 0) -> dict:
    """n real Fashion-MNIST images labelled with their true classes (the first `classes` of them) and frozen."""
    images, labels = fmnist.load("train", start + 20 * n)
    wanted = [i for i in range(start, len(labels)) if labels[i] < classes][:n]
    existing = {c["name"] for c in client.get("/api/taxonomy").json()["classes"]}
    for k in range(classes):
        if fmnist.CLASSES[k] not in existing:
            add_class(client, fmnist.CLASSES[k])
    files = []
    for i in wanted:
        buf = io.BytesIO()
        Image.fromarray(images[i]).save(buf, format="PNG")
        files.append((f"fmnist-{i:05d}.png", buf.getvalue()))
    report = upload(client, files, source)
    ids = {x["filename"]: x["id"] for x in report["imported"] + report["duplicates"]}
    for i in wanted:
        label(client, ids[f"fmnist-{i:05d}.png"], fmnist.CLASSES[labels[i]], annotator="truth")
    r = client.post("/api/snapshots", json={"name": name, "split": {"val": 0.2, "seed": 0, "folds": folds}})
    assert r.status_code == 201, r.text
    return r.json()


def classes_and_images(base: str, n: int, classes=("shirt", "shoe", "bag")) -> list[int]:
    """On a live server: these classes (keys 1, 2, 3, ...) and n small distinct images; the images' ids."""
    import httpx

    for name in classes:
        r = httpx.post(f"{base}/api/taxonomy/changes", json={"op": "add", "name": name})
        assert r.status_code == 201, r.text
    files = [("files", (f"img{i}.png", png_bytes(i), "image/png")) for i in range(n)]
    r = httpx.post(f"{base}/api/images", data={"source": "fmnist"}, files=files, timeout=60)
    assert r.status_code == 200 and not r.json()["rejected"], r.text
    return [x["id"] for x in r.json()["imported"]]


def finish_train(client, db, snap: dict, *, suggestions: dict[int, list[float]] | None = None,
                 per_source: dict[str, float] | None = None, accuracy: float | None = 0.8,
                 model_path: str | None = None) -> int:
    """A train job on `snap` finished the way the worker finishes one (same functions), with chosen suggestions
    and out-of-sample accuracy (overall and per source); no training runs."""
    from app.training import jobs
    from app.training.spec import Result
    from app.training.worker import prediction_rows

    job_id = client.post("/api/jobs", json={"snapshot": snap["id"], "config": {"epochs": 1}}).json()["id"]
    classes = client.get(f"/api/snapshots/{snap['id']}").json()["classes"]
    metrics = {**({"accuracy": accuracy} if accuracy is not None else {}),
               **({"per_source": per_source} if per_source is not None else {})}
    result = Result(classes=classes, out_of_sample={}, suggestions=suggestions or {}, metrics=metrics, final={},
                    model_path=model_path, device="cpu")
    with db.writing() as s:
        assert jobs.claim(s, "w").id == job_id
    with db.writing() as s:
        assert jobs.finish(s, job_id, "w", status="succeeded", result=result,
                           predictions=prediction_rows(result, [], None))
    return job_id


def stage_image(html: str) -> int:
    """The image id the label page's stage shows."""
    return int(re.search(r'data-image-id="(\d+)"', html).group(1))



def tiles_snapshot(client, n: int, *, n_classes: int = 3, folds: int = 3, missing: float = 0.0, wrong: float = 0.0,
                   name: str = "tiles", seed: int = 0) -> dict:
    """A multi-label taxonomy of the first `n_classes` Fashion-MNIST classes, n tiled images (tests/tiles.py)
    labelled with their sets, with missing and wrong tags planted at those rates, frozen. Returns
    {"snapshot", "ids", "truth", "given", "planted", "classes"} (sets as class-index tuples)."""
    import numpy as np

    from tests import tiles

    client.post("/api/taxonomy/changes", json={"op": "set-mode", "mode": "multi-label"})
    images, truth, classes = tiles.load("fmnist", n, seed=seed, n_classes=n_classes)
    given, planted = tiles.plant(truth, len(classes), np.random.default_rng(seed + 1), missing=missing, wrong=wrong)
    existing = {c["name"] for c in client.get("/api/taxonomy").json()["classes"]}
    for c in classes:
        if c not in existing:
            add_class(client, c)
    ids = []
    for start in range(0, n, 500):
        files = []
        for i in range(start, min(n, start + 500)):
            buf = io.BytesIO()
            Image.fromarray(images[i]).save(buf, format="PNG")
            files.append((f"tiles-{seed}-{i:05d}.png", buf.getvalue()))
        report = upload(client, files, "tiles")
        by_name = {x["filename"]: x["id"] for x in report["imported"] + report["duplicates"]}
        ids += [by_name[f"tiles-{seed}-{i:05d}.png"] for i in range(start, min(n, start + 500))]
    for image_id, members in zip(ids, given):
        r = client.post(f"/api/images/{image_id}/labels", json={"classes": [classes[c] for c in members],
                                                                 "annotator": "tiles"})
        assert r.status_code == 201, r.text
    r = client.post("/api/snapshots", json={"name": name, "split": {"val": 0.2, "seed": 0, "folds": folds}})
    assert r.status_code == 201, r.text
    return {"snapshot": r.json(), "ids": ids, "truth": truth, "given": given, "planted": planted, "classes": classes}
