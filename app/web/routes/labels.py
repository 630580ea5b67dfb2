"""Labelling: the label API, difficulty tags and the keyboard-first labelling page."""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.accounts.users import role_at_least
from app.db.ids import as_id
from app.embeddings import regions
from app.errors import Conflict, InvalidInput
from app.images.catalog import get_image
from app.keyboard import ACTIONS, CONFIDENCE_LEVELS, MULTI_ACTIONS, key_map
from app.labelling import bulk, orders, rereview
from app.labelling.bulk import Selection
from app.labelling.events import LabelInput, current_label, history, record_label, undo_label
from app.labelling.leases import lease_image, next_images
from app.labelling.queries import COUNT_CAP, ImageFilter, count_text, queue_count, queue_ids
from app.labelling.seen import check_seen, current_event_id
from app.labelling.suggestions import set_suggestion, suggestions
from app.labelling.tags import active_tags, add_tag, retire_tag, tag_view
from app.quality.audits import answer_audit
from app.taxonomy.queries import MULTI, active_classes, examples, taxonomy_mode
from app.web.bodies import LabelBody
from app.web.deps import ReadSession, SettingsDep, WriteSession, get_settings
from app.web.identity import current_user, signed
from app.web.params import Id, parse_ids
from app.web.schemas.labels import (
    BulkActions,
    BulkApplied,
    BulkPreview,
    BulkUndone,
    Queue,
    RecordedLabel,
    Tag,
    Tags,
)
from app.web.templating import render, render_block

router = APIRouter()
PREFETCH = 3
# Names one browser's labelling page, so that its lease keeps the image it shows
# through a reload while other labellers are shown other images.
LABELLER_COOKIE = "loupe_labeller"


class UndoBody(BaseModel):
    event: Id = Field(description="the label event to undo; must be the image's current one")
    annotator: str = ""


class ImageFilterBody(BaseModel):
    status: str | None = None
    source: str | None = None
    class_: str | None = Field(None, alias="class")
    tag: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    split: str | None = None
    analysis: Id | None = None
    region: str | None = Field(None, description="a polygon drawn on the map of `analysis`: x1,y1,x2,y2,...")
    lacks: str | None = Field(None, description="multi-label: sets without this class")
    exactly: str | None = Field(None, description="multi-label: sets of exactly these classes, comma-separated")


class BulkBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    images: list[Id] | None = Field(None, description="the selected image ids (or give `filter`)")
    filter: ImageFilterBody | None = Field(None, description="every image matching it, as /browse filters")
    action: Literal["label", "exclude", "include", "add", "remove"] = Field(
        "label", description="add / remove: a multi-label taxonomy's class put into / taken out of each labelled "
                             "image's set")
    class_: str | Id | None = Field(None, alias="class", description="class name or id (actions label, add and "
                                                                      "remove)")
    confidence: float = 1.0
    tags: list[str] = []
    note: str = ""
    annotator: str = ""
    ms: int | None = None
    reason: str = Field("", description="why (required to exclude)")
    dry_run: bool = Field(False, description="only say what would change: count, classes before, text")
    expect: int | None = Field(None, description="the previewed count; 409 when the selection changed since")

    def selection(self) -> Selection:
        fb = self.filter
        f = None if fb is None else ImageFilter(fb.status, fb.source, fb.class_, fb.tag, fb.min_confidence,
                                                fb.max_confidence, fb.split, fb.analysis, fb.region,
                                                lacks=fb.lacks, exactly=fb.exactly)
        return Selection(self.images, f, fb.model_dump(by_alias=True, exclude_none=True) if fb else None)

    def label_input(self) -> LabelInput | None:
        if self.action in ("exclude", "include"):
            return None
        return LabelInput(self.class_, self.confidence, self.tags, self.note, self.annotator, self.ms)


class BulkUndoBody(BaseModel):
    annotator: str = ""


class TagBody(BaseModel):
    name: str
    key: str | None = None


def _event_json(session, event) -> dict:
    """The new event as history shows it, with the image's current label."""
    hist = history(session, event.image_id)
    # Not hist[-1]: another labeller's event on this image may have committed since ours.
    mine = next(e for e in reversed(hist) if e["id"] == event.id)
    return mine | {"image": event.image_id, "label": current_label(hist)}


@router.post("/api/images/{image_id}/labels", status_code=201, tags=["labels"], response_model=RecordedLabel)
def create_label(request: Request, session: WriteSession, reader: ReadSession, image_id: Id,
                 body: LabelBody) -> dict:
    """Append a label event; it becomes the image's current label (signed by the logged-in user, if any)."""
    body.annotator = signed(request, body.annotator)
    if "seen_event" in body.model_fields_set:
        check_seen(session, image_id, body.seen_event)
    # Read the answer after the commit on a read session: the write lock is free for the next labeller.
    return _event_json(reader, record_label(session, image_id=image_id, data=body.to_input()))


@router.post("/api/images/{image_id}/labels/undo", status_code=201, tags=["labels"], response_model=RecordedLabel)
def undo_image_label(request: Request, session: WriteSession, image_id: Id, body: UndoBody) -> dict:
    """Append an event restoring the label the image had before `event`."""
    body.annotator = signed(request, body.annotator)
    event = undo_label(session, image_id=image_id, event_id=body.event, annotator=body.annotator)
    return _event_json(session, event)


# The dry run's JSONResponse skips response_model, so its shape is named under `responses=` only.
@router.post("/api/labels/bulk", status_code=201, tags=["labels"], response_model=BulkApplied,
             response_model_exclude_unset=True,
             responses={200: {"model": BulkPreview, "description": "dry run: what would change, nothing written"}})
def create_labels_bulk(request: Request, session: WriteSession, settings: SettingsDep, body: BulkBody):
    """Label (or exclude / include) a selection as one bulk action: explicit `images` ids, or every image
    matching `filter`. Label events are of kind "bulk"; `POST /api/labels/bulk/{id}/undo` takes the whole
    action back. With `dry_run` nothing is written: the answer says what would change (`text`: "Relabel 214
    images: 37 Coat, 177 unlabelled → Shirt")."""
    body.annotator = signed(request, body.annotator)
    user = current_user(request)
    classed = body.action in ("label", "add", "remove")
    if not classed and user is not None and not role_at_least(user.role, "reviewer"):
        # the path lets labellers in (bulk labels); excluding is a reviewer's decision, as in review
        return JSONResponse({"detail": f"'{user.name}' is a {user.role}; excluding images needs the reviewer "
                                       "role"}, status_code=403)
    if classed and body.class_ is None:
        raise InvalidInput("choose the class to label these images as" if body.action == "label" else
                           f"choose the class to {body.action}")
    if not classed and body.class_ is not None:
        raise InvalidInput(f"an {body.action} takes no class")
    selection = body.selection()
    if selection.filter is not None:
        regions.resolve(session, settings, selection.filter)  # a map selection: its images, from the analysis
    if body.dry_run:
        return JSONResponse(bulk.preview(session, selection, action=body.action, class_ref=body.class_))
    return bulk.apply(session, selection, action=body.action, data=body.label_input(), reason=body.reason,
                      annotator=body.annotator, expect=body.expect)


@router.get("/api/labels/bulk", tags=["labels"], response_model=BulkActions, response_model_exclude_unset=True)
def read_bulk_actions(session: ReadSession, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> dict:
    """The latest bulk actions (and their undos), newest first."""
    return {"items": bulk.recent_actions(session, limit)}


@router.post("/api/labels/bulk/{action_id}/undo", status_code=201, tags=["labels"], response_model=BulkUndone,
             response_model_exclude_unset=True)
def undo_bulk_action(request: Request, session: WriteSession, action_id: Id, body: BulkUndoBody | None = None) -> dict:
    """Undo a whole bulk action with new events (kind "undo"; an exclusion is lifted by an include). Images
    labelled, excluded or included again since are left as they are and counted in `skipped`; 409 when the
    action was undone already or every image changed since."""
    annotator = signed(request, body.annotator if body else "")
    return bulk.undo(session, action_id, annotator=annotator)


@router.get("/api/tags", tags=["labels"], response_model=Tags)
def read_tags(session: ReadSession) -> dict:
    """The active difficulty tags and their keys."""
    return {"items": [tag_view(t) for t in active_tags(session)]}


@router.post("/api/tags", status_code=201, tags=["labels"], response_model=Tag)
def create_tag(session: WriteSession, body: TagBody) -> dict:
    """Add a difficulty tag (with an optional key on the labelling page)."""
    return tag_view(add_tag(session, name=body.name, key=body.key))


@router.post("/api/tags/{name}/retire", tags=["labels"], response_model=Tag)
def retire_a_tag(session: WriteSession, name: str) -> dict:
    """Stop offering a tag; labels that carry it keep it."""
    return tag_view(retire_tag(session, name=name))


def _parse_seen(value: str) -> int | None:
    """The page's seen_event field: "none" for an image it showed unlabelled (an empty form field reads as
    absent), else an event id."""
    if value == "none":
        return None
    if (event := as_id(value)) is None:
        raise InvalidInput(f"seen_event must be a label event id or 'none', not {value[:40]!r}")
    return event


def _parse_skip(skip: str) -> list[int]:
    return parse_ids(skip, "skip (image ids)")


def _stage_context(session, *, ids: list[int], queue: str, order: str, settings, last_event=None) -> dict:
    """What the stage block needs: the image now, the ones to prefetch, the classes it may take, the model's guess,
    and what to say about the order (a fallback, or which source it draws from)."""
    image = get_image(session, ids[0]) if ids else None
    flag = rereview.open_flag(session, image.id) if image else None
    allowed = rereview.offered_ids(session, flag)
    multi = taxonomy_mode(session) == MULTI
    # Audits are blind; a multi-label taxonomy shows a multi-label model's probable set (a single-label model's
    # guess is no set).
    if not image or queue == "audit":
        guesses = []
    else:
        guesses = set_suggestion(session, image.id) if multi else suggestions(session, image.id)
    if allowed is not None:
        guesses = [g for g in guesses if g["class_id"] in allowed]
    return {
        "image": image, "prefetch": ids[1:], "last_event": last_event,
        "seen_event": current_event_id(session, image.id) if image else None, "queue": queue, "order": order,
        "allowed": allowed, "reason": flag.details.get("reason") if flag else None, "suggestions": guesses,
        "order_note": orders.note(session, settings, order, image) if queue == "unlabelled" else None,
        "multi": multi,
    }


def _stage(request: Request, session, *, after: int | None, skip: list[int], queue: str, order: str,
           image_id: int | None = None, last_event=None):
    """The stage block: the image to label now (leased to this labeller), and the next ones to prefetch."""
    leases, labeller = request.app.state.leases, request.cookies.get(LABELLER_COOKIE)
    settings = get_settings(request)
    if image_id is not None:
        ids = [get_image(session, image_id).id] + queue_ids(
            session, after=image_id, skip=skip + [image_id], n=PREFETCH, queue=queue, order=order, settings=settings)
        lease_image(leases, holder=labeller, image_id=image_id)
    else:
        ids = next_images(session, leases, holder=labeller, after=after, skip=skip, n=PREFETCH + 1, queue=queue,
                          order=order, settings=settings)
    ctx = _stage_context(session, ids=ids, queue=queue, order=order, settings=settings, last_event=last_event)
    return render_block(request, "pages/label.html", "stage", ctx)


@router.get("/label", include_in_schema=False)
def label_page(request: Request, session: ReadSession, image: Id | None = None, queue: str = "unlabelled",
               order: str = "import"):
    """The labelling page: one large image, keys for everything."""
    labeller = request.cookies.get(LABELLER_COOKIE) or secrets.token_urlsafe(12)
    leases, settings = request.app.state.leases, get_settings(request)
    ids = next_images(session, leases, holder=labeller, n=PREFETCH + 1, queue=queue, order=order, settings=settings)
    if image:
        ids = [image] + [i for i in ids if i != image][:PREFETCH]
        lease_image(leases, holder=labeller, image_id=image)
    remaining = queue_count(session, queue, cap=COUNT_CAP)
    exact = queue == "unlabelled" or remaining <= COUNT_CAP  # "1,000+" is not counted down on the page
    classes = active_classes(session)
    stage = _stage_context(session, ids=ids, queue=queue, order=order, settings=settings)
    multi = stage["multi"]
    response = render(request, "pages/label.html", {
        **stage,
        "orders": orders.NAMES,
        "classes": classes, "tags": active_tags(session), "levels": CONFIDENCE_LEVELS,
        "actions": MULTI_ACTIONS if multi else ACTIONS, "remaining": count_text(remaining, exact=exact),
        "remaining_n": remaining if exact else None, "keymap": key_map(classes),
        "rereview_waiting": queue_count(session, "rereview") if queue != "rereview" else 0,
        "audit_waiting": queue_count(session, "audit") if queue == "unlabelled" else 0,
        "examples": examples(session),
    })
    if request.cookies.get(LABELLER_COOKIE) != labeller:
        response.set_cookie(LABELLER_COOKIE, labeller, httponly=True, samesite="strict")
    return response


@router.get("/label/stage", include_in_schema=False)
def label_stage(
    request: Request, session: ReadSession, after: Id | None = None, skip: str = "", image: Id | None = None,
    queue: str = "unlabelled", order: str = "import",
):
    """The next image to label (after a skip, or a specific one after an undo)."""
    return _stage(request, session, after=after, skip=_parse_skip(skip), image_id=image, queue=queue, order=order)


@router.get("/api/queue", tags=["labels"], response_model=Queue)
def read_queue(
    session: ReadSession, settings: SettingsDep,
    queue: Annotated[str, Query(description="unlabelled, rereview or audit")] = "unlabelled",
    order: Annotated[str, Query(description="unlabelled queue: " + ", ".join(orders.ORDERS))] = "import",
    n: Annotated[int, Query(ge=1, le=100, description="how many image ids")] = 10,
    after: Annotated[Id | None, Query(description="the image just done: the queue goes on after it")] = None,
    skip: Annotated[str, Query(description="image ids to pass over, comma-separated")] = "",
) -> dict:
    """The next `n` images of a labelling queue in an order, without leasing them:
    `{"queue", "order", "in_force", "note", "images": [id, ...]}`. `in_force` is the order followed: a
    fallback when what `order` needs is missing (diverse: an analysis; weakest-source: per-source accuracy);
    `note` says so in one sentence, or names the source weakest-source draws the first image from. 422 for an
    unknown queue or order."""
    orders.check(order)
    ids = queue_ids(session, after=after, skip=_parse_skip(skip), n=n, queue=queue, order=order, settings=settings)
    unlabelled = queue == "unlabelled"
    first = get_image(session, ids[0]) if ids and unlabelled else None
    return {"queue": queue, "order": order, "images": ids,
            "in_force": orders.in_force(session, settings, order) if unlabelled else "import",
            "note": orders.note(session, settings, order, first) if unlabelled else None}


@router.post("/label/{image_id}", include_in_schema=False)
def label_and_next(
    request: Request,
    session: WriteSession,
    reader: ReadSession,
    image_id: Id,
    class_: Annotated[str | None, Form(alias="class")] = None,
    classes: Annotated[list[str], Form()] = [],
    as_set: Annotated[bool, Form(alias="set")] = False,
    confidence: Annotated[float, Form()] = 1.0,
    tags: Annotated[list[str], Form()] = [],
    note: Annotated[str, Form()] = "",
    annotator: Annotated[str, Form()] = "",
    ms: Annotated[int | None, Form()] = None,
    skip: Annotated[str, Form()] = "",
    queue: Annotated[str, Form()] = "unlabelled",
    order: Annotated[str, Form()] = "import",
    any_class: Annotated[bool, Form()] = False,
    seen_event: Annotated[str | None, Form()] = None,
):
    """Save a label from the labelling page and return the next image's stage.

    The image labelled is the one in the path, the one the page showed; the next image is chosen only
    after the save, so no lease or queue order can move the label to another image. `seen_event` is the
    image's current label event when the page showed it ("none" for none): if the image was labelled since (in
    another tab of this browser, which shares its lease, or by someone else), 409 with that sentence and the
    queue's count now (`remaining`, null when capped) and `stale: true`, and nothing is saved."""
    # A multi-label page sends set=1 and a `classes` field per class switched on (none: none of these).
    data = LabelInput(class_, confidence, tags, note, signed(request, annotator), ms,
                      classes=classes if as_set else None)
    if seen_event is not None and queue != "audit":  # an audit is blind: its answer never says the label
        try:
            check_seen(session, image_id, _parse_seen(seen_event))
        except Conflict as refused:
            remaining = queue_count(reader, queue, cap=COUNT_CAP)
            exact = queue == "unlabelled" or remaining <= COUNT_CAP
            return JSONResponse({"detail": refused.detail, "stale": True, "remaining": remaining if exact else None},
                                status_code=409)
    if any_class:  # "none of these" in a re-review: the person chose from every active class
        rereview.open_to_any(session, image_id, annotator=data.annotator)
    if queue == "audit":  # a blind second look: stored as an audit event, the label stays
        event = answer_audit(session, image_id=image_id, data=data)
    else:
        event = record_label(session, image_id=image_id, data=data)
    # The next image is found on a read session after the commit, so other labellers' saves need not
    # wait for it to render (the write session would take the write lock again).
    return _stage(request, reader, after=image_id, skip=_parse_skip(skip), queue=queue, order=order,
                  last_event=event)
