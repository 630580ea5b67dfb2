"""Bulk actions: one decision (label, exclude, include; in a multi-label taxonomy add or remove a class) over a
selection, previewed, then undoable as one.

A preview (dry run) says exactly what would change ("Relabel 214 images: 37 Coat, 177 unlabelled → Shirt");
the apply may carry the previewed count (`expect`) and is refused when the selection changed since. The
undo appends new events (kind "undo" for labels, an include for an exclude); nothing is deleted. Images
changed since the action (labelled again, or excluded / included again) are left as they are: the undo
takes back the rest and says how many it skipped, so one later decision never blocks taking back the others,
and no later decision is silently overwritten.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, aliased

from app.db.models import (
    BulkAction,
    BulkLabelItem,
    CurrentLabel,
    ExclusionEvent,
    Flag,
    Image,
    LabelClass,
    LabelEvent,
)
from app.errors import Conflict, InvalidInput, NotFound
from app.labelling import rereview
from app.labelling.events import LabelInput, append_events, append_label_events, event_classes, restoring
from app.labelling.exclusion import CHUNK, changing, clean_annotator, clean_reason, latest_events, set_excluded
from app.labelling.queries import ImageFilter, current_sets, filtered_ids
from app.taxonomy.queries import MULTI, current_version, resolve_class, taxonomy_mode
from app.timeutil import iso

ACTIONS = ("label", "exclude", "include", "add", "remove")
SET_ACTIONS = ("add", "remove")  # a multi-label taxonomy: a class put into, or taken out of, each image's set
SKIPPED_SHOWN = 100  # image ids an undo names of those it skipped; the count is always complete


@dataclass
class Selection:
    """Explicit image ids, or a filter (every image matching it when the action runs)."""

    images: Sequence[int] | None = None
    filter: ImageFilter | None = None
    filter_json: dict | None = None  # the filter as the request gave it, kept with the action

    def ids(self, session: Session) -> list[int]:
        if (self.images is None) == (self.filter is None):
            raise InvalidInput("give either 'images' (a list of ids) or 'filter', not both or neither")
        if self.filter is not None:
            ids = filtered_ids(session, self.filter)
            if not ids:
                raise InvalidInput("no images match this filter; nothing changed")
            return ids
        ids = sorted({int(i) for i in self.images})
        if not ids:
            raise InvalidInput("no images selected")
        found = set()
        for start in range(0, len(ids), CHUNK):
            found.update(session.scalars(select(Image.id).where(Image.id.in_(ids[start:start + CHUNK]))))
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(f"no image {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
        return ids

    def as_json(self) -> dict:
        return {"filter": self.filter_json or {}} if self.filter is not None else {"images": len(self.images or [])}


def _n(n: int, what: str = "image") -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _current(session: Session, ids: list[int]) -> dict[int, CurrentLabel]:
    rows: dict[int, CurrentLabel] = {}
    for start in range(0, len(ids), CHUNK):
        rows.update((c.image_id, c) for c in session.scalars(
            select(CurrentLabel).where(CurrentLabel.image_id.in_(ids[start:start + CHUNK]))))
    return rows


def _label_plan(session: Session, ids: list[int], class_ref) -> dict:
    cls = resolve_class(session, class_ref)
    current = _current(session, ids)
    names = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
    before = Counter(names[c.class_id] if c.class_id is not None else None
                     for c in (current.get(i) for i in ids) if c is not None)
    before[None] += sum(1 for i in ids if i not in current)
    changes = sorted(((name, n) for name, n in before.items() if n), key=lambda x: (-x[1], x[0] or ""))
    parts = ", ".join(f"{n:,} {name or 'unlabelled'}" for name, n in changes)
    blocked = _rereview_blocked(session, ids, cls.id)
    text = f"Relabel {_n(len(ids))}: {parts} → {cls.name}"
    if blocked:
        text += (f". {len(blocked):,} of them wait{'s' if len(blocked) == 1 else ''} in re-review for other "
                 f"classes than {cls.name} (e.g. #{blocked[0]}): leave {'it' if len(blocked) == 1 else 'them'} out")
    return {"action": "label", "count": len(ids), "selected": len(ids), "class": cls.name, "class_id": cls.id,
            "from": [{"class": name, "count": n} for name, n in changes], "blocked": blocked[:SKIPPED_SHOWN],
            "text": text}


def _rereview_blocked(session: Session, ids: list[int], class_id: int) -> list[int]:
    """Images of the selection waiting in a re-review that does not offer the class (the apply is refused)."""
    blocked = set()
    for start in range(0, len(ids), CHUNK):
        flags = session.scalars(select(Flag).where(Flag.image_id.in_(ids[start:start + CHUNK]),
                                                   Flag.kind == rereview.KIND, Flag.status == "open"))
        blocked.update(f.image_id for f in flags
                       if class_id not in {c.id for c in rereview.offered_classes(session, f)})
    return sorted(blocked)


def _set_plan(session: Session, ids: list[int], action: str, class_ref) -> tuple[dict, list[int]]:
    """Add a class to, or remove it from, the sets of the answered images of the selection; images not yet
    labelled are left out (their set would claim every other class absent)."""
    if taxonomy_mode(session) != MULTI:
        raise InvalidInput(f"'{action}' puts a class into or out of images' sets: it needs a multi-label taxonomy")
    if class_ref in (None, ""):
        raise InvalidInput(f"choose the class to {action}")
    cls = resolve_class(session, class_ref)
    sets = current_sets(session, ids)
    change = [i for i in ids if i in sets and (cls.id in sets[i]) == (action == "remove")]
    already = sum(1 for i in ids if i in sets) - len(change)
    unlabelled = len(ids) - len(sets)
    text = (f"Add {cls.name} to {_n(len(change))}" if action == "add" else
            f"Remove {cls.name} from {_n(len(change))}")
    notes = [f"{already:,} {'have it' if action == 'add' else 'lack it'} already"] if already else []
    if unlabelled:
        notes.append(f"{unlabelled:,} not labelled yet, left out")
    if notes:
        text += f" ({'; '.join(notes)})"
    return {"action": action, "count": len(change), "selected": len(ids), "class": cls.name, "class_id": cls.id,
            "unchanged": len(ids) - len(change), "text": text}, change


def _exclusion_plan(ids: list[int], change: list[int], excluded: bool) -> dict:
    verb, state = ("Exclude", "excluded") if excluded else ("Include", "included")
    same = len(ids) - len(change)
    if not change:
        text = f"Nothing to {verb.lower()}: {'the' if len(ids) == 1 else 'all'} {_n(len(ids))} selected " \
               f"{'is' if len(ids) == 1 else 'are'} {state} already"
    else:
        text = f"{verb} {_n(len(change))}"
        if same:
            text += f" ({same:,} of the {len(ids):,} selected {state} already)"
    return {"action": "exclude" if excluded else "include", "count": len(change), "selected": len(ids),
            "unchanged": same, "text": text}


def preview(session: Session, selection: Selection, *, action: str = "label", class_ref=None) -> dict:
    """What applying would change, without writing anything."""
    plan, _ = _plan(session, selection, action, class_ref)
    return plan


def _plan(session: Session, selection: Selection, action: str, class_ref) -> tuple[dict, list[int]]:
    if action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}, not '{action}'")
    ids = selection.ids(session)
    if action == "label":
        return _label_plan(session, ids, class_ref), ids
    if action in SET_ACTIONS:
        return _set_plan(session, ids, action, class_ref)
    if class_ref not in (None, ""):
        raise InvalidInput(f"an {action} takes no class")
    change = changing(session, ids, excluded=action == "exclude")
    return _exclusion_plan(ids, change, action == "exclude"), change


def apply(session: Session, selection: Selection, *, action: str = "label", data: LabelInput | None = None,
          reason: str = "", annotator: str = "", expect: int | None = None) -> dict:
    """Apply one decision to the selection as one bulk action; commits. Label events are of kind "bulk".

    `expect`: the count the person confirmed; a selection that changed since (a filter now matching more)
    is refused with 409 and nothing written."""
    class_ref = data.class_ref if data is not None else None
    plan, ids = _plan(session, selection, action, class_ref)
    if expect is not None and expect != plan["count"]:
        raise Conflict(f"the selection changed since the preview: {plan['text']} (you confirmed "
                       f"{_n(expect)}); nothing changed, confirm again")
    if not ids:
        raise Conflict(plan["text"] + "; nothing changed")
    who = clean_annotator((data.annotator if data is not None else "") or annotator)
    labels = action == "label" or action in SET_ACTIONS
    if not labels:
        reason = clean_reason(reason, excluded=action == "exclude")
    row = BulkAction(action=action, class_id=plan.get("class_id"), reason=reason if not labels else "",
                     annotator=who, selection=selection.as_json(), count=len(ids), skipped=0)
    session.add(row)
    session.flush()
    if labels:
        before = {i: c.event_id for i, c in _current(session, ids).items()}
        if action == "label":
            decided = LabelInput(data.class_ref, data.confidence, data.tags, data.note, who, data.ms, kind="bulk")
            items = [(i, decided) for i in ids]
        else:
            items = _set_changes(session, ids, action, plan["class_id"], data, who)
        events = append_label_events(session, items)
        _items(session, [(row.id, e.image_id, e.id, before.get(e.image_id)) for e in events])
    else:
        set_excluded(session, ids, excluded=action == "exclude", reason=reason, annotator=who, bulk_action_id=row.id)
    session.commit()
    return {**action_view(session, row), "text": plan["text"]}


def _set_changes(session: Session, ids: list[int], action: str, class_id: int, data: LabelInput | None,
                 who: str) -> list[tuple[int, LabelInput]]:
    """Each image's new set: its classes keep their confidences, an added class gets the decision's."""
    confidence = data.confidence if data is not None else 1.0
    out = []
    for image_id, classes in sorted(current_sets(session, ids).items()):
        kept = {c: conf for c, conf in classes.items() if c != class_id}
        if action == "add":
            kept[class_id] = confidence
        out.append((image_id, LabelInput(None, confidence, data.tags if data else [], data.note if data else "", who,
                                         data.ms if data else None, kind="bulk", classes=sorted(kept),
                                         confidences={str(c): v for c, v in kept.items() if v is not None})))
    return out


def undo(session: Session, action_id: int, *, annotator: str = "") -> dict:
    """Take back a bulk action with new events; commits. Images changed since are skipped (and counted);
    409 when the action was undone already, is itself an undo, or every image changed since."""
    row = get_action(session, action_id)
    if row.undoes_id is not None:
        raise Conflict(f"bulk action {row.id} is the undo of action {row.undoes_id}; apply the change anew instead")
    done = session.scalars(select(BulkAction).where(BulkAction.undoes_id == row.id)).first()
    if done is not None:
        raise Conflict(f"bulk action {row.id} was undone already (action {done.id} by {done.annotator}, "
                       f"{iso(done.created_at)}); nothing changed")
    who = clean_annotator(annotator)
    labels = row.action == "label" or row.action in SET_ACTIONS
    if labels:
        redo, skipped = _label_undo_plan(session, row)
    else:
        redo, skipped = _exclusion_undo_plan(session, row)
    if not redo:
        raise Conflict(f"all {_n(len(skipped))} of bulk action {row.id} changed since (labelled, excluded or "
                       "included again); nothing was undone")
    undo_row = BulkAction(action=row.action, undoes_id=row.id, class_id=row.class_id, annotator=who,
                          reason=f"undo of bulk action {row.id}" if not labels else "",
                          selection={"undo": row.id}, count=len(redo), skipped=len(skipped))
    session.add(undo_row)
    session.flush()
    if labels:
        version = current_version(session)
        sets = event_classes(session, [before.id for _, before in redo if before is not None and before.multi])
        events = [restoring(item.image_id, before, sets.get(before.id) if before is not None else None,
                            annotator=who, version_id=version.id if version else None, reverts=item.event_id)
                  for item, before in redo]
        append_events(session, events)
        _items(session, [(undo_row.id, e.image_id, e.id, e.reverts_event_id) for e in events])
    else:
        set_excluded(session, redo, excluded=row.action == "include", reason=f"undo of bulk action {row.id}",
                     annotator=who, bulk_action_id=undo_row.id)
    session.commit()
    skipped_ids = sorted(skipped)
    text = f"Undid {_n(len(redo))}" + (f"; {_n(len(skipped))} changed since and kept as they are" if skipped else "")
    return {**action_view(session, undo_row), "undone": len(redo), "skipped": len(skipped),
            "skipped_images": skipped_ids[:SKIPPED_SHOWN], "text": text}


def _items(session: Session, rows: list[tuple[int, int, int, int | None]]) -> None:
    """Insert bulk_label_items rows as plain executemany chunks: ORM objects cost a second per 15,000."""
    keys = ("action_id", "image_id", "event_id", "before_event_id")
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(BulkLabelItem), [dict(zip(keys, r)) for r in rows[start:start + CHUNK]])


def _label_undo_plan(session: Session, row: BulkAction):
    items = list(session.scalars(select(BulkLabelItem).where(BulkLabelItem.action_id == row.id)
                                 .order_by(BulkLabelItem.image_id)))
    current = _current(session, [i.image_id for i in items])
    untouched = [i for i in items if (c := current.get(i.image_id)) is not None and c.event_id == i.event_id]
    skipped = {i.image_id for i in items} - {i.image_id for i in untouched}
    befores = {e.id: e for e in _events(session, [i.before_event_id for i in untouched if i.before_event_id])}
    retired = {c.id for c in session.scalars(select(LabelClass).where(LabelClass.retired_version_id.is_not(None)))}
    settled = _settled_rereviews(session, [i.event_id for i in untouched])
    redo = []
    for item in untouched:
        before = befores.get(item.before_event_id)
        # A retired class comes back only where the undo reopens the re-review it left (as undo_label does);
        # elsewhere that class is gone: the image is labelled anew instead.
        if before is not None and before.class_id in retired and item.event_id not in settled:
            skipped.add(item.image_id)
        else:
            redo.append((item, before))
    return redo, skipped


def _settled_rereviews(session: Session, event_ids: list[int]) -> set[int]:
    """The label events among `event_ids` that resolved a re-review flag."""
    found: set[int] = set()
    for start in range(0, len(event_ids), CHUNK):
        found.update(session.scalars(select(Flag.resolution_event_id).where(
            Flag.resolution_event_id.in_(event_ids[start:start + CHUNK]), Flag.kind == rereview.KIND)))
    return found


def _events(session: Session, ids: list[int]) -> list[LabelEvent]:
    found = []
    for start in range(0, len(ids), CHUNK):
        found += session.scalars(select(LabelEvent).where(LabelEvent.id.in_(ids[start:start + CHUNK])))
    return found


def _exclusion_undo_plan(session: Session, row: BulkAction):
    mine = dict(session.execute(select(ExclusionEvent.image_id, ExclusionEvent.id)
                                .where(ExclusionEvent.bulk_action_id == row.id)).all())
    latest = latest_events(session, list(mine))
    redo = sorted(i for i, e in mine.items() if latest.get(i) == e)
    return redo, set(mine) - set(redo)


def get_action(session: Session, action_id: int) -> BulkAction:
    row = session.get(BulkAction, action_id)
    if row is None:
        raise NotFound(f"no bulk action {action_id}")
    return row


def action_view(session: Session, row: BulkAction) -> dict:
    undone_by = session.scalar(select(BulkAction.id).where(BulkAction.undoes_id == row.id))
    cls = session.get(LabelClass, row.class_id) if row.class_id else None
    return {"id": row.id, "action": row.action, "kind": "undo" if row.undoes_id else "bulk",
            "class": cls.name if cls else None, "reason": row.reason, "annotator": row.annotator,
            "selection": row.selection, "count": row.count, "skipped": row.skipped, "undoes": row.undoes_id,
            "undone_by": undone_by, "created_at": iso(row.created_at),
            # kept from the first bulk API: how many images a label action labelled
            **({"labelled": row.count} if row.action == "label" and not row.undoes_id else {})}


def recent_actions(session: Session, limit: int = 20) -> list[dict]:
    """The latest bulk actions, newest first."""
    rows = session.scalars(select(BulkAction).order_by(BulkAction.id.desc()).limit(limit))
    return [action_view(session, r) for r in rows]


def actions_for_image(session: Session, image_id: int) -> dict[int, dict]:
    """Label event id -> {"id", "undone_by"} of the bulk action that wrote it, for one image's history."""
    undo = aliased(BulkAction)
    rows = session.execute(
        select(BulkLabelItem.event_id, BulkLabelItem.action_id, undo.id)
        .outerjoin(undo, undo.undoes_id == BulkLabelItem.action_id)
        .where(BulkLabelItem.image_id == image_id)).all()
    return {event: {"id": action, "undone_by": undone} for event, action, undone in rows}
