"""Server time (p50/p95 of Server-Timing) of the labelling page, the filtered grid and save-and-next at 1M images.

    .venv/bin/python bench/scale.py [--images 1000000] [--requests 200]        # SQLite
    .venv/bin/python bench/scale.py --database-url postgresql://...           # PostgreSQL
    scripts/pg.sh .venv/bin/python bench/scale.py --pg                        # a throwaway PostgreSQL

Rows are bulk-inserted (one INSERT ... SELECT per table) and point at a few
real imported files, with a realistic mix: four sources of unequal size, the
first quarter of the import order labelled (people label the queue in order)
plus 5 % scattered (bulk labels), some relabels, tags, confidence levels, open
flags and excluded images. The SQLite data dir is kept under bench/out and
reused; a PostgreSQL database is reused when it already holds the rows.
Prints one line per database.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

from _server import OUT, ROOT, serve  # also puts the repo on sys.path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db.engine import Database
from app.db.migrate import upgrade_head
from app.images.ingest import import_paths
from app.taxonomy.service import apply_change
from tests import fmnist

REAL = 20
SOURCES = ("camera", "stock", "web", "phone")
WARMUP = 10
PHASE_S = 120  # each measured phase stops after this long, whatever --requests says


def _series(dialect: str, n: int) -> str:
    """A row source `k(i)` of 1..n."""
    if dialect == "sqlite":
        return f"WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n}) "
    return f"WITH k(i) AS (SELECT generate_series(1, {n})) "


def _seed_rows(s, dialect: str, n: int) -> None:
    """Images REAL+1..n copying the real rows, then label events, current labels and flags."""
    sqlite = dialect == "sqlite"
    hexed = "printf('%064x', i)" if sqlite else "lpad(to_hex(i), 64, '0')"
    false, true = ("0", "1") if sqlite else ("false", "true")
    json = "" if sqlite else "::json"
    ids = {name: s.execute(text("SELECT id FROM sources WHERE name = :n"), {"n": name}).scalar_one()
           for name in SOURCES}
    # Half camera, 30 % stock, 10 % web, 10 % phone; one in 200 excluded.
    source = (f"CASE WHEN i % 10 < 5 THEN {ids['camera']} WHEN i % 10 < 8 THEN {ids['stock']} "
              f"WHEN i % 10 < 9 THEN {ids['web']} ELSE {ids['phone']} END")
    s.execute(text(_series(dialect, n) + f"""
        INSERT INTO images (id, sha256, stored_path, original_filename, source_id, batch_id, width, height,
                            format, mode, byte_size, phash, imported_at, excluded)
        SELECT i, {hexed}, r.stored_path, r.original_filename, {source}, r.batch_id, r.width, r.height,
               r.format, r.mode, r.byte_size, r.phash, r.imported_at, CASE WHEN i % 200 = 0 THEN {true} ELSE {false} END
        FROM k JOIN images r ON r.id = 1 + i % {REAL} WHERE i > {REAL}
    """))
    version = s.execute(text("SELECT max(id) FROM taxonomy_versions")).scalar()
    labelled = f"(i <= {n // 4} OR i % 20 = 7)"
    tags = f"(CASE i % 7 WHEN 0 THEN '[\"blurred\"]' WHEN 1 THEN '[\"dark\", \"occluded\"]' ELSE '[]' END){json}"
    event = f"""
        INSERT INTO label_events (image_id, class_id, confidence, tags, note, annotator, taxonomy_version_id,
                                  kind, ms, created_at)
        SELECT i, {{cls}}, CASE i % 4 WHEN 0 THEN 0.6 WHEN 1 THEN 0.3 ELSE 1.0 END, {tags}, '', 'bench',
               {version}, 'manual', 400 + i % 3000, images.imported_at
        FROM k JOIN images ON images.id = i WHERE {{where}}
    """
    # One in 25 labelled images was relabelled: an earlier event of another class comes first.
    s.execute(text(_series(dialect, n) + event.format(cls="1 + (i * 7 + 3) % 10", where=f"{labelled} AND i % 25 = 0")))
    s.execute(text(_series(dialect, n) + event.format(cls="1 + (i * 7) % 10", where=labelled)))
    s.execute(text("""
        INSERT INTO current_labels (image_id, event_id, class_id)
        SELECT image_id, max(id), NULL FROM label_events GROUP BY image_id
    """))
    s.execute(text("UPDATE current_labels SET class_id = "
                   "(SELECT class_id FROM label_events WHERE label_events.id = current_labels.event_id)"))
    s.execute(text(f"""
        INSERT INTO flags (image_id, kind, score, suggested_class_id, status, details, created_at)
        SELECT image_id, CASE WHEN image_id % 2 = 0 THEN 'mislabel' ELSE 'duplicate' END, 0.9,
               1 + (class_id + 1) % 10, 'open', '{{}}'{json}, CURRENT_TIMESTAMP
        FROM current_labels WHERE image_id % 97 = 0
    """))
    if not sqlite:  # ids were given explicitly: move the sequences past them
        for table in ("images", "label_events", "flags"):
            s.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))


def seed(settings: Settings, n: int) -> None:
    """Migrate, import REAL real files and the classes, then bulk-insert the rest (skipped when done)."""
    settings.ensure_dirs()
    upgrade_head(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.reading() as s:
            have = s.execute(text("SELECT count(*) FROM images")).scalar()
        if have == n:
            return
        if have:
            raise SystemExit(f"the database holds {have} images, not {n}: give an empty one")
        t0 = time.perf_counter()
        pngs = OUT / "fmnist-png"
        if not pngs.exists():
            fmnist.write_pngs(pngs, 2_000)
        import_paths(db, settings, sorted(pngs.glob("*.png"))[:REAL], source=SOURCES[0])
        with db.writing() as s:
            for name in fmnist.CLASSES:
                apply_change(s, change={"op": "add", "name": name})
        with db.writing() as s:
            for name in SOURCES[1:]:
                s.execute(text("INSERT INTO sources (name, description, created_at) "
                               "VALUES (:n, '', CURRENT_TIMESTAMP)"), {"n": name})
            _seed_rows(s, db.write_engine.dialect.name, n)
            s.commit()
        if db.write_engine.dialect.name != "sqlite":
            # Autovacuum would analyse the new rows within a minute; do it now so the plans are the settled ones.
            with db.write_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        print(f"seeded {n} images in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    finally:
        db.dispose()


def pg_database(server: str, n: int) -> str:
    """A database `loupe_scale_N` on the server, created when missing."""
    name = f"loupe_scale_{n}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def server_ms(r: httpx.Response) -> float:
    r.raise_for_status()
    return float(r.headers["server-timing"].split("dur=")[1])


def image_id(html: str) -> str:
    return re.search(r'data-image-id="(\d+)"', html).group(1)


def cpu_ms(pid: int) -> float:
    """CPU time the process has used (user + system): unlike server time, not inflated by a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def measure(base: str, pid: int, requests: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Server times per request kind, and the server's CPU ms per request; each kind is its own phase."""
    out: dict[str, list[float]] = {}
    cpu: dict[str, float] = {}

    def phase(name: str, step) -> None:
        times, deadline = [], time.monotonic() + PHASE_S
        for i in range(WARMUP + requests):
            if i == WARMUP:
                cpu0 = cpu_ms(pid)
            ms = step(i)
            if i >= WARMUP:
                times.append(ms)
            if time.monotonic() > deadline:
                break
        out[name] = times
        cpu[name] = (cpu_ms(pid) - cpu0) / len(times)

    with httpx.Client(base_url=base, timeout=60) as c:
        phase("label", lambda i: server_ms(c.get("/label")))
        shown = [image_id(c.get("/label").text)]

        def stage(i):  # the labelling page's "skip": the next image after the one shown
            r = c.get("/label/stage", params={"after": shown[0]})
            shown[0] = image_id(r.text)
            return server_ms(r)

        phase("stage", stage)
        classes = re.findall(r'<option value="([^"]+)" >', c.get("/browse").text)
        filters = [{"status": "labelled", "class": classes[i % len(classes)]} for i in range(3)]
        filters += [{"source": "web"}, {"status": "unlabelled", "source": "phone"}]
        phase("browse", lambda i: server_ms(c.get("/browse", params=filters[i % len(filters)])))
        nxt = ["/browse?status=labelled&source=stock"]

        def deep(i):  # follow the grid's "next" link: page i + 1
            r = c.get(nxt[0])
            link = re.search(r'href="(/browse\?[^"]*)">next', r.text)
            nxt[0] = link.group(1).replace("&amp;", "&") if link else "/browse?status=labelled&source=stock"
            return server_ms(r)

        phase("browse-deep", deep)
        current = [image_id(c.get("/label").text)]

        def save(i):
            r = c.post(f"/label/{current[0]}", data={"class": classes[i % len(classes)], "confidence": "0.6",
                                                     "tags": ["dark"], "annotator": "bench", "ms": "900"})
            current[0] = image_id(r.text)
            return server_ms(r)

        phase("save-next", save)
    return out, cpu


def pct(xs: list[float], p: int) -> float:
    return statistics.quantiles(xs, n=100)[p - 1] if len(xs) > 1 else xs[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200, help="measured requests per kind")
    ap.add_argument("--database-url", default="", help="PostgreSQL; default: SQLite in a data dir under bench/out")
    ap.add_argument("--pg", action="store_true", help="use the server LOUPE_TEST_DATABASE_URL names (scripts/pg.sh)")
    args = ap.parse_args()
    url = args.database_url or (pg_database(os.environ["LOUPE_TEST_DATABASE_URL"], args.images) if args.pg else "")
    name = "postgresql" if url else "sqlite"
    data = OUT / f"scale-{args.images}" / name
    settings = Settings(data=data, database_url=url)
    seed(settings, args.images)
    if url:
        os.environ["LOUPE_DATABASE_URL"] = settings.database_url
    with serve(data) as (base, pid):
        results, cpu = measure(base, pid, args.requests)
    load = os.getloadavg()[0]
    parts = ", ".join(f"{k} {pct(v, 50):.1f}/{pct(v, 95):.1f} (cpu {cpu[k]:.1f})" for k, v in results.items())
    worst = max(pct(v, 95) for v in results.values())
    print(f"scale {name}: {args.images} images, {args.requests} requests each, server p50/p95 ms "
          f"(server process CPU ms per request): {parts}; "
          f"worst p95 {worst:.1f} ms ({'under' if worst < 30 else 'OVER'} 30); load {load:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
