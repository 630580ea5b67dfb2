"""Looking images up (the store and import live beside this)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Image, Source, SourceCount
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
    """Per source: images and how many of them carry a label (kept by triggers: no counting here)."""
    rows = session.execute(
        select(Source.name, SourceCount.images, SourceCount.labelled)
        .join(SourceCount, SourceCount.source_id == Source.id)
        .order_by(Source.name)
    )
    return [{"name": name, "images": images, "labelled": labelled} for name, images, labelled in rows]


def library_counts(session: Session, *, source_id: int | None = None) -> dict[str, int]:
    """Images, labelled, excluded and waiting (unlabelled, not excluded): all sources, or one."""
    q = select(*(func.coalesce(func.sum(c), 0) for c in (SourceCount.images, SourceCount.labelled,
                                                        SourceCount.excluded, SourceCount.waiting)))
    if source_id is not None:
        q = q.where(SourceCount.source_id == source_id)
    images, labelled, excluded, waiting = (int(n) for n in session.execute(q).one())
    return {"images": images, "labelled": labelled, "excluded": excluded, "waiting": waiting}


def source_names(session: Session) -> list[str]:
    return list(session.scalars(select(Source.name).order_by(Source.name)))
