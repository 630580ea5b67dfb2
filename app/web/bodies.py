"""Request bodies more than one router reads (a route module does not import another's)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from app.labelling.events import LabelInput
from app.web.params import Id


class LabelBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    class_: str | Id = Field(alias="class", description="class name or id")
    confidence: float = 1.0
    tags: list[str] = []
    note: str = ""
    annotator: str = ""
    ms: int | None = None
    seen_event: Id | None = Field(None, description="the image's current label event when you looked at it (null: "
                                  "unlabelled); 409 if it changed since. Leave it out to label regardless")

    def to_input(self) -> LabelInput:
        return LabelInput(self.class_, self.confidence, self.tags, self.note, self.annotator, self.ms)
