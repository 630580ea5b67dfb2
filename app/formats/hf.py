"""Hugging Face `datasets` image folders: a `metadata.jsonl` / `metadata.csv` beside the images, both ways.

The documented shape (datasets "Create an image dataset" / ImageFolder): each
metadata file has a `file_name` column, the image's path relative to the
folder holding the metadata file, and any other columns; split folders
(train/, validation/, test/) each hold their own metadata file:

    my_dataset/train/metadata.jsonl   {"file_name": "0001.png", "label": "cat"}
    my_dataset/train/0001.png

Reading: the label is the `label` column, else the one other text column
(refused when there are several: say which by renaming it `label`); the
columns Loupe writes (confidence, tags, annotator, labelled_at) are read back.
`source` is written but an import puts every file in the one source it is
given (`--source`), so it is not read. A row with an empty label is listed,
unlabelled.

Writing (`--format hf`): `<split>/` per split (Loupe's "val" is written as
`validation/`, the name `datasets` maps to its validation split), the images,
and a `metadata.jsonl` per split carrying file_name, label, source,
confidence, annotator, tags, labelled_at, fold, sha256 and image_id (not `image`: that column is
the picture itself), so
`load_dataset("imagefolder", data_dir=OUT)` gives those columns.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path, PurePosixPath

from app.errors import InvalidInput
from app.formats.rows import (
    Given,
    ManifestRow,
    classes_of,
    confidence_of,
    dataset_files,
    find_dataset,
    first_columns,
    split_folder,
    split_prefix,
    tags_of,
    text_of,
    time_of,
    under,
)

NAMES = ("metadata.jsonl", "metadata.csv")
FILE = "file_name"
# Columns Loupe writes next to the label; never taken for the label column.
KNOWN = frozenset({FILE, "label", "labels", "source", "confidence", "annotator", "tags", "labelled_at", "fold",
                   "sha256", "image", "image_id", "split", "width", "height"})
DROPS: tuple[str, ...] = ()  # every field of a snapshot item is a column (the split as the folder)


# -- reading -------------------------------------------------------------------------------------------------

def detect(path: Path) -> bool:
    """A metadata.jsonl / .csv (or any .jsonl / .csv) whose first record has a `file_name`."""
    return FILE in (first_columns(path) or ())


def find(paths: list[Path]) -> Path | None:
    """The imported folder holding metadata files (read whole), or the one metadata file given."""
    return find_dataset(paths, NAMES)


def read(path: Path) -> list[ManifestRow]:
    """Every row of one metadata file, or of every metadata file of a dataset folder (their paths then start
    with their split folder, so `train/0001.png` and `test/0001.png` stay apart)."""
    path = Path(path)
    if path.is_dir():
        return [row for meta in dataset_files(path, NAMES) for row in _read_file(meta, split_prefix(path, meta))]
    return _read_file(path, prefix="")


def _records(path: Path, shown: str) -> list[tuple[int, dict]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {shown}: {exc}") from None
    if path.suffix.lower() == ".csv":
        return list(enumerate(csv.DictReader(text.splitlines()), 2))
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{shown} line {i}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise InvalidInput(f"{shown} line {i}: each line must be a JSON object")
        out.append((i, record))
    return out


def _label_column(columns: set[str], name: str) -> str:
    if "label" in columns:
        return "label"
    others = sorted(c for c in columns if c not in KNOWN)
    if len(others) == 1:
        return others[0]
    if not others:
        raise InvalidInput(f"{name}: no label column (a 'label' column, or one column besides {FILE})")
    raise InvalidInput(f"{name}: which column is the label? it has {', '.join(others)}; name it 'label'")


def _read_file(path: Path, prefix: str) -> list[ManifestRow]:
    where_file = under(prefix, path.name)
    records = _records(path, where_file)
    if not records:
        return []
    columns = {c for _, r in records for c in r}
    # A multi-label export's `labels` list (its sets) when there is no `label` column.
    label_col = "labels" if "labels" in columns and "label" not in columns else _label_column(columns, where_file)
    rows = []
    for line, record in records:
        where = f"{where_file} line {line}"
        file = str(record.get(FILE) or "").strip().replace("\\", "/")
        if not file:
            raise InvalidInput(f"{where}: the {FILE} is empty")
        parts = PurePosixPath(file).parts
        if file.startswith("/") or ".." in parts:
            raise InvalidInput(f"{where}: {FILE} '{file}' must be a path inside the dataset folder")
        raw = record.get(label_col)
        classes = classes_of(raw, where) if label_col == "labels" and raw is not None else None
        if classes is None and isinstance(raw, (dict, list, bool)):
            raise InvalidInput(f"{where}: the {label_col} must be a class name, not {json.dumps(raw)}")
        label = "" if classes is not None else text_of(raw)
        given = Given(label, confidence_of(record.get("confidence"), where), tags_of(record.get("tags"), where),
                      text_of(record.get("annotator"))[:100], time_of(record.get("labelled_at"), where),
                      classes=classes) if label or classes is not None else None
        rows.append(ManifestRow(line, under(prefix, file), given))
    return rows


# -- writing (loupe export --format hf) ------------------------------------------------------------------------

def layout(row: dict, fmt: str) -> str:
    return f"{split_folder(row['split'])}/{row['name']}"


def write(out: Path, rows: list[dict], info: dict, fmt: str) -> None:
    by_dir: dict[str, list[str]] = {}
    for r in rows:
        folder, name = r["path"].split("/", 1)
        # A multi-label snapshot's set goes out as `labels`, a list (datasets reads it as a sequence column).
        label = {"labels": list(r["classes"])} if "classes" in r else {"label": r["label"]}
        record = {FILE: name, **label, "source": r["source"], "confidence": r["confidence"],
                  "annotator": r["annotator"], "tags": list(r["tags"]), "labelled_at": r["labelled_at"],
                  "fold": r["fold"], "sha256": r["sha256"], "image_id": r["image"]}
        by_dir.setdefault(folder, []).append(json.dumps(record, ensure_ascii=False) + "\n")
    for folder, lines in by_dir.items():
        (out / folder / "metadata.jsonl").write_text("".join(lines), encoding="utf-8")
