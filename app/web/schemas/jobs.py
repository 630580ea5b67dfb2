"""What the job routes answer (app/web/routes/jobs.py): jobs as app.training.jobs.job_view shows them, one job
with its epochs and log, and a job's predictions."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from app.db.vocab import JobKind, JobStatus
from app.web.schemas import Reply


class JobState(Reply):
    """A job's id and status, after it was queued or a cancel was asked."""

    id: int
    status: JobStatus = Field(description="queued when created; after a cancel: cancelled (it was queued) or "
                                          "still running (the worker stops it at its next heartbeat)")


class Job(Reply):
    """One job: what it runs on, how far it got, and on success its evaluation."""

    id: int
    kind: JobKind
    snapshot: int | None = Field(description="the snapshot it trains on (a predict or analyse job: its model's or "
                                             "space's); null for embed jobs and reports")
    config: dict[str, Any] = Field(description="the full config, defaults filled in (see POST /api/jobs)")
    status: JobStatus
    progress: float = Field(description="0..1")
    message: str = Field(description="what it is doing or did, in words")
    error: str | None = Field(description="why it failed")
    worker: str | None = Field(description="the worker that claimed it")
    attempts: int = Field(description="how many times a worker claimed it (a job whose worker stopped responding "
                                      "is requeued)")
    device: str | None = Field(description="where it ran: cpu, cuda, mps")
    notes: list[str] = Field(description="things worth knowing about the run, in words")
    metrics: dict[str, Any] | None = Field(description="a train job's out-of-sample evaluation "
                                                       "(app.training.evaluate); other kinds their own counts")
    final: dict[str, Any] | None = Field(description='a train job\'s final model\'s metrics: {"val", "test", '
                                                     '"holdout"} (null when that split is empty)')
    created_at: str
    heartbeat_at: str | None
    finished_at: str | None
    has_model: bool = Field(description="an exported model can be downloaded (GET /api/jobs/{id}/model)")


class JobList(Reply):
    """The newest 100 jobs first (searches by image left out)."""

    items: list[Job]


class Epoch(Reply):
    """One epoch of one training stage."""

    stage: str = Field(description='"fold 1/5", ..., "final"')
    epoch: int = Field(description="from 1")
    train_loss: float | None = None
    val_loss: float | None = Field(None, description="null when the stage did not validate this epoch (a fold "
                                                     "validates only at its last)")
    val_accuracy: float | None = None
    lr: float | None = Field(None, description="the learning rate")
    seconds: float | None = None


class LogLine(Reply):
    """One line of a job's log."""

    at: str
    message: str


class JobDetail(Job):
    """One job with its per-epoch metrics and its log."""

    epochs: list[Epoch] = Field(description="in the order written")
    log: list[LogLine] = Field(description="the last 200 lines, oldest first")


class JobPrediction(Reply):
    """One image's class probabilities."""

    image: int
    probs: list[float] = Field(description="one per class, in the order of `classes`")
    out_of_sample: bool = Field(description="from a model that never saw the image")
    role: Literal["oof", "suggestion", "holdout"] = Field(
        description="oof: a fold model that never saw the labelled image; suggestion: an unlabelled image, the "
                    "final model; holdout: an image of the held-out source")


class Predictions(Reply):
    """A job's predictions, by image id."""

    classes: list[str] = Field(description="the class names the probabilities follow")
    items: list[JobPrediction]
