"""Label events: append-only decisions; the current label is the latest event per image."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db.models import CurrentLabel, Image, LabelClass, LabelEvent, LabelEventClass, TaxonomyVersion
from app.db.vocab import LabelKind, values
from app.errors import Conflict, InvalidInput, NotFound
from app.labelling import rereview
from app.labelling.stale import cancel_stale
from app.labelling.tags import check_tags
from app.taxonomy.history import NamesByVersion, names_by_version
from app.taxonomy.queries import MULTI, current_version, resolve_class
from app.timeutil import iso, utcnow

KINDS = values(LabelKind)
MAX_NOTE = 2000
MAX_ANNOTATOR = 100
MAX_MS = 24 * 3600 * 1000


@dataclass
class LabelInput:
    """What a person decided about one image (or a selection), validated by `validate`."""

    class_ref: object
    confidence: float = 1.0
    tags: Sequence[str] = field(default_factory=list)
    note: str = ""
    annotator: str = ""
    ms: int | None = None
    kind: str = "manual"
    made_at: datetime | None = None  # an import's own time of the label (Label Studio's created_at); else now
    # A multi-label taxonomy's answer: the classes on the image (empty: "none of these"), instead of class_ref;
    # `confidences` may give a class its own confidence (by the name or id used in `classes`).
    classes: Sequence | None = None
    confidences: dict | None = None


@dataclass
class _Valid:
    cls: LabelClass | None
    confidence: float
    tags: list[str]
    note: str
    annotator: str
    ms: int | None
    kind: str
    version_id: int | None
    made_at: datetime | None = None
    classes: list[tuple[int, float]] | None = None  # (class id, confidence) of a multi-label answer


def _confidence(value, what: str = "confidence") -> float:
    try:
        confidence = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} must be a number from 0 to 1, not '{value}'") from None
    if math.isnan(confidence) or not 0.0 <= confidence <= 1.0:
        raise InvalidInput(f"{what} must be from 0 to 1, not {value}")
    return confidence


def _class_set(session: Session, data: LabelInput, confidence: float) -> list[tuple[int, float]]:
    if isinstance(data.classes, str | bytes) or not isinstance(data.classes, Sequence):
        raise InvalidInput("'classes' must be a list of class names or ids (an empty list: none of these)")
    given = data.confidences or {}
    if not isinstance(given, dict):
        raise InvalidInput("'confidences' must map a class (as named in 'classes') to its confidence")
    out: dict[int, float] = {}
    for ref in data.classes:
        cls = resolve_class(session, ref)
        if cls.id in out:
            raise InvalidInput(f"class '{cls.name}' is listed twice in 'classes'")
        own = given.get(ref, given.get(str(ref), given.get(cls.name)))
        out[cls.id] = confidence if own is None else _confidence(own, f"the confidence of '{cls.name}'")
    unknown = [k for k in given if k not in data.classes and str(k) not in map(str, data.classes)]
    if unknown:
        raise InvalidInput(f"'confidences' names '{unknown[0]}', which is not in 'classes'")
    return sorted(out.items())


def _validate(session: Session, data: LabelInput) -> _Valid:
    version = current_version(session)
    multi = version is not None and version.mode == MULTI
    confidence = _confidence(data.confidence)
    if data.classes is not None:
        if not multi:
            raise InvalidInput("'classes' (several classes per image) needs a multi-label taxonomy: this one is "
                               "single-label; send 'class'")
        cls, classes = None, _class_set(session, data, confidence)
    elif multi:
        raise InvalidInput("this taxonomy is multi-label: send 'classes' (a list, empty for none of these) "
                           "instead of one 'class'")
    else:
        cls, classes = resolve_class(session, data.class_ref), None
    if isinstance(data.tags, str):
        raise InvalidInput("tags must be a list of tag names")
    note = (data.note or "").strip()
    if len(note) > MAX_NOTE:
        raise InvalidInput(f"notes are at most {MAX_NOTE} characters")
    annotator = " ".join((data.annotator or "").split()) or "anonymous"
    if len(annotator) > MAX_ANNOTATOR:
        raise InvalidInput(f"annotator names are at most {MAX_ANNOTATOR} characters")
    ms = data.ms
    if ms is not None:
        if isinstance(ms, bool) or not isinstance(ms, int | float) or not 0 <= ms <= MAX_MS:
            raise InvalidInput(f"ms must be a whole number of milliseconds from 0 to {MAX_MS}, not '{ms}'")
        ms = int(ms)
    if data.kind not in KINDS:
        raise InvalidInput(f"unknown label kind '{data.kind}'")
    return _Valid(cls, confidence, check_tags(session, list(data.tags)), note, annotator, ms, data.kind,
                  version.id if version else None, _made_at(data), classes)


def _made_at(data: LabelInput) -> datetime | None:
    """Only an import says when its labels were made (elsewhere, before they came here); in UTC, never later
    than now (history is read in id order, and a label from the future would read as made after this one)."""
    when = data.made_at
    if when is None:
        return None
    if data.kind != "import":
        raise InvalidInput("only imported labels carry their own time")
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return min(when, utcnow())


def _append(session: Session, image_id: int, v: _Valid) -> LabelEvent:
    event = LabelEvent(
        image_id=image_id, class_id=v.cls.id if v.cls else None, confidence=v.confidence, tags=v.tags, note=v.note,
        annotator=v.annotator, taxonomy_version_id=v.version_id, kind=v.kind, ms=v.ms, multi=v.classes is not None,
        **({"created_at": v.made_at} if v.made_at is not None else {}),
    )
    if v.classes is not None:
        event.set_classes = v.classes  # written beside the event once it has an id (_set_current)
    session.add(event)
    return event


def _write_sets(session: Session, events: list[LabelEvent]) -> None:
    """The classes of multi-label events, before current_labels points at them (its triggers copy them)."""
    rows = [{"event_id": e.id, "class_id": cid, "confidence": c}
            for e in events if e.multi for cid, c in getattr(e, "set_classes", ())]
    if rows:
        session.execute(LabelEventClass.__table__.insert(), rows)


_UPSERTS: dict[str, object] = {}


def _upsert_current(dialect: str):
    """INSERT ... ON CONFLICT DO UPDATE on current_labels, built once per dialect: building it per
    save cost half a millisecond, a tenth of a save."""
    if dialect not in _UPSERTS:
        stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(CurrentLabel)
        _UPSERTS[dialect] = stmt.on_conflict_do_update(
            index_elements=[CurrentLabel.image_id],
            set_={"event_id": stmt.excluded.event_id, "class_id": stmt.excluded.class_id,
                  "multi": stmt.excluded.multi},
        )
    return _UPSERTS[dialect]


def _set_current(session: Session, events: list[LabelEvent]) -> None:
    """Point each image's current label at its new event: one upsert statement, however many events.

    Audit events (a blind second look) are recorded but change nothing.
    """
    session.flush()
    _write_sets(session, events)
    events = [e for e in events if e.kind != "audit"]
    if not events:
        return
    connection = session.connection()
    upsert = _upsert_current(connection.dialect.name)
    latest = {e.image_id: e for e in events}  # an image labelled twice in one batch keeps its last event
    for chunk in _chunks(list(latest.values()), 5000):
        connection.execute(upsert, [{"image_id": e.image_id, "event_id": e.id, "class_id": e.class_id,
                                     "multi": bool(e.multi)} for e in chunk])
    for obj in list(session.identity_map.values()):  # current_labels rows loaded earlier are stale now
        if isinstance(obj, CurrentLabel):
            session.expire(obj)
    rereview.settle(session, events)

    # Flags whose cause this label removed (see app.labelling.stale); a review event's own flags are resolved by
    # the review, which then cancels what is stale itself.
    cancel_stale(session, [i for i, e in latest.items() if e.kind != "review"])


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def record_label(session: Session, *, image_id: int, data: LabelInput) -> LabelEvent:
    """Append one label event for an image and make it the image's current label (unless it is an audit)."""
    if session.get(Image, image_id) is None:
        raise NotFound(f"no image {image_id}")
    event = _append(session, image_id, _validate(session, data))
    _set_current(session, [event])
    session.commit()
    return event


def record_labels(session: Session, *, image_ids: Sequence[int], data: LabelInput) -> int:
    """Label many images with one decision (browse page selection); all or nothing."""
    ids = sorted(set(int(i) for i in image_ids))
    if not ids:
        raise InvalidInput("no images selected")
    found = set(session.scalars(select(Image.id).where(Image.id.in_(ids))))
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"no image {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    valid = _validate(session, data)
    events = [_append(session, i, valid) for i in ids]
    _set_current(session, events)
    session.commit()
    return len(events)


def append_events(session: Session, events: Sequence[LabelEvent]) -> None:
    """Add events a caller built itself (a bulk undo restores each image's earlier label, class or none) and
    make them the images' current labels; the caller commits."""
    session.add_all(events)
    _set_current(session, list(events))


def append_label_events(session: Session, items: Sequence[tuple[int, LabelInput]]) -> list[LabelEvent]:
    """Append one event per (image id, decision) and update current labels; the caller commits.

    For bulk writers (labelled-dataset import, taxonomy migrations) that commit
    once for many images. Image ids are trusted to exist (foreign keys check).
    """
    cache: dict[tuple, _Valid] = {}
    events = []
    for image_id, data in items:
        key = (data.class_ref, data.confidence, tuple(data.tags), data.note, data.annotator, data.ms, data.kind,
               data.made_at, None if data.classes is None else repr(list(data.classes)), repr(data.confidences))
        if key not in cache:
            cache[key] = _validate(session, data)
        events.append(_append(session, image_id, cache[key]))
    _set_current(session, events)
    return events


def undo_label(session: Session, *, image_id: int, event_id: int, annotator: str = "") -> LabelEvent:
    """Append an event that restores what the image's label was before `event_id`.

    Only the image's current event can be undone: if someone labelled the image
    since, undoing would silently discard their decision.
    """
    current = session.get(CurrentLabel, image_id)
    if current is None or current.event_id != event_id:
        raise Conflict(f"label event {event_id} is not the current label of image {image_id}; nothing was undone")
    undone = session.get(LabelEvent, event_id)
    if undone.kind == "migration":
        raise Conflict("this label was moved by a taxonomy change; undo that version on the taxonomy page instead")
    before = session.scalars(
        select(LabelEvent).where(LabelEvent.image_id == image_id, LabelEvent.id < event_id, LabelEvent.kind != "audit")
        .order_by(LabelEvent.id.desc())
    ).first()
    restored_set = None
    if before is not None and before.multi:
        restored_set = event_classes(session, [before.id]).get(before.id, [])
    restored_ids = [c for c, _ in restored_set or ()]
    if before is not None and before.class_id is not None:
        restored_ids = [before.class_id]
    for class_id in restored_ids:
        restored = session.get(LabelClass, class_id)
        if restored.retired_version_id is not None and not rereview.resolved_by(session, event_id):
            raise Conflict(f"the label before this one, '{restored.name}', was retired since; label the image anew")
    version = current_version(session)
    answered = before is not None and (before.multi or before.class_id is not None)
    if answered and bool(before.multi) != (version is not None and version.mode == MULTI):
        raise Conflict("the label before this one was made before the taxonomy became multi-label; label the "
                       "image anew")
    event = restoring(image_id, before, restored_set, annotator=" ".join((annotator or "").split()) or "anonymous",
                      version_id=version.id if version else None, reverts=event_id)
    session.add(event)
    _set_current(session, [event])
    session.commit()
    return event


def restoring(image_id: int, before: LabelEvent | None, classes: list | None, *, annotator: str,
              version_id: int | None, reverts: int) -> LabelEvent:
    """An "undo" event that gives the image back `before`'s label (its class, or its set: `classes`, from
    `event_classes`), or none when `before` is None; the caller appends it."""
    event = LabelEvent(
        image_id=image_id, class_id=before.class_id if before else None,
        confidence=before.confidence if before else None, tags=list(before.tags) if before else [],
        note=before.note if before else "", annotator=annotator, taxonomy_version_id=version_id, kind="undo",
        reverts_event_id=reverts, multi=bool(before is not None and before.multi))
    if event.multi:
        event.set_classes = classes or []
    return event


def event_classes(session: Session, event_ids: Sequence[int]) -> dict[int, list[tuple[int, float | None]]]:
    """The (class id, confidence) pairs of multi-label events, by event id (events with none left out)."""
    out: dict[int, list[tuple[int, float | None]]] = {}
    for chunk in _chunks(list(event_ids), 5000):
        rows = session.execute(select(LabelEventClass.event_id, LabelEventClass.class_id, LabelEventClass.confidence)
                               .where(LabelEventClass.event_id.in_(chunk)).order_by(LabelEventClass.class_id))
        for event_id, class_id, confidence in rows:
            out.setdefault(event_id, []).append((class_id, confidence))
    return out


def event_view(event: LabelEvent, names: NamesByVersion, now: dict[int, str], versions: dict[int, int],
               sets: dict[int, list] | None = None) -> dict:
    """One event as history shows it: the class name and definition as they were when it was made; a
    multi-label answer also lists its classes (`classes`, names as they were; `confidences` by name now)."""
    number = versions.get(event.taxonomy_version_id)
    cid = event.class_id
    extra = {}
    if event.multi:
        pairs = (sets or {}).get(event.id, [])
        extra = {"classes": [names.name(c, number) or now.get(c) for c, _ in pairs],
                 "classes_now": [now.get(c) for c, _ in pairs],
                 "class_ids": [c for c, _ in pairs],
                 "confidences": {now.get(c): conf for c, conf in pairs}}
    return {
        "id": event.id,
        "class": (names.name(cid, number) or now.get(cid)) if cid else None,
        "class_id": cid,
        "class_now": now.get(cid) if cid else None,
        "definition": names.definition(cid, number) if cid else None,
        "confidence": event.confidence,
        "tags": event.tags,
        "note": event.note,
        "annotator": event.annotator,
        "kind": event.kind,
        "ms": event.ms,
        "taxonomy_version": number,
        "reverts": event.reverts_event_id,
        "created_at": iso(event.created_at),
        **extra,
    }


def history(session: Session, image_id: int) -> list[dict]:
    """Every label event of an image, oldest first."""
    events = session.scalars(select(LabelEvent).where(LabelEvent.image_id == image_id).order_by(LabelEvent.id)).all()
    now = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
    versions = dict(session.execute(select(TaxonomyVersion.id, TaxonomyVersion.number)).all())
    names = names_by_version(session)
    sets = event_classes(session, [e.id for e in events if e.multi])
    return [event_view(e, names, now, versions, sets) for e in events]


def current_label(hist: list[dict]) -> dict | None:
    """The API's `label` object from a history list (None when unlabelled); audit events change nothing.

    A multi-label answer has `classes` (names today; empty: "none of these") and `confidences` instead of
    one `class`."""
    hist = [e for e in hist if e["kind"] != "audit"]
    if not hist or (hist[-1]["class_id"] is None and "classes" not in hist[-1]):
        return None
    last = hist[-1]
    label = {k: last[k] for k in ("class_id", "confidence", "tags", "annotator", "created_at", "note", "id")}
    if "classes" in last:
        return {"class": None, **label, "classes": last["classes_now"], "class_ids": last["class_ids"],
                "confidences": last["confidences"]}
    return {"class": last["class_now"], **label}
