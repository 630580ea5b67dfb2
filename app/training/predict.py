"""Predict jobs: a finished model's opinion on images it has never seen, without retraining.

After an import (and on demand) the worker runs the latest succeeded train
job's exported model (model.pt, TorchScript with its normalisation inside) over
the images that have no prediction from that model yet: the unlabelled ones and
those imported after it trained. Rows are written under the predict job with
role "suggestion"; the predict job carries the model job's snapshot, so its
class indices read exactly like the model job's own (app.labelling.suggestions).

torch is imported only inside `run`, as in the rest of the worker.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from app.artifacts import artifact_path, job_dir, model_key
from app.config import Settings
from app.db.models import Image, Job, Prediction
from app.embeddings import files as embedding_files
from app.errors import Cancelled, TrainingError
from app.labelling.suggestions import model_family
from app.training.spec import Hooks

CHUNK = 512  # images decoded and predicted at a time: memory stays flat however many there are


@dataclass
class Predicted:
    classes: list[str]
    probs: dict[int, list[float]]  # image id -> class probabilities
    device: str
    notes: list[str] = field(default_factory=list)
    embeddings: dict | None = None  # as spec.Result.embeddings: the new images' vectors, in the model job's space
    thresholds: list[float] | None = None  # a multi-label model's per-class thresholds (probs are then sigmoids)


def to_predict(session: Session, settings: Settings, model_job: Job) -> list[tuple[int, str]]:
    """(image id, store key) of images with no prediction from `model_job`'s model yet, oldest first.

    Unlabelled images, and labelled ones imported since the model trained (they
    cannot be in its snapshot); excluded images are left out. At most
    max_suggestions a job: the next predict job goes on where this one stopped.
    """
    family = model_family(session, model_job.id)
    predicted = exists().where(Prediction.image_id == Image.id, Prediction.job_id.in_(family))
    rows = session.execute(
        select(Image.id, Image.stored_path)
        .where(Image.excluded == False, ~predicted,  # noqa: E712
               or_(Image.labelled == False, Image.imported_at >= model_job.created_at))  # noqa: E712
        .order_by(Image.id).limit(settings.max_suggestions))
    return [(image_id, key) for image_id, key in rows]


def model_file(settings: Settings, model_job: Job) -> Path:
    """model.pt of `model_job` on this machine: where it trained, or copied from a remote image store."""
    path = artifact_path(settings, model_job, "model")
    if path is not None:
        return path
    from app.images import blobs

    store = blobs.for_settings(settings)
    target = settings.cache_dir / "models" / f"job-{model_job.id}.pt"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            store.fetch(model_key(model_job.id), target)
        except FileNotFoundError:
            raise TrainingError(f"the model of job {model_job.id} is gone: no {model_key(model_job.id)} "
                                f"in {store.url} and no file in {job_dir(settings, model_job.id)}") from None
    return target


def image_size(model_job: Job, model_path: Path) -> int:
    """The input size the model was exported for (model.json beside it), else the job's config."""
    try:
        return int(json.loads(model_path.with_name("model.json").read_text())["image_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return int(model_job.config["image_size"])


def thresholds(model_path: Path) -> list[float] | None:
    """A multi-label model's per-class thresholds (model.json beside it); None for a single-label model."""
    try:
        info = json.loads(model_path.with_name("model.json").read_text())
    except (OSError, ValueError):
        return None
    return [float(t) for t in info["thresholds"]] if info.get("multi_label") else None


def run(model_path: Path, size: int, classes: list[str], images: list[tuple[int, str]], hooks: Hooks,
        device_name: str = "auto", workdir: Path | None = None) -> Predicted:
    """Class probabilities for `images` (id, local path); unreadable images get none (noted).

    With `workdir`, also their embeddings (model.embed: the penultimate layer), written there chunk by chunk,
    so that images imported after training can be searched for similar ones. A model.pt exported before
    embeddings existed has no embed method: it still predicts, with a note."""
    import torch

    from app.training import data
    from app.training import device as devices

    device = devices.choose(device_name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is deprecated for torch.export, but model.pt is TorchScript
            model = torch.jit.load(str(model_path), map_location=device).eval()
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file: a clear failure, not a crash
        raise TrainingError(f"cannot load the model {model_path.name}: {exc}") from None
    probs: dict[int, list[float]] = {}
    cuts = thresholds(model_path)
    unreadable: list[str] = []
    notes: list[str] = []
    embed = workdir is not None and hasattr(model, "embed")
    if workdir is not None and not embed:
        notes.append(f"{model_path.name} predates embeddings (no embed method): these images get none")
    writer = None
    total = len(images)
    try:
        for start in range(0, total, CHUNK):
            chunk = images[start:start + CHUNK]
            x, errors = data.decode_all([p for _, p in chunk], size, progress=lambda _done: None,
                                        cancelled=hooks.cancelled)
            if hooks.cancelled():
                raise Cancelled()
            bad = {i for i, _ in errors}
            unreadable += [msg for _, msg in errors]
            with torch.no_grad():
                x = x.to(device).float().div_(255)
                logits = model(x).float()
                out = (torch.sigmoid(logits) if cuts is not None else torch.softmax(logits, dim=1)).cpu().numpy()
                feats = model.embed(x).float().cpu().numpy() if embed else None
            if out.shape[1] != len(classes):
                raise TrainingError(f"the model gives {out.shape[1]} classes; its job lists {len(classes)}")
            probs.update((image_id, out[i].tolist()) for i, (image_id, _) in enumerate(chunk) if i not in bad)
            if feats is not None:
                if writer is None:  # the dimension is known once the model has run
                    writer = embedding_files.Writer(workdir, [i for i, _ in images], feats.shape[1])
                good = [i for i in range(len(chunk)) if i not in bad]
                writer.write([chunk[i][0] for i in good], feats[good])
            done = start + len(chunk)
            hooks.progress(done / total, f"predicting: {done} of {total}")
    except BaseException:  # cancelled or failed: no half-written embeddings file stays behind
        if writer is not None:
            writer.abort()
        raise
    notes += [f"{len(unreadable)} images could not be read and get no prediction, e.g. {unreadable[0]}"] \
        if unreadable else []
    embeddings = writer.finish() if writer is not None else None
    return Predicted(classes=classes, probs=probs, device=device.type, notes=notes, embeddings=embeddings,
                     thresholds=cuts)
