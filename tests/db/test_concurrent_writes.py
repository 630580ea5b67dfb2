"""Writers from several connections at once still see one writer at a time.

The domain code relies on it (version number = current + 1, a base version
checked before a change, the current label pointed at the newest event). SQLite
gives it with BEGIN IMMEDIATE; PostgreSQL with the write engine's advisory lock.
"""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from app.db.engine import Database
from app.db.models import CurrentLabel, LabelEvent, TaxonomyVersion
from app.labelling.events import LabelInput, record_label
from app.taxonomy.service import apply_change
from tests.factories import add_class, upload_fmnist

THREADS = 6


def _all_at_once(url: str, work) -> list:
    """Run work(db, i) in THREADS threads, each with its own engines, released together."""
    start, results = threading.Barrier(THREADS), [None] * THREADS

    def run(i: int) -> None:
        db = Database(url)
        try:
            start.wait()
            results[i] = work(db, i)
        except Exception as exc:  # reported below, with the others
            results[i] = exc
        finally:
            db.dispose()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_simultaneous_taxonomy_changes_get_consecutive_versions(settings, db):
    def add(db, i):
        with db.writing() as s:
            return apply_change(s, change={"op": "add", "name": f"class {i}"})["version"]

    results = _all_at_once(settings.database_url, add)
    assert all(isinstance(r, int) for r in results), results  # nobody failed on a taken number
    with db.reading() as s:
        numbers = s.scalars(select(TaxonomyVersion.number).order_by(TaxonomyVersion.number)).all()
    assert numbers == list(range(1, THREADS + 1))


def test_simultaneous_changes_on_one_base_version_let_exactly_one_through(settings, db):
    with db.writing() as s:
        apply_change(s, change={"op": "add", "name": "first"})

    def add(db, i):
        with db.writing() as s:
            return apply_change(s, change={"op": "add", "name": f"class {i}", "base_version": 1})["version"]

    results = _all_at_once(settings.database_url, add)
    assert results.count(2) == 1, results
    assert all("the taxonomy changed" in getattr(r, "detail", "") for r in results if r != 2), results


def test_simultaneous_labels_of_one_image_leave_the_newest_current(client, settings, db):
    add_class(client, "shirt")
    (image,) = upload_fmnist(client, 1)

    def label(db, i):
        with db.writing() as s:
            return record_label(s, image_id=image, data=LabelInput(class_ref="shirt", note=str(i))).id

    ids = _all_at_once(settings.database_url, label)
    assert all(isinstance(i, int) for i in ids), ids
    with db.reading() as s:
        newest = s.scalar(select(func.max(LabelEvent.id)).where(LabelEvent.image_id == image))
        assert s.get(CurrentLabel, image).event_id == newest == max(ids)
