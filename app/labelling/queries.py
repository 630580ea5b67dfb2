"""Read-side queries over current labels: the labelling queue and the browse filters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, bindparam, exists, false, func, select, true
from sqlalchemy.orm import Session, aliased

from app.config import Settings
from app.db.models import (
    ClassCount,
    CurrentConfidence,
    CurrentLabel,
    CurrentLabelClass,
    CurrentLabelTag,
    Flag,
    Image,
    LabelClass,
    LabelEvent,
    Snapshot,
    SnapshotItem,
    Source,
)
from app.errors import InvalidInput
from app.images.catalog import library_counts
from app.labelling import orders
from app.taxonomy.queries import MULTI, resolve_class, taxonomy_mode

STATUSES = ("unlabelled", "labelled", "flagged", "none-of-these")  # none-of-these: a multi-label empty answer
MAX_LIMIT = 1000
# Pages count matches only this far and then say "1,000+": an exact count reads every match (a million
# index entries for "unlabelled"), and 1,000 costs about a millisecond even where each match needs a row lookup.
COUNT_CAP = 1_000


@dataclass
class ImageFilter:
    status: str | None = None
    source: str | None = None
    class_ref: str | None = None
    tag: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    split: str | None = None  # train | val | test in the latest snapshot, or "none": not in it
    analysis: int | None = None  # with region: a selection drawn on /map (app.embeddings.regions)
    region: str | None = None
    members: list[int] | None = None  # the region's images, filled in by app.embeddings.regions.resolve
    # A multi-label taxonomy's sets (class_ref then means "has"): labelled images whose set lacks a class, or
    # is exactly these classes (comma-separated names or ids).
    lacks: str | None = None
    exactly: str | None = None

    def is_empty(self) -> bool:
        return not any(v not in (None, "") for v in vars(self).values())


def _unlabelled() -> Select:
    # images.labelled, not an anti-join on current_labels: an index range, however many are labelled in front.
    return select(Image.id).where(Image.labelled == False, Image.excluded == False)  # noqa: E712


def _rereview() -> Select:
    return select(Flag.image_id).where(Flag.kind == "rereview", Flag.status == "open").distinct()


def _audit() -> Select:
    """Labelled images picked for a blind re-label audit (app.quality.audits)."""
    return select(Flag.image_id).where(Flag.kind == "audit", Flag.status == "pending").distinct()


QUEUES = {"unlabelled": (_unlabelled, Image.id), "rereview": (_rereview, Flag.image_id),
          "audit": (_audit, Flag.image_id)}


def _queue(queue: str):
    if queue not in QUEUES:
        raise InvalidInput(f"queue must be one of {', '.join(QUEUES)}, not '{queue}'")
    make, column = QUEUES[queue]
    return make(), column


def queue_count(session: Session, queue: str = "unlabelled", *, cap: int | None = None) -> int:
    """Images waiting in a queue; with `cap`, counting stops at cap + 1 ("more than cap").

    The unlabelled queue is read off the per-source counters instead: exact, whatever the cap.
    """
    base, _ = _queue(queue)
    if queue == "unlabelled":
        return library_counts(session)["waiting"]
    return count_rows(session, base, cap=cap)


def count_text(n: int, cap: int = COUNT_CAP, *, exact: bool = False) -> str:
    """A count as a page shows it: "1,000+" past the cap, unless it is `exact` (not cut off at the cap)."""
    return f"{cap:,}+" if n > cap and not exact else f"{n:,}"


def count_rows(session: Session, q: Select, *, cap: int | None = None) -> int:
    """The rows `q` returns, or cap + 1 when there are more than `cap`: bounded work for a page."""
    if cap is not None:
        q = q.limit(cap + 1)
    return session.scalar(select(func.count()).select_from(q.subquery()))


def remaining_text(session: Session, queue: str) -> str:
    """How many a queue holds, as the labelling page says it: exact for the unlabelled queue (counters),
    "1,000+" past the cap for the others."""
    n = queue_count(session, queue, cap=COUNT_CAP)
    return count_text(n, exact=queue == "unlabelled")


def unlabelled_count(session: Session) -> int:
    return queue_count(session, "unlabelled")


def queue_ids(
    session: Session, *, after: int | None = None, skip: Sequence[int] = (), n: int = 4, queue: str = "unlabelled",
    order: str = "import", settings: Settings | None = None,
) -> list[int]:
    """The next `n` images of a queue after `after` in import order, wrapping to the start.

    Queues: "unlabelled" (not yet labelled, not excluded) and "rereview" (waiting
    after a split or retire). The unlabelled queue also comes in the orders of
    app.labelling.orders (ORDERS): "uncertain" (the latest model's least sure
    first, for active learning), "diverse" (the newest analysis's order that
    covers the embedding space; needs `settings` to find it) and
    "weakest-source" (the source with the lowest out-of-sample accuracy first).
    """
    orders.check(order)
    if queue == "unlabelled" and order != "import":
        if order == "uncertain":
            return orders.uncertain_first(session, skip=skip, n=n)
        if order == "diverse":
            return orders.diverse(session, settings, after=after, skip=skip, n=n)
        return orders.weakest_source_first(session, skip=skip, n=n)
    base, column = _queue(queue)
    if skip:
        base = base.where(column.not_in(list(skip)))
    after = after or 0
    ids = list(session.scalars(base.where(column > after).order_by(column).limit(n)))
    if len(ids) < n and after:
        ids += [i for i in session.scalars(base.where(column <= after).order_by(column).limit(n)) if i not in ids]
    return ids[:n]


def _filtered(session: Session, f: ImageFilter, columns, *, labels: bool = True) -> Select:
    """Images matching `f`; joined to their current label events when `labels` (a count without the joins reads
    one index: SQLite drops an unused outer join only at the chain's end).

    Tags and confidence are read off current_label_tags and current_confidences (migration 0014), joined
    (inner) so that a page of one tag walks its (tag, image_id) index in order. Where nothing else needs the
    images row (no label columns, no status, source, split or region), the query starts from that table and
    leaves images out: every such row has its image (foreign key), and counting 62,700 of a confidence range
    at 1M images took 36 ms with a row lookup in images each and 3-10 ms without (SQLite)."""
    bounds = [(bound, op) for bound, op in ((f.min_confidence, "__ge__"), (f.max_confidence, "__le__"))
              if bound is not None]
    if not all(0 <= bound <= 1 for bound, _ in bounds):
        raise InvalidInput("confidence bounds must be from 0 to 1")
    narrow = CurrentLabelTag if f.tag else CurrentConfidence if bounds else None
    alone = narrow is not None and not labels and not (f.status or f.source or f.split or f.members is not None)
    anchor = narrow.image_id if alone else Image.id
    q = select(*columns).select_from(narrow if alone else Image)
    if f.tag:
        if narrow is CurrentLabelTag and alone:
            q = q.where(CurrentLabelTag.tag == f.tag)
        else:
            q = q.join(CurrentLabelTag, (CurrentLabelTag.image_id == anchor) & (CurrentLabelTag.tag == f.tag))
    if bounds:
        if not (narrow is CurrentConfidence and alone):
            q = q.join(CurrentConfidence, CurrentConfidence.image_id == anchor)
        q = q.where(*(getattr(CurrentConfidence.confidence, op)(bound) for bound, op in bounds))
    # An inner join where the filter needs a label anyway: the planner may then start from current_labels.
    join = "join" if f.class_ref else "outerjoin"
    if labels or f.class_ref:
        q = getattr(q, join)(CurrentLabel, CurrentLabel.image_id == anchor)
    if labels:
        q = getattr(q, join)(LabelEvent, LabelEvent.id == CurrentLabel.event_id)
    if f.status:
        if f.status not in STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not '{f.status}'")
        if f.status == "flagged":  # an open flag of any kind: something to look at again
            q = q.where(Image.id.in_(select(Flag.image_id).where(Flag.status == "open")))
        elif f.status == "none-of-these":
            q = q.where(_answered(anchor), ~_has(anchor))
        elif not (f.class_ref and f.status == "labelled"):  # a class implies labelled: no second index to check
            q = q.where(Image.labelled == (f.status == "labelled"))
    if f.source:
        q = q.where(Image.source_id == select(Source.id).where(Source.name == f.source).scalar_subquery())
    multi = (f.class_ref or f.lacks or f.exactly is not None) and _sets(session)
    if f.class_ref:
        cls = resolve_class(session, f.class_ref, active_only=False)
        if multi:  # has the class in its set
            q = q.where(CurrentLabel.multi, _has(CurrentLabel.image_id, cls.id))
        else:
            q = q.where(CurrentLabel.class_id == cls.id)
    if f.lacks or f.exactly is not None:
        if not multi:
            raise InvalidInput("'lacks' and 'exactly' filter sets of classes: they need a multi-label taxonomy")
        q = q.where(_answered(anchor))
    if f.lacks:
        q = q.where(~_has(anchor, resolve_class(session, f.lacks, active_only=False).id))
    if f.exactly is not None:
        wanted = sorted({resolve_class(session, ref.strip(), active_only=False).id
                         for ref in f.exactly.split(",") if ref.strip()})
        q = q.where(*(_has(anchor, c) for c in wanted), select(func.count()).where(
            CurrentLabelClass.image_id == anchor).scalar_subquery() == len(wanted))
    if f.split:
        q = q.where(_in_split(session, f.split))
    if f.region is not None and f.members is None:
        raise InvalidInput("a map region needs resolving first (app.embeddings.regions.resolve)")
    if f.members is not None:
        # Inlined, not bound one by one: a lasso may hold 50,000 images, past SQLite's bound-parameter limit.
        q = q.where(Image.id.in_(bindparam("members", f.members, expanding=True, literal_execute=True)))
    return q


SPLITS = ("train", "val", "test", "none")


def _answered(anchor):
    """The image's current label is a multi-label answer (a set, maybe empty). Aliased: the outer query may
    join current_labels itself, and would then swallow the subquery's only table."""
    current = aliased(CurrentLabel)
    return exists().where(current.image_id == anchor, current.multi)


def _has(anchor, class_id: int | None = None):
    """The image's current set holds `class_id` (any class when None)."""
    member = aliased(CurrentLabelClass)
    q = exists().where(member.image_id == anchor)
    return q.where(member.class_id == class_id) if class_id is not None else q


def _sets(session: Session) -> bool:
    """Labels are sets of classes (a multi-label taxonomy): a class filter then means "has the class"."""
    return taxonomy_mode(session) == MULTI


def _in_split(session: Session, split: str):
    """Images in one split of the latest snapshot ("none": in no split of it), as a look-up per image of the
    snapshot's (snapshot, image) key. IN (its items) made SQLite list all of a split's items before the first
    row: at 1M images (val 57,800 of 286,000 items) a page of val took 161 ms that way and 19 ms this way, of
    labelled images in train 550 and 8 ms, of one source in val 190 and 5 ms. A look-up per image loses where
    few images match (a filter matching none reads every image), so an empty split matches nothing at once."""
    if split not in SPLITS:
        raise InvalidInput(f"split must be one of {', '.join(SPLITS)}, not '{split}'")
    latest = session.scalars(select(Snapshot).order_by(Snapshot.id.desc()).limit(1)).first()
    if latest is None:
        return true() if split == "none" else false()
    if split != "none" and latest.split.get("sizes", {}).get(split, 1) == 0:  # sizes: frozen with it (issue 16)
        return false()
    inside = exists().where(SnapshotItem.snapshot_id == latest.id, SnapshotItem.image_id == Image.id)
    return ~inside if split == "none" else inside.where(SnapshotItem.split == split)


def filtered_ids(session: Session, f: ImageFilter) -> list[int]:
    return list(session.scalars(_filtered(session, f, [Image.id]).order_by(Image.id)))


@dataclass
class Page:
    items: list[dict]
    total: int  # exact; or count_cap + 1 when a cap was given and more match
    exact: bool  # total is exact (no cap given, or counted by the per-source counters)
    next_after: int | None  # the cursor of the next page, None on the last one
    prev_before: int | None  # the cursor of the page before, None on the first one


def _key(f: ImageFilter):
    """The id to order and page by. Filtering on a class, the current label's: SQLite then walks the
    (class_id, image_id) index in order, which it will not do for ORDER BY images.id across the join,
    and PostgreSQL starts its merge join over current_labels at the cursor, not at the first label.
    On a tag (no class), the tag row's: its (tag, image_id) index is in that order."""
    if f.class_ref:
        return CurrentLabel.image_id
    if f.tag:
        return CurrentLabelTag.image_id
    if f.min_confidence is not None or f.max_confidence is not None:
        return CurrentConfidence.image_id
    return Image.id


_SOURCE = aliased(Source)  # not Source itself: the source filter's subquery would correlate to it
# What a page shows of an image, as plain columns: loading ORM objects cost 3/4 of a 120-image page.
SUMMARY = (Image.id, Image.sha256, Image.original_filename, _SOURCE.name.label("source"), Image.width, Image.height,
           Image.excluded, LabelEvent.class_id, LabelEvent.confidence, LabelEvent.tags, LabelEvent.multi)


def _summaries(page, *, descending: bool) -> Select:
    """SUMMARY for a page of image ids. The labels are joined after the page is cut, one lookup per image:
    joined before, PostgreSQL merge-joins current_labels from its first row up to the page (90 ms deep in 200k)."""
    return (
        select(*SUMMARY).select_from(page)
        .join(Image, Image.id == page.c.id)
        .join(_SOURCE, _SOURCE.id == Image.source_id)
        .outerjoin(CurrentLabel, CurrentLabel.image_id == Image.id)
        .outerjoin(LabelEvent, LabelEvent.id == CurrentLabel.event_id)
        .order_by(page.c.id.desc() if descending else page.c.id)
    )


def list_images(
    session: Session, f: ImageFilter, *, limit: int = 100, offset: int = 0, after: int | None = None,
    before: int | None = None, count_cap: int | None = None,
) -> Page:
    """One page of images matching `f` in import order, with their current labels, and how many match.

    Pages by `offset`, or by keyset: `after` an id (the images after it) or
    `before` one (the page just before it), which costs as little deep in a
    million images as on the first page, and neither skips nor repeats an
    image when others are imported meanwhile. `count_cap` bounds the count.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be from 1 to {MAX_LIMIT}")
    if offset < 0:
        raise InvalidInput("offset must be 0 or more")
    if sum((bool(offset), after is not None, before is not None)) > 1:
        raise InvalidInput("give one of offset, after and before")
    key = _key(f)
    matches = _filtered(session, f, [key.label("id")], labels=False)
    if before is not None:
        ids = matches.where(key < before).order_by(key.desc())
    else:
        ids = (matches.where(key > after) if after is not None else matches).order_by(key).offset(offset)
    rows = session.execute(_summaries(ids.limit(limit + 1).subquery(), descending=before is not None)).all()
    if before is not None:
        more_before, more_after, rows = len(rows) > limit, True, rows[:limit][::-1]
    else:
        more_before, more_after, rows = after is not None or offset > 0, len(rows) > limit, rows[:limit]
    names = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
    items = [image_summary(row, names) for row in rows]
    with_sets = [item for item in items if "classes" in item]
    if with_sets:
        sets = current_sets(session, [i["id"] for i in with_sets])
        for item in with_sets:
            item["class_ids"] = sorted(sets.get(item["id"], {}))
            item["classes"] = [names[c] for c in item["class_ids"]]
    total = _counted(session, f)
    exact = total is not None or count_cap is None
    if total is None:
        total = count_rows(session, matches, cap=count_cap)
        exact = exact or total <= count_cap  # fewer than the cap: counted to the end
    return Page(items, total, exact, items[-1]["id"] if items and more_after else None,
                items[0]["id"] if items and more_before else None)


def current_sets(session: Session, ids: Sequence[int]) -> dict[int, dict[int, float | None]]:
    """The current set of each answered image among `ids` (multi-label): {image: {class id: confidence}};
    images whose current label is no set are left out, an empty set ("none of these") is {}."""
    out: dict[int, dict[int, float | None]] = {}
    ids = list(ids)
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        out.update((i, {}) for i in session.scalars(select(CurrentLabel.image_id).where(
            CurrentLabel.image_id.in_(chunk), CurrentLabel.multi)))
        for image_id, class_id, confidence in session.execute(
                select(CurrentLabelClass.image_id, CurrentLabelClass.class_id, CurrentLabelClass.confidence)
                .where(CurrentLabelClass.image_id.in_(chunk))):
            out[image_id][class_id] = confidence
    return out


def _counted(session: Session, f: ImageFilter) -> int | None:
    """How many match, without reading the matches, where counters or a snapshot's frozen sizes say it exactly:
    status labelled / unlabelled and a source at most (source_counts), one class (class_counts), one split
    of the latest snapshot; None for any other filter (counting a class's 25,000 labels took 110 ms at 1M
    images, a split's 290,000 items 90 ms)."""
    if f.tag or f.min_confidence is not None or f.max_confidence is not None or f.members is not None \
            or f.lacks or f.exactly is not None or f.status == "none-of-these":
        return None
    if f.class_ref:
        if f.source or f.split or f.status not in (None, "", "labelled"):
            return None
        cls = resolve_class(session, f.class_ref, active_only=False)
        return session.scalar(select(ClassCount.labels).where(ClassCount.class_id == cls.id)) or 0
    if f.split:
        return None if f.source or f.status else _split_size(session, f.split)
    if f.status not in (None, "", "labelled", "unlabelled"):
        return None
    source_id = None
    if f.source:
        source_id = session.scalar(select(Source.id).where(Source.name == f.source))
        if source_id is None:
            return 0
    counts = library_counts(session, source_id=source_id)
    if f.status == "labelled":
        return counts["labelled"]
    return counts["images"] - counts["labelled"] if f.status == "unlabelled" else counts["images"]


def _split_size(session: Session, split: str) -> int:
    """Images in one split of the latest snapshot ("none": not in it), as `_in_split` selects them."""
    if split not in SPLITS:
        raise InvalidInput(f"split must be one of {', '.join(SPLITS)}, not '{split}'")
    latest = session.scalars(select(Snapshot).order_by(Snapshot.id.desc()).limit(1)).first()
    if split == "none":
        return library_counts(session)["images"] - (latest.count if latest else 0)
    if latest is None:
        return 0
    if "sizes" in latest.split:  # frozen with the snapshot (issue 16)
        return latest.split["sizes"].get(split, 0)
    return session.scalar(select(func.count()).select_from(SnapshotItem).where(
        SnapshotItem.snapshot_id == latest.id, SnapshotItem.split == split))


def image_summary(row, names: dict[int, str]) -> dict:
    """One SUMMARY row as the API shows it."""
    image_id, sha256, filename, source, width, height, excluded, class_id, confidence, tags, multi = row
    labelled = class_id is not None or bool(multi)
    return {
        "id": image_id, "sha256": sha256, "filename": filename, "source": source, "width": width, "height": height,
        "excluded": excluded, "class": names.get(class_id) if class_id is not None else None, "class_id": class_id,
        "confidence": confidence if labelled else None, "tags": (tags or []) if labelled else [],
        **({"classes": [], "class_ids": []} if multi else {}),  # filled by list_images
    }
