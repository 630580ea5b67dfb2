"""The Python client (app.client.Loupe) driving a real server and worker, as a notebook would."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader

from app.client import Loupe, LoupeError
from app.web.schemas.flags import FlagView
from app.web.schemas.jobs import JobDetail
from tests import fmnist
from tests.factories import near_duplicates
from tests.logins import make_token, make_user
from tests.servers import running_server
from tests.workers import FAST, start_worker, stop


def _photos(root):
    """40 Fashion-MNIST images in class folders, and two near-copies of one image filed under two classes."""
    paths = fmnist.write_pngs(root, 40, start=1000, folders=True)
    for (name, data), folder in zip(near_duplicates(2), ("shirt", "coat")):
        (root / folder).mkdir(exist_ok=True)
        (root / folder / name).write_bytes(data)
    return {p.name: p.parent.name for p in paths} | {"variant-0.png": "shirt", "variant-1.png": "coat"}


def _tensor(image):
    return np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255


@pytest.mark.slow  # a real server and worker; the worker trains for a few seconds
def test_a_notebook_imports_freezes_reads_trains_and_reviews_through_the_client(settings, db, tmp_path):
    make_user(db, "root", "admin")
    token = make_token(db, "notebook", "root")
    truth = _photos(tmp_path / "photos")
    with running_server(settings.data_dir, env={"LOUPE_LOGIN": "required"}) as base, \
            Loupe(base, token=token) as loupe:
        with Loupe(base) as stranger, pytest.raises(LoupeError) as refused:
            stranger.snapshots()
        assert refused.value.status == 401 and "API token" in refused.value.detail

        report = loupe.import_folder(tmp_path / "photos", source="shop", labels="folders")
        assert len(report.imported) == 42 and not report.rejected
        assert report.labels.labelled == 42 and report.labels.format == "folders"
        assert loupe.count_images(source="shop") == 42
        shirts = list(loupe.images(class_="shirt", page=3))      # pages of 3 follow the cursor to the end
        assert sorted(i.filename.rsplit("/", 1)[-1] for i in shirts) == sorted(
            n for n, c in truth.items() if c == "shirt")

        snap = loupe.create_snapshot("notebook-v1", val=0.25, folds=2)
        assert loupe.snapshot("notebook-v1").id == snap.id and snap.count == 42
        rows = loupe.snapshot_rows("notebook-v1")
        assert len(rows) == 42 and rows["split"].value_counts().to_dict() == {
            k: n for k, n in snap.splits.items() if n}
        by_id = {i.id: truth[i.filename.rsplit("/", 1)[-1]] for i in loupe.images()}
        assert all(by_id[image] == name for image, name in zip(rows["image"], rows["class"]))

        train = loupe.snapshot_dataset(snap.id, split="train", transform=_tensor, cache=tmp_path / "cache")
        assert len(train) == snap.splits["train"] and train.classes == snap.classes
        x, y = train[0]
        assert x.shape == (3, 28, 28) and train.classes[y] == by_id[train.items[0].image]
        assert (tmp_path / "cache" / str(train.items[0].image)).exists()
        batch, targets = next(iter(DataLoader(train, batch_size=8, shuffle=False)))
        assert tuple(batch.shape) == (8, 3, 28, 28) and targets.tolist() == train.targets[:8]

        with pytest.raises(LoupeError) as bad:
            loupe.train(snap.id, epochs=0)
        assert bad.value.status == 422 and "epochs" in bad.value.detail
        job = loupe.train("notebook-v1", **{**FAST, "epochs": 2, "folds": 2})
        worker = start_worker(settings.data_dir)
        try:
            done = loupe.wait(job, poll=0.3, timeout=240)
        finally:
            stop(worker)
        assert isinstance(done, JobDetail) and done.status == "succeeded", done.error
        assert done.epochs and job.id in {j.id for j in loupe.jobs()}
        preds = loupe.predictions(job.id)
        assert preds.classes == snap.classes and {p.image for p in preds.items} == set(by_id)

        loupe.request("POST", "/api/quality/duplicates")
        flags = list(loupe.flags(kind="duplicate", page=1))
        assert all(isinstance(f, FlagView) for f in flags) and len(flags) == 2
        assert {by_id[f.image] for f in flags} == {"shirt", "coat"}
        with pytest.raises(LoupeError) as missing:
            loupe.snapshot("no such snapshot")
        assert missing.value.status == 404


def test_the_client_finds_a_formats_label_file_and_a_bad_one_imports_nothing(settings, tmp_path):
    import json

    paths = fmnist.write_pngs(tmp_path / "hub", 6, start=2000)
    truth = dict(zip((p.name for p in paths), fmnist.CLASSES))
    meta = tmp_path / "hub" / "metadata.jsonl"
    meta.write_text("".join(json.dumps({"file_name": name, "label": c}) + "\n" for name, c in truth.items()))
    with running_server(settings.data_dir) as base, Loupe(base) as loupe:
        meta.write_text(meta.read_text() + '{"file_name": "fmnist-02000.png", "label": \n')
        with pytest.raises(LoupeError) as bad:
            loupe.import_folder(tmp_path / "hub", source="hub", labels="hf")
        assert bad.value.status == 422 and "line 7" in bad.value.detail, bad.value.detail
        assert loupe.count_images() == 0                                   # nothing half-imported

        meta.write_text("".join(meta.read_text().splitlines(keepends=True)[:6]))
        report = loupe.import_folder(tmp_path / "hub", source="hub", labels="hf")
        assert report.labels.format == "hf" and report.labels.labelled == 6
        assert {i.filename.rsplit("/", 1)[-1]: i.class_ for i in loupe.images()} == truth
        with pytest.raises(LoupeError, match="no cvat label file found"):
            loupe.import_folder(tmp_path / "hub", source="hub", labels="cvat")


def test_a_multi_label_snapshot_reads_as_sets_and_as_0_1_targets(settings, tmp_path):
    paths = fmnist.write_pngs(tmp_path / "shop", 8, start=3000)
    with running_server(settings.data_dir) as base, Loupe(base) as loupe:
        report = loupe.import_folder(tmp_path / "shop", source="shop")
        for name in ("red", "dress"):
            loupe.request("POST", "/api/taxonomy/changes", json={"op": "add", "name": name})
        loupe.request("POST", "/api/taxonomy/changes", json={"op": "set-mode", "mode": "multi-label"})
        sets = [["red"], ["red", "dress"], [], ["dress"]] * 2
        for item, classes in zip(report.imported, sets):
            loupe.request("POST", f"/api/images/{item.id}/labels", json={"classes": classes})
        snap = loupe.create_snapshot("sets", val=0.25, folds=2)
        rows = loupe.snapshot_rows(snap.id)
        assert list(rows.columns) == ["image", "classes", "split", "fold", "label_event"] and len(rows) == len(paths)
        by_image = dict(zip(rows["image"], rows["classes"]))
        assert [sorted(by_image[i.id]) for i in report.imported] == [sorted(s) for s in sets]
        data = loupe.snapshot_dataset(snap.id)
        x, y = data[1]
        assert data.multi and data.classes == ["dress", "red"] and y.tolist() == [1.0, 1.0]
        assert data[2][1].tolist() == [0.0, 0.0] and data[3][1].tolist() == [1.0, 0.0]
