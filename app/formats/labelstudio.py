"""Label Studio's JSON export of an image classification project (`<Choices>`), both ways.

Read: the full JSON export (labelstud.io/guide/task_format, "Label Studio JSON
format of annotated tasks": a list of tasks with `data`, `annotations` and
`predictions`) and JSON-MIN (labelstud.io/guide/export: one flat object per
annotation, the choice under its control's `from_name`, with `annotator`,
`created_at` and `lead_time`).

- A task's label is its latest annotation that was not cancelled
  (`was_cancelled`), by `created_at`; a task without one is listed unlabelled.
  Its `choices` result gives the class; several classes chosen
  (`choice="multiple"`) are a set, imported only into a multi-label taxonomy
  (a single-label one refuses the file with a sentence). A task whose
  annotation holds no choices at all is refused (a box or text project is not
  an image classification).
- Who and when: `completed_by` (an email when the export holds the user
  object, else "label-studio user <id>"; JSON-MIN: `annotator`),
  `created_at`, and `lead_time` (seconds) as the time spent.
- `predictions` are a model's pre-annotations: they become suggestions on the
  labelling page (the latest prediction per task, its `score` as the
  probability of the class it chose), never labels.
- Image paths: Label Studio stores uploads as `/data/upload/<project>/<8 hex>-<name>`
  (the prefix is dropped, leaving the name you uploaded), local files as
  `/data/local-files/?d=<path>` (the path), and URLs (their path). Files are
  then matched to the imported files by the end of their path, so import the
  folder you gave Label Studio.

Write (`--format label-studio`): `tasks.json` (a list of tasks importable into
Label Studio, its images under `images/`, `data.image` = `/data/local-files/?d=images/<file>`
so a local-files storage rooted at the export folder serves them), each
labelled image's label as an annotation (a `choices` result from "choice" to
"image"; Label Studio's import wants `completed_by` as a user id, so the Loupe
annotator, confidence, tags and time stay in the task's `data.loupe`), the
latest model's prediction as a pre-annotation (`predictions`, with
`model_version` and `score`) where one exists, and `label_config.xml`
(the project's labelling interface with the snapshot's classes). Dropped:
the fold.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse
from xml.sax.saxutils import quoteattr

from app.errors import InvalidInput
from app.formats.rows import (
    Given,
    ManifestRow,
    Suggestion,
    confidence_of,
    json_if,
    load_json,
    tags_of,
    text_of,
    time_of,
)

NAMES = ("tasks.json", "result.json", "export.json")
DROPS = ("fold",)
# A multi-label snapshot's sets go out as several choices; an empty set has none, and reads back as unlabelled.
SET_DROPS = ("none of these",)
PREDICTIONS = True  # the export gives rows the latest model's guess: written as pre-annotations
UPLOAD = re.compile(r"^[0-9a-f]{8}-")  # Label Studio's prefix on uploaded file names
# Keys of a JSON-MIN record that are not the choice control.
MIN_KEYS = frozenset({"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "image", "data",
                      "loupe"})


# -- reading -------------------------------------------------------------------------------------------------

def detect(path: Path) -> bool:
    """A .json list of tasks: objects with `data` (full JSON) or with `annotation_id` (JSON-MIN)."""
    data = json_if(path)
    return (isinstance(data, list) and bool(data) and isinstance(data[0], dict)
            and ("data" in data[0] or "annotation_id" in data[0]))


def find(paths: list[Path]) -> Path | None:
    for path in map(Path, paths):
        if path.is_file() and detect(path):
            return path
        if path.is_dir():
            for name in NAMES:
                if (path / name).is_file():
                    return path / name
    return None


def image_path(ref: str) -> str:
    """The file a task's image reference names, as a path whose ending matches the imported file."""
    ref = ref.strip()
    parsed = urlparse(ref)
    if "d" in parse_qs(parsed.query):  # /data/local-files/?d=folder/x.png
        return unquote(parse_qs(parsed.query)["d"][0]).lstrip("/")
    path = unquote(parsed.path)
    if path.startswith("/data/upload/"):
        folder, _, name = path.rpartition("/")
        return UPLOAD.sub("", name)
    return path.lstrip("/")


def _person(who) -> str:
    if isinstance(who, dict):
        who = who.get("email") or who.get("username") or who.get("id")
    if who is None or who == "":
        return ""
    return f"label-studio user {who}" if isinstance(who, int) else text_of(who)[:100]


def _choices(results, where: str) -> tuple[str, ...]:
    """The classes a result list chooses, sorted (none: it chooses nothing; several: a multi-label answer)."""
    if not isinstance(results, list):
        raise InvalidInput(f"{where}: \"result\" must be a list")
    chosen = []
    for r in results:
        if not isinstance(r, dict):
            raise InvalidInput(f"{where}: a result must be an object")
        if r.get("type") == "choices":
            choices = (r.get("value") or {}).get("choices")
            if not isinstance(choices, list):
                raise InvalidInput(f"{where}: a choices result without a list of choices")
            chosen.extend(choices)
    names = {text_of(c) for c in chosen} - {""}
    if not names and results:
        kinds = sorted({str(r.get("type")) for r in results})
        raise InvalidInput(f"{where}: no choices result (found {', '.join(kinds)}); Loupe reads image "
                           "classification projects")
    return tuple(sorted(names))


def _given(names: tuple[str, ...], *rest) -> Given | None:
    """One choice is a label; several are a set (imported only into a multi-label taxonomy); none, no label."""
    if not names:
        return None
    return Given(names[0], *rest) if len(names) == 1 else Given("", *rest, classes=names)


def _ms(raw, where: str) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0:
        raise InvalidInput(f"{where}: lead_time must be a number of seconds, not {json.dumps(raw)}")
    return round(raw * 1000)


def _task_row(n: int, task: dict) -> ManifestRow:
    where = f"task {task.get('id', f'number {n}')}"
    data = task.get("data")
    if not isinstance(data, dict):
        raise InvalidInput(f"{where}: no \"data\" object")
    ref = data.get("image") or next((v for v in data.values() if isinstance(v, str) and v.strip()), None)
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(f"{where}: no image in \"data\"")
    annotations = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    given = None
    if annotations:
        last = max(annotations, key=lambda a: str(a.get("created_at") or ""))
        names = _choices(last.get("result") or [], f"{where} annotation {last.get('id', '?')}")
        given = _given(names, 1.0, (), _person(last.get("completed_by")), time_of(last.get("created_at"), where),
                       _ms(last.get("lead_time"), where))
        if given is not None:
            given = _with_loupe(given, data.get("loupe"), where)
    suggestion = None
    predictions = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
    if predictions:
        last = predictions[-1]
        names = _choices(last.get("result") or [], f"{where} prediction")
        if names:
            score = confidence_of(last.get("score"), f"{where} prediction score")
            suggestion = Suggestion({n: score for n in names}, text_of(last.get("model_version")) or "label-studio")
    return ManifestRow(n, image_path(ref), given, suggestion)


def _with_loupe(given: Given, extra, where: str) -> Given:
    """The fields Loupe's own export keeps in `data.loupe` (Label Studio has nowhere else for them)."""
    if not isinstance(extra, dict):
        return given
    return Given(given.label, confidence_of(extra.get("confidence"), where), tags_of(extra.get("tags"), where),
                 text_of(extra.get("annotator"))[:100] or given.annotator,
                 time_of(extra.get("labelled_at"), where) or given.made_at, given.ms, classes=given.classes)


def _min_row(n: int, record: dict) -> ManifestRow:
    where = f"record {n} (task {record.get('id', '?')})"
    ref = record.get("image")
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(f"{where}: no \"image\"")
    controls = [k for k in record if k not in MIN_KEYS]
    if len(controls) > 1:
        raise InvalidInput(f"{where}: which key is the choice? it has {', '.join(controls)}")
    value = record[controls[0]] if controls else None
    if isinstance(value, dict):
        value = value.get("choices")
    if isinstance(value, list):
        names = tuple(sorted({text_of(v) for v in value} - {""}))
    elif value is None or isinstance(value, str):
        names = (text_of(value),) if text_of(value) else ()
    else:
        raise InvalidInput(f"{where}: the choice must be a class name, not {json.dumps(value)}")
    given = _given(names, 1.0, (), _person(record.get("annotator")), time_of(record.get("created_at"), where),
                   _ms(record.get("lead_time"), where))
    return ManifestRow(n, image_path(ref), given)


def read(path: Path) -> list[ManifestRow]:
    path = Path(path)
    data = load_json(path, path.name)
    if not isinstance(data, list):
        raise InvalidInput(f"{path.name}: a Label Studio export is a list of tasks")
    rows = []
    for n, task in enumerate(data, 1):
        if not isinstance(task, dict):
            raise InvalidInput(f"{path.name}: task number {n} is not an object")
        try:
            rows.append(_task_row(n, task) if "data" in task else _min_row(n, task))
        except InvalidInput as exc:
            raise InvalidInput(f"{path.name} {exc.detail}") from None
    return rows


# -- writing (loupe export --format label-studio) --------------------------------------------------------------

def layout(row: dict, fmt: str) -> str:
    return f"images/{row['name']}"


def _result(*labels: str) -> list[dict]:
    """One choices result (several choices: a set); none for an empty set."""
    return [{"from_name": "choice", "to_name": "image", "type": "choices", "value": {"choices": list(labels)}}] \
        if labels else []


def write(out: Path, rows: list[dict], info: dict, fmt: str) -> None:
    tasks = []
    for r in rows:
        task = {"data": {"image": f"/data/local-files/?d={r['path']}",
                         "loupe": {"image": r["image"], "sha256": r["sha256"], "source": r["source"],
                                   "split": r["split"], "confidence": r["confidence"], "tags": list(r["tags"]),
                                   "annotator": r["annotator"], "labelled_at": r["labelled_at"]}},
                "annotations": [{"result": _result(*r["classes"]) if "classes" in r else _result(r["label"]),
                                 "was_cancelled": False, "ground_truth": False,
                                 "created_at": r["labelled_at"]}]}
        guess = r.get("prediction")
        if guess:
            task["predictions"] = [{"model_version": guess["model"], "score": round(guess["p"], 4),
                                    "result": _result(guess["class"])}]
        tasks.append(task)
    (out / "tasks.json").write_text(json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in info["classes"])
    (out / "label_config.xml").write_text(
        f'<View>\n  <Image name="image" value="$image"/>\n  <Choices name="choice" toName="image" '
        f'choice="{"multiple" if rows and "classes" in rows[0] else "single"}">\n'
        f"{choices}\n  </Choices>\n</View>\n", encoding="utf-8")
