"""Embed jobs: every image through a pretrained backbone, an embedding space that needs no labels.

The worker calls `run_job`; what it returns are jobs.finish's keyword arguments.
Every non-excluded image is embedded, labelled or not: ids are read first (one
int64 array, 8 bytes an image), then paths CHUNK images at a time, decoded,
embedded and written straight to the memory-mapped embeddings.npy
(app.embeddings.files.Writer), so a million images never sit in memory as
Python objects or as vectors; there is no cap. Grayscale images become three
equal channels (data.load converts to RGB); ImageNet normalisation is inside
the embedder (backbones.embedder). Without weights the job fails in one
sentence (backbones.weights_file) and the similar-image search goes on using
the train jobs' spaces (spaces.latest_space only sees succeeded jobs).

Input size, DEFAULT_SIZE: measured by bench/embed.py (numbers below).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from sqlalchemy import select

from app.artifacts import job_dir, publish_embeddings
from app.config import Settings
from app.db.models import Image, Job
from app.embeddings import files
from app.errors import Cancelled, TrainingError
from app.images import blobs
from app.training import backbones, data
from app.training import device as devices
from app.training.spec import Hooks

# bench/embed.py, resnet18 with RANDOM weights (no pretrained file on the machine that measured), 1,000
# Fashion-MNIST images each, share of same-class neighbours at k=10 / seconds per 1,000 images (decode + embed,
# 2 CPU cores shared with other work, so times are loose):
#   test[0:1000]:        32 px 0.635 / 9.0 s    64 px 0.657 / 11.6 s   112 px 0.634 / 38.9 s
#   train[10000:11000]:  32 px 0.670 / 23.8 s   64 px 0.682 / 25.6 s   112 px 0.659 / 110.9 s
# 64 px is best on both and 112 costs 3-4x more: ImageNet nets downsample 32x, so 64 px leaves a 2 x 2 map
# to pool where 32 px leaves one pixel, and a 28 px image has no more detail to give at 112.
DEFAULT_SIZE = 64
DEFAULT_BACKBONE = "resnet18"
DEFAULT_BATCH = 64
CHUNK = 512  # images decoded at a time: memory stays flat however many there are
STREAM_ROWS = 5_000


def config_of(job: Job, settings: Settings) -> dict:
    """The job's config with defaults; `weights` is the job's file, else LOUPE_EMBED_WEIGHTS, else None."""
    c = dict(job.config or {})
    weights = c.get("weights") or settings.embed_weights
    return {"backbone": c.get("backbone", DEFAULT_BACKBONE), "image_size": int(c.get("image_size", DEFAULT_SIZE)),
            "batch_size": int(c.get("batch_size", DEFAULT_BATCH)), "device": c.get("device", "auto"),
            "weights": str(weights) if weights else None}


def image_ids(session) -> np.ndarray:
    """Ids of every non-excluded image, ascending, read STREAM_ROWS at a time."""
    rows = session.scalars(select(Image.id).where(Image.excluded == False)  # noqa: E712
                           .order_by(Image.id).execution_options(yield_per=STREAM_ROWS))
    return np.fromiter(rows, dtype=np.int64)


def _paths(db, ids: np.ndarray) -> list[tuple[int, str]]:
    """(id, store key) of `ids` (a sorted run) that are still there and not excluded."""
    with db.reading() as s:
        rows = s.execute(select(Image.id, Image.stored_path)
                         .where(Image.id.between(int(ids[0]), int(ids[-1])), Image.excluded == False)  # noqa: E712
                         .order_by(Image.id)).all()
    wanted = set(ids.tolist())
    return [(i, key) for i, key in rows if i in wanted]


def embed_batches(model, x: torch.Tensor, batch_size: int, device: torch.device) -> np.ndarray:
    """model.embed over uint8 images (N, 3, S, S), `batch_size` at a time: float32 (N, D)."""
    out = []
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            batch = x[start:start + batch_size].to(device).float().div_(255)
            out.append(model.embed(batch).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def run_job(db, settings: Settings, job_id: int, worker: str, hooks: Hooks) -> dict:
    """Embed every image with the job's backbone; returns jobs.finish's keyword arguments."""
    with db.reading() as s:
        config = config_of(s.get(Job, job_id), settings)
        ids = image_ids(s)
    name, size = config["backbone"], config["image_size"]
    path = backbones.weights_file(name, config["weights"])
    model = backbones.embedder(name, path)
    if len(ids) == 0:
        raise TrainingError("there are no images to embed: import some first")
    device = devices.choose(config["device"])
    devices.setup(device)
    threads = devices.Threads(device)
    model = model.to(device)
    hooks.log(f"{worker} embeds {len(ids)} images with {name} ({path}) at {size} px on {device.type}")
    info, unreadable, seconds = _embed_all(db, settings, model, ids, config, device, threads, job_id, hooks)
    publish_embeddings(settings, job_id, info)
    done = info["embedded"]
    notes = [f"{name} with the weights in {path.name}, {size} px, ImageNet normalisation"]
    if unreadable:
        notes.append(f"{len(unreadable)} images could not be read and have no embedding, e.g. {unreadable[0]}")
    metrics = {"images": len(ids), "embedded": done, "dim": info["embedding_dim"], "seconds": round(seconds, 2),
               "per_1000_s": round(1000 * seconds / max(done, 1), 2)}
    return {"artifacts": {**info, "backbone": name, "weights": str(path), "image_size": size},
            "metrics": metrics, "notes": notes, "message": f"done: {done} images embedded", "device": device.type}


def _embed_all(db, settings: Settings, model, ids: np.ndarray, config: dict, device: torch.device, threads,
               job_id: int, hooks: Hooks) -> tuple[dict, list[str], float]:
    """Chunks of ids -> local files -> decoded -> embedded -> written; (Writer.finish(), unreadable, seconds)."""
    store = blobs.for_settings(settings)
    size, total = config["image_size"], len(ids)
    writer = None
    unreadable: list[str] = []
    started = time.monotonic()
    try:
        for start in range(0, total, CHUNK):
            if hooks.cancelled():
                raise Cancelled()
            rows = _paths(db, ids[start:start + CHUNK])
            if rows:
                local, missing = blobs.local_copies(store, [key for _, key in rows], settings.cache_dir,
                                                    cancelled=hooks.cancelled)
                unreadable += [f"{key} is missing from {store.url}" for key in missing]
                x, errors = data.decode_all(local, size, progress=lambda _done: None, cancelled=hooks.cancelled)
                if hooks.cancelled():
                    raise Cancelled()
                gone = set(missing)
                bad = {i for i, _ in errors} | {i for i, (_, key) in enumerate(rows) if key in gone}
                unreadable += [msg for _, msg in errors]
                vectors = embed_batches(model, x, config["batch_size"], device)
                if writer is None:  # the dimension is known once the model has run
                    writer = files.Writer(job_dir(settings, job_id), ids, vectors.shape[1])
                good = [i for i in range(len(rows)) if i not in bad]
                writer.write([rows[i][0] for i in good], vectors[good])
            threads.tune()
            done = min(start + CHUNK, total)
            hooks.progress(done / total, f"embedding: {done} of {total}")
    except BaseException:  # cancelled or failed: no half-written embeddings file stays behind
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        raise TrainingError("none of the images could be read: nothing was embedded")
    info = writer.finish()
    if info["embedded"] == 0:
        Path(info["embeddings"]).unlink(missing_ok=True)
        Path(info["embedding_ids"]).unlink(missing_ok=True)
        raise TrainingError(f"none of the {total} images could be read, e.g. {unreadable[0]}")
    return info, unreadable, time.monotonic() - started
