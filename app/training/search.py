"""Search jobs, the worker's half: embed one uploaded image with a space's model and find its neighbours.

The space's model is the train job's model.pt (its `embed` method) or the
embed job's backbone and weights file, at the size the space was made at, so
the query lands in the same space as the stored embeddings. The model and the
space's index stay loaded in the worker process (_models here, and similar's own
cache), so a second search of the same space costs one forward pass and one
matrix-vector product. One image runs on the CPU: moving it to a GPU costs
more than it saves. The query file is deleted once the search succeeded or failed.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from sqlalchemy import select

from app.config import Settings
from app.db.models import CurrentLabel, Job, LabelClass
from app.embeddings import similar
from app.errors import TrainingError
from app.images import blobs
from app.images.store import check_key
from app.training import backbones, data, predict
from app.training.spec import Hooks

MODELS_KEPT = 2  # loaded space models kept by a worker process (the newest space, and one more)
_models: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
_lock = threading.Lock()


def space_model(settings: Settings, space: Job) -> tuple[object, int]:
    """(a module with .embed(x in [0, 1], (N, 3, S, S)), S) for `space`, from the process's cache."""
    art = space.artifacts or {}
    key = (str(settings.data_dir), space.id, str(space.finished_at))
    with _lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
    if space.kind == "embed":
        path = backbones.weights_file(art["backbone"], art.get("weights"))
        loaded = (backbones.embedder(art["backbone"], path), int(art["image_size"]))
    else:
        path = predict.model_file(settings, space)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch.jit is deprecated for torch.export; model.pt is TorchScript
                model = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file
            raise TrainingError(f"cannot load the model of job {space.id} ({path.name}): {exc}") from None
        if not hasattr(model, "embed"):
            raise TrainingError(f"the model of job {space.id} predates embeddings (no embed method): search "
                                f"another space")
        loaded = (model, predict.image_size(space, path))
    with _lock:
        _models[key] = loaded
        while len(_models) > MODELS_KEPT:
            _models.popitem(last=False)
    return loaded


def _query_file(settings: Settings, key: str) -> tuple[Path, bool]:
    """(the query on this machine, whether it is a copy to remove)."""
    store = blobs.for_settings(settings)
    local = store.local_path(key)
    if local is not None:
        return local, False
    target = settings.cache_dir / check_key(key)
    try:
        store.fetch(key, target)
    except FileNotFoundError:
        raise TrainingError(f"the uploaded image is gone from {store.url} ({key}): upload it again") from None
    return target, True


def run_job(db, settings: Settings, job_id: int, worker: str, hooks: Hooks) -> dict:
    """Embed the job's query image in its space and store its k nearest images; jobs.finish's arguments."""
    started = time.monotonic()
    with db.reading() as s:
        config = dict(s.get(Job, job_id).config or {})
    key = config["query"]
    try:
        with db.reading() as s:
            space = s.get(Job, config["space"])
            if space is None or not (space.artifacts or {}).get("embeddings"):
                raise TrainingError(f"job {config['space']} has no embeddings to search any more")
            s.expunge(space)
            index = similar.load_index(s, settings, space.id)
        if index is None:
            raise TrainingError(f"job {space.id} has no embeddings to search any more")
        model, size = space_model(settings, space)
        path, copied = _query_file(settings, key)
        try:
            image = data.load(str(path), size)
        except data.Unreadable:
            raise TrainingError(f"the uploaded image {config.get('filename')} cannot be read") from None
        finally:
            if copied:
                path.unlink(missing_ok=True)
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float().div_(255)
        with torch.inference_mode():
            vector = model.embed(x).float().numpy()
        query = similar.normalise(vector)[0]
        rows, dist = similar.nearest(index.vectors, query, int(config.get("k", 20)))
    except Exception:
        blobs.for_settings(settings).delete(key)
        raise
    # (A stopped worker's BaseException keeps the file: the job goes back to the queue and runs again.)
    blobs.for_settings(settings).delete(key)
    ids = index.ids[rows].tolist()
    with db.reading() as s:
        names = dict(s.execute(
            select(CurrentLabel.image_id, LabelClass.name).join(LabelClass, LabelClass.id == CurrentLabel.class_id)
            .where(CurrentLabel.image_id.in_(ids))).all()) if ids else {}
    items = [{"image": i, "distance": round(float(d), 6), "class": names.get(i)} for i, d in zip(ids, dist.tolist())]
    seconds = round(time.monotonic() - started, 3)
    hooks.log(f"{worker}: {len(items)} images nearest {config.get('filename')} in the space of job {space.id} "
              f"in {seconds} s")
    return {"artifacts": {}, "metrics": {"items": items, "space": space.id, "seconds": seconds},
            "message": f"done: {len(items)} similar images", "device": "cpu"}
