"""What the label-quality routes answer (app/web/routes/quality.py): the quality report and its sections, the
source trend, and what running the checks (mislabels, duplicates, audits, a report refresh) did.

Flag counts name kinds, statuses and resolutions with the vocabulary of `app.db.vocab`; no flag itself is
embedded here (a single flag's shape is app/web/schemas/flags.py's).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from app.db.vocab import FlagKind, FlagResolution, JobStatus
from app.web.schemas import Reply

# app.quality.report.flag_counts keys a resolved flag without a resolution (only raw SQL makes one) as None,
# which json.dumps wrote as "null"; mapped here so such a flag keeps that key instead of failing the answer.
ResolutionKey = Annotated[FlagResolution | Literal["null"], BeforeValidator(lambda k: "null" if k is None else k)]


class Changes(Reply):
    """What changed after a stored result was computed (app.db.asof.changes_since)."""

    labels: int = Field(description="label events since")
    images: int = Field(description="images imported since")
    exclusions: int = Field(description="exclusion changes since")
    total: int


class AsOf(Reply):
    """Which stored report the whole-dataset numbers come from, and how stale it is."""

    job: int | None = Field(description="the report job that computed them; null: none stored yet (the parts are "
                                         "null)")
    at: str | None = Field(description="when that job took its stamp (ISO time)")
    since: Changes | None = Field(description="changes made after it; null without a stored report")
    refreshing: int | None = Field(description="a report job queued or running, if any")


class DuplicateRow(Reply):
    """One kind of duplicate and one way of crossing: how many groups and images, and a few example groups."""

    kind: Literal["exact", "near"] = Field(description="exact: identical pHash; near: within the near-duplicate "
                                                       "distance")
    what: Literal["any", "cross source", "cross split", "label conflict"] = Field(
        description="the groups counted: all, those spanning sources, spanning the latest snapshot's splits, or "
                    "whose labels disagree")
    groups: int
    images: int = Field(description="images in those groups")
    examples: list[list[int]] = Field(description="image ids of the first groups (10 at most, 8 images each)")


class DuplicateReport(Reply):
    """Exact and near duplicates crossing sources or splits, and groups whose labels disagree."""

    images: int = Field(description="live images examined")
    snapshot: str | None = Field(None, description="the snapshot whose splits are compared (null: none yet); "
                                                   "absent when there are no images")
    rows: list[DuplicateRow] = Field(description="kind x what; empty when there are no images; no 'cross split' "
                                                 "rows without a snapshot")


class DuplicatesReply(DuplicateReport):
    """The duplicate report, computed now or the newest stored one (then with `as_of`)."""

    as_of: AsOf | None = Field(None, description="present only when the report is a stored one")


class NoiseSource(Reply):
    """Estimated label noise among one source's images."""

    source: str = Field(description="the source's name ('#id' when it is gone)")
    n: int = Field(description="labels examined")
    noise: float = Field(description="estimated share of wrong labels, 0..1")


class NoiseClass(Reply):
    """Estimated label noise among one class's labels (in today's classes)."""

    class_id: int
    class_: str = Field(alias="class", description="the class's name ('#id' when it is gone)")
    n: int = Field(description="labels given this class (expected, rounded); for sets, images carrying it")
    noise: float = Field(description="estimated share of wrong labels, 0..1; for sets, expected errors (tags missing "
                                     "plus tags wrong) per carried tag")
    missing: float | None = Field(None, description="sets: estimated share of the images showing the class whose "
                                                    "set lacks it")
    wrong: float | None = Field(None, description="sets: estimated share of the images carrying it that do not "
                                                  "show it")


class ConfusedPair(Reply):
    """Two classes the estimate confuses most, with how often each is labelled as the other."""

    a: int = Field(description="a class id")
    b: int = Field(description="the other class id")
    count: int = Field(description="expected labels given one of the two whose true class is the other")
    a_as_b: int = Field(description="expected labels given a whose true class is b")
    b_as_a: int = Field(description="expected labels given b whose true class is a")
    share: float = Field(description="count over the two classes' labels")
    a_name: str
    b_name: str
    a_description: str
    b_description: str
    active: bool = Field(description="both classes are still in the taxonomy (not retired)")


class NoiseEstimate(Reply):
    """The label-noise estimate of the newest checked train job, followed to today's classes."""

    job: int = Field(description="the train job whose out-of-sample predictions it comes from")
    examined: int = Field(description="labels examined")
    neighbours: bool = Field(description="whether out-of-sample neighbours were weighed")
    informative: bool = Field(description="whether the evidence can tell right labels from wrong ones at all")
    noise: float = Field(description="estimated share of wrong labels overall, 0..1")
    per_source: list[NoiseSource] = Field(description="as the job saw the sources")
    per_class: list[NoiseClass] = Field(description="noisiest first")
    pairs: list[ConfusedPair] = Field(description="the most confused class pairs, most confusions first (6 at most)")
    class_ids: list[int] | None = Field(None, description="the classes `joint` is indexed by, in today's classes; "
                                                          "absent for an estimate stored before it was kept")
    joint: list[list[float]] | None = Field(None, description="expected counts of (given class, true class); absent "
                                                              "like `class_ids`")
    changed: bool = Field(description="whether a class merged since the job (numbers followed to today's classes)")
    multi_label: bool = Field(False, description="a multi-label job: per (image, class) errors, no confused pairs")


class StatusCounts(Reply):
    """Flags of one kind per status."""

    open: int
    pending: int = Field(description="audits waiting for their blind answer")
    resolved: int
    cancelled: int


class FlagCounts(Reply):
    """Flags per kind and status, and resolved flags per resolution."""

    by_kind: dict[FlagKind, StatusCounts] = Field(description="every kind, zeros included")
    resolutions: dict[ResolutionKey, int] = Field(description="resolved flags per resolution (only those seen)")


class AuditWeek(Reply):
    """Audit agreement for labels first given in one week."""

    week: str = Field(description="the Monday of the original label's week (ISO date); '' when unknown")
    n: int = Field(description="answered audits")
    agreement: float = Field(description="share of audits that repeat the label, 0..1")
    kappa: float = Field(description="Cohen's kappa")


class AuditClass(Reply):
    """Audit agreement for labels first given one class."""

    class_: str = Field(alias="class", description="the class's name ('#id' when it is gone)")
    class_id: int = Field(description="today's class (-1: none)")
    n: int = Field(description="answered audits whose first label is the class")
    agreement: float = Field(description="share of those the audit repeats, 0..1")
    kappa: float = Field(description="one-vs-rest Cohen's kappa of 'is this class'")


class AuditStats(Reply):
    """Blind re-label audits: agreement and Cohen's kappa overall, per week of the original label and per class."""

    n: int = Field(description="answered audits")
    pending: int = Field(description="audits waiting for their blind answer")
    agreement: float | None = Field(description="share of audits that repeat the label; null: none answered")
    kappa: float | None = Field(description="Cohen's kappa; null: none answered")
    weeks: list[AuditWeek] = Field(description="oldest week first")
    classes: list[AuditClass] = Field(description="least agreement first")


# Named apart from schemas/snapshots.py's EffectiveSize and LibraryCounts (the same shapes): two models of one
# name get module-qualified names in the OpenAPI document.
class QualityEffectiveSize(Reply):
    """The dataset's effective size and what it is counted from (app.snapshots.health)."""

    size: int = Field(description="near-duplicate groups among the confident, unflagged labelled images")
    raw: int = Field(description="labelled images")
    confident: int = Field(description="labelled images with annotator confidence at or above `confident_at`")
    unflagged: int = Field(description="labelled images without an open flag")
    non_duplicate: int = Field(description="near-duplicate groups among all labelled images")


class HardCases(Reply):
    """Labels marked as difficult and labels given unsure."""

    tagged: int = Field(description="labels with at least one difficulty tag")
    share: float = Field(description="tagged over total, 0..1")
    per_tag: dict[str, int] = Field(description="tag -> labels carrying it, most first")
    total: int = Field(description="labelled images")
    unsure: int = Field(description="labels with confidence below `confident_at`")
    confident_at: float = Field(description="the confidence from which a label counts as confident")


class QualityLibraryCounts(Reply):
    """How many images there are, labelled or not, and excluded."""

    images: int
    labelled: int
    unlabelled: int
    excluded: int


class TrendPoint(Reply):
    """One snapshot's out-of-sample accuracy per source (its newest succeeded train job)."""

    snapshot: int
    snapshot_name: str
    images: int = Field(description="images in the snapshot")
    job: int = Field(description="the train job measured")
    finished_at: str | None = Field(description="when it finished (ISO time)")
    accuracy: dict[str, float] = Field(description="source name -> out-of-sample accuracy, 0..1")
    gap: float | None = Field(description="best source's accuracy minus the worst's; null with fewer than two")


class SourceTrend(Reply):
    """Out-of-sample accuracy per source for each snapshot, oldest first (the last 24)."""

    sources: list[str] = Field(description="every source measured in any point, the weakest in the newest first")
    points: list[TrendPoint]


class QualityReport(Reply):
    """Everything the quality page shows. Past `quality_live_max` images the duplicates, hard cases and effective
    size are the newest stored report's (see `as_of`)."""

    noise: NoiseEstimate | None = Field(description="null until a train job with out-of-sample predictions succeeded")
    multi: bool = Field(False, description="a multi-label taxonomy: labels are sets of classes")
    flags: FlagCounts
    audits: AuditStats
    duplicates: DuplicateReport | None = Field(description="null: a big dataset with no stored report yet")
    effective: QualityEffectiveSize | None = Field(description="null like `duplicates`")
    hard_cases: HardCases | None = Field(description="null like `duplicates`")
    library: QualityLibraryCounts
    source_trend: SourceTrend
    as_of: AsOf | None = Field(description="null when the whole-dataset numbers are computed now (a small dataset)")


class RefreshQueued(Reply):
    """The report job that recomputes the stored duplicate and health reports (a new one, or the one waiting)."""

    job: int
    status: JobStatus


class MislabelCheck(Reply):
    """What checking a job's labels flagged."""

    job: int
    examined: int = Field(description="labels with out-of-sample predictions")
    issues: int = Field(description="suspected mislabels")
    created: int = Field(description="new flags")
    raised: int = Field(description="open flags whose score rose")
    unchanged: int = Field(description="open flags left as they were")
    kept: int = Field(description="suspects a reviewer kept (or called ambiguous) under the same label, at no higher "
                                  "score: not flagged again")
    changed: int = Field(description="suspects relabelled or excluded since the snapshot: skipped")
    estimated_noise: float = Field(description="estimated share of wrong labels, 0..1 (4 decimals)")
    neighbours: bool = Field(description="whether out-of-sample neighbours were weighed")


class DuplicateFlagging(Reply):
    """What a scan for near-duplicates with disagreeing labels flagged and cancelled."""

    groups: int = Field(description="near-duplicate groups whose labels disagree")
    images: int = Field(description="images in them")
    created: int = Field(description="new flags")
    raised: int = Field(description="open flags whose score rose")
    unchanged: int = Field(description="open flags left as they were")
    kept: int = Field(description="images a reviewer kept (or called ambiguous) under the same label, at no higher "
                                  "score: not flagged again")
    cancelled: int = Field(description="open flags whose conflict is gone")


class AuditPick(Reply):
    """What picking labels for a blind audit did."""

    eligible: int = Field(description="current labels old enough (not excluded, class not retired)")
    target: int = Field(description="share x eligible, rounded")
    already: int = Field(description="eligible labels already audited or waiting for one")
    picked: int = Field(description="new audits waiting for their blind answer")
