"""The per-source and per-class counts that triggers keep (migrations 0008, 0011) agree with counting the rows,
through every writer."""

from __future__ import annotations

import re

from sqlalchemy import text

from app.images.catalog import library_counts, source_counts
from app.taxonomy.queries import class_counts
from tests.factories import add_class, label, upload_fmnist


def _counted(db) -> dict[str, tuple[int, int, int, int]]:
    """(images, labelled, excluded, waiting) per source, the slow way: from the rows themselves."""
    with db.reading() as s:
        rows = s.execute(text("""
            SELECT sources.name, count(images.id), count(current_labels.class_id),
                   coalesce(sum(CASE WHEN images.excluded THEN 1 ELSE 0 END), 0),
                   coalesce(sum(CASE WHEN current_labels.class_id IS NULL AND images.id IS NOT NULL
                                      AND NOT images.excluded THEN 1 ELSE 0 END), 0)
            FROM sources LEFT JOIN images ON images.source_id = sources.id
            LEFT JOIN current_labels ON current_labels.image_id = images.id
            GROUP BY sources.name
        """)).all()
    return {name: tuple(int(n) for n in counts) for name, *counts in rows}


def _kept(db) -> dict[str, tuple[int, int, int, int]]:
    with db.reading() as s:
        rows = s.execute(text("SELECT sources.name, images, labelled, excluded, waiting FROM source_counts "
                              "JOIN sources ON sources.id = source_counts.source_id")).all()
    return {name: tuple(counts) for name, *counts in rows}


checked_label_page: list[bool] = []


def _agree(client, db) -> dict[str, tuple[int, int, int, int]]:
    truth = _counted(db)
    assert _kept(db) == truth
    with db.reading() as s:   # per class too (migration 0011): the same writers move them
        by_class = dict(s.execute(text("SELECT class_id, count(*) FROM current_labels WHERE class_id IS NOT NULL "
                                       "GROUP BY class_id")).all())
        kept = dict(s.execute(text("SELECT class_id, labels FROM class_counts")).all())
        assert {c: n for c, n in kept.items() if n} == by_class and min(kept.values(), default=0) >= 0
        assert class_counts(s) == by_class
    with db.reading() as s:
        assert {c["name"]: (c["images"], c["labelled"]) for c in source_counts(s)} == \
            {name: n[:2] for name, n in truth.items()}
        assert library_counts(s)["waiting"] == sum(n[3] for n in truth.values())
    # What the pages and the API say, now read off the counters.
    assert client.get("/api/images", params={"status": "unlabelled"}).json()["total"] == \
        sum(n[0] - n[1] for n in truth.values())
    for name, n in truth.items():
        assert client.get("/api/images", params={"source": name, "status": "labelled"}).json()["total"] == n[1]
    page = client.get("/label").text
    if "<span id=\"remaining\"" in page:   # not on the page that asks for classes first
        left = re.search(r'<span id="remaining"[^>]*>([\d,]+)</span>', page).group(1)
        assert int(left.replace(",", "")) == sum(n[3] for n in truth.values())
        checked_label_page.append(True)
    return truth


def test_counts_follow_imports_labels_undo_taxonomy_and_raw_sql(client, db):
    cam = upload_fmnist(client, 6, source="camera")
    web = upload_fmnist(client, 4, start=6, source="web")
    assert _agree(client, db) == {"camera": (6, 0, 0, 6), "web": (4, 0, 0, 4)}

    for name in ("shirt", "coat", "bag"):
        add_class(client, name)
    for image in cam[:3]:
        label(client, image, "shirt")
    label(client, web[0], "coat")
    relabel = label(client, cam[0], "bag")   # a relabel changes no count
    assert _agree(client, db) == {"camera": (6, 3, 0, 3), "web": (4, 1, 0, 3)}

    r = client.post(f"/api/images/{cam[1]}/labels/undo", json={"event": client.get(
        f"/api/images/{cam[1]}").json()["label"]["id"]})
    assert r.status_code == 201, r.text
    assert _agree(client, db)["camera"] == (6, 2, 0, 4)

    # Taxonomy migrations move labels with set-based SQL; a retire sends them to re-review.
    r = client.post("/api/taxonomy/changes", json={"op": "merge", "classes": ["shirt", "coat"], "into": "top"})
    assert r.status_code == 201, r.text
    r = client.post("/api/taxonomy/changes", json={"op": "retire", "class": "bag"})
    assert r.status_code == 201, r.text
    _agree(client, db)
    assert relabel["image"] == cam[0]

    # Bulk actions write many rows per statement (PostgreSQL's triggers run once per statement, migration 0012).
    r = client.post("/api/labels/bulk", json={"images": [web[0], web[1], web[3]], "class": "top", "annotator": "ana"})
    assert r.status_code == 201, r.text
    assert _agree(client, db)["web"][1] == 3
    r = client.post("/api/labels/bulk", json={"images": cam[3:5], "action": "exclude", "reason": "blurry",
                                               "annotator": "ana"})
    assert r.status_code == 201, r.text
    _agree(client, db)
    undo = client.post(f"/api/labels/bulk/{r.json()['id']}/undo", json={"annotator": "ana"})
    assert undo.status_code in (200, 201), undo.text
    _agree(client, db)

    # Writers that bypass the app: an exclusion, a move to another source, a removed row.
    with db.writing() as s:
        s.execute(text("UPDATE images SET excluded = :yes WHERE id IN (:a, :b)"), {"yes": True, "a": cam[2], "b": web[3]})
        s.execute(text("UPDATE images SET source_id = (SELECT id FROM sources WHERE name = 'web') WHERE id = :i"),
                  {"i": cam[5]})
        s.execute(text("DELETE FROM images WHERE id = :i"), {"i": web[2]})
        s.commit()
    truth = _agree(client, db)
    assert truth["camera"][0] == 5 and truth["web"][0] == 4 and truth["camera"][2] == truth["web"][2] == 1

    # A source with no images yet has its row from the start.
    with db.writing() as s:
        s.execute(text("INSERT INTO sources (name, description, created_at) VALUES ('empty', '', CURRENT_TIMESTAMP)"))
        s.commit()
    assert _agree(client, db)["empty"] == (0, 0, 0, 0)
    assert len(checked_label_page) >= 5   # the labelling page's count was compared once there were classes
