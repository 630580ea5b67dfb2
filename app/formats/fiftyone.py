"""FiftyOne's image classification dataset (`fo.types.FiftyOneImageClassificationDataset`), both ways.

The documented shape (FiftyOne docs, "Exporting / Loading datasets",
FiftyOneImageClassificationDataset):

    <dataset_dir>/
        data/<uuid1>.<ext>
        labels.json    {"classes": ["<labelA>", ...], "labels": {"<uuid1>": <target>, ...}}

where a target is the index of a class in `classes`, or the label itself
when there is no `classes` list, or null (unlabelled); exports made with
confidence or attributes write {"label": <target>, "confidence": c,
"attributes": {...}} instead. The keys are the files' paths under data/
without their extension, so files are matched by their stem.

FiftyOne's other classification layout, the directory tree
(`fo.types.ImageClassificationDirectoryTree`: `<dataset_dir>/<class>/<image>`),
is what `--labels folders` reads, and what `--format imagefolder` writes per
split folder.

Writing (`--format fiftyone`): one dataset per split folder (train/,
validation/, test/: `<split>/data/<file>` and `<split>/labels.json`), each
label as {"label": <class index>, "confidence": c, "attributes": {annotator,
tags, labelled_at, source, fold}}, which FiftyOne loads as a Classification
with those attributes. Nothing a Loupe label holds is dropped.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from app.errors import InvalidInput
from app.formats.rows import (
    Given,
    ManifestRow,
    confidence_of,
    dataset_files,
    find_dataset,
    json_if,
    load_json,
    split_folder,
    split_prefix,
    tags_of,
    text_of,
    time_of,
    under,
)

NAMES = ("labels.json",)
DROPS: tuple[str, ...] = ()


# -- reading -------------------------------------------------------------------------------------------------

def detect(path: Path) -> bool:
    """A .json object with a "labels" object (and maybe a "classes" list)."""
    data = json_if(path)
    return isinstance(data, dict) and isinstance(data.get("labels"), dict)


def find(paths: list[Path]) -> Path | None:
    """The imported dataset folder holding labels.json files (at its top or per split), or the file given."""
    return find_dataset(paths, NAMES)


def read(path: Path) -> list[ManifestRow]:
    path = Path(path)
    if path.is_dir():
        return [row for f in dataset_files(path, NAMES) for row in _read_file(f, split_prefix(path, f))]
    return _read_file(path, "")


def _label(target, classes: list | None, where: str) -> str:
    if isinstance(target, bool) or not isinstance(target, (int, str)):
        raise InvalidInput(f"{where}: the label must be a class index or name, not {json.dumps(target)}")
    if isinstance(target, int):
        if classes is None:
            raise InvalidInput(f"{where}: label {target} is a class index, but the file has no \"classes\" list")
        if not 0 <= target < len(classes):
            raise InvalidInput(f"{where}: class index {target} is outside \"classes\" (it has {len(classes)})")
        return text_of(classes[target])
    return text_of(target)


def _given(target, classes: list | None, where: str) -> Given | None:
    if target is None:
        return None
    if isinstance(target, list):
        raise InvalidInput(f"{where}: several labels (a multi-label dataset); Loupe gives an image one class")
    confidence, attrs = None, {}
    if isinstance(target, dict):
        if "label" not in target:
            raise InvalidInput(f"{where}: a label object needs a \"label\"")
        confidence, attrs = target.get("confidence"), target.get("attributes") or {}
        if not isinstance(attrs, dict):
            raise InvalidInput(f"{where}: \"attributes\" must be an object")
        target = target["label"]
        if target is None:
            return None
    label = _label(target, classes, where)
    if not label:
        raise InvalidInput(f"{where}: the label is empty")
    return Given(label, confidence_of(confidence, where), tags_of(attrs.get("tags"), where),
                 text_of(attrs.get("annotator"))[:100], time_of(attrs.get("labelled_at"), where))


def _read_file(path: Path, prefix: str) -> list[ManifestRow]:
    shown = under(prefix, path.name)
    data = load_json(path, shown)
    if not isinstance(data, dict) or not isinstance(data.get("labels"), dict):
        raise InvalidInput(f"{shown}: a FiftyOne labels.json is an object with a \"labels\" object")
    classes = data.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise InvalidInput(f"{shown}: \"classes\" must be a list of class names")
    rows = []
    for n, (key, target) in enumerate(data["labels"].items(), 1):
        where = f"{shown} \"{key}\""
        parts = PurePosixPath(key.replace("\\", "/")).parts
        if not key.strip() or key.startswith(("/", "\\")) or ".." in parts:
            raise InvalidInput(f"{where}: a key must name a file under data/")
        rows.append(ManifestRow(n, under(prefix, f"data/{key}"), _given(target, classes, where), stem=True))
    return rows


# -- writing (loupe export --format fiftyone) ------------------------------------------------------------------

def layout(row: dict, fmt: str) -> str:
    return f"{split_folder(row['split'])}/data/{row['name']}"


def write(out: Path, rows: list[dict], info: dict, fmt: str) -> None:
    index = {name: i for i, name in enumerate(info["classes"])}
    by_split: dict[str, dict] = {}
    for r in rows:
        folder, _, name = r["path"].split("/", 2)
        by_split.setdefault(folder, {})[PurePosixPath(name).stem] = {
            "label": index[r["label"]], "confidence": r["confidence"],
            "attributes": {"annotator": r["annotator"], "tags": list(r["tags"]), "labelled_at": r["labelled_at"],
                           "source": r["source"], "fold": r["fold"]}}
    for folder, labels in by_split.items():
        (out / folder / "labels.json").write_text(
            json.dumps({"classes": info["classes"], "labels": labels}, ensure_ascii=False, indent=1) + "\n",
            encoding="utf-8")
