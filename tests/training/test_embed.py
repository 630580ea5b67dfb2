"""Embed jobs: a pretrained backbone's weights from a file the test writes itself, through the real worker."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision import models

from app.db.models import Job
from app.embeddings import files, spaces
from app.errors import TrainingError
from app.training import backbones, embed, nets
from tests.factories import upload_fmnist
from tests.workers import finished, start_worker, stop, wait_for

RESNET18_CACHE_NAME = "resnet18-f37072fd.pth"  # torchvision's file name for ResNet18_Weights.IMAGENET1K_V1


@pytest.fixture
def resnet18_file(tmp_path):
    """A resnet18 state_dict (randomly initialised, seeded) saved with torch.save, as a .pth file."""
    torch.manual_seed(0)
    path = tmp_path / "resnet18.pth"
    torch.save(models.resnet18(weights=None).state_dict(), path)
    return path


def test_the_embedder_loads_a_state_dict_and_its_embedding_is_the_pooled_512_features(resnet18_file):
    model = backbones.embedder("resnet18", resnet18_file)
    reference = models.resnet18(weights=None)
    reference.load_state_dict(torch.load(resnet18_file, weights_only=True))
    reference.fc = torch.nn.Identity()
    x = torch.rand(2, 3, 64, 64)
    mean, std = torch.tensor(nets.IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(nets.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        got, want = model.embed(x), reference.eval()((x - mean) / std)
    assert got.shape == (2, 512) and torch.allclose(got, want, atol=1e-5)


def test_checkpoint_wrappers_prefixes_and_another_head_still_load(tmp_path, resnet18_file):
    state = torch.load(resnet18_file, weights_only=True)
    tuned = {f"module.{k}": v for k, v in state.items() if not k.startswith("fc.")}
    tuned["module.fc.weight"], tuned["module.fc.bias"] = torch.zeros(10, 512), torch.zeros(10)  # a 10-class head
    torch.save({"epoch": 3, "state_dict": tuned}, tmp_path / "tuned.pth")
    model = backbones.embedder("resnet18", tmp_path / "tuned.pth")
    assert torch.equal(model.model.conv1.weight, state["conv1.weight"])


def test_a_file_of_another_architecture_or_no_state_dict_is_refused_in_one_sentence(tmp_path):
    torch.save(models.mobilenet_v3_large(weights=None).state_dict(), tmp_path / "mobilenet.pth")
    with pytest.raises(TrainingError) as err:
        backbones.embedder("resnet18", tmp_path / "mobilenet.pth")
    message = str(err.value)
    assert message.startswith("the weights file is not a resnet18 state_dict:") and "\n" not in message
    narrow = models.resnet18(weights=None).state_dict()
    narrow["conv1.weight"] = torch.zeros(64, 1, 7, 7)  # a grayscale first layer
    torch.save(narrow, tmp_path / "gray.pth")
    with pytest.raises(TrainingError, match=r"'conv1.weight' is \(64, 1, 7, 7\) where resnet18 has \(64, 3, 7, 7\)"):
        backbones.embedder("resnet18", tmp_path / "gray.pth")
    (tmp_path / "notes.pth").write_text("not a torch file")
    with pytest.raises(TrainingError, match="is not a state_dict torch.load can read"):
        backbones.embedder("resnet18", tmp_path / "notes.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(TrainingError, match="holds no state_dict"):
        backbones.embedder("resnet18", tmp_path / "list.pth")


def test_weights_come_from_the_setting_else_torchvisions_cache_else_one_sentence(tmp_path, monkeypatch,
                                                                                 resnet18_file):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(TrainingError) as err:
        backbones.weights_file("resnet18", None)
    expected = (f"no pretrained weights for resnet18: put them in torchvision's cache "
                f"({tmp_path / 'torch' / 'hub' / 'checkpoints' / RESNET18_CACHE_NAME}) or point LOUPE_EMBED_WEIGHTS "
                f"at a .pth file; similar images use the latest training job's embeddings meanwhile")
    assert str(err.value) == expected
    cached = tmp_path / "torch" / "hub" / "checkpoints" / RESNET18_CACHE_NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(resnet18_file.read_bytes())
    assert backbones.weights_file("resnet18", None) == cached

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)  # what torchvision downloads through
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    assert backbones.embedder("resnet18", backbones.weights_file("resnet18", None)).embed(
        torch.rand(1, 3, 32, 32)).shape == (1, 512)
    assert backbones.weights_file("resnet18", resnet18_file) == resnet18_file  # a named file goes first
    with pytest.raises(TrainingError, match="does not exist"):
        backbones.weights_file("resnet18", tmp_path / "gone.pth")


def test_an_embed_jobs_config_is_checked_when_it_is_created(client):
    for config, words in (({"backbone": "vgg16"}, "backbone must be one of"), ({"image_size": 4}, "image_size"),
                          ({"device": "tpu"}, "device must be"), ({"weights": ""}, "weights must be"),
                          ({"colour": "red"}, "takes only")):
        r = client.post("/api/jobs", json={"kind": "embed", "config": config})
        assert r.status_code == 422 and words in r.json()["detail"], (config, r.text)
    r = client.post("/api/jobs", json={"kind": "search"})
    assert r.status_code == 422 and "POST /api/similar" in r.json()["detail"]


def test_embed_jobs_through_the_worker_without_weights_with_a_wrong_file_from_the_cache_and_from_a_file(
        client, settings, db, tmp_path, monkeypatch, resnet18_file):
    """No weights -> failed in one sentence, no space; a wrong file -> failed, said; weights in torchvision's
    cache -> every non-excluded image embedded and searchable, and it is the newest space."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # the worker inherits it: an empty cache
    ids = upload_fmnist(client, 60, start=100)
    r = client.post(f"/api/images/{ids[-1]}/exclude", json={"reason": "not clothing"})
    assert r.status_code == 201, r.text
    torch.save(models.mobilenet_v3_large(weights=None).state_dict(), tmp_path / "mobilenet.pth")
    with db.writing() as s:  # an earlier training job's space (its files do not matter here)
        trained = Job(kind="train", status="succeeded", config={}, notes=[], artifacts={"embeddings": "e.npy"})
        s.add(trained)
        s.commit()

    first = client.post("/api/jobs", json={"kind": "embed"}).json()["id"]
    wrong = client.post("/api/jobs", json={"kind": "embed", "config": {"weights": str(tmp_path / "mobilenet.pth")}}
                        ).json()["id"]
    worker = start_worker(settings.data_dir)
    try:
        body = wait_for(client, first, finished, timeout=120)
        assert body["status"] == "failed"
        assert body["error"].startswith("no pretrained weights for resnet18: put them in torchvision's cache (")
        assert body["error"].count(". ") == 0 and "\n" not in body["error"]  # one sentence
        body = wait_for(client, wrong, finished, timeout=60)
        assert body["status"] == "failed" and body["error"].startswith("the weights file is not a resnet18")
        with db.reading() as s:
            assert spaces.latest_space(s).id == trained.id  # the training job's embeddings go on being used

        cached = tmp_path / "torch" / "hub" / "checkpoints" / RESNET18_CACHE_NAME
        cached.parent.mkdir(parents=True)
        cached.write_bytes(resnet18_file.read_bytes())
        job = client.post("/api/jobs", json={"kind": "embed", "config": {"image_size": 32}}).json()["id"]
        body = wait_for(client, job, finished, timeout=120)
        assert body["status"] == "succeeded", body["error"]
        assert body["message"] == "done: 59 images embedded" and body["metrics"]["dim"] == 512
        with db.reading() as s:
            row = s.get(Job, job)
            art, latest = row.artifacts, spaces.latest_space(s).id
        assert latest == job and art["backbone"] == "resnet18" and art["weights"] == str(cached)
        vec_ids, rows = files.load(settings.jobs_dir / f"job-{job}" / files.VECTORS,
                                   settings.jobs_dir / f"job-{job}" / files.IDS)
        assert vec_ids.tolist() == sorted(ids[:-1]) and rows.shape == (59, 512)  # the excluded one is left out
        assert np.isfinite(rows.astype(np.float32)).all() and (np.abs(rows).sum(axis=1) > 0).all()

        r = client.get(f"/api/images/{ids[0]}/similar", params={"job": job, "k": 10})
        assert r.status_code == 200 and r.json()["job"] == job
        items = r.json()["items"]
        assert len(items) == 10 and ids[0] not in {it["image"] for it in items}
        assert client.get(f"/api/images/{ids[1]}/similar").json()["job"] == job  # the default space now
    finally:
        stop(worker)


def test_config_defaults_and_the_setting(settings):
    job = Job(kind="embed", config={})
    assert embed.config_of(job, settings) == {"backbone": "resnet18", "image_size": embed.DEFAULT_SIZE,
                                              "batch_size": embed.DEFAULT_BATCH, "device": "auto", "weights": None}
    with_setting = settings.model_copy(update={"embed_weights": "/x/weights.pth"})
    assert embed.config_of(job, with_setting)["weights"] == "/x/weights.pth"
    assert embed.config_of(Job(kind="embed", config={"weights": "/y.pth"}), with_setting)["weights"] == "/y.pth"


def test_run_job_streams_in_chunks_skips_unreadable_images_and_a_cancel_leaves_no_file(
        client, settings, db, monkeypatch, resnet18_file):
    """In process (the worker's runner with recording hooks): 40 images in chunks of 16, one original damaged
    on disk; then a job cancelled after its first chunk."""
    from app.db.models import Image
    from app.errors import Cancelled
    from tests.training.test_train import Recorder

    ids = upload_fmnist(client, 40, start=200)
    with db.reading() as s:
        damaged = settings.data_dir / s.get(Image, ids[20]).stored_path
    damaged.write_bytes(b"\x89PNG not really")
    monkeypatch.setattr(embed, "CHUNK", 16)
    config = {"weights": str(resnet18_file), "image_size": 32, "device": "cpu"}
    job = client.post("/api/jobs", json={"kind": "embed", "config": config}).json()["id"]
    hooks = Recorder()
    out = embed.run_job(db, settings, job, "w", hooks)
    assert hooks.fractions == [16 / 40, 32 / 40, 1.0]
    assert out["artifacts"]["embedded"] == 39 and out["metrics"]["images"] == 40
    assert out["notes"][1].startswith("1 images could not be read and have no embedding, e.g. cannot read image")
    vec_ids, _ = files.load(settings.jobs_dir / f"job-{job}" / files.VECTORS,
                            settings.jobs_dir / f"job-{job}" / files.IDS)
    assert vec_ids.tolist() == sorted(set(ids) - {ids[20]})

    second = client.post("/api/jobs", json={"kind": "embed", "config": config}).json()["id"]
    with pytest.raises(Cancelled):
        embed.run_job(db, settings, second, "w", Recorder(stop=lambda h: len(h.fractions) >= 1))
    assert not list((settings.jobs_dir / f"job-{second}").glob("*"))  # no half-written file stays behind
