"""What a snapshot asks for: the filter and the split settings, validated and normalised.

A normalised filter names sources and classes by id as well as by name, so the
stored filter still says what was meant after a rename.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Source, Tag
from app.errors import InvalidInput, LoupeError
from app.taxonomy.service import resolve_class

FILTER_KEYS = ("sources", "classes", "min_confidence", "exclude_tags", "exclude_flagged", "exclude_ambiguous",
               "exclude_excluded", "labelled_before")
SPLIT_KEYS = ("val", "test", "seed", "folds")
MAX_FOLDS = 20
MAX_NAME = 200


@dataclass
class Filter:
    source_ids: list[int] = field(default_factory=list)  # empty: every source
    class_ids: list[int] = field(default_factory=list)  # empty: every active class
    min_confidence: float | None = None
    exclude_tags: list[str] = field(default_factory=list)
    exclude_flagged: bool = False  # images with an open flag
    exclude_ambiguous: bool = False  # images a reviewer marked ambiguous
    exclude_excluded: bool = True  # images excluded from the dataset
    labelled_before: datetime | None = None  # current label made before this moment (UTC)
    stored: dict = field(default_factory=dict)  # what the snapshot row records


@dataclass
class SplitSpec:
    val: float = 0.2
    test: float = 0.0
    seed: int = 0
    folds: int = 5

    def as_dict(self) -> dict:
        return asdict(self)


def clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("a snapshot name is required")
    name = " ".join(name.split())
    if len(name) > MAX_NAME:
        raise InvalidInput(f"snapshot names are at most {MAX_NAME} characters")
    if name.isdigit():
        raise InvalidInput("a snapshot name cannot be only digits (it would read as a snapshot id)")
    return name


def _names(value: Any, what: str) -> list:
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        raise InvalidInput(f"filter.{what} must be a list")
    return list(dict.fromkeys(v.strip() if isinstance(v, str) else v for v in value if v not in ("", None)))


def _flag(value: Any, what: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidInput(f"filter.{what} must be true or false")
    return value


def _fraction(value: Any, what: str, *, default: float | None, upper_open: bool) -> float | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidInput(f"{what} must be a number from 0 to 1")
    if not 0 <= value <= 1 or (upper_open and value == 1):
        raise InvalidInput(f"{what} must be from 0 to {'below 1' if upper_open else '1'}, not {value}")
    return float(value)


def _moment(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    except (ValueError, OverflowError):  # OverflowError: an offset that moves it before year 1 or past 9999
        raise InvalidInput(f"filter.labelled_before must be an ISO 8601 date or time, not '{value}'") from None


def parse_filter(session: Session, raw: dict | None) -> Filter:
    """Validate a filter (unknown keys, sources, classes or tags are refused) and resolve names to ids."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(FILTER_KEYS))
    if unknown:
        raise InvalidInput(f"unknown filter key '{unknown[0]}'; known keys: {', '.join(FILTER_KEYS)}")
    f = Filter()
    sources = dict(session.execute(select(Source.name, Source.id)).all())
    for name in _names(raw.get("sources"), "sources"):
        if name not in sources:
            raise InvalidInput(f"filter.sources: no source named '{name}'")
        f.source_ids.append(sources[name])
    class_names = []
    for ref in _names(raw.get("classes"), "classes"):
        try:
            cls = resolve_class(session, ref, active_only=True)
        except LoupeError as exc:
            raise InvalidInput(f"filter.classes: {exc.detail}") from None
        f.class_ids.append(cls.id)
        class_names.append(cls.name)
    f.min_confidence = _fraction(raw.get("min_confidence"), "filter.min_confidence", default=None, upper_open=False)
    known_tags = set(session.scalars(select(Tag.name)))
    for tag in _names(raw.get("exclude_tags"), "exclude_tags"):
        tag = " ".join(str(tag).split()).lower()
        if tag not in known_tags:
            raise InvalidInput(f"filter.exclude_tags: unknown tag '{tag}'")
        f.exclude_tags.append(tag)
    f.exclude_flagged = _flag(raw.get("exclude_flagged"), "exclude_flagged", False)
    f.exclude_ambiguous = _flag(raw.get("exclude_ambiguous"), "exclude_ambiguous", False)
    f.exclude_excluded = _flag(raw.get("exclude_excluded"), "exclude_excluded", True)
    f.labelled_before = _moment(raw.get("labelled_before"))
    by_id = {v: k for k, v in sources.items()}
    f.stored = {
        "sources": [by_id[i] for i in f.source_ids], "source_ids": f.source_ids,
        "classes": class_names, "class_ids": f.class_ids,
        "min_confidence": f.min_confidence, "exclude_tags": f.exclude_tags,
        "exclude_flagged": f.exclude_flagged, "exclude_ambiguous": f.exclude_ambiguous,
        "exclude_excluded": f.exclude_excluded,
        "labelled_before": f.labelled_before.isoformat() + "Z" if f.labelled_before else None,
    }
    return f


def parse_split(raw: dict | None) -> SplitSpec:
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(SPLIT_KEYS))
    if unknown:
        raise InvalidInput(f"unknown split key '{unknown[0]}'; known keys: {', '.join(SPLIT_KEYS)}")
    val = _fraction(raw.get("val"), "split.val", default=0.2, upper_open=True)
    test = _fraction(raw.get("test"), "split.test", default=0.0, upper_open=True)
    if val + test >= 1:
        raise InvalidInput(f"split.val + split.test must leave images for training (is {val + test:g})")
    seed, folds = raw.get("seed", 0), raw.get("folds", 5)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:  # an INTEGER column
        raise InvalidInput(f"split.seed must be a whole number from 0 to {2**31 - 1}")
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= MAX_FOLDS:
        raise InvalidInput(f"split.folds must be a whole number from 2 to {MAX_FOLDS}")
    return SplitSpec(val=val, test=test, seed=seed, folds=folds)
