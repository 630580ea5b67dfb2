"""What a label file says about one file, whichever tool wrote it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Given:
    """The label a file comes with, and what the format says about who gave it and when.

    `annotator`, `made_at` and `ms` are kept on the label event where the format has them (Label Studio's
    completed_by, created_at and lead_time, say); empty, the import's own name and time are used.
    """

    label: str
    confidence: float = 1.0
    tags: tuple[str, ...] = field(default_factory=tuple)
    annotator: str = ""
    made_at: datetime | None = None
    ms: int | None = None


@dataclass(frozen=True)
class Suggestion:
    """A model's guess a format carries next to the labels (Label Studio's predictions): never a label."""

    probs: dict[str, float]  # class name -> probability (the classes it names; the rest share nothing)
    model: str = ""


@dataclass
class ManifestRow:
    """One record of a label file: where it is (`line`: a line, task or element number for messages), the
    file it names (a path, matched by its ending), and its label (None: the file is listed, unlabelled)."""

    line: int
    file: str
    given: Given | None
    suggestion: Suggestion | None = None
