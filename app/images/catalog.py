"""Looking images up (the store and import live beside this)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import CurrentLabel, Image, Source
from app.errors import NotFound
from app.timeutil import iso


def get_image(session: Session, image_id: int) -> Image:
    image = session.get(Image, image_id)
    if image is None:
        raise NotFound(f"no image {image_id}")
    return image


def image_meta(image: Image) -> dict:
    return {
        "id": image.id,
        "sha256": image.sha256,
        "source": image.source.name,
        "filename": image.original_filename,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "mode": image.mode,
        "bytes": image.byte_size,
        "phash": f"{image.phash & 0xFFFFFFFFFFFFFFFF:016x}",
        "imported_at": iso(image.imported_at),
        "batch": image.batch_id,
        "excluded": image.excluded,
    }


def source_counts(session: Session) -> list[dict]:
    """Per source: images and how many of them carry a label."""
    rows = session.execute(
        select(Source.name, func.count(Image.id), func.count(CurrentLabel.class_id))
        .select_from(Source)
        .outerjoin(Image, Image.source_id == Source.id)
        .outerjoin(CurrentLabel, CurrentLabel.image_id == Image.id)
        .group_by(Source.id)
        .order_by(Source.name)
    )
    return [{"name": n, "images": i, "labelled": l} for n, i, l in rows]


def source_names(session: Session) -> list[str]:
    return list(session.scalars(select(Source.name).order_by(Source.name)))
