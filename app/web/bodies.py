"""Request bodies more than one router reads (a route module does not import another's)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.errors import InvalidInput
from app.labelling.events import LabelInput
from app.web.params import Id


class LabelBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    class_: str | Id | None = Field(None, alias="class", description="class name or id (a single-label taxonomy)")
    classes: list[str | Id] | None = Field(None, description="a multi-label taxonomy: the classes on the image, "
                                                               "names or ids; an empty list is 'none of these'")
    confidences: dict[str, float] | None = Field(None, description="multi-label: a class's own confidence, by the "
                                                                   "name or id used in `classes` (else `confidence`)")
    confidence: float = 1.0
    tags: list[str] = []
    note: str = ""
    annotator: str = ""
    ms: int | None = None
    seen_event: Id | None = Field(None, description="the image's current label event when you looked at it (null: "
                                  "unlabelled); 409 if it changed since. Leave it out to label regardless")

    def to_input(self) -> LabelInput:
        if self.classes is not None and self.class_ is not None:
            raise InvalidInput("send 'class' (single-label) or 'classes' (multi-label), not both")
        return LabelInput(self.class_, self.confidence, self.tags, self.note, self.annotator, self.ms,
                          classes=self.classes, confidences=self.confidences)
