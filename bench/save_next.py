"""Server time for "save label + render the next image" at 100,000 images (p50/p95), and server memory."""

from __future__ import annotations

import re
import statistics
import time

import httpx
from _server import build, rss_mb, serve

N_IMAGES = 100_000
SAVES = 1_000
WARMUP = 50


def main() -> None:
    data = build(N_IMAGES)
    with serve(data) as (base, pid), httpx.Client(base_url=base) as client:
        html = client.get("/label").text
        image = re.search(r'data-image-id="(\d+)"', html).group(1)
        server, wall = [], []
        for i in range(WARMUP + SAVES):
            t0 = time.perf_counter()
            r = client.post(f"/label/{image}", data={
                "class": str(1 + i % 10), "confidence": "0.6", "tags": ["dark"], "annotator": "bench", "ms": "900",
            })
            elapsed = (time.perf_counter() - t0) * 1000
            r.raise_for_status()
            image = re.search(r'data-image-id="(\d+)"', r.text).group(1)
            if i >= WARMUP:
                wall.append(elapsed)
                server.append(float(r.headers["server-timing"].split("dur=")[1]))
        rss, peak = rss_mb(pid)

    def pct(xs, p):
        return statistics.quantiles(xs, n=100)[p - 1]

    print(
        f"save_next: {N_IMAGES} images, {SAVES} saves: server p50 {pct(server, 50):.1f} ms p95 {pct(server, 95):.1f} ms "
        f"(round trip p50 {pct(wall, 50):.1f} ms p95 {pct(wall, 95):.1f} ms); server RSS {rss:.0f} MiB (peak {peak:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
