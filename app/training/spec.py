"""What the worker hands the trainer and gets back. No torch and no database here.

The worker (app.training.worker) turns a job row and its snapshot into
`Item`s and a `TrainConfig`, calls `train.run(...)`, and writes the `Result`
back. The trainer never touches the database, so it is testable on plain files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

MODELS = ("smallcnn", "resnet18", "mobilenet_v3", "efficientnet_b0")


@dataclass(frozen=True, slots=True)  # slots: a quarter less memory each, with a million of them
class Item:
    """One labelled snapshot image."""

    image_id: int
    path: str  # the original file in the store
    label: int  # index into the class list
    split: str  # train | val | test
    fold: int  # 0..folds-1: the fold whose model predicts it out of sample
    source: str
    tags: tuple[str, ...] = ()
    # Multi-label snapshots: the image's set (indices into the class list; empty is "none of these"), and
    # `label` is then -1. None in a single-label snapshot.
    classes: tuple[int, ...] | None = None


@dataclass(frozen=True)
class TrainConfig:
    model: str = "smallcnn"
    epochs: int = 6
    image_size: int = 28
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 4  # early stopping on validation loss, in epochs
    holdout_source: str | None = None  # trained without; tested on it
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    pretrained: bool = True  # use ImageNet weights when available (backbones only)


class Hooks(Protocol):
    """How the trainer reports to the worker (which writes to the database)."""

    def progress(self, fraction: float, message: str) -> None: ...

    def epoch(self, stage: str, epoch: int, metrics: dict) -> None: ...

    def log(self, message: str) -> None: ...

    def cancelled(self) -> bool: ...


@dataclass
class Result:
    classes: list[str]
    # image id -> class probabilities from a model that never saw it (multi-label: one sigmoid per class)
    out_of_sample: dict[int, list[float]]
    suggestions: dict[int, list[float]]  # unlabelled image id -> probabilities from the final model
    metrics: dict  # see app.training.evaluate.evaluate
    final: dict  # {"val": metrics, "test": metrics or None, "holdout": metrics or None}
    model_path: str | None  # TorchScript file of the final model
    device: str
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: "decode", "fold 1/5", ..., "final", "total"
    # {"embeddings": path, "embedding_ids": path, "embedding_dim": D, "embedded": N} (app.embeddings.files)
    embeddings: dict | None = None
    multi_label: bool = False
    thresholds: list[float] | None = None  # multi-label: per class, chosen on the val split (app.training.multi)
