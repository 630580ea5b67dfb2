"""Jobs: create, claim, heartbeat, stream, finish, cancel, reap. No torch here.

The database is the only channel between the web app and workers. A claim is
one write transaction whose UPDATE moves the row from queued to running only if
it is still queued, so two workers can never both run it. On PostgreSQL the
candidate row is picked with SELECT ... FOR UPDATE SKIP LOCKED: a worker passes
over a row another worker is claiming instead of waiting for it, and the claim
stays safe without the write lock app.db.postgres takes today. (SQLite has no
row locks and needs none: BEGIN IMMEDIATE lets one writer in at a time.) A worker that stops heartbeating has its job
requeued (up to MAX_ATTEMPTS, after which it fails) by whichever worker looks next.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db.models import Image, Job, JobEpoch, JobLog, Prediction, Snapshot, SnapshotItem
from app.db.vocab import JobKind, JobStatus, values
from app.errors import Conflict, InvalidInput, NotFound
from app.labelling.suggestions import latest_model_job
from app.snapshots.queries import get_snapshot
from app.snapshots.sets import is_multi, set_counts
from app.timeutil import iso, utcnow
from app.training.spec import MODELS, TrainConfig

STATUSES = values(JobStatus)
FINISHED = ("succeeded", "failed", "cancelled")
MAX_ATTEMPTS = 3
LIMITS = {"epochs": (1, 500), "image_size": (16, 512), "batch_size": (1, 4096), "folds": (2, 20),
          "patience": (1, 500), "seed": (0, 2**31 - 1)}
DEVICES = ("auto", "cpu", "cuda", "mps")


def _int(config: dict, key: str, default: int) -> int:
    value = config.get(key, default)
    lo, hi = LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidInput(f"{key} must be a whole number from {lo} to {hi}, not {value!r}")
    return value


def _check_options(config: dict, defaults: TrainConfig) -> None:
    """Options a worker would otherwise only trip over once the job runs."""
    for key in ("patience", "seed"):
        _int(config, key, getattr(defaults, key))
    for key in ("lr", "weight_decay"):
        value = config.get(key, getattr(defaults, key))
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 10:  # NaN fails too
            raise InvalidInput(f"{key} must be a number from 0 to 10, not {value!r}")
    if config.get("device", defaults.device) not in DEVICES:
        raise InvalidInput(f"device must be one of {', '.join(DEVICES)}, not {config.get('device')!r}")
    if not isinstance(config.get("pretrained", defaults.pretrained), bool):
        raise InvalidInput("pretrained must be true or false")
    holdout = config.get("holdout_source")
    if holdout is not None and not isinstance(holdout, str):
        raise InvalidInput(f"holdout_source must be a source name, not {holdout!r}")


def check_config(session: Session, snapshot: Snapshot, config: dict) -> dict:
    """Validate a job's config against its snapshot; returns the full config with defaults."""
    if not isinstance(config, dict):
        raise InvalidInput("config must be an object")
    defaults = TrainConfig()
    unknown = set(config) - set(asdict(defaults)) - {"folds"}
    if unknown:
        raise InvalidInput(f"unknown config key(s): {', '.join(sorted(unknown))}")
    model = config.get("model", defaults.model)
    if model not in MODELS:
        raise InvalidInput(f"model must be one of {', '.join(MODELS)}, not {model!r}")
    folds = _int(config, "folds", snapshot.split.get("folds", 5))
    if folds != snapshot.split.get("folds", folds):
        raise InvalidInput(f"snapshot '{snapshot.name}' was frozen with {snapshot.split.get('folds')} folds")
    per_class = set_counts(session, snapshot) if is_multi(session, snapshot) else dict(session.execute(
        select(SnapshotItem.class_id, func.count()).where(SnapshotItem.snapshot_id == snapshot.id)
        .group_by(SnapshotItem.class_id)).all())
    names = {c["id"]: c["name"] for c in snapshot.classes}
    if len(per_class) < 2:
        raise InvalidInput(f"snapshot '{snapshot.name}' has {len(per_class)} class(es); training needs at least 2")
    small = sorted((n, names.get(cid, cid)) for cid, n in per_class.items() if n < folds)
    if small:
        n, name = small[0]
        raise InvalidInput(f"class '{name}' has {n} image(s) in this snapshot, fewer than the {folds} folds")
    _check_options(config, defaults)
    holdout = config.get("holdout_source")
    full = {**asdict(defaults), **config, "model": model, "folds": folds,
            "epochs": _int(config, "epochs", defaults.epochs),
            "image_size": _int(config, "image_size", defaults.image_size),
            "batch_size": _int(config, "batch_size", defaults.batch_size),
            "holdout_source": holdout or None}
    return full


KINDS = values(JobKind)
EMBED_KEYS = {"backbone", "weights", "image_size", "batch_size", "device"}
BACKBONES = ("resnet18", "mobilenet_v3", "efficientnet_b0")  # nets.BACKBONES (that module imports torch)


def create_job(session: Session, *, snapshot_ref=None, config: dict | None = None, kind: str = "train") -> Job:
    """Queue a job: "train" on a snapshot; "predict" (no snapshot: the model's own) with the latest model;
    "embed" (every image through a pretrained backbone); "analyse" (map, neighbours, outliers of a space)."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown job kind '{kind}'; supported: {', '.join(KINDS)}")
    if kind == "predict":
        return create_predict_job(session, config or {})
    if kind == "embed":
        return create_embed_job(session, config or {})
    if kind == "analyse":
        return create_analyse_job(session, config or {})
    if kind == "search":
        raise InvalidInput("a search job is made by POST /api/similar with the image to search for")
    if kind == "report":
        raise InvalidInput("a report job is made by POST /api/quality/refresh")
    if kind == "import":
        raise InvalidInput("an import job is made by importing a label file with predictions (loupe import --labels)")
    if snapshot_ref is None:
        raise InvalidInput("a train job needs a snapshot (id or name)")
    snapshot = get_snapshot(session, snapshot_ref)
    job = Job(kind=kind, snapshot_id=snapshot.id, config=check_config(session, snapshot, config or {}),
              status="queued", notes=[], artifacts={})
    session.add(job)
    session.commit()
    return job


def create_predict_job(session: Session, config: dict) -> Job:
    """Queue predictions by a finished model (config {"model_job": N}, default the latest) for images it has not
    seen. The job carries the model job's snapshot: its class list is the one the probabilities follow."""
    if not isinstance(config, dict) or set(config) - {"model_job"}:
        raise InvalidInput('a predict job takes only {"model_job": N} as its config')
    ref = config.get("model_job")
    if ref is None:
        model = latest_model_job(session)
        if model is None:
            raise InvalidInput("no finished model to predict with yet: train one on a snapshot first")
    else:
        if isinstance(ref, bool) or not isinstance(ref, int):
            raise InvalidInput(f"model_job must be a job id, not {ref!r}")
        model = get_job(session, ref)
        if model.kind != "train" or model.status != "succeeded" or not (model.artifacts or {}).get("model"):
            raise InvalidInput(f"job {ref} is not a succeeded training job with a model")
    job = Job(kind="predict", snapshot_id=model.snapshot_id, config={"model_job": model.id}, status="queued",
              notes=[], artifacts={}, message="waiting for a worker")
    session.add(job)
    session.commit()
    return job


def create_embed_job(session: Session, config: dict) -> Job:
    """Queue embeddings of every image by a pretrained backbone (no snapshot: labels play no part).
    The worker checks that the weights are there (app.training.embed) and says so in one sentence if not."""
    if not isinstance(config, dict) or set(config) - EMBED_KEYS:
        raise InvalidInput(f"an embed job's config takes only {', '.join(sorted(EMBED_KEYS))}")
    backbone = config.get("backbone", "resnet18")
    if backbone not in BACKBONES:
        raise InvalidInput(f"backbone must be one of {', '.join(BACKBONES)}, not {backbone!r}")
    weights = config.get("weights")
    if weights is not None and (not isinstance(weights, str) or not weights.strip()):
        raise InvalidInput("weights must be the path of a state_dict file on the worker's machine")
    if config.get("device", "auto") not in DEVICES:
        raise InvalidInput(f"device must be one of {', '.join(DEVICES)}, not {config.get('device')!r}")
    full = {"backbone": backbone, "device": config.get("device", "auto"),
            "batch_size": _int(config, "batch_size", 64),
            **({"image_size": _int(config, "image_size", 64)} if "image_size" in config else {}),
            **({"weights": weights.strip()} if weights else {})}
    job = Job(kind="embed", snapshot_id=None, config=full, status="queued", notes=[], artifacts={},
              message="waiting for a worker")
    session.add(job)
    session.commit()
    return job


def create_analyse_job(session: Session, config: dict) -> Job:
    """Queue the analyses of one embedding space (config {"space": N}, default the newest): the map,
    nearest neighbours, outlier scores, neighbour agreement, the diverse labelling order."""
    from app.embeddings.spaces import latest_space

    if not isinstance(config, dict) or set(config) - {"space", "extend"}:
        raise InvalidInput('an analyse job takes only {"space": N} (a train or embed job) and "extend" as its '
                           'config')
    if not isinstance(config.get("extend", False), bool):
        raise InvalidInput("extend must be true or false: true places images embedded since into the newest "
                           "analysis")
    ref = config.get("space")
    if ref is None:
        space = latest_space(session)
        if space is None:
            raise InvalidInput("no embeddings to analyse yet: train a model or run an embed job first")
    else:
        if isinstance(ref, bool) or not isinstance(ref, int):
            raise InvalidInput(f"space must be a job id, not {ref!r}")
        space = get_job(session, ref)
        if space.kind not in ("train", "embed") or space.status != "succeeded" \
                or not (space.artifacts or {}).get("embeddings"):
            raise InvalidInput(f"job {ref} is not a succeeded train or embed job with embeddings")
    extra = {"extend": True} if config.get("extend") else {}  # app.embeddings.extend
    job = Job(kind="analyse", snapshot_id=space.snapshot_id, config={"space": space.id, **extra}, status="queued",
              notes=[], artifacts={}, message="waiting for a worker")
    session.add(job)
    session.commit()
    return job


def queue_analysis(session: Session, space_job_id: int, extend: bool = False) -> Job | None:
    """After a train or embed job succeeded: its analyses, unless one for it is already waiting (a full one
    waiting covers an extension too). `extend`: after a predict job, place its images into the newest analysis."""
    waiting = session.scalars(select(Job.config).where(Job.kind == "analyse", Job.status == "queued"))
    if any((config or {}).get("space") == space_job_id and (extend or not (config or {}).get("extend"))
           for config in waiting):
        return None
    return create_analyse_job(session, {"space": space_job_id, **({"extend": True} if extend else {})})


def queue_extension(session: Session, predict_job_id: int) -> Job | None:
    """After a predict job succeeded: an analyse job placing its images into its model's newest analysis, when
    that analysis is the one the map shows (the newest of all); None otherwise."""
    from app.embeddings import analyses

    job = get_job(session, predict_job_id)
    model = int((job.config or {}).get("model_job") or 0)
    if not (job.artifacts or {}).get("embeddings") or not model:
        return None
    newest = session.scalars(select(Job).where(Job.kind == analyses.KIND, Job.status == "succeeded")
                             .order_by(Job.id.desc()).limit(1)).first()
    if newest is None or int((newest.artifacts or {}).get("space") or 0) != model:
        return None
    return queue_analysis(session, model, extend=True)


def queue_predictions(session: Session) -> Job | None:
    """After an import: a predict job with the latest model, unless there is no model or one for that model is
    already waiting (it will see these images too: a job reads its images when it starts). None when none was
    queued."""
    model = latest_model_job(session)
    if model is None:
        return None
    waiting = session.scalars(select(Job.config).where(Job.kind == "predict", Job.status == "queued"))
    if any((config or {}).get("model_job") == model.id for config in waiting):
        return None
    return create_predict_job(session, {"model_job": model.id})


def queue_predictions_after_training(session: Session, job_id: int) -> Job | None:
    """After a train job succeeded: a predict job for the images imported while it trained (it read its images
    when it started), so that they too get the newest model's guesses. None when there were none."""
    job = get_job(session, job_id)
    since = job.claimed_at or job.created_at
    imported = session.scalar(select(Image.id).where(Image.imported_at >= since, Image.excluded.is_(False))
                              .limit(1))
    return queue_predictions(session) if imported is not None else None


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def claim(session: Session, worker: str) -> Job | None:
    """Move the oldest queued job (searches first) to running for `worker`; None when the queue is empty."""
    # A search (one uploaded image, someone waiting on the page) goes before the queue's long jobs, and so does
    # a quality report refresh (seconds, and the quality page waits on it).
    pick = select(Job.id).where(Job.status == "queued").order_by(Job.kind != "search", Job.kind != "report",
                                                               Job.id).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    job_id = session.scalar(pick)
    if job_id is None:
        session.rollback()
        return None
    now = utcnow()
    taken = session.execute(
        update(Job).where(Job.id == job_id, Job.status == "queued")
        .values(status="running", worker=worker, attempts=Job.attempts + 1, claimed_at=now, heartbeat_at=now,
                message="starting")
    ).rowcount
    session.commit()
    return session.get(Job, job_id) if taken == 1 else None


def heartbeat(session: Session, job_id: int, worker: str, *, progress: float | None = None,
              message: str | None = None) -> bool:
    """Record that `worker` still runs the job; False when it no longer owns it or a cancel was asked."""
    values = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, float(progress)))
    if message is not None:
        values["message"] = message[:500]
    owned = session.execute(
        update(Job).where(Job.id == job_id, Job.worker == worker, Job.status == "running").values(**values)
    ).rowcount
    cancel = session.scalar(select(Job.cancel_requested).where(Job.id == job_id))
    session.commit()
    return owned == 1 and not cancel


def add_epoch(session: Session, job_id: int, stage: str, epoch: int, metrics: dict) -> None:
    session.add(JobEpoch(job_id=job_id, stage=stage, epoch=epoch, metrics=metrics))
    session.commit()


def add_log(session: Session, job_id: int, message: str) -> None:
    session.add(JobLog(job_id=job_id, message=message[:4000]))
    session.commit()


def finish(session: Session, job_id: int, worker: str, *, status: str, error: str | None = None,
           result=None, predictions: list[dict] | None = None, predicted=None,
           artifacts: dict | None = None, metrics: dict | None = None, notes: list | None = None,
           message: str | None = None, device: str | None = None) -> bool:
    """Finish a job this worker owns, with its predictions, in one transaction; False if it lost the job.

    `result`: a train job's spec.Result; `predicted`: a predict job's predict.Predicted; the rest (embed and
    analyse jobs) as they are to be stored."""
    job = session.get(Job, job_id)
    if job is None or job.worker != worker or job.status != "running":
        session.rollback()
        return False
    job.status, job.error, job.finished_at = status, error, utcnow()
    job.message = {"succeeded": "done", "failed": "failed", "cancelled": "cancelled"}[status]
    if result is not None:
        job.progress, job.metrics, job.final = 1.0, result.metrics, result.final
        job.device, job.notes = result.device, list(result.notes)
        job.artifacts = {"model": result.model_path, "classes": result.classes, **(result.embeddings or {}),
                         **({"thresholds": result.thresholds} if result.multi_label else {})}
    if predicted is not None:
        job.progress, job.device, job.notes = 1.0, predicted.device, list(predicted.notes)
        job.artifacts = {"classes": predicted.classes, "predicted": len(predicted.probs),
                         **(predicted.embeddings or {}),
                         **({"thresholds": predicted.thresholds} if predicted.thresholds is not None else {})}
        job.message = f"done: {len(predicted.probs)} images predicted"
    if artifacts is not None:
        job.progress, job.artifacts = 1.0, artifacts
    if metrics is not None:
        job.metrics = metrics
    if notes is not None:
        job.notes = list(notes)
    if device is not None:
        job.device = device
    if message is not None and status == "succeeded":
        job.message = message
    if predictions:
        session.execute(Prediction.__table__.insert(), [{"job_id": job_id, **p} for p in predictions])
    session.commit()
    return True


def request_cancel(session: Session, job_id: int) -> Job:
    job = get_job(session, job_id)
    if job.status in FINISHED:
        raise Conflict(f"job {job_id} already {job.status}")
    if job.status == "queued":
        job.status, job.finished_at, job.message = "cancelled", utcnow(), "cancelled before it started"
    else:
        job.cancel_requested = True
        job.message = "cancelling"
    session.commit()
    return job


def reap(session: Session, *, stale_after_s: float) -> list[int]:
    """Requeue (or, past MAX_ATTEMPTS, fail) running jobs whose worker stopped heartbeating."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    stale = session.scalars(select(Job).where(Job.status == "running", Job.heartbeat_at < cutoff)).all()
    for job in stale:
        session.add(JobLog(job_id=job.id, message=f"worker {job.worker} stopped responding"))
        if job.cancel_requested:
            job.status, job.finished_at, job.message = "cancelled", utcnow(), "cancelled"
        elif job.attempts >= MAX_ATTEMPTS:
            job.status, job.finished_at = "failed", utcnow()
            job.error = f"the worker stopped responding {job.attempts} times; giving up"
        else:
            job.status, job.worker, job.message = "queued", None, "requeued: its worker stopped responding"
    session.commit()
    return [j.id for j in stale]


def job_view(job: Job) -> dict:
    metrics = dict(job.metrics) if job.metrics else None
    return {
        "id": job.id, "kind": job.kind, "snapshot": job.snapshot_id, "config": job.config, "status": job.status,
        "progress": job.progress, "message": job.message, "error": job.error, "worker": job.worker,
        "attempts": job.attempts, "device": job.device, "notes": job.notes, "metrics": metrics,
        "final": job.final, "created_at": iso(job.created_at), "heartbeat_at": iso(job.heartbeat_at),
        "finished_at": iso(job.finished_at), "has_model": bool(job.artifacts and job.artifacts.get("model")),
    }


def list_jobs(session: Session, *, limit: int = 100) -> list[Job]:
    # Searches by image are one per query: they would push the jobs people launched off the list.
    return list(session.scalars(select(Job).where(Job.kind != "search").order_by(Job.id.desc()).limit(limit)))


def epochs(session: Session, job_id: int) -> list[dict]:
    rows = session.scalars(select(JobEpoch).where(JobEpoch.job_id == job_id).order_by(JobEpoch.id))
    return [{"stage": r.stage, "epoch": r.epoch, **r.metrics} for r in rows]


def logs(session: Session, job_id: int, *, limit: int = 200) -> list[dict]:
    rows = session.scalars(select(JobLog).where(JobLog.job_id == job_id).order_by(JobLog.id.desc()).limit(limit))
    return [{"at": iso(r.created_at), "message": r.message} for r in reversed(list(rows))]


def predictions(session: Session, job_id: int) -> dict:
    job = get_job(session, job_id)
    rows = session.scalars(select(Prediction).where(Prediction.job_id == job_id).order_by(Prediction.image_id))
    return {
        "classes": (job.artifacts or {}).get("classes", []),
        "items": [{"image": p.image_id, "probs": p.probs, "out_of_sample": p.out_of_sample, "role": p.role}
                  for p in rows],
    }


def predict_after_import(db, imported: int) -> int | None:
    """The id of the predict job queued after an import of `imported` new images (the upload route and
    `loupe import` call this), or None: nothing new, no model yet, or a predict job is already waiting."""
    if imported <= 0:
        return None
    with db.writing() as session:
        job = queue_predictions(session)
        return job.id if job is not None else None
