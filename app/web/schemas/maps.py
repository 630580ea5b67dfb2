"""What GET /api/embeddings/map answers (app/web/routes/maps.py) as JSON: one object per point, or one list
per field. The route serialises the body itself (FastAPI's encoder is too slow for 100,000 points), so these
models document the answer without validating it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.db.vocab import Split
from app.web.schemas import Reply


class MapSince(Reply):
    """What changed since the analysis read the labels."""

    labels: int | None = Field(description="label events made since (the cap + 1 when more); null: the analysis "
                                           "did not record when it read the labels")
    exclusions: int | None = Field(description="exclusion events made since (the cap + 1 when more); null as for "
                                               "labels")
    images: int = Field(description="images imported since that are not on the map (the cap + 1 when more)")


class MapAsOf(Reply):
    """How old the points are: positions and outlier scores are as of `at`; class, marks and split are current."""

    job: int = Field(description="the analyse job")
    space: int = Field(description="the train or embed job whose embeddings were analysed")
    at: str | None = Field(description="when the analysis read the labels; null: an analysis that did not record it")
    extends: int | None = Field(description="the analysis an extension placed new images into; null: a full one")
    placed_at: str | None = Field(description="when an extension placed the new images")
    since: MapSince
    refreshing: int | None = Field(description="an analyse job queued or running")
    colours: Literal["current", "live"] = Field(description="current: the stored state plus the events since; "
                                                            "live: read now")


class MapPoint(Reply):
    """One image as a point on the map."""

    image: int
    x: float = Field(description="in [-1, 1]")
    y: float = Field(description="in [-1, 1]")
    class_: str | None = Field(alias="class", description="the current label; null: none")
    source: str | None = Field(description="the source's name")
    split: Split | None = Field(description="the image's split in the latest snapshot; null: not in it")
    flagged: bool = Field(description="an open flag of any kind")
    unlabelled: bool
    excluded: bool


class MapItems(Reply):
    """The map as one object per image (`format=items`)."""

    job: int = Field(description="the analyse job")
    space: int = Field(description="the train or embed job whose embeddings were analysed")
    snapshot: int | None = Field(description="the snapshot `split` is read from; null: none yet")
    as_of: MapAsOf
    items: list[MapPoint]


class MapColumns(Reply):
    """The map as one list per field, all of the same length (`format=columns`)."""

    job: int = Field(description="the analyse job")
    space: int = Field(description="the train or embed job whose embeddings were analysed")
    snapshot: int | None = Field(description="the snapshot `split` is read from; null: none yet")
    as_of: MapAsOf
    classes: list[str] = Field(description="the names `class` indexes")
    sources: list[str] = Field(description="the names `source` indexes")
    splits: list[Split] = Field(description="the names `split` indexes")
    scale: int = Field(description="x and y are in units of 1 / scale")
    x: list[int]
    y: list[int]
    image: list[int]
    class_: list[int] = Field(alias="class", description="indexes into `classes`; -1: unlabelled")
    source: list[int] = Field(description="indexes into `sources`")
    split: list[int] = Field(description="indexes into `splits`; -1: not in the latest snapshot")
    flagged: list[int] = Field(description="1: an open flag of any kind, else 0")
    unlabelled: list[int] = Field(description="1 or 0")
    excluded: list[int] = Field(description="1 or 0")
