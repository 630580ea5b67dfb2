"""GET /api/embeddings/map and GET /map at 100,000 images (or --n): server time, server CPU time, bytes.

server_ms is the Server-Timing the app reports (wall time in the server, inflated on a busy machine);
cpu_ms the server process's user + system CPU time for the request, which a busy machine hardly moves.
Each is the median (and p95) of --requests requests after one warm-up. Data from bench/_map_data.py: an
analysis that stored its colours and marks, then --changes label events made after it (the map applies the
changes since its analysis to the stored state on every request). Peak RSS of the server at the end.

Measured (two cores shared with other work):
  map_api n=100,000 changes=1,000 page: p50_ms=42 p95_ms=52 | binary: server_ms=135 p95_ms=158 cpu_ms=50 mb=1.4 |
      columns: server_ms=609 cpu_ms=220 mb=3.0 | items: server_ms=1383 cpu_ms=670 mb=13.5 (load 6.3)
  map_api n=1,000,000 changes=1,000 page: p50_ms=9 p95_ms=11 | binary: server_ms=60 p95_ms=66 cpu_ms=70 mb=14.0 |
      columns: server_ms=1067 p95_ms=1584 cpu_ms=1085 mb=29.2 | server_peak_mb=407 (load 2.5)

Run: .venv/bin/python bench/map_api.py [--n 100000] [--requests 5] [--formats binary,columns,items] [--changes 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import httpx
from _map_data import build
from _server import serve
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.config import Settings  # noqa: E402
from app.db.engine import Database  # noqa: E402


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def changes_since(data: Path, n: int, changes: int) -> None:
    """`changes` label events after the analysis (relabels of images spread over the ids), once per data dir."""
    marker = data / f"changes-{changes}"
    if marker.exists() or not changes:
        return
    db = Database(Settings(data=data).database_url)
    step = max(2, (n // changes) // 2 * 2)  # even ids: the labelled ones
    with db.writing() as s:
        version = s.execute(text("SELECT max(id) FROM taxonomy_versions")).scalar()
        s.execute(text(f"""
            INSERT INTO label_events (image_id, class_id, confidence, tags, note, annotator, taxonomy_version_id,
                                      kind, ms, created_at)
            SELECT id, 1 + (id / 2 + 3) % 10, 1.0, '[]', '', 'bench', {version}, 'label', NULL, CURRENT_TIMESTAMP
            FROM images WHERE id % {step} = 0 LIMIT {changes}"""))
        s.execute(text("""UPDATE current_labels SET event_id = (SELECT max(e.id) FROM label_events e
                          WHERE e.image_id = current_labels.image_id),
                          class_id = (SELECT e.class_id FROM label_events e WHERE e.id = (SELECT max(f.id)
                          FROM label_events f WHERE f.image_id = current_labels.image_id))
                          WHERE image_id IN (SELECT image_id FROM label_events WHERE annotator = 'bench'
                                             AND kind = 'label')"""))
        s.commit()
    db.dispose()
    marker.touch()


def timed(client, pid, path, params, requests) -> tuple[list[float], list[float], int]:
    client.get(path, params=params).raise_for_status()
    server, cpu, size = [], [], 0
    for _ in range(requests):
        before = cpu_ms(pid)
        r = client.get(path, params=params)
        r.raise_for_status()
        cpu.append(cpu_ms(pid) - before)
        server.append(float(r.headers["server-timing"].split("dur=")[1]))
        size = len(r.content)
    return server, cpu, size


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--formats", default="binary,columns,items")
    parser.add_argument("--changes", type=int, default=1_000)
    args = parser.parse_args()
    data = build(args.n)
    changes_since(data, args.n, args.changes)
    parts = []
    with serve(data) as (base, pid), httpx.Client(base_url=base, timeout=600) as client:
        server, cpu, size = timed(client, pid, "/map", {}, max(args.requests, 20))
        parts.append(f"page: p50_ms={statistics.median(server):.0f} p95_ms={p95(server):.0f} "
                     f"cpu_ms={statistics.median(cpu):.0f}")
        for fmt in args.formats.split(","):
            server, cpu, size = timed(client, pid, "/api/embeddings/map", {"format": fmt}, args.requests)
            parts.append(f"{fmt}: server_ms={statistics.median(server):.0f} p95_ms={p95(server):.0f} "
                         f"cpu_ms={statistics.median(cpu):.0f} mb={size / 1e6:.1f}")
        rss = peak_mb(pid)
    print(f"map_api n={args.n:,} changes={args.changes:,} " + " | ".join(parts)
          + f" | server_peak_mb={rss:.0f} load={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
