"""What a label file says about one file, whichever tool wrote it."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from app.errors import InvalidInput


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
    # A set of classes (a multi-label export's `classes` / `labels`; empty: none of these); `label` is then "".
    classes: tuple[str, ...] | None = None

    def names(self) -> tuple[str, ...]:
        """The classes it names: its set, or its one label."""
        return self.classes if self.classes is not None else (self.label,)

    def answer(self) -> tuple[str, ...]:
        """What it says, comparable across files and with a current label (case aside): its sorted set."""
        return tuple(sorted({n.lower() for n in self.names()}))


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
    stem: bool = False  # `file` leaves out the extension (FiftyOne's labels.json keys): match it without


# -- one field of a record, checked the same way whatever the format: `where` names the line, task or element --

def confidence_of(raw, where: str) -> float:
    """0..1; absent or empty: 1 (a person who gave a label without saying how sure was sure)."""
    if raw is None or raw == "":
        return 1.0
    if isinstance(raw, bool):
        raise InvalidInput(f"{where}: confidence must be a number from 0 to 1, not {raw}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: confidence must be a number from 0 to 1, not '{raw}'") from None
    if math.isnan(value) or not 0 <= value <= 1:
        raise InvalidInput(f"{where}: confidence must be from 0 to 1, not {raw}")
    return value


def tags_of(raw, where: str) -> tuple[str, ...]:
    """A list, or ';'-separated text (how a CSV cell carries a list)."""
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        return tuple(t for t in (x.strip() for x in raw.split(";")) if t)
    if not isinstance(raw, list):
        raise InvalidInput(f"{where}: tags must be a list (or ';'-separated text)")
    return tuple(str(t) for t in raw)


def classes_of(raw, where: str) -> tuple[str, ...]:
    """A set of class names: a list, or ';'-separated text; empty is "none of these". Names as labels are
    (spaces folded), each once."""
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        raw = raw.split(";")
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise InvalidInput(f"{where}: classes must be a list of class names (or ';'-separated text)")
    return tuple(dict.fromkeys(n for n in (" ".join(c.split()) for c in raw) if n))


def time_of(raw, where: str) -> datetime | None:
    """An ISO 8601 time (a trailing Z, an offset, or none: UTC); absent or empty: None."""
    if raw is None or raw == "":
        return None
    try:
        when = datetime.fromisoformat(str(raw).strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{where}: '{raw}' is not an ISO 8601 time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def text_of(raw) -> str:
    """A name as one line: inner runs of blanks are one space."""
    return " ".join(str(raw if raw is not None else "").split())


def dataset_files(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """A dataset folder's label files: at its top, or one per split folder below it (train/, test/, ...)."""
    return sorted(p for name in names for p in (*folder.glob(name), *folder.glob(f"*/{name}")) if p.is_file())


def split_prefix(folder: Path, label_file: Path) -> str:
    """The path from a dataset folder to a label file's folder ("" at the top): files a split's label file
    names are matched under it, so train/1.png and test/1.png stay apart."""
    rel = label_file.parent.relative_to(folder).as_posix()
    return "" if rel == "." else rel


def under(prefix: str, file: str) -> str:
    return f"{prefix}/{file}" if prefix else file


def split_folder(split: str) -> str:
    """The folder a split is written to in the formats that keep splits as folders: Loupe's "val" as
    "validation", the name Hugging Face `datasets` and FiftyOne's zoo use for that split."""
    return {"val": "validation"}.get(split, split)


def load_json(path: Path, shown: str):
    """A JSON label file, or one sentence saying why it cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {shown}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{shown}: not JSON ({exc.msg} at line {exc.lineno})") from None


def json_if(path: Path, suffix: str = ".json"):
    """For `detect`: the file's JSON when it has the suffix and parses, else None."""
    if path.suffix.lower() != suffix:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def first_columns(path: Path) -> set[str] | None:
    """For `detect`: the column names of a .csv's header or of a .jsonl's first record (as written); None when
    the file is neither or cannot be read."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        return None
    try:
        with open(path, encoding="utf-8-sig") as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError):
        return None
    if suffix == ".csv":
        return {c.strip() for c in next(csv.reader([first]), [])}
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        return None
    return {str(k) for k in record} if isinstance(record, dict) else set()


def find_dataset(paths: list[Path], names: tuple[str, ...]) -> Path | None:
    """For `find`: an imported folder holding the format's label files (at its top or per split), or the one
    such file given."""
    for path in map(Path, paths):
        if path.is_dir() and dataset_files(path, names):
            return path
        if path.is_file() and path.name in names:
            return path
    return None
