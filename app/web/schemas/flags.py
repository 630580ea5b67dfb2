"""What the flag routes answer (app/web/routes/flags.py): flags as the API shows them (app.quality.flags.view),
a page of them, what resolving or undoing a decision did, and a blind audit answer."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.db.vocab import FlagKind, FlagResolution, FlagStatus
from app.web.schemas import Reply
from app.web.schemas.images import LabelEvent

DETAILS = (
    "Kind-specific facts, as the check that raised the flag wrote them. "
    "mislabel: job (the train job), snapshot_event_id, label_event_id (the label judged), quality, wrong, "
    "given_prob, top ([{class_id, prob}], the job's three likeliest classes), neighbours (whether neighbours' "
    "labels were weighed), use_confidence. "
    "duplicate: group (image ids of the near-duplicate group, its first members), labels ({image id: class id}), "
    "via (\"phash\"), label_event_id. "
    "audit: phase (pending | agreement | disagreement), label_event_id, class_id and labelled_at (the label "
    "audited); once answered: audit_event_id, audit_class_id, audit_confidence, agree, answered_at, and "
    "relabelled_since_pick when the image was relabelled between the pick and the answer. "
    "rereview: reason, from_class_id, version (the taxonomy version number), classes (the class ids offered; "
    "null: any class); after \"none of these\": offered (what was offered) and none_of_these_by. "
    "outlier: analysis and first_analysis (analyse jobs), space (the embedding job), neighbours (image ids) and "
    "distances, class (the class compared with; null: all images), compared_with (label | prediction | all), "
    "distance, usual, z, label_event_id, labels_as_of. "
    "mislabel and duplicate flags raised again carry raised_from (the earlier score) or previously_kept (the flag "
    "whose keep they overrule). Any kind: label_event_id (after a decision: the label it left), via_flag (closed "
    "by the decision on that flag), cancelled_because, undone ([{resolution, by, at, event, undone_by, "
    "undone_at}], decisions taken back)."
)


class FlagView(Reply):
    """One flag: an image a person should look at again, why, and what became of it."""

    id: int
    image: int
    kind: FlagKind
    score: float | None = Field(description="0..1, higher = surer; reviews go highest first. Null for re-reviews "
                                            "and audits still waiting for their answer")
    given: str | None = Field(description="the image's current class; null: unlabelled")
    suggested: str | None = Field(description="the class the check proposes; null: none")
    status: FlagStatus
    details: dict[str, Any] = Field(description=DETAILS)
    created_at: str
    resolution: FlagResolution | None = Field(description="the decision (or cancelled); null while open or pending")
    resolved_by: str | None = Field(description="who decided; null while open, and for flags cancelled because "
                                                "their cause went away")
    resolved_at: str | None
    resolution_event: int | None = Field(description="the label event that carried the decision; null when it "
                                                     "wrote none (ambiguous, exclude, a cancellation)")


class FlagPage(Reply):
    """A page of flags matching the filters, highest score first (then oldest)."""

    items: list[FlagView]
    total: int = Field(description="how many flags match, exactly")


class Resolved(Reply):
    """What a review decision did."""

    flag: FlagView = Field(description="the flag, now resolved")
    event: int | None = Field(description="the 'review' label event written (keep, relabel); null for ambiguous, "
                                          "exclude, or keeping an unlabelled outlier")
    closed: list[int] = Field(description="the image's other open flags the same decision closed")


class Undone(Reply):
    """What taking back a review decision did."""

    flag: FlagView = Field(description="the flag, open again")
    event: int | None = Field(description="the 'undo' label event restoring the earlier label; null when the "
                                          "decision wrote no label event (ambiguous, exclude)")
    reopened: list[int] = Field(description="the flags reopened: this one and those the same decision closed")


class AuditAnswer(LabelEvent):
    """The blind answer as stored: a label event of kind "audit" (the image's label stays)."""

    image: int
