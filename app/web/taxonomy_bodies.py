"""The body of `POST /api/taxonomy/changes`: one model per operation, told apart by "op".

They type and document the wire format the domain has always read; they do
not change it. Extra keys are kept (the change log stores the request as
sent), and class references stay loose (an id or a current name, resolved by
`app.taxonomy.queries.resolve_class`, which answers 404 for a class that does
not exist rather than a type error). Its answer, `TaxonomyView`, is in app/web/schemas/taxonomy.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictInt, WithJsonSchema

ClassRef = Annotated[Any, WithJsonSchema({
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "description": "A class: its id, or its current name (NAME_OR_ID).",
})]


class _Change(BaseModel):
    model_config = ConfigDict(extra="allow")

    base_version: StrictInt | None = Field(
        None, description="The version the change was made against; if another version is current, 409.")
    message: str | None = Field(None, description="The version's title; by default it names the classes involved.")
    author: str | None = Field(None, description="Who made it, when nobody is signed in (a signed-in user always is).")


def _examples(*examples: dict) -> ConfigDict:
    return ConfigDict(extra="allow", json_schema_extra={"examples": list(examples)})


class AddChange(_Change):
    """Add a class. It gets the shortcut given, or a key no class ever held (none when all are spent)."""

    model_config = _examples({"op": "add", "name": "Sneaker", "description": "Low sports shoe", "base_version": 3})
    op: Literal["add"]
    name: str = Field(description="Unique among active classes (case-insensitive), at most 100 characters.")
    description: str | None = Field(None, description="The definition: what belongs here, and what does not.")
    shortcut: str | None = Field(None, description="One letter or digit, not reserved on the labelling page.")


class RenameChange(_Change):
    """Rename a class; its labels and key stay with it, and history shows the name each label was made under."""

    model_config = _examples({"op": "rename", "class": "Sneaker", "name": "Trainer"})
    op: Literal["rename"]
    class_: ClassRef = Field(alias="class")
    name: str


class DescribeChange(_Change):
    """Change a class's definition (an empty text clears it)."""

    model_config = _examples({"op": "describe", "class": "Bag", "description": "Carried by hand or on a shoulder"})
    op: Literal["describe"]
    class_: ClassRef = Field(alias="class")
    description: str | None = None


class MergeChange(_Change):
    """Merge classes into one, existing or new (a name that is not a class). Their labels move forward at once.

    A new class gets a fresh key (the merged classes keep theirs, for an undo)
    and, without a `description`, one that says where it came from.
    """

    model_config = _examples(
        {"op": "merge", "classes": ["Sandal", "Sneaker"], "into": "Shoe", "base_version": 7},
        {"op": "merge", "classes": ["Shirt"], "into": "T-shirt"},
    )
    op: Literal["merge"]
    classes: list[ClassRef] = Field(description="The classes to merge (at least one besides `into`).")
    into: ClassRef = Field(description="An existing class, or the name of a new one.")
    description: str | None = Field(None, description="The definition of a new `into` class.")


class SplitChange(_Change):
    """Split a class into new ones. Its images go to re-review, offered the new classes.

    The new classes get fresh keys; the split class keeps its own, retired.
    """

    model_config = _examples({"op": "split", "class": "Bag", "into": ["Backpack", "Handbag"], "base_version": 8})
    op: Literal["split"]
    class_: ClassRef = Field(alias="class")
    into: list[str] = Field(description="At least two new, different class names.")
    descriptions: list[str] | None = Field(None, description="Definitions of the new classes, in the same order.")


class RetireChange(_Change):
    """Retire a class. Its images go to re-review; it keeps its key, which no other class gets silently."""

    model_config = _examples({"op": "retire", "class": "Bag"})
    op: Literal["retire"]
    class_: ClassRef = Field(alias="class")


class SetShortcutChange(_Change):
    """Give a class another key, or none (null): the only way a class's key changes."""

    model_config = _examples({"op": "set-shortcut", "class": "Shoe", "shortcut": "6"},
                             {"op": "set-shortcut", "class": "Shoe", "shortcut": None})
    op: Literal["set-shortcut"]
    class_: ClassRef = Field(alias="class")
    shortcut: str | None


class PinChange(_Change):
    """Pin an image to a class's definition as an example of it ("this") or of what it is not ("not_this")."""

    model_config = _examples({"op": "pin", "class": "Bag", "image": 12, "kind": "this"})
    op: Literal["pin"]
    class_: ClassRef = Field(alias="class")
    image: StrictInt | str
    kind: Literal["this", "not_this"] = "this"


class UnpinChange(_Change):
    """Take a pinned example away."""

    model_config = _examples({"op": "unpin", "class": "Bag", "image": 12, "kind": "this"})
    op: Literal["unpin"]
    class_: ClassRef = Field(alias="class")
    image: StrictInt | str
    kind: Literal["this", "not_this"] = "this"


class UndoChange(_Change):
    """Undo a version with a new one that reverses it (nothing is deleted).

    An undone merge brings its classes back with their own keys and labels; an
    undone split merges the new classes back; a class whose key was given away
    explicitly meanwhile comes back with a fresh key, and the log says so.
    """

    model_config = _examples({"op": "undo", "version": 7})
    op: Literal["undo"]
    version: StrictInt = Field(description="The number of the version to undo.")


class SetModeChange(_Change):
    """Make the taxonomy multi-label: an image then carries a set of classes (each current label becomes a set
    of its one class, as a migration event). There is no way back to single-label.

    In a multi-label taxonomy a merge unites sets, a retire takes the class out of every set, and a split sends
    only the images carrying the split class to re-review.
    """

    model_config = _examples({"op": "set-mode", "mode": "multi-label"})
    op: Literal["set-mode"]
    mode: str = Field(description='"multi-label"')


TaxonomyChangeBody = Annotated[
    Union[AddChange, RenameChange, DescribeChange, MergeChange, SplitChange, RetireChange, SetShortcutChange,
          PinChange, UnpinChange, UndoChange, SetModeChange],
    Discriminator("op"),
]

EXAMPLES = {
    "add": {"summary": "Add a class", "value": {"op": "add", "name": "Sneaker", "description": "Low sports shoe"}},
    "rename": {"summary": "Rename a class", "value": {"op": "rename", "class": "Sneaker", "name": "Trainer"}},
    "describe": {"summary": "Redefine a class",
                 "value": {"op": "describe", "class": "Bag", "description": "Carried by hand or on a shoulder"}},
    "merge": {"summary": "Merge two classes into a new one",
              "value": {"op": "merge", "classes": ["Sandal", "Sneaker"], "into": "Shoe", "base_version": 7}},
    "split": {"summary": "Split a class", "value": {"op": "split", "class": "Bag", "into": ["Backpack", "Handbag"]}},
    "retire": {"summary": "Retire a class", "value": {"op": "retire", "class": "Bag"}},
    "set-shortcut": {"summary": "Give a class another key",
                     "value": {"op": "set-shortcut", "class": "Shoe", "shortcut": "k"}},
    "pin": {"summary": "Pin an example image", "value": {"op": "pin", "class": "Bag", "image": 12, "kind": "this"}},
    "unpin": {"summary": "Unpin an example image",
              "value": {"op": "unpin", "class": "Bag", "image": 12, "kind": "this"}},
    "undo": {"summary": "Undo a version (here: the merge)", "value": {"op": "undo", "version": 8}},
    "set-mode": {"summary": "Make the taxonomy multi-label", "value": {"op": "set-mode", "mode": "multi-label"}},
}


def as_change(body: BaseModel) -> dict:
    """The body as the dict the domain reads: the keys the client sent, as it sent them."""
    return body.model_dump(by_alias=True, exclude_unset=True)
