"""The latest model's opinion on the labelling page: top-3 suggestions and "most uncertain first".

Reads predictions the worker wrote; no torch here. A prediction's class index
maps to the class id frozen in the job's snapshot, followed through merges to
the class in use today.

A model's predictions live under its train job and under the "predict" jobs
that ran that model later over images imported since (config {"model_job": N},
same snapshot, so the same class indices): together its *family*. An image's
prediction is the one from the latest model's family, else the newest one any
finished job wrote.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Job, Prediction, Snapshot
from app.labelling.heirs import heir

TOP = 3
CHUNK = 5_000  # image ids per IN (...) list


def latest_job(session: Session) -> Job | None:
    """The newest succeeded training job."""
    return session.scalars(
        select(Job).where(Job.status == "succeeded", Job.kind == "train").order_by(Job.id.desc()).limit(1)
    ).first()


def latest_model_job(session: Session) -> Job | None:
    """The newest succeeded train job that exported a model."""
    for job in session.scalars(select(Job).where(Job.kind == "train", Job.status == "succeeded")
                               .order_by(Job.id.desc()).limit(20)):
        if (job.artifacts or {}).get("model"):
            return job
    return None


def model_family(session: Session, model_job_id: int | None = None) -> list[int]:
    """The train job `model_job_id` (default: the latest succeeded one) and the succeeded predict jobs that ran
    its model; [] when there is no model."""
    if model_job_id is None:
        job = latest_job(session)
        if job is None:
            return []
        model_job_id = job.id
    # The model job is in the config (JSON): filtered here, as JSON paths differ between SQLite and PostgreSQL.
    # Predict jobs are few (one per import at most), and only those after the model can be its.
    later = session.execute(select(Job.id, Job.config).where(
        Job.kind == "predict", Job.status == "succeeded", Job.id > model_job_id))
    return [model_job_id, *(i for i, config in later if (config or {}).get("model_job") == model_job_id)]


def newest_prediction(session: Session, image_id: int) -> tuple[Job, Prediction] | None:
    """The image's prediction from the latest model (its train job or a later predict job), else the newest
    one from any succeeded job; None when no model has seen it."""
    pick = (select(Job, Prediction).join(Prediction, Prediction.job_id == Job.id)
            .where(Prediction.image_id == image_id, Job.status == "succeeded").order_by(Job.id.desc()).limit(1))
    family = model_family(session)
    if family:
        row = session.execute(pick.where(Job.id.in_(family))).first()
        if row is not None:
            return row[0], row[1]
    row = session.execute(pick).first()
    return (row[0], row[1]) if row is not None else None


def suggestions(session: Session, image_id: int, job: Job | None = None) -> list[dict]:
    """Up to three {"class_id", "name", "prob"} from `job`, or from the image's newest prediction
    (newest_prediction), best first; [] when it has none."""
    if job is not None:
        pred = session.get(Prediction, (job.id, image_id))
    else:
        found = newest_prediction(session, image_id)
        job, pred = found if found is not None else (None, None)
    if pred is None:
        return []
    return _top(session, job, pred)


def set_suggestion(session: Session, image_id: int, shown: int = 5) -> list[dict]:
    """A multi-label model's guess for an image: up to `shown` classes, most probable first, each
    {"class_id", "name", "prob", "in_set"}; `in_set` where the probability reaches the class's threshold (the
    probable set). [] when the newest prediction is not of a multi-label model (its job keeps no thresholds):
    a single-label model's guess is no set. Merged classes: the larger probability and the lower threshold."""
    found = newest_prediction(session, image_id)
    if found is None:
        return []
    job, pred = found
    thresholds = (job.artifacts or {}).get("thresholds")
    if not thresholds or len(thresholds) != len(pred.probs):
        return []
    frozen = job_classes(session, job)
    merged: dict[int, dict] = {}
    cache: dict = {}
    for k, (p, t) in enumerate(zip(pred.probs, thresholds)):
        cls = heir(session, frozen[k]["id"], cache) if k < len(frozen) else None
        if cls is None:
            continue
        entry = merged.setdefault(cls.id, {"class_id": cls.id, "name": cls.name, "prob": 0.0, "threshold": 1.0})
        entry["prob"], entry["threshold"] = max(entry["prob"], p), min(entry["threshold"], t)
    ranked = sorted(merged.values(), key=lambda e: -e["prob"])
    out = [{"class_id": e["class_id"], "name": e["name"], "prob": e["prob"], "in_set": e["prob"] >= e["threshold"]}
           for e in ranked]
    return [e for e in out if e["in_set"]] + [e for e in out if not e["in_set"]][:max(0, shown - sum(
        e["in_set"] for e in out))]


def job_classes(session: Session, job: Job) -> list[dict]:
    """The classes ({"id", "name"}) a job's probabilities follow: its snapshot's, or for predictions imported
    with labels (a job of kind "import", no snapshot) the ones it names in its config."""
    if job.snapshot_id is None:
        return (job.config or {}).get("classes", [])
    return session.get(Snapshot, job.snapshot_id).classes


def _top(session: Session, job: Job, pred: Prediction, cache: dict | None = None) -> list[dict]:
    frozen = job_classes(session, job)
    merged: dict[int, dict] = {}
    for k, p in enumerate(pred.probs):
        cls = heir(session, frozen[k]["id"], cache) if k < len(frozen) else None
        if cls is not None:  # a class split or retired since has no single heir: its share is dropped
            entry = merged.setdefault(cls.id, {"class_id": cls.id, "name": cls.name, "prob": 0.0})
            entry["prob"] += p
    return sorted(merged.values(), key=lambda e: -e["prob"])[:TOP]


def latest_prediction(session: Session, image_id: int) -> dict | None:
    """The latest model's guess for an image, also for one imported after it trained (a predict job):
    {"job", "model_job", "class", "p", "top": [{"class", "p"}]}, or None when no model has seen it.

    `job` wrote the prediction; `model_job` trained the model (the same job unless a predict job wrote it).
    Classes are today's names, followed through merges."""
    found = newest_prediction(session, image_id)
    if found is None:
        return None
    job, pred = found
    top = _top(session, job, pred)
    if not top:  # every class it knew has been split or retired since
        return None
    model_job = (job.config or {}).get("model_job", job.id) if job.kind == "predict" else job.id
    return {"job": job.id, "model_job": model_job, "class": top[0]["name"], "p": round(top[0]["prob"], 4),
            "top": [{"class": t["name"], "p": round(t["prob"], 4)} for t in top]}


def model_guesses(session: Session, image_ids: list[int]) -> dict[int, dict]:
    """The latest model's guess for many images at once (an export's pre-annotations): image id ->
    {"class", "p", "model"} for the images its family predicted."""
    family = model_family(session)
    if not family:
        return {}
    jobs = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(family)))}
    out: dict[int, dict] = {}
    cache: dict = {}
    for start in range(0, len(image_ids), CHUNK):
        chunk = image_ids[start:start + CHUNK]
        # the newest job of the family first: its prediction of an image wins
        for pred in session.scalars(select(Prediction).where(Prediction.job_id.in_(family),
                                                             Prediction.image_id.in_(chunk))
                                    .order_by(Prediction.job_id.desc())):
            if pred.image_id in out:
                continue
            top = _top(session, jobs[pred.job_id], pred, cache)
            if top:
                out[pred.image_id] = {"class": top[0]["name"], "p": top[0]["prob"], "model": f"loupe job {family[0]}"}
    return out
