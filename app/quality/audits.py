"""Blind re-label audits: earlier labels come back without the old label shown, to measure consistency.

`pick_audits` chooses a share of the images labelled more than a day ago and
gives each an audit flag in status "pending" (not yet something to review:
pending audits do not count as flagged). They are served by the labelling
page's ``queue=audit``, which shows neither the old label nor the model's
guess. The answer is stored as a label event of kind "audit", which changes
nothing; `answer_audit` compares it with the label the image has:

- the same class: the flag is resolved ("keep"), the pair counts as agreement;
- another class: the flag opens (kind "audit", phase "disagreement", the
  audit's class suggested) for the review queue.

`audit_stats` turns the answered pairs into agreement and Cohen's kappa per
week (of the original label) and per class: falling agreement for older weeks
means the labeller's definitions moved since.
"""

from __future__ import annotations

import copy
import random
import weakref
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import flagstate
from app.db.models import CurrentLabel, Flag, FlagCount, Image, LabelClass, LabelEvent, TaxonomyVersion
from app.errors import Conflict, InvalidInput, NotFound
from app.labelling.events import LabelInput, append_label_events
from app.quality import agreement
from app.quality.jobprobs import active_class
from app.timeutil import utcnow

KIND = "audit"
DEFAULT_AGE = timedelta(days=1)


def pick_audits(session: Session, *, share: float = 0.05, older_than: timedelta = DEFAULT_AGE,
                seed: int | None = None, now: datetime | None = None) -> dict:
    """Make `share` of the images labelled before `now - older_than` wait for a blind audit; commits.

    Idempotent: images already audited under their current label count toward
    the share, so calling it again only tops up as more images become old
    enough. Returns {"eligible", "target", "already", "picked"}.
    """
    if not 0 <= share <= 1:
        raise InvalidInput(f"share must be from 0 to 1, not {share}")
    cutoff = (now or utcnow()) - older_than
    rows = session.execute(
        select(CurrentLabel.image_id, CurrentLabel.event_id, CurrentLabel.class_id, LabelEvent.created_at)
        .join(LabelEvent, LabelEvent.id == CurrentLabel.event_id)
        .join(Image, Image.id == CurrentLabel.image_id)
        .join(LabelClass, LabelClass.id == CurrentLabel.class_id)
        .where(LabelEvent.created_at < cutoff, Image.excluded.is_(False), LabelClass.retired_version_id.is_(None))
        .order_by(CurrentLabel.image_id)
    ).all()
    audited = {(f.image_id, (f.details or {}).get("label_event_id"))
               for f in session.scalars(select(Flag).where(Flag.kind == KIND, Flag.status != "cancelled"))}
    pending = set(session.scalars(select(Flag.image_id).where(Flag.kind == KIND, Flag.status == "pending")))
    done = [r for r in rows if (r[0], r[1]) in audited or r[0] in pending]
    target = int(share * len(rows) + 0.5)
    free = [r for r in rows if (r[0], r[1]) not in audited and r[0] not in pending]
    need = max(0, min(target - len(done), len(free)))
    chosen = random.Random(seed).sample(free, need) if need else []
    for image_id, event_id, class_id, created_at in chosen:
        session.add(flagstate.raised(KIND, image_id, pending=True, score=None, details={
            "phase": "pending", "label_event_id": event_id, "class_id": class_id,
            "labelled_at": created_at.isoformat(timespec="seconds")}))
    session.commit()
    return {"eligible": len(rows), "target": target, "already": len(done), "picked": len(chosen)}


def pending_flag(session: Session, image_id: int) -> Flag | None:
    return session.scalars(
        select(Flag).where(Flag.image_id == image_id, Flag.kind == KIND, Flag.status == "pending").order_by(Flag.id)
    ).first()


def answer_audit(session: Session, *, image_id: int, data: LabelInput) -> LabelEvent:
    """Record a blind answer (a label event of kind "audit": the label stays) and settle the audit; commits."""
    if session.get(Image, image_id) is None:
        raise NotFound(f"no image {image_id}")
    flag = pending_flag(session, image_id)
    if flag is None:
        raise Conflict(f"image {image_id} has no audit waiting; nothing was recorded")
    event = append_label_events(session, [(image_id, replace(data, kind="audit"))])[0]
    session.flush()
    current = session.get(CurrentLabel, image_id)
    details = dict(flag.details or {})
    # Compare with the label the image has now (the picked one, unless someone relabelled it since).
    if current is not None and current.event_id != details.get("label_event_id"):
        details["relabelled_since_pick"] = True
        details["label_event_id"], details["class_id"] = current.event_id, current.class_id
        details["labelled_at"] = session.get(LabelEvent, current.event_id).created_at.isoformat(timespec="seconds")
    before = active_class(session, details["class_id"]) if details.get("class_id") else None
    agree = before == event.class_id
    details.update({"phase": "agreement" if agree else "disagreement", "audit_event_id": event.id,
                    "audit_class_id": event.class_id, "audit_confidence": event.confidence, "agree": agree,
                    "answered_at": event.created_at.isoformat(timespec="seconds") if event.created_at else None})
    flag.details = details
    if agree:
        flagstate.resolve(flag, "keep", event_id=event.id, who=event.annotator)
    else:
        flagstate.ask(flag, score=float(event.confidence or 1.0), suggested_class_id=event.class_id)
    session.commit()
    return event


def _week(stamp: str | None) -> str | None:
    if not stamp:
        return None
    day = datetime.fromisoformat(stamp).date()
    return (day - timedelta(days=day.weekday())).isoformat()


def audit_pairs(session: Session) -> list[dict]:
    """Answered audits: {"image", "first", "second", "week"} with classes followed to today's heirs."""
    cache: dict = {}
    out = []
    for flag in session.scalars(select(Flag).where(Flag.kind == KIND, Flag.status != "cancelled").order_by(Flag.id)):
        d = flag.details or {}
        if "audit_class_id" not in d:
            continue
        first = active_class(session, d["class_id"], cache) if d.get("class_id") else None
        second = active_class(session, d["audit_class_id"], cache) if d.get("audit_class_id") else None
        out.append({"image": flag.image_id, "first": first if first is not None else -1,
                    "second": second if second is not None else -1, "week": _week(d.get("labelled_at"))})
    return out


# Engine -> (the `_stats_key` it was computed at, the stats): reading every answered audit took about 70 us each
# (1.2 s with 50,000 audit flags at 1,000,000 images, 2 busy cores), on every view of the quality page.
_STATS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _stats_key(session: Session) -> tuple:
    """What `audit_stats` depends on: the audit flags per status and resolution (the trigger-kept counts of
    migration 0013: an answer, a decision, a cancellation or a new pick moves them), the newest label event
    (answers) and flag, and the taxonomy version (classes followed to their heirs, names)."""
    counts = sorted(session.execute(select(FlagCount.status, FlagCount.resolution, FlagCount.n)
                                    .where(FlagCount.kind == KIND, FlagCount.n != 0)).all())
    newest = lambda column: select(func.coalesce(func.max(column), 0)).scalar_subquery()  # noqa: E731
    return (tuple(map(tuple, counts)),
            *session.execute(select(newest(LabelEvent.id), newest(Flag.id), newest(TaxonomyVersion.id))).one())


def audit_stats(session: Session) -> dict:
    """Agreement and Cohen's kappa overall, per week of the original label, and per class; computed again only
    when an audit, a label event or the taxonomy changed since the last time in this process."""
    engine, key = session.get_bind(), _stats_key(session)
    kept = _STATS.get(engine)
    if kept is None or kept[0] != key:
        kept = _STATS[engine] = (key, _audit_stats(session))
    return copy.deepcopy(kept[1])


def _audit_stats(session: Session) -> dict:
    pairs = audit_pairs(session)
    pending = session.scalar(select(func.count()).where(Flag.kind == KIND, Flag.status == "pending"))
    names = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
    if not pairs:
        return {"n": 0, "pending": pending, "agreement": None, "kappa": None, "weeks": [], "classes": []}
    first = [p["first"] for p in pairs]
    second = [p["second"] for p in pairs]
    weeks = agreement.agreement_by_group(first, second, [p["week"] or "" for p in pairs])
    classes = agreement.agreement_by_class(first, second)
    return {
        "n": len(pairs), "pending": pending,
        "agreement": agreement.agreement(first, second), "kappa": agreement.cohens_kappa(first, second),
        "weeks": [{"week": w, **v} for w, v in weeks.items()],
        "classes": sorted(({"class": names.get(c, f"#{c}"), "class_id": c, **v} for c, v in classes.items()),
                          key=lambda c: (c["agreement"], -c["n"])),
    }
