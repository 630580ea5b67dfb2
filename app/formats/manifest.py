"""Loupe's own label files: a CSV / JSONL manifest (what `loupe export` writes), and the folder layout.

Also how rows from any format find the files they name (`match_manifest`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path, PurePosixPath

from app.errors import InvalidInput
from app.formats.rows import Given, ManifestRow, classes_of, confidence_of, first_columns, tags_of

FILE_COLUMNS = ("file", "path", "filename")
COLUMNS = ("path", "label", "source", "confidence", "tags", "split", "fold", "sha256", "image")  # what export writes
NAMES = ("manifest.csv", "manifest.jsonl")  # an export's manifest, found by `--labels loupe`
DROPS: tuple[str, ...] = ()  # the manifest carries every field of a snapshot item
LABEL_COLUMNS = ("label", "class")
SPLIT_FOLDERS = frozenset({"train", "training", "val", "valid", "validation", "test", "testing", "eval"})


def folder_label(filename: str) -> str | None:
    """The class an imported file's folder gives it (its parent folder), or None.

    As in torchvision's ImageFolder, the folder (or zip) given to import is the
    root and never a class itself: ``cifar/train/cat/1.png`` and
    ``cifar/cat/1.png`` -> ``cat``; ``cifar/1.png`` (at the root), ``cifar/train/1.png``
    (directly in a split folder) and a file imported on its own get none.
    """
    parts = filename.split("/")
    if len(parts) < 3:
        return None
    parent = " ".join(parts[-2].split())
    if not parent or parent.lower() in SPLIT_FOLDERS or parent.lower().endswith(".zip"):
        return None
    return parent


def _pick(columns: list[str], wanted: tuple[str, ...], what: str, source: str) -> str:
    for name in wanted:
        if name in columns:
            return name
    raise InvalidInput(f"{source}: no {what} column (one of {', '.join(wanted)}); "
                       f"found: {', '.join(columns) or 'none'}")


def _row(record: dict, line: int, source: str, file_col: str, label_col: str) -> ManifestRow:
    where = f"{source} line {line}"
    file = str(record.get(file_col) or "").strip()
    label = " ".join(str(record.get(label_col) or "").split())
    if not file:
        raise InvalidInput(f"{where}: the {file_col} is empty")
    classes = classes_of(record["classes"], where) if "classes" in record and not label else None
    if not label and classes is None:
        raise InvalidInput(f"{where}: the {label_col} is empty")
    given = Given(label, confidence_of(record.get("confidence"), where), tags_of(record.get("tags"), where),
                  classes=classes)
    return ManifestRow(line, file, given)


def detect(path: Path) -> bool:
    """A .csv or .jsonl whose first record has a file and a label column."""
    columns = {c.lower() for c in first_columns(path) or ()}
    return bool(columns & set(FILE_COLUMNS)) and bool(columns & set(LABEL_COLUMNS))


def find(paths: list[Path]) -> Path | None:
    """An export's manifest.csv / manifest.jsonl at the top of an imported folder."""
    for folder in (Path(p) for p in paths if Path(p).is_dir()):
        for name in NAMES:
            if (folder / name).is_file():
                return folder / name
    return None


def read(path: Path) -> list[ManifestRow]:
    return read_manifest(path)


def read_manifest(path: Path) -> list[ManifestRow]:
    """Every row of a .csv (with a header) or .jsonl manifest, or InvalidInput naming the bad line."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"--labels: no such manifest file: {path} (or use --labels folders)")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise InvalidInput(f"--labels: {path.name} is neither a .csv nor a .jsonl file (or use --labels folders)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path.name}: {exc}") from None
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        columns = [(c or "").strip().lower() for c in (reader.fieldnames or [])]
        reader.fieldnames = columns
        file_col = _pick(columns, FILE_COLUMNS, "file", path.name)
        label_col = _pick(columns, LABEL_COLUMNS, "label", path.name)
        return [_row(r, i, path.name, file_col, label_col) for i, r in enumerate(reader, 2)]
    rows = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{path.name} line {i}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise InvalidInput(f"{path.name} line {i}: each line must be a JSON object")
        record = {str(k).lower(): v for k, v in record.items()}
        keys = list(record)
        rows.append(_row(record, i, path.name, _pick(keys, FILE_COLUMNS, "file", f"{path.name} line {i}"),
                         _pick(keys, LABEL_COLUMNS, "label", f"{path.name} line {i}")))
    return rows


def _parts(path: str) -> list[str]:
    return [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]


def _common_suffix(a: list[str], b: list[str]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def match_manifest(rows: list[ManifestRow], filenames: list[str]) -> tuple[dict[str, ManifestRow], list[dict]]:
    """Match label-file rows to the files to import by path suffix: file name -> its row, and the rows that
    matched nothing.

    A row matches a file when one path ends with the other (compared by whole
    folder names; a row with `stem` names its file without the extension);
    when several files match, the longest common ending wins, and a tie leaves
    the row unmatched (reported, never guessed).
    """
    by_base: dict[str, list[tuple[list[str], str]]] = {}
    by_stem: dict[str, list[tuple[list[str], str]]] = {}
    for name in filenames:
        parts = _parts(name)
        by_base.setdefault(parts[-1], []).append((parts, name))
        stemmed = [*parts[:-1], PurePosixPath(parts[-1]).stem]
        by_stem.setdefault(stemmed[-1], []).append((stemmed, name))
    given: dict[str, ManifestRow] = {}
    twice: set[str] = set()
    unmatched: list[dict] = []
    for row in rows:
        want = _parts(row.file)
        pool = by_stem if row.stem else by_base
        fits = [(n, name) for p, name in pool.get(want[-1] if want else "", [])
                if (n := _common_suffix(want, p)) == min(len(want), len(p))]
        best = max((n for n, _ in fits), default=0)
        top = [name for n, name in fits if n == best]
        if not top:
            unmatched.append({"file": row.file, "reason": "no such file among the files imported"})
        elif len(top) > 1:
            unmatched.append({"file": row.file, "reason": f"matches {len(top)} files ({', '.join(top[:3])}); "
                                                          "give more of its path"})
        elif top[0] in given and (given[top[0]].given, given[top[0]].suggestion) != (row.given, row.suggestion):
            twice.add(top[0])
            unmatched.append({"file": row.file, "reason": f"listed again (line {row.line}) with another label"})
        else:
            given[top[0]] = row
    for name in twice:
        del given[name]
    return given, unmatched


# -- writing (loupe export --format imagefolder | csv | jsonl) ------------------------------------------------

def layout(row: dict, fmt: str) -> str:
    """ImageFolder: split/class/file; csv and jsonl: images/file beside the manifest."""
    return f"{row['split']}/{folder_name(row['label'])}/{row['name']}" if fmt == "imagefolder" \
        else f"images/{row['name']}"


def folder_name(name: str) -> str:
    """A class name usable as one folder name (no separators, not hidden)."""
    safe = re.sub(r"[/\\\x00]", "_", name)
    return "_" + safe[1:] if safe.startswith(".") else safe


def write(out: Path, rows: list[dict], info: dict, fmt: str) -> None:
    name = "manifest.jsonl" if fmt == "jsonl" else "manifest.csv"
    (out / name).write_text(to_jsonl(rows) if fmt == "jsonl" else to_csv(rows), encoding="utf-8")


def _columns(rows: list[dict]) -> tuple[str, ...]:
    """A multi-label snapshot's rows carry `classes` (their set; `label` is empty): one more column."""
    return COLUMNS + ("classes",) if rows and "classes" in rows[0] else COLUMNS


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    columns = _columns(rows)
    writer.writerow(columns)
    for r in rows:
        writer.writerow([";".join(r[c]) if c in ("tags", "classes") else "" if r[c] is None else r[c]
                         for c in columns])
    return buf.getvalue()


def to_jsonl(rows: list[dict]) -> str:
    columns = _columns(rows)
    return "".join(json.dumps({c: r[c] for c in columns}, ensure_ascii=False) + "\n" for r in rows)
