"""`loupe worker`: claim jobs from the database and train, until stopped.

One job at a time. A background thread heartbeats while the trainer runs;
if the job is cancelled or taken back (this worker was too slow), the trainer
is told to stop. Whatever goes wrong in one job is written on that job and the
worker goes on with the queue.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import traceback
from dataclasses import fields, replace

from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.artifacts import drop_resume_files, job_dir, publish_embeddings, publish_model
from app.config import Settings
from app.db.engine import Database
from app.db.migrate import upgrade_head
from app.db.models import Image, Job, LabelEvent, Snapshot, SnapshotItem, Source
from app.errors import Cancelled, LoupeError, TrainingError
from app.images import blobs
from app.snapshots.sets import event_sets, is_multi
from app.training import jobs
from app.training.multilabel import margin as set_margin
from app.training.spec import Item, TrainConfig

log = logging.getLogger("loupe.worker")
STREAM_ROWS = 5_000


class _Stop(BaseException):
    """SIGTERM/SIGINT: give the job back to the queue and exit."""


class DbHooks:
    """The trainer's reports, written to the job's rows; cancel is read from the heartbeat."""

    def __init__(self, db: Database, job_id: int, worker: str, settings: Settings):
        self.db, self.job_id, self.worker, self.settings = db, job_id, worker, settings
        self.stop = threading.Event()
        self._progress: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def beat(self) -> None:
        with self._lock:
            progress, message = self._progress or (None, None)
        with self.db.writing() as s:
            if not jobs.heartbeat(s, self.job_id, self.worker, progress=progress, message=message):
                self.stop.set()

    def progress(self, fraction: float, message: str) -> None:
        with self._lock:
            self._progress = (fraction, message)

    def epoch(self, stage: str, epoch: int, metrics: dict) -> None:
        with self.db.writing() as s:
            jobs.add_epoch(s, self.job_id, stage, epoch, metrics)

    def log(self, message: str) -> None:
        with self.db.writing() as s:
            jobs.add_log(s, self.job_id, message)

    def cancelled(self) -> bool:
        return self.stop.is_set()


def _heartbeat_loop(hooks: DbHooks, done: threading.Event) -> None:
    while not done.wait(hooks.settings.heartbeat_s):
        try:
            hooks.beat()
        except Exception:  # a busy database must not kill the heartbeat
            log.exception("heartbeat failed")


def load_inputs(session, settings: Settings, job: Job):
    """The snapshot's items, its class names, and unlabelled images to suggest labels for (paths are store keys)."""
    snapshot = session.get(Snapshot, job.snapshot_id)
    classes = [c["name"] for c in snapshot.classes]
    index = {c["id"]: i for i, c in enumerate(snapshot.classes)}
    # Only the columns an Item needs, fetched STREAM_ROWS at a time (a server-side cursor on PostgreSQL):
    # a million-image snapshot never sits in memory twice, as rows and as Items.
    rows = session.execute(
        select(SnapshotItem.image_id, SnapshotItem.class_id, SnapshotItem.split, SnapshotItem.fold,
               Image.stored_path, Source.name, LabelEvent.tags, SnapshotItem.label_event_id)
        .join(Image, Image.id == SnapshotItem.image_id)
        .join(Source, Source.id == Image.source_id)
        .join(LabelEvent, LabelEvent.id == SnapshotItem.label_event_id)
        .where(SnapshotItem.snapshot_id == snapshot.id)
        .order_by(SnapshotItem.image_id)
        .execution_options(yield_per=STREAM_ROWS)
    )
    if is_multi(session, snapshot):  # each image's set as frozen, within the snapshot's classes
        rows = rows.all()
        sets = event_sets(session, [r[-1] for r in rows], set(index))
        items = [Item(image_id=image_id, path=path, label=-1, split=split, fold=fold, source=source,
                      tags=tuple(tags or ()), classes=tuple(index[c] for c in sets.get(event, ())))
                 for image_id, _, split, fold, path, source, tags, event in rows]
    else:
        items = [Item(image_id=image_id, path=path, label=index[class_id], split=split, fold=fold, source=source,
                      tags=tuple(tags or ())) for image_id, class_id, split, fold, path, source, tags, _ in rows]
    unlabelled = session.execute(
        select(Image.id, Image.stored_path).where(Image.labelled == False, Image.excluded == False)  # noqa: E712
        .order_by(Image.id).limit(settings.max_suggestions).execution_options(yield_per=STREAM_ROWS)
    )
    return items, classes, [(image_id, stored) for image_id, stored in unlabelled]


def local_originals(settings: Settings, items: list[Item], unlabelled: list[tuple[int, str]], hooks: DbHooks):
    """`load_inputs`' store keys made into files on this machine: in place, or copied from a remote store.

    Decoding reads every original once per job anyway; a copy first lets it
    read local files, and the copies stay for the next job (see blobs.local_copies).
    """
    store = blobs.for_settings(settings)
    keys = [it.path for it in items] + [key for _, key in unlabelled]
    try:
        paths, missing = blobs.local_copies(
            store, keys, settings.cache_dir, cancelled=hooks.cancelled,
            progress=lambda done: hooks.progress(0.0, f"copying images from {store.url}: {done} of {len(keys)}"))
    except LoupeError as exc:  # the store cannot be reached, or the database names an odd key
        raise TrainingError(exc.detail) from None
    if hooks.cancelled():
        raise Cancelled()
    if missing:
        hooks.log(f"{len(missing)} originals are missing from {store.url}, e.g. {missing[0]}")
    n = len(items)
    return ([replace(it, path=p) for it, p in zip(items, paths[:n])],
            [(image_id, p) for (image_id, _), p in zip(unlabelled, paths[n:])])


def _margin(probs: list[float], thresholds: list[float] | None = None) -> float:
    """How sure a prediction is (low first in the "uncertain" order): the top two classes' gap, or for sets
    the class nearest its threshold."""
    if thresholds is not None:
        return set_margin(probs, thresholds)
    top = sorted(probs, reverse=True)
    return float(top[0] - (top[1] if len(top) > 1 else 0.0))


def prediction_rows(result, items: list[Item], holdout: str | None) -> list[dict]:
    held = {it.image_id for it in items if holdout and it.source == holdout}
    t = result.thresholds
    rows = [{"image_id": i, "role": "holdout" if i in held else "oof", "out_of_sample": True, "probs": p,
             "margin": _margin(p, t)} for i, p in result.out_of_sample.items()]
    rows += [{"image_id": i, "role": "suggestion", "out_of_sample": True, "probs": p, "margin": _margin(p, t)}
             for i, p in result.suggestions.items()]
    return rows


def _train(db: Database, settings: Settings, job_id: int, worker: str, hooks: DbHooks):
    """A train job: k-fold out-of-sample predictions, a final model, suggestions for unlabelled images."""
    with db.reading() as s:
        job = s.get(Job, job_id)
        items, classes, unlabelled = load_inputs(s, settings, job)
        config = {k: v for k, v in job.config.items() if k in {f.name for f in fields(TrainConfig)}}
    items, unlabelled = local_originals(settings, items, unlabelled, hooks)
    hooks.log(f"{worker} starts: {len(items)} images, {len(classes)} classes, config {config}")
    train = _torch_module("train")
    workdir = job_dir(settings, job_id)
    workdir.mkdir(parents=True, exist_ok=True)
    result = train.run(items, classes, TrainConfig(**config), hooks, workdir, unlabelled)
    publish_model(settings, job_id, result.model_path)
    publish_embeddings(settings, job_id, result.embeddings)
    return {"result": result, "predictions": prediction_rows(result, items, config.get("holdout_source"))}


def _predict(db: Database, settings: Settings, job_id: int, worker: str, hooks: DbHooks):
    """A predict job: the model job's final model over the images it has no prediction for yet."""
    from app.training import predict

    with db.reading() as s:
        job = s.get(Job, job_id)
        model_job = jobs.get_job(s, job.config["model_job"])
        classes = list((model_job.artifacts or {}).get("classes") or [])
        images = predict.to_predict(s, settings, model_job)
    model_path = predict.model_file(settings, model_job)  # outside the transaction: it may download
    size = predict.image_size(model_job, model_path)
    _, images = local_originals(settings, [], images, hooks)
    hooks.log(f"{worker} starts: the model of job {model_job.id} ({model_job.config.get('model')}, {size} px) "
              f"predicts {len(images)} images it has not seen")
    _torch_module("predict")  # a clear failure when torch is missing
    # Any device: guessing is light, and the device the model trained on may not be on this worker.
    predicted = predict.run(model_path, size, classes, images, hooks, "auto", workdir=job_dir(settings, job_id))
    publish_embeddings(settings, job_id, predicted.embeddings)
    rows = [{"image_id": i, "role": "suggestion", "out_of_sample": True, "probs": p,
             "margin": _margin(p, predicted.thresholds)} for i, p in predicted.probs.items()]
    hooks.log(f"predicted {len(rows)} images on {predicted.device}" + "".join(f"; {n}" for n in predicted.notes))
    return {"predicted": predicted, "predictions": rows}


def _torch_module(name: str):
    try:
        import torch  # noqa: F401 - torch is imported here and nowhere in the web app
    except ImportError as exc:
        raise TrainingError(f"torch is not installed for this worker ({exc}); run scripts/setup.sh") from None
    import importlib

    return importlib.import_module(f"app.training.{name}")


def _embed(db: Database, settings: Settings, job_id: int, worker: str, hooks: DbHooks):
    """An embed job: every image through a pretrained backbone (app.training.embed)."""
    embed = _torch_module("embed")
    return embed.run_job(db, settings, job_id, worker, hooks)


def _analyse(db: Database, settings: Settings, job_id: int, worker: str, hooks: DbHooks):
    """An analyse job: map, neighbours, outliers over one embedding space (app.embeddings.analyse; no torch)."""
    from app.embeddings import analyse

    return analyse.run_job(db, settings, job_id, worker, hooks)


def _search(db: Database, settings: Settings, job_id: int, worker: str, hooks: DbHooks):
    """A search job: one uploaded image embedded in a space, its nearest images (app.training.search)."""
    return _torch_module("search").run_job(db, settings, job_id, worker, hooks)


def _report(db: Database, settings: Settings, job_id: int, worker: str, hooks: DbHooks):
    """A report job: the quality page's whole-dataset analyses, stored (app.quality.results), or one snapshot's
    health or two snapshots' diff (app.snapshots.stored: those jobs have a snapshot_id); no torch."""
    from app.quality import results
    from app.snapshots import stored

    with db.reading() as s:
        for_snapshot = s.get(Job, job_id).snapshot_id is not None
    return (stored if for_snapshot else results).run_job(db, settings, job_id, worker, hooks)


# Each returns the keyword arguments of jobs.finish for its job.
RUNNERS = {"train": _train, "predict": _predict, "embed": _embed, "analyse": _analyse, "search": _search,
           "report": _report}


def run_job(db: Database, settings: Settings, job_id: int, worker: str) -> str:
    """Run one claimed job (train or predict) to the end; returns its final status."""
    hooks = DbHooks(db, job_id, worker, settings)
    done = threading.Event()
    beating = threading.Thread(target=_heartbeat_loop, args=(hooks, done), daemon=True)
    beating.start()
    outcome: dict = {}
    kind = "train"
    try:
        with db.reading() as s:
            kind = s.get(Job, job_id).kind
        if kind not in RUNNERS:
            raise TrainingError(f"this worker cannot run jobs of kind '{kind}'")
        outcome = RUNNERS[kind](db, settings, job_id, worker, hooks)
        status, error = "succeeded", None
    except Cancelled:
        outcome, status, error = {}, "cancelled", None
    except TrainingError as exc:
        outcome, status, error = {}, "failed", str(exc)
    except _Stop:
        done.set()
        _give_back(db, job_id, worker)
        raise
    except Exception as exc:  # one job's bug must not stop the queue
        hooks.log(traceback.format_exc())
        outcome, status, error = {}, "failed", f"internal error: {type(exc).__name__}: {exc}"
    finally:
        done.set()
    with db.writing() as s:
        if not jobs.finish(s, job_id, worker, status=status, error=error, **outcome):
            return "lost"
    if kind == "train" and status in jobs.FINISHED:
        drop_resume_files(settings, job_id)  # a finished job is never resumed
    after_finish(db, job_id, status, kind, settings)
    return status


def after_finish(db: Database, job_id: int, status: str, kind: str = "train",
                 settings: Settings | None = None) -> None:
    """Work that follows a finished train job: label-quality flags (suspected mislabels, duplicate conflicts),
    and the new model's guesses for images imported while it trained. A predict job's guesses are not out of
    sample for any label, so they raise no flags."""
    if status == "succeeded" and kind == "train":
        from app.quality.after_job import after_job

        after_job(db, job_id, settings)
        try:
            with db.writing() as s:
                jobs.queue_predictions_after_training(s, job_id)
        except Exception:  # a missed follow-up must not stop the queue: the next import queues one anyway
            log.exception("job %s: could not queue predictions for images imported meanwhile", job_id)
    if status == "succeeded" and kind in ("train", "embed"):
        try:
            with db.writing() as s:
                jobs.queue_analysis(s, job_id)
        except Exception:  # the map and outliers can be asked for again from the jobs page
            log.exception("job %s: could not queue the analysis of its embeddings", job_id)
    if status == "succeeded" and kind == "predict":
        try:  # its images get a point on the map and an outlier score (app.embeddings.extend)
            with db.writing() as s:
                jobs.queue_extension(s, job_id)
        except Exception:
            log.exception("job %s: could not queue the extension of the analysis", job_id)
    if status == "succeeded" and kind == "analyse":
        from app.embeddings.analyse import after_analysis

        after_analysis(db, job_id)


def _give_back(db: Database, job_id: int, worker: str) -> None:
    with db.writing() as s:
        job = s.get(Job, job_id)
        if job is not None and job.worker == worker and job.status == "running":
            job.status, job.worker, job.message = "queued", None, "requeued: its worker was stopped"
            s.commit()


PARENT_ENV = "LOUPE_PARENT_PID"  # set by `loupe serve` for the worker it starts
PARENT_POLL_S = 0.5


def _watch_parent(parent: int) -> None:
    """Stop this worker (as SIGTERM would: the job goes back to the queue) once the serve that started it is
    gone. Linux also sends SIGTERM through prctl(PR_SET_PDEATHSIG); this covers other systems and the moment
    between fork and prctl."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    log.warning("worker: its parent (loupe serve, pid %s) is gone; stopping", parent)
    os.kill(os.getpid(), signal.SIGTERM)


def run_worker(settings: Settings, *, worker: str | None = None, once: bool = False) -> None:
    """Serve the queue until SIGTERM/SIGINT (or, with `once`, until it is empty)."""
    settings.ensure_dirs()
    upgrade_head(settings.database_url)
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    db = Database(settings.database_url)

    stopping = []

    def _on_signal(signum, _frame):
        # Once only: with serve gone, PR_SET_PDEATHSIG and the parent watch each send a SIGTERM, and a second
        # _Stop raised inside the first one's handling cut short the give-back (the job stayed "running").
        if stopping:
            return
        stopping.append(signum)
        raise _Stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _on_signal)
    if (parent := os.environ.get(PARENT_ENV, "")).isdigit():
        threading.Thread(target=_watch_parent, args=(int(parent),), daemon=True, name="parent-watch").start()
    log.info("worker %s serving %s", worker, make_url(settings.database_url).render_as_string(hide_password=True))
    try:
        while True:
            with db.writing() as s:
                jobs.reap(s, stale_after_s=settings.stale_after_s)
                job = jobs.claim(s, worker)
            if job is None:
                if once:
                    return
                time.sleep(settings.poll_s)
                continue
            run_job(db, settings, job.id, worker)
    except _Stop:
        log.info("worker %s stopped", worker)
    finally:
        db.dispose()
