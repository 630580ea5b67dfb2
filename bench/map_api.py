"""GET /api/embeddings/map at 100,000 images: server time, the server's CPU time, and bytes, per format.

server_ms is the Server-Timing the app reports (wall time in the server, inflated on a busy machine);
cpu_ms the server process's user + system CPU time for the request, which a busy machine hardly moves.
Each is the median of --requests requests after one warm-up. Data from bench/_map_data.py.

Run: .venv/bin/python bench/map_api.py [--n 100000] [--requests 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import httpx
from _map_data import build
from _server import serve


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()
    data = build(args.n)
    parts = []
    with serve(data) as (base, pid), httpx.Client(base_url=base, timeout=120) as client:
        for fmt in ("columns", "items"):
            client.get("/api/embeddings/map", params={"format": fmt}).raise_for_status()
            server, cpu, size = [], [], 0
            for _ in range(args.requests):
                before = cpu_ms(pid)
                r = client.get("/api/embeddings/map", params={"format": fmt})
                r.raise_for_status()
                cpu.append(cpu_ms(pid) - before)
                server.append(float(r.headers["server-timing"].split("dur=")[1]))
                size = len(r.content)
            parts.append(f"{fmt}: server_ms={statistics.median(server):.0f} cpu_ms={statistics.median(cpu):.0f} "
                         f"mb={size / 1e6:.1f}")
    print(f"map_api n={args.n:,} " + " | ".join(parts) + f" load={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
