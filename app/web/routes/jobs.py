"""Training jobs: launch, watch, cancel, predictions, model; the jobs and job pages."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from app.artifacts import artifact_path, model_key
from app.errors import NotFound
from app.images import blobs
from app.images.catalog import source_names
from app.labelling.suggestions import latest_model_job
from app.snapshots.queries import list_snapshots
from app.training import jobs
from app.training.spec import MODELS, TrainConfig
from app.web.charts import epoch_charts
from app.web.deps import ReadSession, WriteSession, get_settings
from app.web.files import blob_response
from app.web.forms import form_number, refusal_shows
from app.web.openapi import file_response
from app.web.params import Id
from app.web.schemas.jobs import JobDetail, JobList, JobState, Predictions
from app.web.templating import render

router = APIRouter()


class JobBody(BaseModel):
    kind: str = Field("train", description='"train" (on a snapshot); "predict" (the latest model\'s guesses '
                                           'for images it has not seen; no snapshot); "embed" (every image '
                                           'through a pretrained backbone; no snapshot); "analyse" (map, '
                                           'neighbours, outliers and the diverse order of an embedding space)')
    snapshot: Id | str | None = Field(None, description="snapshot id or name (train jobs)")
    config: dict[str, Any] = Field(default_factory=dict, description='train: model, epochs, image_size, folds, '
                                   '...; predict: {"model_job": N} (default: the latest succeeded train job); '
                                   'embed: {"backbone", "image_size", "batch_size", "device", "weights"}; '
                                   'analyse: {"space": N} (a train or embed job; default the newest)')


@router.post("/api/jobs", status_code=201, tags=["jobs"], response_model=JobState)
def create_job(session: WriteSession, body: JobBody) -> dict:
    """Queue a training job on a snapshot, or a predict job; a worker picks it up."""
    job = jobs.create_job(session, snapshot_ref=body.snapshot, config=body.config, kind=body.kind)
    return {"id": job.id, "status": job.status}


@router.get("/api/jobs", tags=["jobs"], response_model=JobList)
def read_jobs(session: ReadSession) -> dict:
    """The newest jobs first."""
    return {"items": [jobs.job_view(j) for j in jobs.list_jobs(session)]}


@router.get("/api/jobs/{job_id}", tags=["jobs"], response_model=JobDetail)
def read_job(session: ReadSession, job_id: Id) -> dict:
    """Status, progress, per-epoch metrics, log, and on success the evaluation."""
    view = jobs.job_view(jobs.get_job(session, job_id))
    return {**view, "epochs": jobs.epochs(session, job_id), "log": jobs.logs(session, job_id)}


@router.get("/api/jobs/{job_id}/predictions", tags=["jobs"], response_model=Predictions)
def read_predictions(session: ReadSession, job_id: Id) -> dict:
    """Class probabilities per image; `out_of_sample` ones come from a model that never saw the image."""
    return jobs.predictions(session, job_id)


@router.post("/api/jobs/{job_id}/cancel", tags=["jobs"], response_model=JobState)
def cancel_job(session: WriteSession, job_id: Id) -> dict:
    """Cancel a queued job at once, or ask the worker to stop a running one."""
    job = jobs.request_cancel(session, job_id)
    return {"id": job.id, "status": job.status}


@router.get("/api/jobs/{job_id}/model", tags=["jobs"], **file_response("application/octet-stream"))
def download_model(request: Request, session: ReadSession, job_id: Id) -> Response:
    """The final model as TorchScript (its class list and input size are in the job's artifacts)."""
    settings = get_settings(request)
    job = jobs.get_job(session, job_id)
    name = f"loupe-job-{job_id}.pt"
    path = artifact_path(settings, job, "model")
    if path is not None:
        return FileResponse(path, filename=name, media_type="application/octet-stream")
    if (job.artifacts or {}).get("model"):  # trained on another machine: the copy in a remote store
        try:
            return blob_response(blobs.for_settings(settings), model_key(job_id), headers={}, filename=name)
        except NotFound:
            pass
    raise NotFound(f"job {job_id} has no exported model")


@router.get("/jobs", include_in_schema=False)
def jobs_page(request: Request, session: ReadSession, error: str | None = None):
    """The queue, and a form to train on a snapshot."""
    return render(request, "pages/jobs.html", {
        "jobs": [jobs.job_view(j) for j in jobs.list_jobs(session)], "snapshots": list_snapshots(session),
        "models": MODELS, "defaults": TrainConfig(), "sources": source_names(session), "error": error,
        "model_job": latest_model_job(session),
    }, block="queue")


@router.post("/jobs", include_in_schema=False)
def launch_from_page(
    request: Request,
    session: WriteSession,
    snapshot: Annotated[str, Form()],
    model: Annotated[str, Form()] = "smallcnn",
    epochs: Annotated[str, Form()] = "",
    image_size: Annotated[str, Form()] = "",
    holdout_source: Annotated[str, Form()] = "",
):
    """Launch from the jobs page; errors come back on the same page."""
    config: dict[str, Any] = {"model": model}
    with refusal_shows(session, lambda exc: jobs_page(request, session, error=exc.detail)):
        for key, value in (("epochs", epochs), ("image_size", image_size)):
            if (number := form_number(value, key)) is not None:
                config[key] = number
        if holdout_source:
            config["holdout_source"] = holdout_source
        job = jobs.create_job(session, snapshot_ref=snapshot, config=config)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.post("/jobs/{kind}", include_in_schema=False)
def follow_up_from_page(request: Request, session: WriteSession, kind: str):
    """The jobs page's one-click jobs: "Predict new images", "Embed with a pretrained backbone", "Analyse"."""
    if kind not in ("predict", "embed", "analyse"):
        raise NotFound(f"no page action {kind!r}")
    with refusal_shows(session, lambda exc: jobs_page(request, session, error=exc.detail)):
        job = jobs.create_job(session, kind=kind)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/jobs/{job_id}", include_in_schema=False)
def job_page(request: Request, session: ReadSession, job_id: Id):
    """Live progress and curves while it runs; the evaluation when it is done."""
    job = jobs.get_job(session, job_id)
    epochs = jobs.epochs(session, job_id)
    return render(request, "pages/job.html", {
        "job": jobs.job_view(job), "epochs": epochs, "charts": epoch_charts(epochs), "log": jobs.logs(session, job_id),
        "classes": (job.artifacts or {}).get("classes", []), "predicted": (job.artifacts or {}).get("predicted"),
    }, block="live")
