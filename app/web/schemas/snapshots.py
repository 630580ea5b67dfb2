"""What the snapshot routes answer (app/web/routes/snapshots.py): snapshots, their items, health reports
(a snapshot's or the live dataset's), diffs between two snapshots, and the report jobs that compute them.

Past `quality_live_max` images a health report or a diff is read from a stored report job and, until one is
stored, the route answers HTTP 202 with a `...Pending` body instead. Keys that only some answers carry
(`queued`, `as_of`, a diff's `job`) are optional here and the routes leave them out when unset
(`response_model_exclude_unset`), so a model never adds a key the domain did not send.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from app.db.vocab import JobStatus, Split
from app.web.schemas import Reply

# Snapshots --------------------------------------------------------------------------------------------------


class SnapshotFilter(Reply):
    """The filter a snapshot was frozen with, normalised: sources and classes by name and by id."""

    sources: list[str] = Field(description="source names; empty: all")
    source_ids: list[int]
    classes: list[str] = Field(description="class names as they were at freezing; empty: all active classes")
    class_ids: list[int]
    min_confidence: float | None
    exclude_tags: list[str]
    exclude_flagged: bool = Field(description="images with an open flag were left out")
    exclude_ambiguous: bool = Field(description="images a reviewer marked ambiguous were left out")
    exclude_excluded: bool = Field(description="images excluded from the dataset were left out")
    labelled_before: str | None = Field(description="only labels made before this moment (ISO 8601, UTC)")


class SplitSettings(Reply):
    """How a snapshot was split: fractions, seed and folds."""

    val: float = Field(description="fraction of images in val")
    test: float = Field(description="fraction of images in test")
    seed: int
    folds: int = Field(description="folds over all images, for out-of-sample predictions")


class Snapshot(Reply):
    """A frozen snapshot: its name, hash, filter, split settings and split sizes."""

    id: int
    name: str
    hash: str = Field(description="content hash of its images, classes, splits and folds")
    taxonomy_version: int = Field(description="the number of the taxonomy version it was frozen under")
    count: int = Field(description="images in it")
    created_at: str
    filter: SnapshotFilter
    split: SplitSettings
    splits: dict[Split, int] = Field(description="images per split")
    classes: list[str] = Field(description="its class names as they were at freezing")
    mode: Literal["single-label", "multi-label"] = Field(
        "single-label", description="multi-label: each item carries a set of classes (`classes`)")


class RereviewLeftOut(Reply):
    """Images waiting in re-review that a snapshot could not take (they have no label to freeze)."""

    count: int
    link: str = Field(description="the page of the re-review queue")


class SnapshotDetail(Snapshot):
    """One snapshot, with how many images waiting in re-review it left out."""

    rereview_left_out: RereviewLeftOut


class CreatedSnapshot(SnapshotDetail):
    """A snapshot just frozen, and the report jobs queued for it when it is big."""

    queued: list[int] | None = Field(None, description="past `quality_live_max` images: the report jobs queued "
                                                       "(its health; its diff with the snapshot before); absent "
                                                       "otherwise")


class SnapshotList(Reply):
    """Every snapshot, newest first."""

    items: list[Snapshot]


# Items: pages of up to 50,000; plain field types, no validators (the page is validated item by item).


class SnapshotItem(Reply):
    """One image of a snapshot with its frozen class, split and fold."""

    image: int = Field(description="the image id")
    class_: str | None = Field(alias="class", description="its class name as frozen; null in a multi-label "
                                                          "snapshot")
    classes: list[str] | None = Field(None, description="a multi-label snapshot: its set as frozen, within the "
                                                        "snapshot's classes (empty: none of these)")
    split: Split
    fold: int
    label_event: int = Field(description="the label event the snapshot took")


class SnapshotItems(Reply):
    """A page of a snapshot's images in image id order."""

    items: list[SnapshotItem]
    total: int = Field(description="images in the snapshot")
    next: int | None = Field(description="the next page's `after` cursor (the last image id); null on the last page")


# Health reports ---------------------------------------------------------------------------------------------


class ClassHealth(Reply):
    """One class's numbers in a health report."""

    id: int = Field(description="the class id")
    name: str
    count: int
    share: float = Field(description="its share of all images, 0..1")
    tagged: int = Field(description="its images whose label carries a difficulty tag")
    effective: int = Field(description="near-duplicate groups among its confident, unflagged images")
    sources: dict[str, int] = Field(description="images per source name")
    splits: dict[Split, int] = Field(description="images per split, splits with none left out; empty for the live "
                                                 "dataset")


class Bin(Reply):
    """One bar of a histogram."""

    label: str
    count: int


class ConfidenceHealth(Reply):
    """How sure annotators were."""

    bins: list[Bin]
    unknown: int = Field(description="labels with no confidence")
    mean: float | None = Field(description="null: no label has one")


class TagHealth(Reply):
    """Difficulty tags: how many images carry one, and how often each is used."""

    tagged: int
    share: float = Field(description="share of images with a tag, 0..1")
    per_tag: dict[str, int] = Field(description="tag -> images, most used first")


class TimeHealth(Reply):
    """How long labelling took."""

    bins: list[Bin]
    unknown: int = Field(description="labels with no time")
    median_ms: float | None = Field(description="null: no label has a time")
    p90_ms: float | None


class EffectiveSize(Reply):
    """The effective size and the counts it is made from."""

    size: int = Field(description="near-duplicate groups among the confident, unflagged images")
    raw: int = Field(description="every image")
    confident: int = Field(description="images labelled with confidence >= `definitions.confident_at`")
    unflagged: int = Field(description="images with no open flag (today's, or as of a stored report)")
    non_duplicate: int = Field(description="near-duplicate groups among all images")


class Leakage(Reply):
    """Near-duplicate groups whose images fall into more than one split."""

    groups: int
    images: int
    examples: list[list[int]] = Field(description="image ids of the first leaking groups (at most 10 of each)")


class SmallClassWarning(Reply):
    """A class with fewer images than folds."""

    kind: Literal["small_class"]
    class_: str = Field(alias="class")
    count: int
    folds: int
    message: str


class NoTrainWarning(Reply):
    """A class none of whose images is in train."""

    kind: Literal["no_train"]
    class_: str = Field(alias="class")
    count: int
    message: str


class LeakageWarning(Leakage):
    """Near-duplicates that span splits (the report's `leakage`, as a warning)."""

    kind: Literal["leakage"]
    message: str


HealthWarning = Annotated[SmallClassWarning | NoTrainWarning | LeakageWarning, Field(discriminator="kind")]


class HealthDefinitions(Reply):
    """The thresholds the report used."""

    confident_at: float = Field(description="the confidence from which a label counts as confident")
    near_duplicate_bits: int = Field(description="pHashes at most this many bits apart are near-duplicates")
    folds: int = Field(description="classes with fewer images get a warning")


class ClassPair(Reply):
    """Two classes on the same images."""

    classes: list[str] = Field(description="the two names")
    count: int = Field(description="images carrying both")


class SetNumbers(Reply):
    """What only a multi-label report has."""

    none: int = Field(description="images answered 'none of these' (an empty set)")
    mean_size: float = Field(description="classes per image, on average")
    per_size: dict[int, int] = Field(description="set size -> images")
    together: list[ClassPair] = Field(description="the pairs of classes that come together most, most first")


class HealthReport(Reply):
    """The health numbers of a set of labelled images: balance, confidence, sources, hard cases, effective size,
    leakage, warnings. In a multi-label taxonomy an image counts once for each class in its set (`sets` adds
    what only sets have)."""

    total: int = Field(description="labelled images described")
    classes: list[ClassHealth] = Field(description="largest first")
    sources: list[str] = Field(description="source names, sorted")
    splits: dict[Split, int] | None = Field(description="images per split; null for the live dataset")
    confidence: ConfidenceHealth
    tags: TagHealth
    time: TimeHealth
    effective: EffectiveSize
    leakage: Leakage | None = Field(description="null for the live dataset (no splits) or an empty snapshot")
    warnings: list[HealthWarning]
    definitions: HealthDefinitions
    sets: SetNumbers | None = Field(None, description="multi-label only")


class SnapshotAsOf(Reply):
    """Where a big snapshot's stored health report comes from, and how old its flags are."""

    job: int | None = Field(description="the report job whose result is shown; null: none stored yet")
    at: str | None = Field(description="when it counted the flags")
    flags_since: int | None = Field(description="flags on the snapshot's images opened, resolved or cancelled since")
    refreshing: int | None = Field(description="a report job queued or running for it")
    failed: int | None = Field(description="the newest report job that failed or was cancelled since the one shown")


class SnapshotHealth(HealthReport):
    """A snapshot's health report; past `quality_live_max` images the stored one, with `as_of`."""

    as_of: SnapshotAsOf | None = Field(None, description="only on a stored report (absent when computed per view)")


class SnapshotHealthPending(Reply):
    """HTTP 202: a big snapshot's health report is not stored yet."""

    pending: int | None = Field(description="the report job computing it; null: none (POST .../health/refresh)")
    as_of: SnapshotAsOf
    message: str


class LibraryCounts(Reply):
    """The whole library's image counts."""

    images: int
    labelled: int
    unlabelled: int
    excluded: int


class ChangesSince(Reply):
    """Changes to the data since a stored report was computed."""

    labels: int = Field(description="label events")
    images: int = Field(description="images imported")
    exclusions: int = Field(description="exclusion changes")
    total: int


class LiveAsOf(Reply):
    """Where the live dataset's stored health report comes from, and what changed since."""

    job: int | None = Field(description="the report job whose result is shown")
    at: str | None = Field(description="when it read the data")
    since: ChangesSince | None
    refreshing: int | None = Field(description="a report job queued or running")


class LiveHealth(HealthReport):
    """The health report of today's labels, with the library's counts; past `quality_live_max` images the newest
    stored one, with `as_of`."""

    library: LibraryCounts
    as_of: LiveAsOf | None = Field(None, description="only on a stored report (absent when computed here)")


class ReportQueued(Reply):
    """The report job queued (or already waiting) to compute a health report or a diff."""

    job: int
    status: JobStatus


# Diffs ------------------------------------------------------------------------------------------------------


class SnapshotRef(Reply):
    """A snapshot named in a diff."""

    id: int
    name: str
    hash: str


class DiffCounts(Reply):
    """Exact counts of a diff, whatever the page."""

    added: int
    removed: int
    relabelled: int
    moved: int
    unchanged: int


class Relabelled(Reply):
    """An image whose class changed."""

    image: int
    from_: str = Field(alias="from", description="its class in the first snapshot")
    to: str = Field(description="its class in the second")


class Moved(Reply):
    """An image that changed split."""

    image: int
    from_: Split = Field(alias="from")
    to: Split


class SnapshotDiff(Reply):
    """What changed from one snapshot to another: exact counts, and a page of each list in image id order."""

    from_: SnapshotRef = Field(alias="from")
    to: SnapshotRef
    counts: DiffCounts
    added: list[int] = Field(description="image ids only in the second snapshot")
    removed: list[int] = Field(description="image ids only in the first")
    relabelled: list[Relabelled]
    moved: list[Moved]
    limit: int
    offset: int
    job: int | None = Field(None, description="the report job it was read from; absent when computed per view")


class SnapshotDiffPending(Reply):
    """HTTP 202: the diff of two big snapshots is not stored yet."""

    pending: int | None = Field(description="the report job computing it; null: none (POST here to queue one)")
    failed: int | None = Field(description="the newest report job for it that failed or was cancelled")
    message: str
