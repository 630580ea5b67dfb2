"""What the image routes answer (app/web/routes/images.py): import reports, pages of images, one image's
metadata with its label, history, exclusions and prediction, and its nearest neighbours.

`Label`, `LabelEvent` and `ExclusionEvent` are the shapes every route that shows a label or an exclusion
answers with, so the label and flag routes' schemas reuse them.
"""

from __future__ import annotations

from pydantic import Field

from app.db.vocab import LabelKind
from app.web.schemas import Reply


class ImportedFile(Reply):
    """A file that became a new image."""

    id: int = Field(description="the new image's id")
    filename: str
    sha256: str


class DuplicateFile(Reply):
    """A file whose bytes were imported before: nothing new was stored."""

    id: int = Field(description="the id of the image already there with these bytes")
    filename: str


class RejectedFile(Reply):
    """A file that could not be imported, and why."""

    filename: str
    error: str = Field(description="a sentence saying why")


class LabelConflict(Reply):
    """A file the import gave a label that it did not take: the image keeps the label it had."""

    file: str
    image: int | None
    current: str | None = Field(description="the label it keeps; null: the import itself gave it two classes")
    given: str
    reason: str


class Unmatched(Reply):
    """A record of the label file that named no imported file."""

    file: str
    reason: str


class LabelImportReport(Reply):
    """What an import with labels did with them."""

    labelled: int = Field(description="images that got their label (one 'import' label event each)")
    unchanged: int = Field(description="images that already had that label")
    conflicts: list[LabelConflict]
    unmatched: list[Unmatched]
    unlabelled: list[str] = Field(description="imported files the labels say nothing about")
    new_classes: list[str] = Field(description="classes the import created (in one taxonomy version)")
    taxonomy_version: int | None
    format: str = Field(description="the reader that read the labels: folders, loupe, label-studio, cvat, ...")
    suggestions: int = Field(0, description="imported images that got a model's suggestion from the label file "
                                            "(Label Studio predictions): suggestions, never labels")
    suggestion_job: int | None = Field(None, description="the job (kind \"import\") holding those suggestions")


class ImportReport(Reply):
    """What an upload imported, found already there, and refused."""

    imported: list[ImportedFile]
    duplicates: list[DuplicateFile]
    rejected: list[RejectedFile]
    ignored: int = Field(description="files skipped while walking zips: not images, __MACOSX/, dotfiles")
    predict_job: int | None = Field(description="the predict job queued for the new images; null: nothing new, no "
                                                "model yet, or a predict job was already waiting")
    labels: LabelImportReport | None = Field(None, description="with `labels` or `labels_format`: what became of "
                                                               "the labels")


class ImageItem(Reply):
    """One image in a page of images, with its current label."""

    id: int
    sha256: str
    filename: str = Field(description="the original file name, as imported")
    source: str = Field(description="the source's name")
    width: int
    height: int
    excluded: bool = Field(description="taken out of the dataset (snapshots leave it out, queues skip it)")
    class_: str | None = Field(alias="class", description="the current label's class name; null: unlabelled")
    class_id: int | None
    confidence: float | None = Field(description="the current label's confidence, 0..1; null: unlabelled")
    tags: list[str] = Field(description="the current label's tags; empty when unlabelled")
    classes: list[str] | None = Field(None, description="multi-label: the classes of its current set (empty: "
                                                        "'none of these'); absent otherwise")
    class_ids: list[int] | None = None


class ImagePage(Reply):
    """A page of images matching the filters, in import order."""

    items: list[ImageItem]
    total: int = Field(description="how many images match, exactly")
    next: int | None = Field(description="the cursor of the next page (pass it as `after`); null on the last page")


class Label(Reply):
    """An image's current label: its latest label event that names a class (single-label taxonomy) or a set of
    classes (multi-label)."""

    class_: str | None = Field(alias="class", description="the class's name today (followed through renames); "
                                                          "null for a multi-label answer")
    class_id: int | None
    classes: list[str] | None = Field(None, description="multi-label: the classes on the image, names today; "
                                                        "empty: 'none of these'. Absent in a single-label taxonomy")
    class_ids: list[int] | None = Field(None, description="multi-label: their ids, in the order of `classes`")
    confidences: dict[str, float | None] | None = Field(None, description="multi-label: each class's confidence")
    confidence: float | None
    tags: list[str]
    annotator: str
    created_at: str
    note: str
    id: int = Field(description="the label event that set it")


class LabelEvent(Reply):
    """One event of an image's label history, with the class as it was named when the event was made."""

    id: int
    class_: str | None = Field(alias="class", description="the class's name in the taxonomy version of the event; "
                                                          "null: the event removed the label")
    class_id: int | None
    class_now: str | None = Field(description="the class's name today")
    definition: str | None = Field(description="the class's definition in the taxonomy version of the event")
    confidence: float | None
    tags: list[str]
    note: str
    annotator: str
    kind: LabelKind
    ms: int | None = Field(description="milliseconds spent labelling the image, as the client reported it")
    taxonomy_version: int | None = Field(description="the taxonomy version number the event was made in")
    reverts: int | None = Field(description="the event an undo reverted")
    created_at: str
    classes: list[str] | None = Field(None, description="a multi-label answer's classes as named when it was made "
                                                        "(empty: 'none of these'); absent for a single class")
    classes_now: list[str] | None = Field(None, description="the same classes' names today")
    class_ids: list[int] | None = None
    confidences: dict[str, float | None] | None = Field(None, description="each class's confidence, by name today")


class ExclusionEvent(Reply):
    """One exclude or include of an image."""

    id: int
    image: int
    excluded: bool = Field(description="true: the image was excluded; false: put back")
    reason: str
    annotator: str
    bulk_action: int | None = Field(description="the bulk action it was part of")
    flag: int | None = Field(description="the flag whose resolution made it")
    created_at: str


class ClassProbability(Reply):
    """A class and the probability a model gave it."""

    class_: str = Field(alias="class", description="the class's name today (probabilities of merged classes add up)")
    p: float


class Prediction(Reply):
    """The latest model's guess for an image."""

    job: int = Field(description="the train or predict job that wrote the prediction")
    model_job: int = Field(description="the train job whose model made it (the same job unless a predict job wrote it)")
    class_: str = Field(alias="class", description="the most probable class")
    p: float = Field(description="its probability")
    top: list[ClassProbability] = Field(description="the most probable classes, most probable first")


class ImageDetail(Reply):
    """One image: metadata, current label, label history, exclusions and the latest prediction."""

    id: int
    sha256: str
    source: str = Field(description="the source's name")
    filename: str = Field(description="the original file name, as imported")
    width: int
    height: int
    format: str = Field(description="the decoded format: JPEG, PNG, ...")
    mode: str = Field(description="the PIL colour mode: RGB, L, ...")
    bytes: int = Field(description="the original file's size")
    phash: str = Field(description="the perceptual hash, 16 hex digits")
    imported_at: str
    batch: int = Field(description="the import batch")
    excluded: bool
    label: Label | None = Field(description="null: unlabelled")
    history: list[LabelEvent] = Field(description="every label event, oldest first")
    prediction: Prediction | None = Field(description="null: no model has seen the image")
    exclusions: list[ExclusionEvent] = Field(description="every exclude and include, oldest first")


class Neighbour(Reply):
    """An image near another one in a model's embedding space."""

    image: int
    distance: float = Field(description="cosine distance")
    class_: str | None = Field(alias="class", description="its current label; null: unlabelled")


class SimilarImages(Reply):
    """The images nearest one image, nearest first."""

    job: int = Field(description="the train or embed job whose embeddings were searched")
    items: list[Neighbour]
