"""Listing flags (images a person should look at again, whatever raised them) and resolving them.

A reviewer's decision on a flag: **keep** (the label stays; a "review" label
event restating it puts the decision in the image's history), **relabel** (a
"review" label event with the new class), **ambiguous** (no label change; the
flag says so and snapshots can leave such images out) or **exclude** (the
image's excluded flag is set). The same decision closes the image's other open
mislabel, duplicate, audit and outlier flags. Keeping an unlabelled outlier (an
analysis found it far from everything; the reviewer says it belongs) writes no
label event. Re-review flags (after a split or retire)
are closed by labelling the image, not here.

Flags whose cause is gone close themselves: `app.labelling.stale.cancel_stale`, run where the cause
changes and by the review page's safety net here (`cancel_stale_open`).
"""

from __future__ import annotations

import weakref

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import flagstate
from app.db.models import (
    ClassCount,
    CurrentLabel,
    CurrentLabelClass,
    ExclusionEvent,
    Flag,
    LabelClass,
    LabelEvent,
    SourceCount,
    TaxonomyVersion,
)
from app.db.vocab import FlagKind, FlagStatus, values
from app.errors import Conflict, InvalidInput, NotFound
from app.labelling.events import LabelInput, append_label_events
from app.labelling.exclusion import set_excluded
from app.labelling.stale import STALE_CHUNK, cancel_stale
from app.taxonomy.queries import resolve_class
from app.timeutil import iso, utcnow

KINDS = values(FlagKind)
# "pending": an audit waiting for its blind answer (not yet something to review).
STATUSES = values(FlagStatus)
ACTIONS = ("keep", "relabel", "ambiguous", "exclude")
REVIEWED_KINDS = ("mislabel", "duplicate", "audit", "outlier")


def list_flags(
    session: Session, *, status: str | None = "open", kind: str | None = None, limit: int = 100, offset: int = 0,
    image: int | None = None,
) -> tuple[list[dict], int]:
    """Flags, highest score first (then oldest), with the image's current class as `given`."""
    if status and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not '{status}'")
    if kind and kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, not '{kind}'")
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInput("limit must be from 1 to 1000 and offset 0 or more")
    q = select(Flag)
    if status:
        q = q.where(Flag.status == status)
    if kind:
        q = q.where(Flag.kind == kind)
    if image is not None:
        q = q.where(Flag.image_id == image)
    total = session.scalar(select(func.count()).select_from(q.subquery()))
    given = (
        select(LabelClass.name).join(CurrentLabel, CurrentLabel.class_id == LabelClass.id)
        .where(CurrentLabel.image_id == Flag.image_id).scalar_subquery()
    )
    suggested = select(LabelClass.name).where(LabelClass.id == Flag.suggested_class_id).scalar_subquery()
    rows = session.execute(
        q.add_columns(given, suggested).order_by(Flag.score.desc().nulls_last(), Flag.id).limit(limit).offset(offset)
    ).all()
    return [flag_view(f, g, s) for f, g, s in rows], total


def flag_view(flag: Flag, given: str | None, suggested: str | None) -> dict:
    return {
        "id": flag.id,
        "image": flag.image_id,
        "kind": flag.kind,
        "score": flag.score,
        "given": given,
        "suggested": suggested,
        "status": flag.status,
        "details": flag.details,
        "created_at": iso(flag.created_at),
        "resolution": flag.resolution,
        "resolved_by": flag.resolved_by,
        "resolved_at": iso(flag.resolved_at),
        "resolution_event": flag.resolution_event_id,
    }


def get_flag(session: Session, flag_id: int) -> Flag:
    flag = session.get(Flag, flag_id)
    if flag is None:
        raise NotFound(f"no flag {flag_id}")
    return flag


def view(session: Session, flag: Flag) -> dict:
    """One flag as the API shows it."""
    current = session.get(CurrentLabel, flag.image_id)
    given = session.get(LabelClass, current.class_id).name if current and current.class_id else None
    suggested = session.get(LabelClass, flag.suggested_class_id).name if flag.suggested_class_id else None
    return flag_view(flag, given, suggested)


def _check(session: Session, flag: Flag, action: str) -> None:
    if action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}, not '{action}'")
    if flag.kind not in REVIEWED_KINDS:
        raise Conflict(f"flag {flag.id} is a {flag.kind} flag: label the image on /label?queue=rereview instead")
    if flag.status == "pending":
        raise Conflict(f"flag {flag.id} is an audit still waiting for its blind answer")
    if flag.status != "open":
        how = f" ({flag.resolution} by {flag.resolved_by})" if flag.resolution else ""
        raise Conflict(f"flag {flag.id} is already {flag.status}{how}; nothing changed")


def _resolve_set(session: Session, flag: Flag, current: CurrentLabel, action: str, class_ref, classes,
                 data: LabelInput) -> tuple[LabelEvent, str]:
    """Keep or relabel a set: one label event with the set decided; (its id, the resolution)."""
    now = set(session.scalars(select(CurrentLabelClass.class_id).where(CurrentLabelClass.image_id == flag.image_id)))
    if action == "keep":
        wanted = now
    elif classes is not None:
        if not isinstance(classes, list):
            raise InvalidInput("classes must be a list of class names or ids")
        wanted = {resolve_class(session, c).id for c in classes}
    elif class_ref not in (None, ""):
        turned = resolve_class(session, class_ref).id
        wanted = now ^ {turned}
    else:
        raise InvalidInput("relabel needs the new set (classes) or the class to turn over (class)")
    before = session.get(LabelEvent, current.event_id)
    text = data.note.strip() or f"review of flag #{flag.id} ({flag.kind}): {'keep' if wanted == now else 'relabel'}"
    event = append_label_events(session, [(flag.image_id, LabelInput(
        None, data.confidence, list(before.tags) if before is not None else [], text, data.annotator, data.ms,
        kind="review", classes=sorted(wanted)))])[0]
    return event, ("keep" if wanted == now else "relabel")


def resolve(session: Session, *, flag_id: int, action: str, class_ref=None, annotator: str = "",
            note: str = "", confidence: float = 1.0, ms: int | None = None, classes=None) -> dict:
    """Decide a flag; commits. Returns {"flag": view, "event": label event id or None, "closed": [flag ids]}.

    An image whose label is a set (multi-label): keep restates the set; relabel takes `classes` (the new set),
    or `class_ref` alone, which turns that one class over (adds it when missing, removes it when there)."""
    flag = get_flag(session, flag_id)
    _check(session, flag, action)
    who = " ".join((annotator or "").split()) or "anonymous"
    current = session.get(CurrentLabel, flag.image_id)
    event = None
    resolution = action
    if action in ("keep", "relabel") and current is not None and current.multi:
        event, resolution = _resolve_set(session, flag, current, action, class_ref, classes,
                                         LabelInput(None, confidence, [], note, who, ms, kind="review"))
    elif action in ("keep", "relabel"):
        if action == "relabel":
            if class_ref in (None, ""):
                raise InvalidInput("relabel needs a class")
            cls = resolve_class(session, class_ref)
        elif flag.kind == "outlier" and (current is None or current.class_id is None):
            cls = None  # "it belongs in the dataset" needs no label: nothing to restate
        else:
            if current is None or current.class_id is None:
                raise Conflict(f"image {flag.image_id} has no label to keep; relabel it instead")
            cls = session.get(LabelClass, current.class_id)
            if cls.retired_version_id is not None:
                raise Conflict(f"class '{cls.name}' is retired; relabel the image instead")
        if cls is not None:
            if current is not None and current.class_id == cls.id:
                resolution = "keep"
            before = session.get(LabelEvent, current.event_id) if current is not None else None
            tags = list(before.tags) if before is not None else []
            text = note.strip() or f"review of flag #{flag.id} ({flag.kind}): {resolution}"
            event = append_label_events(session, [(flag.image_id, LabelInput(
                cls.id, confidence, tags, text, who, ms, kind="review"))])[0]
    elif action == "exclude":
        set_excluded(session, [flag.image_id], excluded=True, annotator=who, flag_id=flag.id, settle=False,
                     reason=note.strip() or f"review of flag #{flag.id} ({flag.kind}): exclude")
    session.flush()
    closed = _close(session, flag, resolution, event, who)
    cancel_stale(session, [flag.image_id])  # e.g. the re-review or duplicate flags an exclusion makes moot
    session.commit()
    if flag.kind == "duplicate" or any(f.kind == "duplicate" for f in closed):
        from app.quality.duplicate_flags import settle_duplicate_group  # a relabel may end the group's conflict

        settle_duplicate_group(session, flag)
    return {"flag": view(session, flag), "event": event.id if event is not None else None,
            "closed": [f.id for f in closed if f.id != flag.id]}


UNDOABLE = ("keep", "relabel", "ambiguous", "exclude")


def undo_decision(session: Session, *, flag_id: int, annotator: str = "") -> dict:
    """Take back a review decision; commits. Returns {"flag": view, "event": the undo event id or None,
    "reopened": [flag ids]}.

    Nothing is deleted: a keep or relabel is reverted by a new "undo" label event restoring the label the
    image had before (refused with 409 when someone labelled it since); an exclusion is lifted. The flag
    and the flags the same decision closed are open again, each remembering the undone decision in
    details["undone"].
    """
    flag = get_flag(session, flag_id)
    if flag.kind not in REVIEWED_KINDS or flag.status != "resolved" or flag.resolution not in UNDOABLE:
        raise Conflict(f"flag {flag.id} is {flag.status}"
                       + (f" ({flag.resolution})" if flag.resolution else "") + "; there is no review decision to undo")
    who = " ".join((annotator or "").split()) or "anonymous"
    closed = [flag] + [f for f in session.scalars(select(Flag).where(
        Flag.image_id == flag.image_id, Flag.status == "resolved", Flag.id != flag.id)) if
        (f.details or {}).get("via_flag") == flag.id and f.resolved_at == flag.resolved_at]
    decided_event, resolution = flag.resolution_event_id, flag.resolution
    now = utcnow()
    for f in closed:
        undone = {"resolution": f.resolution, "by": f.resolved_by, "at": iso(f.resolved_at),
                  "event": f.resolution_event_id, "undone_by": who, "undone_at": iso(now)}
        details = {k: v for k, v in (f.details or {}).items() if k != "via_flag"}
        details["undone"] = [*details.get("undone", []), undone]
        f.details = details
        flagstate.reopen(f)
    if resolution == "exclude":
        set_excluded(session, [flag.image_id], excluded=False, annotator=who, flag_id=flag.id,
                     reason=f"undo of the review of flag #{flag.id}")
    session.flush()
    event = None
    if decided_event is not None:
        from app.labelling.events import undo_label  # commits the undo event and the reopened flags together

        event = undo_label(session, image_id=flag.image_id, event_id=decided_event, annotator=who)
        # The flags now judge the restored label, so a later relabel by a person closes them as stale.
        for f in closed:
            f.details = {**f.details, "label_event_id": event.id}
    session.commit()
    if event is None and resolution != "exclude":  # reopened without an event: the next safety net looks at all
        _NET.pop(session.get_bind(), None)
    return {"flag": view(session, flag), "event": event.id if event is not None else None,
            "reopened": [f.id for f in closed]}


def _close(session: Session, flag: Flag, resolution: str, event: LabelEvent | None, who: str) -> list[Flag]:
    """Resolve the flag and the image's other open reviewable flags with one decision."""
    current = session.get(CurrentLabel, flag.image_id)
    siblings = session.scalars(
        select(Flag).where(Flag.image_id == flag.image_id, Flag.status == "open", Flag.kind.in_(REVIEWED_KINDS))
    ).all()
    now = utcnow()
    for f in siblings:
        flagstate.resolve(f, resolution, event_id=event.id if event is not None else None, who=who, at=now)
        # The label as it stands after the decision: a later job must beat the kept score to flag it again.
        f.details = {**(f.details or {}), "label_event_id": current.event_id if current else None,
                     **({"via_flag": flag.id} if f.id != flag.id else {})}
    if resolution == "exclude":  # an excluded image is not audited any more
        for f in session.scalars(select(Flag).where(Flag.image_id == flag.image_id, Flag.status == "pending")):
            flagstate.cancel(f, "the image was excluded", at=now)
    return list(siblings)


# Engine -> the fingerprint (`_fingerprint`) of the flags' inputs after the last pass of the safety net in this
# process; dropped by a decision undone without an event (its flags reopen unseen).
_NET: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
LABEL_EVENT, EXCLUSION_EVENT, FLAG, VERSION, OPEN, OPEN_IDS, EXCLUDED, CLASS_SUM = range(8)


def _fingerprint(session: Session) -> tuple:
    """What the safety net's verdicts depend on: the newest label event (labels, migrations, undos), exclusion
    event, flag and taxonomy version; the open flags' count and id sum; and, for rows changed behind the app's
    back (no event), the trigger-kept excluded count and a checksum of the per-class counts. Index look-ups, a
    few counter rows and a scan of the open flags' index (1-3 ms with 3,000 open flags at 1,000,000 images,
    8 ms with 28,000 on PostgreSQL)."""
    newest = lambda column: select(func.coalesce(func.max(column), 0)).scalar_subquery()  # noqa: E731
    total = lambda expr: select(func.coalesce(func.sum(expr), 0)).scalar_subquery()  # noqa: E731
    opened = select(func.count().label("n"), func.coalesce(func.sum(Flag.id), 0).label("ids")).where(
        Flag.status == "open").subquery()
    return tuple(session.execute(select(
        newest(LabelEvent.id), newest(ExclusionEvent.id), newest(Flag.id), newest(TaxonomyVersion.id), *opened.c,
        total(SourceCount.excluded), total(ClassCount.class_id * ClassCount.labels),
    )).one())


def _touched(session: Session, last: tuple | None, seen: tuple) -> set[int] | None:
    """The images whose label, exclusion or flags changed since the pass that saw `last`; None when only a
    pass over every open flag can tell (the first in this process, a taxonomy change, or an exclusion or a label
    changed without its event)."""
    if last is None or seen[VERSION] != last[VERSION] or (
            seen[EXCLUDED] != last[EXCLUDED] and seen[EXCLUSION_EVENT] == last[EXCLUSION_EVENT]) or (
            seen[CLASS_SUM] != last[CLASS_SUM] and seen[LABEL_EVENT] == last[LABEL_EVENT]):
        return None
    touched = set(session.scalars(select(LabelEvent.image_id).where(LabelEvent.id > last[LABEL_EVENT])))
    touched |= set(session.scalars(select(ExclusionEvent.image_id).where(ExclusionEvent.id > last[EXCLUSION_EVENT])))
    touched |= set(session.scalars(select(Flag.image_id).where(Flag.id > last[FLAG])))
    return touched if len(touched) < seen[OPEN] else None  # a bulk change: the pass over every open flag is cheaper


def _open_among(session: Session, touched: set[int]) -> set[int]:
    """The touched images with an open flag, and the images whose open duplicate flag's group holds a touched
    image (a member relabelled or excluded can end the conflict flagged on the others)."""
    ids = sorted(touched)
    out: set[int] = set()
    for start in range(0, len(ids), STALE_CHUNK):
        out |= set(session.scalars(select(Flag.image_id).where(
            Flag.status == "open", Flag.image_id.in_(ids[start:start + STALE_CHUNK]))))
    for image_id, details in session.execute(select(Flag.image_id, Flag.details).where(
            Flag.status == "open", Flag.kind == "duplicate")):
        if any(int(i) in touched for i in (details or {}).get("group", [])):
            out.add(image_id)
    return out


def cancel_stale_open(session: Session) -> list[int]:
    """`cancel_stale` over every image with an open flag (the review page's safety net); commits when any closed.

    A pass over every open flag takes about 50-100 us a flag (3,000 open flags at 1,000,000 images: 150-380 ms;
    28,000: 1.4-1.9 s), so after the first in this process a pass looks only at what changed since the last
    (`_fingerprint`): nothing, when nothing did; else the open flags of the images labelled, excluded or
    flagged since and the duplicate flags whose group holds one of them: what a full pass would cancel."""
    engine = session.get_bind()
    seen, last = _fingerprint(session), _NET.get(engine)
    if seen == last:
        return []
    touched = _touched(session, last, seen)
    if touched is None:
        ids = set(session.scalars(select(Flag.image_id).where(Flag.status == "open")))
    else:
        ids = _open_among(session, touched)
    cancelled = cancel_stale(session, ids)
    after = _fingerprint(session) if cancelled else seen  # in this transaction: a concurrent write is not counted
    if cancelled:
        session.commit()
    _NET[engine] = after
    return cancelled
