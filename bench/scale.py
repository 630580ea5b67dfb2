"""Server time (p50/p95 of Server-Timing) at N images: label, grid and save-and-next; with --pages every page.

    .venv/bin/python bench/scale.py [--images 1000000] [--requests 200]        # SQLite
    .venv/bin/python bench/scale.py --database-url postgresql://...           # PostgreSQL
    scripts/pg.sh .venv/bin/python bench/scale.py --pg                        # a throwaway PostgreSQL
    nice -n 10 .venv/bin/python bench/scale.py --images 100000 --pages [--page-requests 20]

Rows are bulk-inserted (one INSERT ... SELECT per table) and point at a few
real imported files, each with a pHash of its own (one in 50 a near-duplicate of
the one before), with a realistic mix: four sources of unequal size, the
first quarter of the import order labelled (people label the queue in order)
plus 5 % scattered (bulk labels), some relabels, tags, confidence levels, open
flags and excluded images. The SQLite data dir is kept under bench/out and
reused; a PostgreSQL database is reused when it already holds the rows.

Without --pages: one line per database (label page, skip, filtered grid, deep
grid page, save-and-next; server CPU per request).

With --pages (issue 16: every page under 100 ms p95): freezes a snapshot of
every current label through the API (timed), runs the phases above (their saves
change labels), freezes a second one (so a diff has something in it), queues a
report job (POST /api/quality/refresh) and runs it with `loupe worker --once`
(its compute time, process time and peak RSS from wait4), then GETs every GET
route of the app (read from app.routes, path ids filled with the rows above:
an image, the two snapshots, the report job, an open flag; a few get more forms:
filters, deep pages, queue orders), --page-requests times each after 2 warm-ups (at most ~30 s per endpoint). File routes
(file, thumb, preview, export, model download) and /static are skipped. Prints
one line per endpoint, slowest p95 first, with its HTTP status and body size
(a 404 there means the data has no such thing, e.g. no embeddings), then a
summary: how many over 100 ms, any 5xx, and the server's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _server import OUT, ROOT, rss_mb, serve  # also puts the repo on sys.path
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
SEED = 4  # in the data dir's and database's names: a change to the seeded rows must not reuse older ones


def _series(dialect: str, n: int) -> str:
    """A row source `k(i)` of 1..n."""
    if dialect == "sqlite":
        return f"WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n}) "
    return f"WITH k(i) AS (SELECT generate_series(1, {n})) "


def _seed_rows(s, dialect: str, n: int) -> None:
    """Images REAL+1..n copying the real rows, then label events, current labels and flags."""
    sqlite = dialect == "sqlite"
    false, true = ("0", "1") if sqlite else ("false", "true")
    json = "" if sqlite else "::json"
    ids = {name: s.execute(text("SELECT id FROM sources WHERE name = :n"), {"n": name}).scalar_one()
           for name in SOURCES}
    # Half camera, 30 % stock, 10 % web, 10 % phone; one in 200 excluded.
    source = (f"CASE WHEN i % 10 < 5 THEN {ids['camera']} WHEN i % 10 < 8 THEN {ids['stock']} "
              f"WHEN i % 10 < 9 THEN {ids['web']} ELSE {ids['phone']} END")
    # A pHash of its own per image, and one in 50 that of the image before (a near-duplicate pair): copying the
    # 20 real rows' pHashes made 1M images 20 near-duplicate groups of 50,000. Four 16-bit pieces of (i * a + b) mod a prime, each product under 2^63 on both databases:
    # 1M of them make exactly the 20,000 planted pairs at neardup.MAX_DISTANCE 4, where a multiplicative hash
    # mod 2^32 (structured low bits) chained them into one group.
    def phash(x: str) -> str:
        v = f"CAST(({x}) AS BIGINT)"
        pieces = [f"(({v} * {a} + {b}) % 2147483629 % {65536 if k < 3 else 32768}) * {1 << 16 * k}"
                  for k, (a, b) in enumerate(((1103515245, 12345), (1664525013, 1013904223),
                                              (2017262681, 7654321), (1597334677, 744335195)))]
        return "(" + " + ".join(pieces) + ")"
    hashed = f"CASE WHEN i % 50 = 0 THEN {phash('i - 1')} ELSE {phash('i')} END"
    # A sha256 that looks like one where it is read as a number (splits and folds hash its first 16 hex digits:
    # i in zero-padded hex gave every image the same key, so every item went to "val"), unique by i at its end.
    hexed = (f"printf('%016x%048x', {phash('i')}, i)" if sqlite
             else f"lpad(to_hex({phash('i')}), 16, '0') || lpad(to_hex(i), 48, '0')")
    s.execute(text(_series(dialect, n) + f"""
        INSERT INTO images (id, sha256, stored_path, original_filename, source_id, batch_id, width, height,
                            format, mode, byte_size, phash, imported_at, excluded)
        SELECT i, {hexed}, r.stored_path, r.original_filename, {source}, r.batch_id, r.width, r.height,
               r.format, r.mode, r.byte_size, {hashed}, r.imported_at, CASE WHEN i % 200 = 0 THEN {true} ELSE {false} END
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


def pg_database(server: str, n: int, name: str = "") -> str:
    """A database `name` (default `loupe_scale_N_sSEED`) on the server, created when missing."""
    name = name or f"loupe_scale_{n}_s{SEED}"
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


# Routes that send a file (downloads, exports, thumbnails): their time is the file's size, not a page's work.
SKIP = re.compile(r"/(file|thumb|preview|export|model)$|^/static")
PAGE_S = 30  # one endpoint's measuring stops after this long (at least 3 requests), whatever --page-requests says


def get_routes() -> list[str]:
    """Every GET path of the app, read from its routes (included routers walked), in declaration order."""
    from app.main import create_app

    def walk(routes):
        for r in routes:
            if hasattr(r, "original_router"):  # FastAPI's wrapper of an included router
                yield from walk(r.original_router.routes)
            elif hasattr(r, "routes"):
                yield from walk(r.routes)
            elif "GET" in (getattr(r, "methods", None) or ()):
                yield r.path

    with tempfile.TemporaryDirectory() as scratch:  # the app is only built, never started: no database opened
        app = create_app(Settings(data=Path(scratch)))
        return list(dict.fromkeys(p for p in walk(app.routes) if not SKIP.search(p)))


def freeze(c: httpx.Client, name: str) -> tuple[int, float]:
    """A snapshot of every current label through the API: (its id, seconds the request took)."""
    t0 = time.perf_counter()
    r = c.post("/api/snapshots", json={"name": name}, timeout=600)
    r.raise_for_status()
    return r.json()["id"], time.perf_counter() - t0


def refresh_report(c: httpx.Client, data: Path) -> tuple[int, dict]:
    """Queue a report job (POST /api/quality/refresh) and run it with `loupe worker --once` (same env).

    Returns the job id and {"wall": worker process seconds, "job": the job's own compute seconds,
    "rss": the worker's peak RSS in MiB (from wait4: the child's own maximum)}."""
    job = c.post("/api/quality/refresh").raise_for_status().json()["job"]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--once", "--data", str(data)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "LOUPE_TOKEN": ""})
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    view = c.get(f"/api/jobs/{job}").raise_for_status().json()
    if view["status"] != "succeeded" or proc.returncode:
        raise SystemExit(f"report job {job}: {view['status']} {view.get('error')}; worker rc {proc.returncode}\n"
                         + err.decode(errors="replace")[-2000:])
    return job, {"wall": wall, "job": (view["metrics"] or {}).get("seconds", float("nan")),
                 "rss": usage.ru_maxrss / 1024}


def fill(path: str, ids: dict[str, int]) -> list[str]:
    """The URL(s) to measure for a route path: path ids are real rows; a few pages get a second, fuller form."""
    url = path.format(image_id=ids["image"], snapshot_id=ids["snapshot"], other_id=ids["other"],
                      job_id=ids["job"], flag_id=ids["flag"], class_id=ids["class"], name="blurred")
    c, mid = ids["class"], ids["mid"]
    extra = {"/snapshots/{snapshot_id}": [f"{url}?diff_with={ids['other']}"],
             "/label/stage": [f"/label/stage?after={ids['image']}"],
             "/browse": ["/browse?status=labelled&source=stock&page=50", "/browse?tag=blurred&split=val",
                         f"/browse?class={c}&min_confidence=0.5&max_confidence=0.7"],
             # The filters one by one, a sparse combination, and deep pages by cursor and by offset.
             "/api/images": [f"/api/images?status=labelled&class={c}", "/api/images?status=unlabelled&source=web",
                             "/api/images?tag=dark", "/api/images?min_confidence=0.5&max_confidence=0.7",
                             "/api/images?split=val", f"/api/images?class={c}&source=phone&tag=blurred",
                             f"/api/images?after={mid}", "/api/images?offset=200000"],
             "/api/flags": ["/api/flags?kind=mislabel", "/api/flags?kind=duplicate&offset=2000",
                            "/api/flags?status=resolved"],
             "/api/queue": [f"/api/queue?order={o}" for o in ("uncertain", "diverse", "weakest-source")],
             "/label": ["/label?order=uncertain", "/label?queue=rereview"],
             "/api/snapshots/{snapshot_id}/items": [f"{url}?after={mid}", f"{url}?offset=200000"]}
    return [url, *extra.get(path, [])]


def sweep(base: str, routes: list[str], ids: dict[str, int], requests: int) -> list[tuple[str, list[float], dict]]:
    """Server times of `requests` GETs (after 2 warm-ups) of every route, one after the other, with the
    status codes and body size seen."""
    out = []
    with httpx.Client(base_url=base, timeout=120, follow_redirects=False) as c:
        for path in routes:
            for url in (fill(path, ids) if ids else [path]):
                times, codes, size, deadline = [], {}, 0, None
                for i in range(2 + requests):
                    t0 = time.perf_counter()
                    r = c.get(url, headers={"accept": "text/html" if not url.startswith("/api/") else "*/*"})
                    wall = (time.perf_counter() - t0) * 1000
                    timing = r.headers.get("server-timing", "")
                    ms = float(timing.split("dur=")[1]) if "dur=" in timing else wall
                    codes[r.status_code] = codes.get(r.status_code, 0) + 1
                    size = len(r.content)
                    if i < 2:
                        deadline = time.monotonic() + PAGE_S
                        continue
                    times.append(ms)
                    if len(times) >= 3 and time.monotonic() > deadline:
                        break
                out.append((url, times, {"codes": codes, "bytes": size}))
    return out


def pages(base: str, pid: int, data: Path, name: str, n: int, requests: int, page_requests: int) -> None:
    """Freeze a snapshot, run the old phases (their saves change labels), freeze another, refresh the stored
    report with a worker, then measure every GET route; prints one line per endpoint, slowest p95 first."""
    with httpx.Client(base_url=base, timeout=120) as c:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        first, took = freeze(c, f"bench-{stamp}-a")
        print(f"scale {name} {n}: freeze of a snapshot of every current label (POST /api/snapshots): {took:.1f} s",
              flush=True)
    results, _ = measure(base, pid, requests)
    parts = ", ".join(f"{k} {pct(v, 50):.1f}/{pct(v, 95):.1f}" for k, v in results.items())
    print(f"scale {name} {n}: label/grid/save p50/p95 ms, {requests} requests each: {parts}", flush=True)
    with httpx.Client(base_url=base, timeout=120) as c:
        second, took = freeze(c, f"bench-{stamp}-b")
        print(f"scale {name} {n}: second freeze (after the saves): {took:.1f} s", flush=True)
        job, ran = refresh_report(c, data)
        print(f"scale {name} {n}: refresh of the stored report: {ran['job']:.1f} s (job #{job}; worker process "
              f"{ran['wall']:.1f} s with start-up; worker peak RSS {ran['rss']:.0f} MiB)", flush=True)
        image = int(image_id(c.get("/label").text))
        flag = c.get("/api/flags", params={"limit": 1}).raise_for_status().json()["items"][0]["id"]
        cls = c.get("/api/taxonomy").raise_for_status().json()
    cls = (cls.get("classes") or cls.get("items") or [{}])[0].get("id", 1)
    ids = {"image": image, "snapshot": second, "other": first, "job": job, "flag": flag, "class": cls, "mid": n // 2}
    got = sweep(base, get_routes(), ids, page_requests)
    got.sort(key=lambda g: -pct(g[1], 95))
    for url, times, seen in got:
        codes = ",".join(f"{k}" + (f"x{v}" if len(seen["codes"]) > 1 else "") for k, v in sorted(seen["codes"].items()))
        bad = " ERROR" if any(k >= 500 for k in seen["codes"]) else ""
        print(f"scale {name} {n}: GET {url} p50 {pct(times, 50):.1f} ms p95 {pct(times, 95):.1f} ms "
              f"({len(times)} requests, HTTP {codes}, {seen['bytes'] / 1024:.1f} KiB){bad}")
    over = [u for u, t, _ in got if pct(t, 95) > 100]
    errors = [u for u, _, s in got if any(k >= 500 for k in s["codes"])]
    _, peak = rss_mb(pid)
    print(f"scale {name} {n}: {len(got)} endpoints, {len(over)} over 100 ms p95"
          + (f" ({', '.join(over)})" if over else "") + f"; {len(errors)} with HTTP 5xx"
          + (f" ({', '.join(errors)})" if errors else "")
          + f"; server peak RSS {peak:.0f} MiB; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200, help="measured requests per kind")
    ap.add_argument("--database-url", default="", help="PostgreSQL; default: SQLite in a data dir under bench/out")
    ap.add_argument("--pg", action="store_true", help="use the server LOUPE_TEST_DATABASE_URL names (scripts/pg.sh)")
    ap.add_argument("--pages", action="store_true",
                    help="also measure every GET page and JSON endpoint (after a stored-report refresh)")
    ap.add_argument("--page-requests", type=int, default=20, help="with --pages: measured requests per endpoint")
    args = ap.parse_args()
    url = args.database_url or (pg_database(os.environ["LOUPE_TEST_DATABASE_URL"], args.images) if args.pg else "")
    name = "postgresql" if url else "sqlite"
    data = OUT / f"scale-{args.images}-s{SEED}" / name
    settings = Settings(data=data, database_url=url)
    seed(settings, args.images)
    if url:
        os.environ["LOUPE_DATABASE_URL"] = settings.database_url
    if args.pages:
        with serve(data) as (base, pid):
            pages(base, pid, data, name, args.images, args.requests, args.page_requests)
        return
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
