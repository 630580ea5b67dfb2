"""Orders of the unlabelled queue beyond import order: most uncertain first, diverse, weakest source first.

- "uncertain": the latest model's least sure suggestions first (active learning).
- "diverse": the newest analysis's `diverse` array (app.embeddings.analyses: unlabelled ids in an order that
  covers the embedding space), passing over images labelled or excluded since it was computed; then the rest
  in import order. Without an analysis: most uncertain first (or import order without a model).
- "weakest-source": the source with the lowest out-of-sample accuracy of the latest train job first
  (job.metrics["per_source"]), then the next weakest, ...; sources without a measured accuracy after those;
  within a source most uncertain first when there are predictions, else import order.

Every order ends with the unlabelled images it did not reach, in import order, so no image is ever out of
reach. `note` says in one sentence what the page should know: a fallback, or the source being drawn from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import Image, Job, Prediction, Source
from app.embeddings import analyses
from app.errors import InvalidInput
from app.labelling.suggestions import model_family

ORDERS = ("import", "uncertain", "diverse", "weakest-source")
NAMES = {"import": "import order", "uncertain": "most uncertain first", "diverse": "diverse",
         "weakest-source": "weakest source first"}
# The diverse array is checked against the database in batches that grow from FIRST_BATCH (the next few are
# nearly always still waiting) to BATCH_MAX ids, and at most WALK_MAX ids a request: past that (someone else
# labelled a long stretch ahead) the rest comes in import order. A batch of 4,096 ids costs 9 ms of CPU on
# SQLite at 100k images and 13 ms at 1M (bench/orders.py), so WALK_MAX stays under ~30 ms; the usual request
# checks one batch of 16 (the whole order costs 2-2.5 ms at 1M). Moving the frontier may take up to
# FRONTIER_MAX ids (~200 ms, once per process and analysis: 10,000 labelled since the analysis took 140 ms at
# 1M), since no later request walks that stretch again.
FIRST_BATCH = 16
BATCH_MAX = 4_096
WALK_MAX = 8_192
FRONTIER_MAX = 65_536
# How far back to look for a train job that measured per-source accuracy (metrics are JSON: filtered here).
RECENT_JOBS = 20

# (database, analysis job) -> the position in its diverse array before which every image was labelled or
# excluded when last looked at: a request starts there instead of walking the labelled stretch again. Only
# ever moves forward; an image unlabelled again behind it (an undo) still comes, in the import-order tail.
_frontier: dict[tuple[str, int], int] = {}
# (database, model family, source or None for all) whose waiting images the model's suggestions no longer name:
# walking every suggestion to find none costs ~50 ms at 1M images (20,000 suggestions), so the order goes
# straight to import order. An image unlabelled again since (an undo) waits in import order.
_spent: set[tuple[str, tuple[int, ...], int | None]] = set()


def _waiting(session: Session, ids: list[int], source_id: int | None = None) -> set[int]:
    """Which of `ids` are unlabelled and not excluded now (and in `source_id`, when given)."""
    q = select(Image.id).where(Image.id.in_(ids), Image.labelled == False, Image.excluded == False)  # noqa: E712
    if source_id is not None:
        q = q.where(Image.source_id == source_id)
    return set(session.scalars(q))


def import_order(session: Session, *, skip: Sequence[int] = (), n: int, source_id: int | None = None) -> list[int]:
    """The first `n` unlabelled images in import order (of one source when given), passing over `skip`."""
    if n <= 0:
        return []
    # images.labelled, not an anti-join on current_labels: an index range, however many are labelled in front.
    q = select(Image.id).where(Image.labelled == False, Image.excluded == False)  # noqa: E712
    if source_id is not None:
        q = q.where(Image.source_id == source_id)
    if skip:
        q = q.where(Image.id.not_in(list(skip)))
    return list(session.scalars(q.order_by(Image.id).limit(n)))


# -- most uncertain first ------------------------------------------------------------------------------------

def _predicted_since(session: Session, job_ids: list[int], skip: Sequence[int], n: int,
                     source_id: int | None = None) -> list[tuple[float, int]]:
    """(margin, image) of the `n` least sure suggestions of these predict jobs on still unlabelled images.

    Predictions first, then the images they name: joined in one query, the planner started from every
    unlabelled image instead (1.6 s at 140k unlabelled). A predict job's images are mostly still waiting, so
    one batch nearly always does.
    """
    out: list[tuple[float, int]] = []
    batch, offset = 4 * n, 0
    while len(out) < n:
        q = (select(Prediction.margin, Prediction.image_id)
             .where(Prediction.job_id.in_(job_ids), Prediction.role == "suggestion"))
        if skip:
            q = q.where(Prediction.image_id.not_in(list(skip)))
        rows = session.execute(q.order_by(Prediction.margin, Prediction.image_id).offset(offset).limit(batch)).all()
        waiting = _waiting(session, [i for _, i in rows], source_id)
        out += [(m, i) for m, i in rows if i in waiting]
        if len(rows) < batch:
            break
        offset, batch = offset + batch, min(batch * 4, 5_000)  # an IN list stays well under the bound-parameter limit
    return out[:n]


def uncertain_first(session: Session, *, skip: Sequence[int] = (), n: int, source_id: int | None = None) -> list[int]:
    """Unlabelled images the latest model is least sure about (smallest top-1 minus top-2 margin) first,
    then the others in import order; only those of `source_id` when given.

    Walks the latest model's suggestions (the images unlabelled when it trained, at most max_suggestions,
    and those its later predict jobs saw: app.labelling.suggestions.model_family) in margin order on an
    index, not every unlabelled image: one labelled since is passed over, and one unlabelled since (an
    undo) waits in import order.
    """
    found: list[tuple[float, int]] = []
    family = model_family(session)
    spent = (str(session.get_bind().url), tuple(family), source_id)
    if spent in _spent:
        family = []
    if family:  # the train job's suggestions (up to max_suggestions), on one index walk
        q = (select(Prediction.margin, Prediction.image_id).join(Image, Image.id == Prediction.image_id)
             .where(Prediction.job_id == family[0], Prediction.role == "suggestion",
                    Image.labelled == False, Image.excluded == False))  # noqa: E712
        if source_id is not None:
            q = q.where(Image.source_id == source_id)
        if skip:
            q = q.where(Prediction.image_id.not_in(list(skip)))
        found += [(m, i) for m, i in session.execute(q.order_by(Prediction.margin, Prediction.image_id).limit(n))]
    if len(family) > 1:
        found += _predicted_since(session, family[1:], skip, n, source_id)
    # dict: an image two predict jobs of one model both saw (two workers at once) comes once
    ids = list(dict.fromkeys(image_id for _, image_id in sorted(found)))[:n]
    if family and not ids and not (skip and _waiting(session, list(skip), source_id)):
        _spent.add(spent)
    return ids + import_order(session, skip=[*skip, *ids], n=n - len(ids), source_id=source_id)


def _model_order(session: Session, *, skip: Sequence[int], n: int) -> list[int]:
    """The fallback of the orders below: most uncertain first with a model, else import order."""
    if model_family(session):
        return uncertain_first(session, skip=skip, n=n)
    return import_order(session, skip=skip, n=n)


# -- diverse -------------------------------------------------------------------------------------------------

def _diverse_array(session: Session, settings: Settings | None) -> tuple[int, np.ndarray] | None:
    """(analysis job, its diverse ids, memory-mapped) of the newest analysis that has them; None without."""
    if settings is None:
        return None
    analysis = analyses.latest(session, settings)
    if analysis is None or not analysis.has("diverse"):
        return None
    return analysis.job, analysis.array("diverse")


def diverse(session: Session, settings: Settings | None, *, after: int | None = None, skip: Sequence[int] = (),
            n: int) -> list[int]:
    """The next `n` of the newest analysis's diverse order still waiting, after `after` when it is in it
    (wrapping to the start), then the rest in import order; most uncertain first without an analysis.

    Reads only the stretch of the array it needs (it is memory-mapped): from the frontier (everything before
    it labelled), or from just after `after`, checking the current state in SQL one growing batch at a time.
    """
    found = _diverse_array(session, settings)
    if found is None:
        return _model_order(session, skip=skip, n=n)
    job, order = found
    key = (str(session.get_bind().url), job)
    start = min(_frontier.get(key, 0), len(order))
    begin = start
    if after is not None:
        # A linear scan of the array past the frontier: ~1 ms per million ids, no index kept in memory.
        hit = np.flatnonzero(np.asarray(order[start:]) == after)
        if hit.size:
            begin = start + int(hit[0]) + 1
    spans = [(begin, len(order)), (start, begin)] if begin > start else [(start, len(order))]
    skipped, out, walked = set(skip), [], 0
    for lo, hi in spans:
        pos, batch, frontier = lo, FIRST_BATCH, lo == start
        while pos < hi and len(out) < n:
            limit = FRONTIER_MAX if frontier else WALK_MAX
            if walked >= limit:
                break
            chunk = np.asarray(order[pos:min(hi, pos + batch, pos + limit - walked)]).tolist()
            waiting = _waiting(session, chunk)
            for image_id in chunk:
                if frontier and image_id not in waiting:
                    start += 1  # labelled or excluded since the analysis: no request needs to look at it again
                else:
                    frontier = False
                if image_id in waiting and image_id not in skipped and image_id not in out:
                    out.append(image_id)
            pos, walked, batch = pos + len(chunk), walked + len(chunk), min(batch * 4, BATCH_MAX)
    _frontier[key] = max(_frontier.get(key, 0), start)
    out = out[:n]
    return out + import_order(session, skip=[*skip, *out], n=n - len(out))


# -- weakest source first ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceAccuracy:
    source_id: int
    name: str
    accuracy: float | None  # out-of-sample, of `job`; None: not measured (no labelled images of it then)
    job: int | None


def measured_job(session: Session) -> Job | None:
    """The newest succeeded train job whose metrics give an out-of-sample accuracy per source."""
    for job in session.scalars(select(Job).where(Job.kind == "train", Job.status == "succeeded")
                               .order_by(Job.id.desc()).limit(RECENT_JOBS)):
        if (job.metrics or {}).get("per_source"):
            return job
    return None


def source_ranking(session: Session) -> list[SourceAccuracy]:
    """Every source, weakest first: by the latest measured out-of-sample accuracy, lowest first; then the
    sources it did not measure, in the order they were created. [] when nothing is measured yet."""
    job = measured_job(session)
    if job is None:
        return []
    accuracy = job.metrics["per_source"]
    sources = session.execute(select(Source.id, Source.name).order_by(Source.id)).all()
    ranked = [SourceAccuracy(i, name, float(accuracy[name]) if name in accuracy else None, job.id)
              for i, name in sources]
    return sorted(ranked, key=lambda s: (s.accuracy is None, s.accuracy or 0.0, s.source_id))


def weakest_source_first(session: Session, *, skip: Sequence[int] = (), n: int) -> list[int]:
    """Unlabelled images of the weakest source first (most uncertain first within it when a model guessed
    them), then of the next weakest, ...; most uncertain first when no source has a measured accuracy."""
    ranking = source_ranking(session)
    if not ranking:
        return _model_order(session, skip=skip, n=n)
    has_model = bool(model_family(session))
    out: list[int] = []
    for source in ranking:  # a handful of sources: one or two index probes each, and most requests stop at the first
        pick = uncertain_first if has_model else import_order
        out += pick(session, skip=[*skip, *out], n=n - len(out), source_id=source.source_id)
        if len(out) >= n:
            break
    return out


# -- what the page says --------------------------------------------------------------------------------------

def check(order: str) -> str:
    """`order`, or a clear error naming the orders there are."""
    if order not in ORDERS:
        raise InvalidInput(f"order must be one of {', '.join(ORDERS)}, not '{order}'")
    return order


def in_force(session: Session, settings: Settings | None, order: str) -> str:
    """The order the queue really follows: `order`, or its fallback when what it needs is missing."""
    if order == "uncertain":
        return order if model_family(session) else "import"
    missing = ((order == "diverse" and _diverse_array(session, settings) is None)
               or (order == "weakest-source" and measured_job(session) is None))
    if missing:
        return "uncertain" if model_family(session) else "import"
    return order


def note(session: Session, settings: Settings | None, order: str, image: Image | None) -> str | None:
    """One sentence for the labelling page about `order`: why it fell back, or (weakest source first) which
    source the image shown is drawn from and how well the model does on it; None for nothing to say."""
    used = in_force(session, settings, order)
    if used != order:
        missing = {"uncertain": "No trained model yet", "diverse": "No analysis of the embeddings yet",
                   "weakest-source": "No out-of-sample accuracy per source yet"}[order]
        return f"{missing}, so this is {NAMES[used]}."
    if order != "weakest-source" or image is None:
        return None
    ranking = source_ranking(session)
    source = next((s for s in ranking if s.source_id == image.source_id), None)
    if source is None:
        return None
    if source.accuracy is None:
        return f"From {source.name}: no out-of-sample accuracy measured for it yet (the measured sources are done)."
    rank = [s.source_id for s in ranking if s.accuracy is not None].index(source.source_id) + 1
    where = "the weakest source" if rank == 1 else f"weakest source no. {rank}"
    return f"From {source.name}: {source.accuracy:.0%} out-of-sample accuracy (job #{source.job}), {where}."
