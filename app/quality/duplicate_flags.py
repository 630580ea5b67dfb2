"""Near-duplicates whose labels disagree, as flags (kind "duplicate"); a group that agrees again is settled.

Groups come from the live images' pHashes, confirmed by their thumbnails
(app.snapshots.looks), as a snapshot's freeze groups them.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import flagstate
from app.db.models import CurrentLabel, Flag, Image
from app.quality import duplicates
from app.quality.raising import current_state, flags_by_image, open_ids, raise_or_create
from app.snapshots import looks, neardup

GROUP_DETAILS = 50


LIVE_CHUNK = 50_000  # rows turned into arrays at a time: 1,000,000 rows as tuples at once took ~200 MB


def live_images(session: Session) -> dict[str, np.ndarray]:
    """Every image not excluded, in id order: "ids", "phashes", "classes" and "events" (current label; -1
    when unlabelled), "sources" (source id) and "shas" (a list of sha256)."""
    # The option on the statement, not the connection: Connection.execution_options changes the session's
    # connection in place, and on PostgreSQL its later INSERTs then went through a server-side cursor (an error).
    result = session.connection().execute(
        select(Image.id, Image.phash, func.coalesce(CurrentLabel.class_id, -1),
               func.coalesce(CurrentLabel.event_id, -1), Image.source_id, Image.sha256)
        .outerjoin(CurrentLabel, CurrentLabel.image_id == Image.id)
        .where(Image.excluded.is_(False)).order_by(Image.id).execution_options(yield_per=LIVE_CHUNK)
    )
    names = ("ids", "phashes", "classes", "events", "sources")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    shas: list[str] = []
    for rows in result.partitions():
        cols = list(zip(*rows))  # per column: numpy converts a tuple of ints far faster than rows
        for name, col in zip(names, cols):
            parts[name].append(np.array(col, dtype=np.int64))
        shas.extend(cols[5])
    out = {name: np.concatenate(chunks) if chunks else np.empty(0, np.int64) for name, chunks in parts.items()}
    out["shas"] = shas
    return out


def near_groups(session: Session, live: dict, *, max_distance: int = neardup.MAX_DISTANCE) -> np.ndarray:
    """`live_images`' near-duplicate groups: pHash candidates confirmed by their thumbnails (`app.snapshots.looks`)."""
    if not len(live["ids"]):
        return np.empty(0, np.int64)
    return duplicates.phash_groups(live["phashes"], max_distance=max_distance,
                                   confirm=looks.confirmer(session, live["shas"]))


def flag_duplicates(session: Session) -> dict:
    """Flag labelled near-duplicates whose labels disagree (kind "duplicate"); cancel conflicts that went away."""
    live = live_images(session)
    ids, classes, events = live["ids"], live["classes"], live["events"]
    group = near_groups(session, live)
    result = duplicates.label_conflicts(group, classes) if len(ids) else {"conflict": np.zeros(0, bool)}
    conflict = result["conflict"]
    flagged = set(ids[conflict].tolist())
    opened, kept = flags_by_image(session, "duplicate", flagged | open_ids(session, "duplicate"))
    counts = {"created": 0, "raised": 0, "unchanged": 0, "kept": 0, "cancelled": 0}
    members: dict[int, list[int]] = {}
    for i in np.flatnonzero(conflict).tolist():
        members.setdefault(int(group[i]), []).append(i)
    for g, rows in members.items():
        shown = rows[:GROUP_DETAILS]  # a huge group keeps its first members in each flag's details
        group_ids = [int(ids[i]) for i in shown]
        labels = {str(int(ids[i])): int(classes[i]) for i in shown}
        for i in rows:
            suggested = int(result["suggested"][i])
            details = {"group": group_ids, "labels": labels, "via": "phash",
                       "label_event_id": int(events[i])}
            raise_or_create(session, kind="duplicate", image_id=int(ids[i]), score=round(float(result["score"][i]), 6),
                             suggested=suggested if suggested >= 0 else None, details=details,
                             current_event=int(events[i]), opened=opened, kept=kept, counts=counts)
    for image_id, flag in opened.items():
        if image_id not in flagged:
            flagstate.cancel(flag, "no conflict any more: the near-duplicates' labels agree, or the images are not "
                         "near-duplicates by today's check")
            counts["cancelled"] += 1
    session.commit()
    return {"groups": len(members), "images": len(flagged), **counts}


def settle_duplicate_group(session: Session, flag: Flag) -> int:
    """After a decision on one member: when the group's labels agree now, cancel the others' duplicate flags."""
    group = [int(i) for i in (flag.details or {}).get("group", [])]
    if not group:
        return 0
    current = current_state(session, group)
    labels = {c for e, c, excluded in current.values() if not excluded and c is not None}
    if len(labels) > 1:
        return 0
    others = session.scalars(select(Flag).where(Flag.kind == "duplicate", Flag.status == "open",
                                                Flag.image_id.in_(group))).all()
    for other in others:
        flagstate.cancel(other, f"settled by the decision on flag #{flag.id}")
    session.commit()
    return len(others)
