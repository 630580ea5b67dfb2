"""What the label routes answer (app/web/routes/labels.py): a new label event, bulk actions (their preview,
their apply, their undo, the list of recent ones), difficulty tags, and a labelling queue.

`POST /api/labels/bulk` answers in two ways: 201 with the bulk action it wrote (`BulkApplied`), or, for a
`dry_run`, 200 with what would change (`BulkLabelPreview` or `BulkExclusionPreview`, told apart by `action`),
sent as a ready JSONResponse and so named under `responses=`. A bulk action's `labelled` and its
selection's keys are there only for some actions; the bulk routes leave unset keys out
(`response_model_exclude_unset`), so a model never adds a key the domain did not send.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Discriminator, Field

from app.web.schemas import Reply
from app.web.schemas.images import Label, LabelEvent

# app.labelling.bulk.ACTIONS: stored in bulk_actions.action
BulkActionName = Literal["label", "exclude", "include", "add", "remove"]
# app.labelling.queries.QUEUES
QueueName = Literal["unlabelled", "rereview", "audit"]
# app.labelling.orders.ORDERS
QueueOrder = Literal["import", "uncertain", "diverse", "weakest-source"]

# One label event ---------------------------------------------------------------------------------------------


class RecordedLabel(LabelEvent):
    """The label event just appended, as the image's history shows it, with the image's current label."""

    image: int
    label: Label | None = Field(description="the image's current label now (another labeller's, if theirs came "
                                            "after); null: unlabelled")


# Bulk actions ------------------------------------------------------------------------------------------------


class ClassCount(Reply):
    """How many of the selected images have a class now."""

    class_: str | None = Field(alias="class", description="null: unlabelled")
    count: int


class BulkLabelPreview(Reply):
    """A dry run of a bulk label: what it would change (nothing written)."""

    action: Literal["label"]
    count: int = Field(description="images it would label")
    selected: int
    class_: str = Field(alias="class", description="the class they would get")
    class_id: int
    from_: list[ClassCount] = Field(alias="from", description="their classes now, most images first")
    blocked: list[int] = Field(description="images waiting in a re-review that does not offer the class (the "
                                           "apply is refused while any are selected); the first 100")
    text: str = Field(description='the change in one sentence: "Relabel 214 images: 37 Coat, 177 unlabelled → Shirt"')


class BulkExclusionPreview(Reply):
    """A dry run of a bulk exclude or include: what it would change (nothing written)."""

    action: Literal["exclude", "include"]
    count: int = Field(description="images it would change")
    selected: int
    unchanged: int = Field(description="selected images excluded (or included) already")
    text: str = Field(description="the change in one sentence")


class BulkSetPreview(Reply):
    """A dry run of adding a class to, or removing it from, the sets of a selection (multi-label)."""

    action: Literal["add", "remove"]
    count: int = Field(description="images whose set would change")
    selected: int
    class_: str = Field(alias="class")
    class_id: int
    unchanged: int = Field(description="selected images that have (add) or lack (remove) it already, or are not "
                                       "labelled yet (left out)")
    text: str


BulkPreview = Annotated[Union[BulkLabelPreview, BulkExclusionPreview, BulkSetPreview], Discriminator("action")]


class SelectionFilter(Reply):
    """The filter a bulk action selected its images with, as the request gave it (unset keys left out)."""

    status: str | None = None
    source: str | None = None
    class_: str | None = Field(None, alias="class")
    tag: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    split: str | None = None
    analysis: int | None = None
    region: str | None = Field(None, description="a polygon drawn on the map of `analysis`: x1,y1,x2,y2,...")


class BulkSelection(Reply):
    """What a bulk action was applied to: one of its keys."""

    images: int | None = Field(None, description="how many image ids the request listed")
    filter: SelectionFilter | None = Field(None, description="every image matching it when the action ran")
    undo: int | None = Field(None, description="an undo: the images of this bulk action")


class BulkAction(Reply):
    """A bulk action: one label, exclude or include decision over many images, or the undo of one."""

    id: int
    action: BulkActionName = Field(description="an undo has the action it undid")
    kind: Literal["bulk", "undo"]
    class_: str | None = Field(alias="class", description="the class a label action gave (an undo: the one it "
                                                          "took back); null: an exclude or include")
    reason: str = Field(description="why images were excluded or included; empty for a label action")
    annotator: str
    selection: BulkSelection
    count: int = Field(description="images it changed")
    skipped: int = Field(description="an undo: images changed since the action, left as they are")
    undoes: int | None = Field(description="the bulk action this one undid")
    undone_by: int | None = Field(description="the bulk action that undid this one")
    created_at: str
    labelled: int | None = Field(None, description="a label action that is not an undo: the same as `count` (only "
                                                   "there)")


class BulkApplied(BulkAction):
    """The bulk action just written, with the sentence its preview said."""

    text: str = Field(description='the change in one sentence: "Relabel 214 images: 37 Coat, 177 unlabelled → Shirt"')


class BulkUndone(BulkAction):
    """The undo just written: a bulk action of kind "undo", with what it took back and what it left."""

    undone: int = Field(description="images taken back")
    skipped_images: list[int] = Field(description="the first 100 of the skipped images, by id")
    text: str = Field(description='what happened in one sentence: "Undid 12 images; 2 images changed since and kept '
                                  'as they are"')


class BulkActions(Reply):
    """The latest bulk actions (undos included), newest first."""

    items: list[BulkAction]


# Tags ------------------------------------------------------------------------------------------------------------


class Tag(Reply):
    """A difficulty tag offered on the labelling page."""

    name: str
    key: str | None = Field(description="its key on the labelling page; null: none")
    active: bool = Field(description="false: retired, no longer offered (labels that carry it keep it)")


class Tags(Reply):
    """The active difficulty tags, in their order on the labelling page."""

    items: list[Tag]


# The labelling queue -----------------------------------------------------------------------------------------


class Queue(Reply):
    """The next images of a labelling queue, not leased."""

    queue: QueueName
    order: QueueOrder = Field(description="the order asked for")
    images: list[int] = Field(description="image ids, in queue order")
    in_force: QueueOrder = Field(description="the order followed: `order`, or its fallback when what it needs is "
                                             "missing; always import outside the unlabelled queue")
    note: str | None = Field(description="one sentence on the order: why it fell back, or the source weakest-source "
                                         "draws the first image from; null: nothing to say")
