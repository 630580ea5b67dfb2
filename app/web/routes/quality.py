"""Label quality: the quality page, and running the checks (mislabels, duplicates, audits) on demand."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from app.errors import LoupeError
from app.quality import results
from app.quality.audits import audit_stats, pick_audits
from app.quality.duplicate_flags import flag_duplicates
from app.quality.mislabel_flags import check_job, flag_mislabels
from app.quality.report import duplicate_report, quality_report
from app.quality.sources import source_trend
from app.taxonomy.queries import current_version
from app.web.charts import line_chart
from app.web.deps import DatabaseDep, ReadSession, SettingsDep, WriteSession
from app.web.forms import refusal_shows
from app.web.params import Id
from app.web.schemas.quality import (
    AuditPick,
    AuditStats,
    DuplicateFlagging,
    DuplicatesReply,
    MislabelCheck,
    QualityReport,
    RefreshQueued,
    SourceTrend,
)
from app.web.templating import render

router = APIRouter()
MAX_AGE_HOURS = 24 * 366 * 100  # older than a century selects nothing; beyond it timedelta overflows


class MislabelBody(BaseModel):
    job: Id = Field(description="a succeeded job with out-of-sample predictions")
    use_confidence: bool = Field(True, description="use annotator confidence as a prior")


class AuditPickBody(BaseModel):
    share: float | None = Field(None, description="share of old-enough labels to audit (default: the setting)")
    older_than_hours: float = Field(24.0, ge=0, le=MAX_AGE_HOURS, description="only labels at least this old come back")
    seed: int | None = None


# exclude_unset: keys an empty or older stored report lacks (`snapshot`, `class_ids`, `joint`) stay absent, not null
@router.get("/api/quality", tags=["quality"], response_model=QualityReport, response_model_exclude_unset=True)
def read_quality(session: ReadSession, settings: SettingsDep) -> dict:
    """Estimated noise per class and source, flags by kind and status, audit agreement, duplicates, size.
    Past `quality_live_max` images the duplicates, hard cases and effective size are the newest stored report's
    (`as_of`: its job, time, the changes since, and a refresh job under way); null until one is stored."""
    return quality_report(session, settings)


@router.post("/api/quality/refresh", status_code=202, tags=["quality"], response_model=RefreshQueued)
def refresh_quality(session: WriteSession) -> dict:
    """Queue a report job that recomputes the stored duplicate and health reports (or return the one queued)."""
    job = results.queue(session)
    return {"job": job.id, "status": job.status}


@router.get("/api/quality/sources", tags=["quality"], response_model=SourceTrend)
def read_source_trend(session: ReadSession) -> dict:
    """Out-of-sample accuracy per source for each snapshot (its newest succeeded train job), oldest first:
    `{"sources", "points": [{"snapshot", "snapshot_name", "images", "job", "finished_at", "accuracy": {source:
    0..1}, "gap"}]}`; `gap` is the best source's accuracy minus the worst's."""
    return source_trend(session)


@router.post("/api/quality/mislabels", tags=["quality"], response_model=MislabelCheck)
def run_mislabels(db: DatabaseDep, settings: SettingsDep, body: MislabelBody) -> dict:
    """(Re-)run mislabel detection on a finished job; 409 when it has no out-of-sample predictions."""
    return check_job(db, job_id=body.job, use_confidence=body.use_confidence, settings=settings)


# exclude_unset: `snapshot` (no images) and `as_of` (computed now) stay absent, as they always were
@router.get("/api/quality/duplicates", tags=["quality"], response_model=DuplicatesReply,
            response_model_exclude_unset=True)
def read_duplicates(session: ReadSession, settings: SettingsDep) -> dict:
    """Exact and near duplicates crossing sources or splits, and groups whose labels disagree. Past
    `quality_live_max` images, the newest stored report's (with `as_of`); computed here when none is stored."""
    shown = results.view(session, settings, parts=("duplicates",))
    if shown["duplicates"] is None:
        return duplicate_report(session)
    return {**shown["duplicates"], **({"as_of": shown["as_of"]} if shown["as_of"] else {})}


@router.post("/api/quality/duplicates", tags=["quality"], response_model=DuplicateFlagging)
def run_duplicates(session: WriteSession) -> dict:
    """Flag near-duplicates whose current labels disagree; cancel conflicts that are gone."""
    return flag_duplicates(session)


@router.get("/api/quality/audits", tags=["quality"], response_model=AuditStats)
def read_audits(session: ReadSession) -> dict:
    """Audit agreement and Cohen's kappa, overall, per week of the original label and per class."""
    return audit_stats(session)


@router.post("/api/quality/audits", tags=["quality"], response_model=AuditPick)
def start_audits(session: WriteSession, settings: SettingsDep, body: AuditPickBody) -> dict:
    """Send a share of labels older than a day back to the labelling page (queue=audit), blind."""
    share = settings.audit_share if body.share is None else body.share
    return pick_audits(session, share=share, older_than=timedelta(hours=body.older_than_hours), seed=body.seed)


def _page(request: Request, session, settings, *, notice: str | None = None, error: str | None = None):
    report = quality_report(session, settings)
    weeks = report["audits"]["weeks"]
    chart = line_chart({"agreement": [w["agreement"] for w in weeks], "kappa": [w["kappa"] for w in weeks]},
                       y_min=min([0.0] + [w["kappa"] for w in weeks if w["kappa"] == w["kappa"]]), y_max=1)
    trend = report["source_trend"]
    source_chart = line_chart({s: [p["accuracy"].get(s) for p in trend["points"]] for s in trend["sources"]},
                              y_min=0, y_max=1, numbered=True, x_label="snapshot", y_label="accuracy")
    version = current_version(session)
    return render(request, "pages/quality.html", {
        "r": report, "audit_chart": chart, "source_chart": source_chart, "notice": notice, "error": error,
        "version": version.number if version else 0,
    }, block="report")


@router.get("/quality", include_in_schema=False)
def quality_page(request: Request, session: ReadSession, settings: SettingsDep):
    """Noise per class and source, flags, audit agreement over time, confused classes, hard cases, size."""
    return _page(request, session, settings)


@router.post("/quality/actions/{action}", include_in_schema=False)
def quality_action(request: Request, session: WriteSession, settings: SettingsDep, action: str):
    """The page's buttons: pick audits, scan for duplicates, re-check the latest job."""
    with refusal_shows(session, lambda exc: _page(request, session, settings, error=exc.detail)):
        if action == "audits":
            got = pick_audits(session, share=settings.audit_share)
            notice = f"{got['picked']} image(s) wait for a blind audit ({got['already']} already audited)."
        elif action == "duplicates":
            got = flag_duplicates(session)
            notice = (f"{got['groups']} conflicting group(s): {got['created']} new flag(s), "
                      f"{got['cancelled']} cancelled.")
        elif action == "refresh":
            job = results.queue(session)
            notice = f"Report job #{job.id} recomputes duplicates, hard cases and effective size."
        elif action == "mislabels":
            from app.quality.report import latest_checked_job

            job = latest_checked_job(session)
            if job is None:
                raise LoupeError("no finished job with out-of-sample predictions yet")
            got = flag_mislabels(session, job_id=job.id, settings=settings)
            notice = f"job #{job.id}: {got['issues']} suspected mislabel(s), {got['created']} new flag(s)."
        else:
            raise LoupeError(f"unknown action '{action}'")
    return _page(request, session, settings, notice=notice)
