"""`loupe import --labels`: import an already-labelled dataset and keep its labels as label events.

Labels come from the folder layout (ImageFolder: a file's class is its parent
folder's name below the imported folder; split folders such as train/ or val/
are not classes) or from a
CSV / JSONL manifest with a file column (file, path or filename) and a label
column (label or class), optionally confidence (0..1, default 1) and tags
(a list, or ";"-separated in CSV). A manifest row names its file by a path
that ends like the file's imported name (``images/x.png`` matches
``export/images/x.png``), so a manifest written next to its images works
whichever folder is imported.

Everything is checked before any image is imported (manifest format, class
names, tags, and that the manifest matches the files at all). Labels are then
written in one transaction: missing classes in one new taxonomy version, and
one label event of kind "import" per image with annotator ``import:<manifest
file name>`` or ``import:<source>``. An image that is already labelled keeps
its label: the same class is "unchanged", a different one (a person's or an
earlier import's) is reported as a conflict and never overwritten. So is an
image the import gives two different classes.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import formats
from app.config import Settings
from app.db.engine import Database
from app.db.models import CurrentLabel, Job, LabelClass, LabelEvent, Prediction
from app.errors import InvalidInput
from app.formats.manifest import folder_label, match_manifest
from app.formats.rows import Given, Suggestion
from app.images import collect
from app.images.archive import ArchiveLimits
from app.images.ingest import ImportReport, Progress, import_paths, import_uploads
from app.labelling.events import LabelInput, append_label_events
from app.labelling.queries import current_sets
from app.labelling.tags import check_tags
from app.taxonomy.queries import MULTI, taxonomy_mode
from app.taxonomy.service import active_classes, current_version, ensure_classes
from app.timeutil import utcnow

CHUNK = 10_000


@dataclass
class LabelReport:
    labelled: int = 0
    unchanged: int = 0
    conflicts: list[dict] = field(default_factory=list)  # {"file", "image", "current", "given", "reason"}
    unmatched: list[dict] = field(default_factory=list)  # manifest rows naming no imported file: {"file", "reason"}
    unlabelled: list[str] = field(default_factory=list)  # imported files the labels say nothing about
    new_classes: list[str] = field(default_factory=list)
    taxonomy_version: int | None = None
    format: str = "folders"  # which reader of app.formats read the labels
    suggestions: int = 0  # imported images that got a model's suggestion from the file (Label Studio predictions)
    suggestion_job: int | None = None  # the "import" job holding them


@dataclass
class Plan:
    """What an import will do with a label file, decided before any image is imported."""

    given: dict[str, Given]  # file to import -> its label
    report: LabelReport
    annotator: str  # the default annotator of its labels ("" : the import's source decides)
    suggested: dict[str, Suggestion] = field(default_factory=dict)  # file -> a model's guess (never a label)
    label_file: str = ""


def _entry_names(settings: Settings, paths: list[Path]) -> list[str]:
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise InvalidInput(f"no such file or folder: {', '.join(missing)}")
    with ExitStack() as stack:
        return [e.filename for e in collect.from_paths(list(paths), _limits(settings), stack).entries]


def _limits(settings: Settings) -> ArchiveLimits:
    return ArchiveLimits(max_zip_bytes=settings.max_zip_bytes, max_zip_entries=settings.max_zip_entries)


def plan(settings: Settings, paths: list[Path], labels: str) -> Plan:
    """Which label each file to import gets, before anything is written; also the annotator name.

    `labels` is "folders", a format's name (its usual file is looked for in `paths`) or a label file in any
    format of `app.formats.READERS`.
    """
    return plan_for(_entry_names(settings, paths), labels, [Path(p) for p in paths])


def plan_for(names: list[str], labels: str, paths: list[Path]) -> Plan:
    """`plan` over the entry names of the files to import; `paths` are searched for a format's usual file."""
    report = LabelReport()
    if labels == formats.FOLDERS:
        return Plan({n: Given(label) for n in names if (label := folder_label(n))}, report, "")
    fmt, path = formats.reader_for(labels, paths)
    rows = [r for r in formats.module(fmt, formats.READERS).read(path) if r.given is not None or r.suggestion]
    matched, report.unmatched = match_manifest(rows, names)
    if rows and not matched:
        raise InvalidInput(
            f"none of the {len(rows)} files listed in {path.name} is among the files to import "
            f"(first: '{rows[0].file}'); paths in the label file must end like the imported files' paths"
        )
    report.format = fmt
    return Plan({n: r.given for n, r in matched.items() if r.given is not None}, report, f"import:{path.name}",
                {n: r.suggestion for n, r in matched.items() if r.suggestion is not None}, path.name)


def _check(db: Database, plan: Plan) -> None:
    """Class names and tags are valid: try them in a transaction that is rolled back."""
    with db.writing() as session:
        sets = next((n for n, g in plan.given.items() if g.classes is not None), None)
        if sets is not None and taxonomy_mode(session) != MULTI:
            raise InvalidInput(f"the label file gives sets of classes (e.g. for {sets}), and this taxonomy is "
                               "single-label: make it multi-label first (the taxonomy page), then import")
        names = {n for g in plan.given.values() for n in g.names()}
        ensure_classes(session, sorted(names | _suggested_classes(plan.suggested)), author="import", message="check")
        check_tags(session, sorted({t for g in plan.given.values() for t in g.tags}))
        session.rollback()


def _shown(names) -> str:
    """A label as a report names it: the class, or a set as "a + b" ("none of these" when empty)."""
    return " + ".join(names) or "none of these"


def _suggested_classes(suggested) -> set[str]:
    return {name for s in suggested.values() for name in s.probs}


def _current(session: Session, image_ids: list[int]) -> dict[int, tuple[tuple[str, ...], str, str]]:
    """image id -> (current class names, kind, annotator) for labelled images: one name, or a set's (sorted)."""
    out = {}
    names = dict(session.execute(select(LabelClass.id, LabelClass.name)).all()) if image_ids else {}
    for start in range(0, len(image_ids), CHUNK):
        chunk = image_ids[start:start + CHUNK]
        rows = session.execute(
            select(CurrentLabel.image_id, LabelClass.name, LabelEvent.kind, LabelEvent.annotator)
            .join(LabelEvent, LabelEvent.id == CurrentLabel.event_id)
            .outerjoin(LabelClass, LabelClass.id == CurrentLabel.class_id)
            .where(CurrentLabel.image_id.in_(chunk))
        )
        out.update({i: ((n,) if n is not None else (), k, a) for i, n, k, a in rows})
        for image_id, members in current_sets(session, chunk).items():
            out[image_id] = (tuple(sorted(names[c] for c in members)), *out[image_id][1:])
    return out


def write_labels(session: Session, per_image: dict[int, list[tuple[str, Given]]], report: LabelReport, *,
                 annotator: str, suggested: dict[int, Suggestion] | None = None, label_file: str = "") -> None:
    """Append one import event per image that has no label yet; the rest are unchanged or conflicts; and the
    `suggested` images' suggestions as one "import" job. Commits."""
    current = _current(session, sorted(per_image))
    before = {c.name.lower() for c in active_classes(session)}
    todo: list[tuple[int, Given]] = []
    multi = taxonomy_mode(session) == MULTI
    for image_id, files in sorted(per_image.items()):
        answers = {g.answer(): _shown(g.names()) for _, g in files}
        file, g = files[0]
        if len(answers) > 1:
            report.conflicts.append({"file": file, "image": image_id, "current": None, "given": _shown(g.names()),
                                     "reason": f"the import gives it {' and '.join(sorted(answers.values()))}"})
        elif image_id not in current:
            todo.append((image_id, g))
        elif tuple(sorted(n.lower() for n in current[image_id][0])) == g.answer():
            report.unchanged += 1
        else:
            names, kind, who = current[image_id]
            report.conflicts.append({"file": file, "image": image_id, "current": _shown(names),
                                     "given": _shown(g.names()),
                                     "reason": f"already labelled '{_shown(names)}' by {who} ({kind})"})
    guessed = _suggested_classes(suggested or {})
    if todo or guessed:  # every class the import names, created in one taxonomy version
        classes = ensure_classes(session, sorted({n for _, g in todo for n in g.names()} | guessed),
                                 author=annotator, message=f"classes added by {annotator}")
        report.new_classes = sorted(n for n in classes if n.lower() not in before)
        # In a multi-label taxonomy every answer is a set: a file's one label is a set of that class.
        append_label_events(session, [
            (i, LabelInput(None if multi else classes[g.label].id, g.confidence, g.tags, "", g.annotator or annotator,
                           g.ms, "import", made_at=g.made_at,
                           classes=[classes[n].id for n in g.names()] if multi else None)) for i, g in todo
        ])
        if suggested:
            report.suggestion_job = write_suggestions(session, suggested, classes, label_file).id
            report.suggestions = len(suggested)
    report.labelled = len(todo)
    version = current_version(session)
    report.taxonomy_version = version.number if version else None
    session.commit()


def import_labelled(
    db: Database, settings: Settings, paths: list[Path], *, source: str, labels: str,
    on_progress: Progress | None = None,
) -> tuple[ImportReport, LabelReport]:
    """Import images and their labels (`labels`: see `plan`)."""
    planned = plan(settings, paths, labels)
    _check(db, planned)
    imported = import_paths(db, settings, paths, source=source, on_progress=on_progress)
    return imported, _label(db, imported, planned, planned.annotator or _annotator(source))


def import_labelled_uploads(
    db: Database, settings: Settings, uploads: list[tuple[str, BinaryIO]], *, source: str, labels: str,
    label_file: Path | None = None,
) -> tuple[ImportReport, LabelReport]:
    """Import uploaded images (a zip counts as its files) and their labels: "folders" (class folders inside the
    zips), or `label_file` (an uploaded label file, saved by the caller; its format is recognised)."""
    with ExitStack() as stack:
        names = [e.filename for e in collect.from_uploads(uploads, _limits(settings), stack).entries]
    for _, f in uploads:  # listing a zip read it: the import reads it again from the start
        f.seek(0)
    spec = str(label_file) if label_file is not None else labels
    planned = plan_for(names, spec, [label_file.parent] if label_file is not None else [])
    _check(db, planned)
    imported = import_uploads(db, settings, uploads, source=source)
    return imported, _label(db, imported, planned, planned.annotator or _annotator(source))


def _annotator(source: str) -> str:
    return f"import:{' '.join(source.split())}"


def _label(db: Database, imported: ImportReport, planned: Plan, annotator: str) -> LabelReport:
    """Label the files just imported (new ones and duplicates alike) as the plan says."""
    annotator, report = annotator[:100], planned.report
    ids = {x["filename"]: x["id"] for x in imported.imported + imported.duplicates}
    per_image: dict[int, list[tuple[str, Given]]] = {}
    for name, image_id in ids.items():
        if name in planned.given:
            per_image.setdefault(image_id, []).append((name, planned.given[name]))
        else:
            report.unlabelled.append(name)
    suggested = {ids[name]: s for name, s in planned.suggested.items() if name in ids}
    with db.writing() as session:
        write_labels(session, per_image, report, annotator=annotator, suggested=suggested,
                     label_file=planned.label_file)
    return report


def write_suggestions(session: Session, suggested: dict[int, Suggestion], classes: dict[str, LabelClass],
                      label_file: str) -> Job:
    """A model's guesses that came with the labels, as the predictions of a finished job of kind "import"
    (no snapshot; its config names the classes its probabilities follow), so the labelling page suggests them
    as it does a trained model's until a Loupe model has seen the image."""
    names = sorted(_suggested_classes(suggested), key=str.lower)
    models = sorted({s.model for s in suggested.values() if s.model})
    job = Job(kind="import", snapshot_id=None, status="succeeded", progress=1.0, finished_at=utcnow(),
              config={"file": label_file, "model_version": ", ".join(models),
                      "classes": [{"id": classes[n].id, "name": classes[n].name} for n in names]},
              artifacts={"classes": [classes[n].name for n in names]}, notes=[],
              message=f"{len(suggested)} suggestions imported from {label_file or 'the label file'}")
    session.add(job)
    session.flush()
    for image_id, s in sorted(suggested.items()):
        probs = [float(s.probs.get(n, 0.0)) for n in names]
        best = sorted(probs, reverse=True) + [0.0]
        session.add(Prediction(job_id=job.id, image_id=image_id, role="suggestion", out_of_sample=False,
                               probs=probs, margin=best[0] - best[1]))
    return job


def summary(report: LabelReport, limit: int = 20) -> str:
    """One line of counts, then conflicts and manifest rows that matched nothing (at most `limit` each)."""
    line = (f"labels: {report.labelled} added, {report.unchanged} unchanged, {len(report.conflicts)} conflicts "
            f"(kept the existing label), {len(report.unmatched)} not found, "
            f"{len(report.unlabelled)} files without a label")
    if report.new_classes:
        line += f"; new classes in taxonomy version {report.taxonomy_version}: {', '.join(report.new_classes)}"
    if report.suggestions:
        line += f"; {report.suggestions} model suggestions (job {report.suggestion_job}), not labels"
    lines = [line]
    for title, items, fmt in (
        ("conflicts:", report.conflicts, lambda c: f"  {c['file']}: {c['reason']}; the import says '{c['given']}'"),
        ("not found:", report.unmatched, lambda u: f"  {u['file']}: {u['reason']}"),
    ):
        if items:
            lines.append(title)
            lines.extend(fmt(x) for x in items[:limit])
            if len(items) > limit:
                lines.append(f"  ... and {len(items) - limit} more")
    return "\n".join(lines)
