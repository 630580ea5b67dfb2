"""Tables only. Domain logic lives in the area packages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db.base import Base
from app.timeutil import utcnow


class Source(Base):
    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SourceCount(Base):
    """Per source: its images, how many are labelled, excluded, and waiting in the unlabelled queue.

    Kept exact by triggers on sources and images (migration 0008), for pages that
    show counts at a million images without counting them.
    """

    __tablename__ = "source_counts"

    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True)
    images: Mapped[int] = mapped_column(Integer)
    labelled: Mapped[int] = mapped_column(Integer)
    excluded: Mapped[int] = mapped_column(Integer)
    waiting: Mapped[int] = mapped_column(Integer)


class ImportBatch(Base):
    __tablename__ = "import_batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    origin: Mapped[str] = mapped_column(String(20))  # cli | upload
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Image(Base):
    __tablename__ = "images"
    # Keyset pages: a filter plus "id > cursor ORDER BY id" is one range of an index that ends in id,
    # and a page's capped count reads only that index.
    __table_args__ = (
        Index("ix_images_source_id_id", "source_id", "id"),
        Index("ix_images_labelled_id", "labelled", "id"),
        Index("ix_images_source_id_labelled_id", "source_id", "labelled", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    stored_path: Mapped[str] = mapped_column(String(200))
    original_filename: Mapped[str] = mapped_column(String(1000))
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id"))
    batch_id: Mapped[int] = mapped_column(ForeignKey("import_batches.id"))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(10))
    mode: Mapped[str] = mapped_column(String(10))
    byte_size: Mapped[int] = mapped_column(Integer)
    # 64-bit DCT perceptual hash stored as a signed integer (SQLite has no unsigned).
    phash: Mapped[int] = mapped_column(BigInteger)
    imported_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    excluded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("0"))
    # Has a current label with a class: kept by triggers on current_labels (migration 0006), read-only here.
    labelled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("0"))

    source: Mapped[Source] = relationship(lazy="joined")


class TaxonomyVersion(Base):
    __tablename__ = "taxonomy_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_versions.id"))
    message: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # single-label | multi-label: inherited from the parent version; only the set-mode operation changes it.
    mode: Mapped[str] = mapped_column(String(20), default="single-label", server_default="single-label")


class LabelClass(Base):
    __tablename__ = "classes"
    __table_args__ = (
        # Names and shortcuts are unique among the classes in use; a retired
        # class keeps its name in history without blocking a new one.
        Index("uq_classes_active_name", "name", unique=True, sqlite_where=text("retired_version_id IS NULL"),
              postgresql_where=text("retired_version_id IS NULL")),
        Index(
            "uq_classes_active_shortcut",
            "shortcut",
            unique=True,
            sqlite_where=text("retired_version_id IS NULL AND shortcut IS NOT NULL"),
            postgresql_where=text("retired_version_id IS NULL AND shortcut IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    shortcut: Mapped[str | None] = mapped_column(String(1))
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_version_id: Mapped[int] = mapped_column(ForeignKey("taxonomy_versions.id"))
    retired_version_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_versions.id"))
    replaced_by_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))


class TaxonomyChange(Base):
    __tablename__ = "taxonomy_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("taxonomy_versions.id"), index=True)
    op: Mapped[str] = mapped_column(String(20))
    # The classes involved and the values before/after, enough to show a diff.
    detail: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Tag(Base):
    """A difficulty tag offered on the labelling page (blurred, occluded, ...)."""

    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    key: Mapped[str | None] = mapped_column(String(1))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("1"))


class LabelEvent(Base):
    """One labelling decision. Append-only: triggers refuse UPDATE and DELETE."""

    __tablename__ = "label_events"
    __table_args__ = (Index("ix_label_events_image_id_id", "image_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    # NULL class: the image went back to unlabelled (an undo of its first label).
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"), index=True)
    confidence: Mapped[float | None] = mapped_column(Float)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(Text, default="")
    annotator: Mapped[str] = mapped_column(String(100), default="")
    taxonomy_version_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_versions.id"))
    kind: Mapped[str] = mapped_column(String(20))
    ms: Mapped[int | None] = mapped_column(Integer)
    reverts_event_id: Mapped[int | None] = mapped_column(ForeignKey("label_events.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # A multi-label answer: its classes are its label_event_classes rows (none: "none of these"); class_id NULL.
    multi: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("0"))


class LabelEventClass(Base):
    """One class of a multi-label event, with its own confidence. Append-only, as label_events."""

    __tablename__ = "label_event_classes"

    event_id: Mapped[int] = mapped_column(ForeignKey("label_events.id"), primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), primary_key=True, index=True)
    confidence: Mapped[float | None] = mapped_column(Float)


class CurrentLabel(Base):
    """The latest label event per image, materialised for fast queues and filters."""

    __tablename__ = "current_labels"
    __table_args__ = (Index("ix_current_labels_class_id_image_id", "class_id", "image_id"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("label_events.id"))
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    # The current event is a multi-label answer (images.labelled: a class, or a set; migration 0015).
    multi: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("0"))


class CurrentLabelClass(Base):
    """One class of an image's current multi-label set. Kept by triggers on current_labels (migration 0015),
    for the has / lacks / exactly filters and class_counts."""

    __tablename__ = "current_label_classes"
    __table_args__ = (Index("ix_current_label_classes_class_id_image_id", "class_id", "image_id"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), primary_key=True)
    confidence: Mapped[float | None] = mapped_column(Float)


class CurrentLabelTag(Base):
    """One tag of an image's current label event. Kept by triggers on current_labels (migration 0014), for the
    tag filter at a million images: an index range, not the JSON of every current label."""

    __tablename__ = "current_label_tags"
    __table_args__ = (Index("ix_current_label_tags_tag_image_id", "tag", "image_id"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(Text, primary_key=True)


class CurrentConfidence(Base):
    """The confidence of an image's current label event, where it has one. Kept by triggers on current_labels
    (migration 0014), for the confidence filters at a million images."""

    __tablename__ = "current_confidences"
    __table_args__ = (Index("ix_current_confidences_confidence_image_id", "confidence", "image_id"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    confidence: Mapped[float] = mapped_column(Float)


class ClassCount(Base):
    """Per class: its current labels. Kept exact by triggers on classes and current_labels (migration 0011),
    for the taxonomy page at a million images."""

    __tablename__ = "class_counts"

    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"), primary_key=True)
    labels: Mapped[int] = mapped_column(Integer)


class ClassRevision(Base):
    """A class's name and definition from a version on: what a label meant when it was made."""

    __tablename__ = "class_revisions"
    __table_args__ = (Index("ix_class_revisions_class_id_version_id", "class_id", "version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("taxonomy_versions.id"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")


class VersionLabelCount(Base):
    """Current labels per class right after a version was made (for the versions page)."""

    __tablename__ = "version_label_counts"

    version_id: Mapped[int] = mapped_column(ForeignKey("taxonomy_versions.id"), primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


class ClassExample(Base):
    """An image pinned to a class definition as "this" or "not this"."""

    __tablename__ = "class_examples"

    id: Mapped[int] = mapped_column(primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    kind: Mapped[str] = mapped_column(String(10))  # this | not_this
    added_version_id: Mapped[int] = mapped_column(ForeignKey("taxonomy_versions.id"))
    removed_version_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_versions.id"))


class Flag(Base):
    """Something a person should look at again: a likely mislabel, a re-review after a split, ..."""

    __tablename__ = "flags"
    __table_args__ = (
        Index("ix_flags_status_kind", "status", "kind"),
        # The next flag to review (highest score first, then oldest) in two index look-ups a kind instead of
        # sorting every open flag (20 ms with 30,000 open at 1,000,000 images): app.quality.evidence.next_flag.
        Index("ix_flags_status_kind_score_id", "status", "kind", "score", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # mislabel | duplicate | audit | rereview
    score: Mapped[float | None] = mapped_column(Float)
    suggested_class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | resolved | cancelled
    # Kind-specific facts, e.g. for rereview: the version and the classes offered.
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    created_version_id: Mapped[int | None] = mapped_column(ForeignKey("taxonomy_versions.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    resolution: Mapped[str | None] = mapped_column(String(20))  # keep | relabel | ambiguous | exclude | cancelled
    resolution_event_id: Mapped[int | None] = mapped_column(ForeignKey("label_events.id"))
    resolved_by: Mapped[str | None] = mapped_column(String(100))


class FlagCount(Base):
    """Per kind, status and resolution ('' for none): how many flags. Kept exact by triggers on flags (migration
    0013), for the quality page at a million images."""

    __tablename__ = "flag_counts"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    resolution: Mapped[str] = mapped_column(String(20), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class Snapshot(Base):
    """A frozen, curated dataset. Append-only: triggers refuse UPDATE and DELETE."""

    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    taxonomy_version_id: Mapped[int] = mapped_column(ForeignKey("taxonomy_versions.id"))
    filter: Mapped[dict] = mapped_column(JSON)  # the normalised filter that chose the images
    split: Mapped[dict] = mapped_column(JSON)  # {"val", "test", "seed", "folds"}
    seed: Mapped[int] = mapped_column(Integer)
    # The classes' names when frozen ({"id", "name"}, sorted by name): renames never reach a snapshot.
    classes: Mapped[list] = mapped_column(JSON)
    hash: Mapped[str] = mapped_column(String(64), index=True)
    count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class SnapshotItem(Base):
    """One image of a snapshot with the exact label event used and its split and fold."""

    __tablename__ = "snapshot_items"
    __table_args__ = {"sqlite_with_rowid": False}

    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    label_event_id: Mapped[int] = mapped_column(ForeignKey("label_events.id"))
    # NULL in a multi-label snapshot: the item's set is its label event's classes (app.snapshots.sets).
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    split: Mapped[str] = mapped_column(String(5))  # train | val | test
    fold: Mapped[int] = mapped_column(Integer)


class Job(Base):
    """A background task for the worker (training). Status: queued, running, succeeded, failed, cancelled."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), default="train")
    snapshot_id: Mapped[int | None] = mapped_column(ForeignKey("snapshots.id"))  # None: an embed job, an analysis
    config: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    worker: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("0"))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    device: Mapped[str | None] = mapped_column(String(20))
    metrics: Mapped[dict | None] = mapped_column(JSON)
    final: Mapped[dict | None] = mapped_column(JSON)
    notes: Mapped[list] = mapped_column(JSON, default=list)
    artifacts: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class JobEpoch(Base):
    """Per-epoch metrics a running job streams (one row per stage and epoch)."""

    __tablename__ = "job_epochs"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    stage: Mapped[str] = mapped_column(String(20))
    epoch: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class JobLog(Base):
    __tablename__ = "job_logs"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Prediction(Base):
    """Class probabilities for one image from one job.

    role: "oof" (out of sample: from a fold model that never saw the image),
    "suggestion" (an unlabelled image, final model), "holdout" (a held-out source).
    """

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_image_id", "image_id"),
        # The most-uncertain-first queue walks one job's suggestions in margin order.
        Index("ix_predictions_job_id_role_margin", "job_id", "role", "margin", "image_id"),
        {"sqlite_with_rowid": False},
    )

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(12))
    out_of_sample: Mapped[bool] = mapped_column(Boolean)
    probs: Mapped[list] = mapped_column(JSON)
    # Top-1 minus top-2 probability: small means uncertain (the "most uncertain first" queue).
    margin: Mapped[float] = mapped_column(Float)


class User(Base):
    """A person who logs in (required beyond loopback). role: labeller | reviewer | admin."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id, with its parameters and salt
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class UserSession(Base):
    """A browser's login. Only the sha256 of the cookie's random id is stored."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class ApiToken(Base):
    """A named token a script sends as `Authorization: Bearer ...`; acts as its user. Only its sha256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)


class LoginAttempt(Base):
    """A login attempt not (yet) known to have succeeded; recent ones lock logins for a while."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_username_ip_created_at", "username", "ip", "created_at"),
        Index("ix_login_attempts_ip_created_at", "ip", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100))  # as typed, lower-cased: unknown names count too
    ip: Mapped[str] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class BulkAction(Base):
    """One decision applied to a selection (label, exclude, include), or the undo of one. Append-only: an
    action is undone by a later row naming it in `undoes_id`, never by changing it."""

    __tablename__ = "bulk_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(20))  # label | exclude | include
    undoes_id: Mapped[int | None] = mapped_column(ForeignKey("bulk_actions.id"), index=True)
    class_id: Mapped[int | None] = mapped_column(ForeignKey("classes.id"))
    reason: Mapped[str] = mapped_column(Text, default="")
    annotator: Mapped[str] = mapped_column(String(100), default="")
    # How the images were chosen: {"images": n} or {"filter": {...}}, as the request gave it.
    selection: Mapped[dict] = mapped_column(JSON, default=dict)
    count: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[int] = mapped_column(Integer, default=0)  # an undo's images changed since the action
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class BulkLabelItem(Base):
    """A label event a bulk action wrote, and the event it replaced (what an undo restores). Append-only."""

    __tablename__ = "bulk_label_items"
    __table_args__ = {"sqlite_with_rowid": False}

    action_id: Mapped[int] = mapped_column(ForeignKey("bulk_actions.id"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), primary_key=True, index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("label_events.id"))
    before_event_id: Mapped[int | None] = mapped_column(ForeignKey("label_events.id"))


class ExclusionEvent(Base):
    """An image taken out of the dataset or put back. Append-only; images.excluded is the latest one's state."""

    __tablename__ = "exclusion_events"
    __table_args__ = (Index("ix_exclusion_events_image_id_id", "image_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    excluded: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text, default="")
    annotator: Mapped[str] = mapped_column(String(100), default="")
    bulk_action_id: Mapped[int | None] = mapped_column(ForeignKey("bulk_actions.id"), index=True)
    flag_id: Mapped[int | None] = mapped_column(ForeignKey("flags.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
