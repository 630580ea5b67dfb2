"""What the taxonomy routes answer (app/web/routes/taxonomy.py): the active classes, and the version log.

A version's changes are what `app.taxonomy` stored for each operation (`op`), with its readable `summary`;
their fields differ by operation, so each change is one of a union told apart by `op`. An undo lists the
changes it made under `steps`, in the same shapes (no summary or request of their own), and those include
"restore", the inverse of retire, merge and split, which is never a request of its own. Keys only some
changes carry (`request`, a key change's `was`) are optional here, and the versions route leaves them out
when unset (`response_model_exclude_unset`), so a model never adds a key the domain did not send.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field

from app.web.schemas import Reply

ExampleKind = Literal["this", "not_this"]

# The taxonomy now ------------------------------------------------------------------------------------------


class Example(Reply):
    """An image pinned to a class's definition."""

    image: int
    kind: ExampleKind = Field(description="this: an example of the class; not_this: of what it is not")


class TaxonomyClass(Reply):
    """An active class: its name, definition, key and label count."""

    id: int
    name: str
    description: str
    shortcut: str | None = Field(description="Its key on the labelling page, for life; null when it has none.")
    count: int = Field(description="Images whose current label is this class.")
    examples: list[Example] = Field(description="Its pinned example images, oldest first.")


class TaxonomyView(Reply):
    """The taxonomy now: the current version number and the active classes, in their order."""

    version: int = Field(description="The current version's number; 0 before the first change.")
    mode: Literal["single-label", "multi-label"] = Field(
        "single-label", description='one class per image, or a set ({"op": "set-mode", "mode": "multi-label"})')
    classes: list[TaxonomyClass]


# The version log -------------------------------------------------------------------------------------------


class ClassRef(Reply):
    """A class as a change names it: its id and its name at that version."""

    class_id: int
    name: str


class KeyedClassRef(ClassRef):
    """A class and the key it had (or has again, restored)."""

    shortcut: str | None


class NewClass(KeyedClassRef):
    """A class a change created, with its key and definition."""

    description: str


class KeyChange(Reply):
    """A shortcut key a change gave, moved or took away."""

    class_id: int
    name: str
    from_: str | None = Field(alias="from", description="its key before; null: none")
    to: str | None = Field(description="its key after; null: none (every free key is held)")
    why: str = Field(description="chosen, fresh, none free, or why a restored class got another key")
    was: str | None = Field(None, description="the retired class that held the chosen key before (only then)")


class AddStep(Reply):
    """A class added."""

    op: Literal["add"]
    class_id: int
    name: str
    description: str
    shortcut: str | None
    keys: list[KeyChange]


class RenameStep(Reply):
    """A class renamed."""

    op: Literal["rename"]
    class_id: int
    from_: str = Field(alias="from", description="the old name")
    to: str = Field(description="the new name")


class DescribeStep(Reply):
    """A class's definition changed."""

    op: Literal["describe"]
    class_id: int
    name: str
    from_: str = Field(alias="from", description="the old definition")
    to: str = Field(description="the new definition")


class MergeStep(Reply):
    """Classes merged into one (existing, or created by the merge)."""

    op: Literal["merge"]
    classes: list[KeyedClassRef] = Field(description="the classes merged (retired, keeping their keys)")
    into: NewClass | ClassRef = Field(description="the class they became; with key and definition when created")
    created: bool = Field(description="`into` is a new class")
    moved: int = Field(description="labels moved to `into`")
    keys: list[KeyChange]


class SplitStep(Reply):
    """A class split into new ones."""

    op: Literal["split"]
    class_id: int
    name: str
    shortcut: str | None = Field(description="the split class's key, kept with it (retired)")
    into: list[NewClass]
    flagged: int = Field(description="images sent to re-review")
    keys: list[KeyChange]


class RetireStep(Reply):
    """A class retired."""

    op: Literal["retire"]
    class_id: int
    name: str
    flagged: int = Field(description="images sent to re-review")
    removed: int | None = Field(None, description="multi-label: images whose set the class was taken out of "
                                                  "(a migration event each; nothing to re-review)")


class SetModeStep(Reply):
    """The taxonomy made multi-label."""

    op: Literal["set-mode"]
    from_: str = Field(alias="from")
    to: Literal["multi-label"]
    converted: int = Field(description="current labels that became a set of their one class (a migration event "
                                       "each)")


class SetShortcutStep(Reply):
    """A class's key changed."""

    op: Literal["set-shortcut"]
    class_id: int
    name: str
    from_: str | None = Field(alias="from", description="its key before; null: none")
    to: str | None = Field(description="its key after; null: none")
    keys: list[KeyChange]


class PinStep(Reply):
    """An example image pinned to a class, or unpinned."""

    op: Literal["pin", "unpin"]
    class_id: int
    name: str
    image_id: int
    kind: ExampleKind


class RestoreStep(Reply):
    """Retired classes brought back by an undo (of a retire, merge or split)."""

    op: Literal["restore"]
    classes: list[KeyedClassRef]
    keys: list[KeyChange] = Field(description="a fresh key, where another class was given the old one since")
    cancelled: int | None = Field(None, description="undo of a retire or split: the re-reviews it closed")
    moved_back: int | None = Field(None, description="undo of a merge: labels given their earlier class back")


UndoStep = Annotated[
    Union[RenameStep, DescribeStep, MergeStep, RetireStep, SetShortcutStep, PinStep, RestoreStep], Discriminator("op")
]


class UndoDetail(Reply):
    """A version undone by the changes that reverse it."""

    op: Literal["undo"]
    undoes: int = Field(description="the number of the version undone")
    steps: list[UndoStep] = Field(description="the changes made, in order (the undone version's, last first)")


class _Logged(Reply):
    """What the log adds to each change."""

    summary: str = Field(description="one line a person reads: the change, and every key it gave, moved or took")
    request: dict[str, Any] | None = Field(
        None, description="the change as sent, less base_version, message and author; absent for classes an "
                          "import added")


class AddChange(_Logged, AddStep):
    """A class added (POST op add, or an import naming a class that did not exist)."""


class RenameChange(_Logged, RenameStep):
    """A class renamed."""


class DescribeChange(_Logged, DescribeStep):
    """A class's definition changed."""


class MergeChange(_Logged, MergeStep):
    """Classes merged into one."""


class SplitChange(_Logged, SplitStep):
    """A class split into new ones."""


class RetireChange(_Logged, RetireStep):
    """A class retired."""


class SetShortcutChange(_Logged, SetShortcutStep):
    """A class's key changed."""


class PinChange(_Logged, PinStep):
    """An example image pinned or unpinned."""


class UndoChange(_Logged, UndoDetail):
    """A version undone."""


class SetModeChange(_Logged, SetModeStep):
    """The taxonomy made multi-label."""


TaxonomyChange = Annotated[
    Union[AddChange, RenameChange, DescribeChange, MergeChange, SplitChange, RetireChange, SetShortcutChange,
          PinChange, UndoChange, SetModeChange],
    Discriminator("op"),
]


class TaxonomyVersion(Reply):
    """One version of the taxonomy: who made it, when, its changes, and the label counts right after it."""

    version: int = Field(description="its number, from 1")
    message: str
    author: str
    created_at: str
    mode: Literal["single-label", "multi-label"] = "single-label"
    changes: list[TaxonomyChange]
    label_counts: dict[str, int] = Field(description="images per class right after it, by the class's name then")


class TaxonomyVersions(Reply):
    """Every taxonomy version, oldest first."""

    items: list[TaxonomyVersion]
