"""Reading snapshots: look-up by id or name, the JSON views, the items."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from app.db.ids import as_id
from app.db.models import Flag, Image, Snapshot, SnapshotItem, TaxonomyVersion
from app.errors import InvalidInput, NotFound
from app.snapshots import sets
from app.snapshots.splits import SPLITS
from app.timeutil import iso


def get_snapshot(session: Session, ref: Any) -> Snapshot:
    """A snapshot named by its id or its name (SNAPSHOT on the command line)."""
    snapshot = None
    text = str(ref).strip()
    if (snapshot_id := as_id(ref)) is not None:
        snapshot = session.get(Snapshot, snapshot_id)
    if snapshot is None and text:
        snapshot = session.scalars(select(Snapshot).where(Snapshot.name == " ".join(text.split()))).first()
    if snapshot is None:
        raise NotFound(f"no snapshot named or numbered '{ref}'")
    return snapshot


def class_names(snapshot: Snapshot) -> dict[int, str]:
    """Class id -> name as it was when the snapshot was frozen."""
    return {c["id"]: c["name"] for c in snapshot.classes}


def split_counts(session: Session, snapshots: list[Snapshot]) -> dict[int, dict[str, int]]:
    """Images per split of each snapshot: as frozen with it (`split["sizes"]`, since issue 16), else counted
    (snapshots frozen before: a scan of their items, about 0.1 s per 1,000,000)."""
    out: dict[int, dict[str, int]] = {s.id: dict(s.split["sizes"]) for s in snapshots if "sizes" in s.split}
    older = [s.id for s in snapshots if s.id not in out]
    if older:
        out |= {i: dict.fromkeys(SPLITS, 0) for i in older}
        rows = session.execute(
            select(SnapshotItem.snapshot_id, SnapshotItem.split, func.count())
            .where(SnapshotItem.snapshot_id.in_(older))
            .group_by(SnapshotItem.snapshot_id, SnapshotItem.split)
        )
        for sid, split, n in rows:
            out[sid][split] = n
    return out


def snapshot_view(snapshot: Snapshot, version: int, counts: dict[str, int], mode: str = "single-label") -> dict:
    return {
        "id": snapshot.id,
        "name": snapshot.name,
        "hash": snapshot.hash,
        "taxonomy_version": version,
        "count": snapshot.count,
        "created_at": iso(snapshot.created_at),
        "filter": snapshot.filter,
        "split": {k: v for k, v in snapshot.split.items() if k != "sizes"},  # the settings; sizes are "splits"
        "splits": counts,
        "classes": [c["name"] for c in snapshot.classes],
        "mode": mode,
    }


REREVIEW_LINK = "/label?queue=rereview"


def rereview_left_out(session: Session, snapshot: Snapshot) -> dict:
    """Images waiting in re-review (after a split or retire) that are not in `snapshot`: they have no label a
    snapshot could take, so they are left out; the answer says how many instead of dropping them silently."""
    # NOT EXISTS: one primary-key look-up per waiting image, where NOT IN made SQLite copy every item of the
    # snapshot first.
    inside = exists().where(SnapshotItem.snapshot_id == snapshot.id, SnapshotItem.image_id == Flag.image_id)
    waiting = (select(Flag.image_id).join(Image, Image.id == Flag.image_id)
               .where(Flag.kind == "rereview", Flag.status == "open", Image.excluded.is_(False), ~inside).distinct())
    count = session.scalar(select(func.count()).select_from(waiting.subquery()))
    return {"count": count, "link": REREVIEW_LINK}


def describe(session: Session, snapshot: Snapshot) -> dict:
    version = session.get(TaxonomyVersion, snapshot.taxonomy_version_id)
    view = snapshot_view(snapshot, version.number, split_counts(session, [snapshot])[snapshot.id], version.mode)
    return {**view, "rereview_left_out": rereview_left_out(session, snapshot)}


def list_snapshots(session: Session) -> list[dict]:
    """Every snapshot, newest first."""
    snapshots = list(session.scalars(select(Snapshot).order_by(Snapshot.id.desc())))
    counts = split_counts(session, snapshots)
    versions = dict(session.execute(select(TaxonomyVersion.id, TaxonomyVersion.number)).all())
    modes = dict(session.execute(select(TaxonomyVersion.id, TaxonomyVersion.mode)).all())
    return [snapshot_view(s, versions[s.taxonomy_version_id], counts[s.id], modes[s.taxonomy_version_id])
            for s in snapshots]


# GET /api/snapshots/{id}/items pages: 5,000 items cost 19-25 ms (410 KiB of JSON) on SQLite at 1,000,000
# images, 10,000 about 40-50 ms, the whole 286,000-item snapshot 1.4-1.8 s and 22 MB (bench/scale.py --pages).
ITEMS_PAGE = 5_000
ITEMS_MAX = 50_000


def snapshot_items(session: Session, snapshot: Snapshot, *, limit: int = ITEMS_PAGE, offset: int = 0,
                   after: int | None = None) -> tuple[list[dict], int | None]:
    """A page of the snapshot's images in image id order, each with its class name (as frozen), split, fold
    and the label event used; and the next page's cursor (the last image id; None on the last page).

    Pages by `offset`, or by keyset: `after` an image id (as fast deep in the snapshot as at its start)."""
    if not 1 <= limit <= ITEMS_MAX:
        raise InvalidInput(f"limit must be from 1 to {ITEMS_MAX:,}")
    if offset and after is not None:
        raise InvalidInput("give one of offset and after")
    names = class_names(snapshot)
    q = (select(SnapshotItem.image_id, SnapshotItem.class_id, SnapshotItem.split, SnapshotItem.fold,
                SnapshotItem.label_event_id)
         .where(SnapshotItem.snapshot_id == snapshot.id))
    if after is not None:
        q = q.where(SnapshotItem.image_id > after)
    rows = session.execute(q.order_by(SnapshotItem.image_id).offset(offset).limit(limit + 1)).all()
    items = [{"image": i, "class": names.get(c), "split": s, "fold": f, "label_event": e}
             for i, c, s, f, e in rows[:limit]]
    if sets.is_multi(session, snapshot):  # a set per item, from the label event it froze
        classes = sets.item_classes(session, snapshot, [item["label_event"] for item in items])
        for item in items:
            item["classes"] = classes.get(item["label_event"], [])
    return items, (items[-1]["image"] if len(rows) > limit else None)
