"""Flags as JSON, resolving them, blind audit answers, and the keyboard-first review page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from app.errors import InvalidInput
from app.labelling.events import LabelInput, history
from app.quality.audits import answer_audit
from app.quality.evidence import evidence, next_flag, open_count
from app.quality.flags import KINDS, cancel_stale_open, get_flag, list_flags, resolve, undo_decision, view
from app.taxonomy.queries import MULTI, active_classes, examples, taxonomy_mode
from app.web.bodies import LabelBody
from app.web.deps import ReadSession, SettingsDep, WriteSession
from app.web.identity import signed
from app.web.params import Count, Id, parse_ids
from app.web.schemas.flags import AuditAnswer, FlagPage, FlagView, Resolved, Undone
from app.web.templating import render, render_block

router = APIRouter()


class ResolveBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    action: str = Field(description="keep | relabel | ambiguous | exclude")
    class_: str | Id | None = Field(None, alias="class", description="the new class (relabel): name or id; for "
                                                                     "a set, the one class to turn over")
    classes: list[str | Id] | None = Field(None, description="a multi-label image's new set (relabel): names or ids")
    annotator: str = ""
    note: str = ""
    confidence: float = 1.0
    ms: int | None = None


class AuditBody(LabelBody):
    """A blind re-label answer: the same fields as a label."""


@router.get("/api/flags", tags=["flags"], response_model=FlagPage)
def read_flags(
    session: ReadSession, status: str | None = "open", kind: str | None = None, limit: Count = 100, offset: Count = 0,
    image: Id | None = None,
) -> dict:
    """Flags, highest score first: `given` is the image's current class, `suggested` the proposed one."""
    items, total = list_flags(session, status=status or None, kind=kind or None, limit=limit, offset=offset,
                              image=image)
    return {"items": items, "total": total}


@router.get("/api/flags/{flag_id}", tags=["flags"], response_model=FlagView)
def read_flag(session: ReadSession, flag_id: Id) -> dict:
    """One flag with its details and resolution."""
    return view(session, get_flag(session, flag_id))


@router.post("/api/flags/{flag_id}/resolve", tags=["flags"], response_model=Resolved)
def resolve_flag(request: Request, session: WriteSession, flag_id: Id, body: ResolveBody) -> dict:
    """Keep, relabel (a "review" label event), mark ambiguous or exclude; a flag is resolved once (else 409)."""
    return resolve(session, flag_id=flag_id, action=body.action, class_ref=body.class_, classes=body.classes,
                   annotator=signed(request, body.annotator), note=body.note, confidence=body.confidence, ms=body.ms)


class UndoDecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    annotator: str = ""


@router.post("/api/flags/{flag_id}/undo", tags=["flags"], response_model=Undone)
def undo_flag_decision(request: Request, session: WriteSession, flag_id: Id, body: UndoDecisionBody) -> dict:
    """Take back a review decision: an "undo" label event restores the earlier label (or the exclusion is
    lifted) and the flag is open again; 409 when there is no decision to undo or the image was labelled since."""
    return undo_decision(session, flag_id=flag_id, annotator=signed(request, body.annotator))


@router.post("/api/images/{image_id}/audit", status_code=201, tags=["flags"], response_model=AuditAnswer)
def answer_image_audit(request: Request, session: WriteSession, image_id: Id, body: AuditBody) -> dict:
    """A blind answer to a pending audit: stored as a label event of kind "audit" (the label stays)."""
    answer_audit(session, image_id=image_id, data=LabelInput(
        body.class_, body.confidence, body.tags, body.note, signed(request, body.annotator), body.ms))
    return history(session, image_id)[-1] | {"image": image_id}


def _kind(kind: str | None) -> str | None:
    if kind and kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, not '{kind}'")
    return kind or None


def _skip(skip: str) -> list[int]:
    return parse_ids(skip, "skip (flag ids)")


def _stage(session, settings, *, kind: str | None, skip: list[int], flag_id: int | None) -> dict:
    flag = get_flag(session, flag_id) if flag_id else next_flag(session, kind=kind, skip=skip)
    if flag is None and skip:  # only skipped flags are left: start over with them
        flag = next_flag(session, kind=kind)
    return {"ev": evidence(session, settings, flag) if flag else None, "kind": kind,
            "remaining": open_count(session, kind), "history": history(session, flag.image_id)[-6:] if flag else []}


@router.get("/review", include_in_schema=False)
def review_page(request: Request, session: WriteSession, settings: SettingsDep, kind: str | None = None,
                flag: Id | None = None):
    """One flag at a time with the evidence side by side; keys keep, relabel, mark ambiguous or exclude."""
    kind = _kind(kind)
    cancel_stale_open(session)  # the safety net: no flag whose cause is gone is shown for review
    return render(request, "pages/review.html", {
        **_stage(session, settings, kind=kind, skip=[], flag_id=flag), "classes": active_classes(session),
        "examples": examples(session), "kinds": [k for k in KINDS if k != "rereview"],
        "rereview": open_count(session, "rereview"), "multi": taxonomy_mode(session) == MULTI,
    })


@router.get("/review/stage", include_in_schema=False)
def review_stage(request: Request, session: ReadSession, settings: SettingsDep, kind: str | None = None,
                 skip: str = "", flag: Id | None = None):
    """The next flag's evidence (the stage block)."""
    ctx = _stage(session, settings, kind=_kind(kind), skip=_skip(skip), flag_id=flag)
    return render_block(request, "pages/review.html", "stage", {**ctx, "classes": active_classes(session)})
