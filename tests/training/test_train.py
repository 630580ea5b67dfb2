"""The trainer on real Fashion-MNIST images, small enough for a CPU in seconds.

torch is required (the `worker` extra): without it these tests fail at import, on purpose.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch  # no skip: a worker without torch cannot train
from PIL import Image

from app.errors import Cancelled, TrainingError
from app.training import data, nets, train
from app.training import device as devices
from app.training.spec import Item, TrainConfig
from tests import fmnist

CLASSES = ["t-shirt", "trouser", "sneaker"]
PICK = [0, 1, 7]  # Fashion-MNIST labels of those classes
FOLDS = 3
CONFIG = TrainConfig(epochs=2, image_size=28, batch_size=32, device="cpu")


class Recorder:
    """Hooks that record everything and cancel when `stop(self)` says so."""

    def __init__(self, stop=lambda hooks: False):
        self.stop = stop
        self.epochs: list[tuple[str, int, dict]] = []
        self.messages: list[str] = []
        self.fractions: list[float] = []
        self.logs: list[str] = []

    def progress(self, fraction: float, message: str) -> None:
        self.fractions.append(fraction)
        self.messages.append(message)

    def epoch(self, stage: str, epoch: int, metrics: dict) -> None:
        self.epochs.append((stage, epoch, metrics))

    def log(self, message: str) -> None:
        self.logs.append(message)

    def cancelled(self) -> bool:
        return self.stop(self)

    def stages(self) -> list[tuple[str, int]]:
        return [(stage, epoch) for stage, epoch, _ in self.epochs]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The same thread count in every run, so a resumed run can be compared number for number."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(devices.Threads, "_set", lambda self, others: torch.set_num_threads(1))
        yield


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[list[Item], list[tuple[int, str]]]:
    """300 labelled images (100 per class; val 0.2, folds round-robin per class) and 6 unlabelled ones."""
    folder = tmp_path_factory.mktemp("fmnist")
    images, labels = fmnist.load("train", 3000)
    items, unlabelled = [], []
    for label, original in enumerate(PICK):
        chosen = np.flatnonzero(labels == original)
        for pos, i in enumerate(chosen[:100].tolist()):
            path = folder / f"{i}.png"
            Image.fromarray(images[i]).save(path)
            items.append(Item(image_id=i, path=str(path), label=label, split="val" if pos < 20 else "train",
                              fold=pos % FOLDS, source="web" if pos % 4 == 0 else "stock",
                              tags=("dark",) if pos % 5 == 0 else ()))
        for i in chosen[100:102].tolist():
            path = folder / f"u{i}.png"
            Image.fromarray(images[i]).save(path)
            unlabelled.append((100_000 + i, str(path)))
    return items, unlabelled


@pytest.fixture(scope="module")
def finished(dataset, tmp_path_factory):
    """One complete run, uninterrupted."""
    items, unlabelled = dataset
    hooks = Recorder()
    workdir = tmp_path_factory.mktemp("work")
    result = train.run(items, CLASSES, CONFIG, hooks, workdir, unlabelled)
    return result, hooks, workdir


def test_every_image_gets_out_of_sample_probabilities(dataset, finished):
    items, _ = dataset
    result, _, _ = finished
    assert result.classes == CLASSES and result.device == "cpu"
    assert set(result.out_of_sample) == {it.image_id for it in items}
    probs = np.array(list(result.out_of_sample.values()))
    assert probs.shape == (len(items), 3)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5) and (probs >= 0).all()


def test_metrics_are_complete_and_better_than_chance(finished):
    result, _, _ = finished
    m = result.metrics
    assert {"accuracy", "macro_f1", "per_class", "confusion", "ece", "per_source", "per_tag", "count"} <= set(m)
    assert m["count"] == 300 and m["accuracy"] > 0.6  # chance is 1/3; these three classes are easy
    assert set(m["per_source"]) == {"stock", "web"} and set(m["per_tag"]) == {"dark", "untagged"}
    assert np.array(m["confusion"]).sum() == 300
    assert result.final["val"]["count"] == 60 and result.final["val"]["accuracy"] > 0.6
    assert result.final["test"] is None and result.final["holdout"] is None
    assert set(result.timings) >= {"decode", "fold 1/3", "final", "total"}


def test_reports_each_epoch_of_each_stage(finished):
    _, hooks, _ = finished
    assert hooks.stages() == [(f"fold {k}/3", e) for k in (1, 2, 3) for e in (1, 2)] + [("final", 1), ("final", 2)]
    for stage, epoch, metrics in hooks.epochs:
        assert set(metrics) == {"train_loss", "val_loss", "val_accuracy", "lr", "seconds"}
        assert metrics["train_loss"] > 0 and metrics["seconds"] > 0
        if stage == "final" or epoch == CONFIG.epochs:  # folds report on their held-out fold at the end only
            assert 0 <= metrics["val_accuracy"] <= 1 and metrics["val_loss"] > 0
        else:
            assert metrics["val_accuracy"] is None and metrics["val_loss"] is None
    assert hooks.fractions == sorted(hooks.fractions) and hooks.fractions[-1] == 1.0
    assert any(m.startswith("reading images") for m in hooks.messages)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_exported_model_loads_and_agrees_with_the_suggestions(dataset, finished):
    _, unlabelled = dataset
    result, _, workdir = finished
    assert result.model_path == str(workdir / "model.pt")
    model = torch.jit.load(result.model_path)
    x = torch.from_numpy(np.stack([data.load(p, 28) for _, p in unlabelled])).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=1).numpy()
    assert probs.shape == (len(unlabelled), 3)
    expected = np.array([result.suggestions[i] for i, _ in unlabelled])
    assert np.allclose(probs, expected, atol=1e-4)
    info = (workdir / "model.json").read_text()
    assert '"image_size": 28' in info and '"sneaker"' in info


def test_holding_out_a_source(dataset, tmp_path):
    items, _ = dataset
    config = replace(CONFIG, epochs=1, holdout_source="web")
    result = train.run(items, CLASSES, config, Recorder(), tmp_path)
    web = {it.image_id for it in items if it.source == "web"}
    assert set(result.out_of_sample) == {it.image_id for it in items}
    assert result.final["holdout"]["count"] == len(web) and result.final["holdout"]["per_source"].keys() == {"web"}
    assert result.final["val"]["per_source"].keys() == {"stock"}


def test_backbone_without_imagenet_weights_trains_from_scratch_and_says_so(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    monkeypatch.setattr(nets, "_reachable", lambda host, port: False)  # and no network
    items, _ = dataset
    result = train.run(items[::5], CLASSES, replace(CONFIG, model="resnet18", epochs=1), Recorder(), tmp_path / "w")
    assert result.notes == [
        "ImageNet weights for resnet18 are not available here (resnet18-f37072fd.pth is not in "
        f"{tmp_path}/torch/hub/checkpoints and download.pytorch.org cannot be reached); trained from scratch"]
    assert len(result.out_of_sample) == 60


def test_backbone_starts_from_cached_imagenet_weights(dataset, tmp_path, monkeypatch):
    from torchvision.models import resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(nets, "_reachable", lambda host, port: pytest.fail("the cache should have been used"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(resnet18().state_dict(), cache / "resnet18-f37072fd.pth")  # stands in for the real file
    items, _ = dataset
    result = train.run(items[::5], CLASSES, replace(CONFIG, model="resnet18", epochs=1), Recorder(), tmp_path / "w")
    assert result.notes == []
    info = json.loads((tmp_path / "w" / "model.json").read_text())
    assert info["mean"] == list(nets.IMAGENET_MEAN) and info["model"] == "resnet18"


def test_augment_leaves_small_images_and_crops_and_flips_large_ones():
    gen = torch.Generator().manual_seed(0)
    small = torch.rand(64, 3, 28, 28)
    assert torch.equal(data.augment(small, gen), small)  # a mirrored letter is another letter
    large = torch.rand(8, 3, 96, 96)
    out = data.augment(large, gen)
    assert out.shape == large.shape and not torch.allclose(out, large)


def _fails(items, classes, message, config=CONFIG, tmp=None):
    with pytest.raises(TrainingError, match=message):
        train.run(items, classes, config, Recorder(), tmp or Path("/nonexistent/never-created"))


def test_invalid_inputs_are_explained(dataset, tmp_path):
    items, _ = dataset
    _fails(items, ["t-shirt"], "at least 2 classes")
    two = [replace(it, label=min(it.label, 1)) for it in items] + [replace(items[0], image_id=-1, label=2, fold=0)]
    _fails(two, CLASSES, "class 'sneaker' has 1 images, fewer than the 3 folds")
    _fails(items, CLASSES, "unknown model 'vit'", replace(CONFIG, model="vit"))
    missing = items[:-1] + [replace(items[-1], path=str(tmp_path / "gone.png"))]
    _fails(missing, CLASSES, f"image {items[-1].image_id} is missing: no file at .*gone.png")
    _fails([replace(it, split="val") for it in items], CLASSES, "train split is empty")
    _fails(items, CLASSES, "no images from source 'camera'", replace(CONFIG, holdout_source="camera"))


def test_unreadable_image_is_named(dataset, tmp_path):
    items, _ = dataset
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    bad = items[:-1] + [replace(items[-1], path=str(broken))]
    _fails(bad, CLASSES, f"image {items[-1].image_id}: cannot read image .*broken.png", tmp=tmp_path / "w")


def test_cancel_stops_within_a_second_or_two(dataset, tmp_path):
    items, _ = dataset
    started = {}

    def stop(hooks):  # cancel as soon as training has begun
        if any("epoch" in m for m in hooks.messages):
            started.setdefault("at", time.monotonic())
            return True
        return False

    with pytest.raises(Cancelled):
        train.run(items, CLASSES, replace(CONFIG, epochs=50), Recorder(stop), tmp_path)
    assert time.monotonic() - started["at"] < 3


def test_resume_after_a_restart_skips_finished_folds(dataset, finished, tmp_path):
    items, unlabelled = dataset
    # first attempt: stopped once fold 2 has finished its first epoch
    first = Recorder(lambda hooks: any(stage == "fold 2/3" for stage, _ in hooks.stages()))
    with pytest.raises(Cancelled):
        train.run(items, CLASSES, CONFIG, first, tmp_path, unlabelled)
    assert first.stages() == [("fold 1/3", 1), ("fold 1/3", 2), ("fold 2/3", 1)]
    assert (tmp_path / "oof-fold1.npz").exists() and (tmp_path / "ckpt-fold2.pt").exists()

    second = Recorder()
    result = train.run(items, CLASSES, CONFIG, second, tmp_path, unlabelled)
    assert second.stages() == [("fold 2/3", 2), ("fold 3/3", 1), ("fold 3/3", 2), ("final", 1), ("final", 2)]
    assert any("fold 1/3 was finished by an earlier attempt" in m for m in second.logs)
    # the same predictions as a run that was never interrupted
    uninterrupted, _, _ = finished
    assert set(result.out_of_sample) == set(uninterrupted.out_of_sample)
    for image_id, probs in uninterrupted.out_of_sample.items():
        assert np.allclose(result.out_of_sample[image_id], probs, atol=1e-4)
    assert result.metrics["accuracy"] == pytest.approx(uninterrupted.metrics["accuracy"])


def test_unreadable_checkpoint_means_that_stage_starts_over(dataset, tmp_path):
    items, _ = dataset
    items, config = items[::2], replace(CONFIG, epochs=1)
    with pytest.raises(Cancelled):  # stopped after fold 1's only epoch, before its predictions were saved
        train.run(items, CLASSES, config, Recorder(lambda hooks: bool(hooks.epochs)), tmp_path)
    (tmp_path / "ckpt-fold1.pt").write_bytes(b"not a checkpoint")
    second = Recorder()
    result = train.run(items, CLASSES, config, second, tmp_path)
    assert second.stages() == [("fold 1/3", 1), ("fold 2/3", 1), ("fold 3/3", 1), ("final", 1)]
    assert any("cannot resume from ckpt-fold1.pt" in m for m in second.logs)
    assert len(result.out_of_sample) == len(items)


def test_changed_inputs_start_over(dataset, tmp_path):
    items, _ = dataset
    items, config = items[::2], replace(CONFIG, epochs=1)
    with pytest.raises(Cancelled):
        train.run(items, CLASSES, config, Recorder(lambda hooks: bool(hooks.epochs)), tmp_path)
    relabelled = [replace(items[0], label=1)] + items[1:]
    second = Recorder()
    train.run(relabelled, CLASSES, config, second, tmp_path)
    assert second.stages()[0] == ("fold 1/3", 1)
    assert not any("earlier attempt" in m or "resuming" in m for m in second.logs)


def test_images_that_do_not_fit_in_memory_train_from_a_file(dataset, finished, tmp_path, monkeypatch):
    items, unlabelled = dataset
    monkeypatch.setattr(data, "MAX_MEMORY_SHARE", 0.0)   # as if this machine's memory were too small for them
    spilled = tmp_path / data.SPILL_NAME
    seen: list[bool] = []
    hooks = Recorder(lambda hooks: seen.append(spilled.exists()) and False)
    result = train.run(items, CLASSES, CONFIG, hooks, tmp_path, unlabelled)
    assert seen and all(seen)                               # read from the file the whole run
    assert not spilled.exists()                             # and it is gone afterwards
    assert any("did not fit in memory" in note for note in result.notes)
    uninterrupted, _, _ = finished                          # the same numbers as from memory
    for image_id, probs in uninterrupted.out_of_sample.items():
        assert np.allclose(result.out_of_sample[image_id], probs, atol=1e-4)


def test_images_that_fit_neither_in_memory_nor_on_disk_are_refused_clearly(tmp_path):
    assert data.spill_file(1000, 28, tmp_path) is None      # small: in memory
    with pytest.raises(data.TooBig, match="try a smaller image size"):
        data.spill_file(10**9, 512, tmp_path)               # 786 TB
