"""Many people labelling at once: N labellers against a real server on loopback; prints one line.

Each labeller is a thread with its own connection and cookie jar that does
what the labelling page does: open /label, fetch the previews of the image
shown and the ones it prefetches, then save-and-next (POST /label/{id}) and
fetch the new previews, over and over, with optional think time. The
database (100,000 images, half labelled; see _server.build) is built once
and cached; every run works on a fresh copy of it, so runs compare.

Reports throughput (labels/s, requests/s), client-side p50/p99 latency per
request kind and overall, errors, and how many images two labellers saved
(the queue leases should make that 0). Target on 2 cores: 0 errors, p99 < 100 ms.

Think time: a person looks at each image before pressing a key. The default,
500 ms, is a fast labeller on easy images (two a second, all 16 of them at
once: ~30 labels/s, more than any team keeps up); --think-ms 0 turns the
labellers into a closed loop that saturates the server, which measures its
throughput rather than what people wait for.

Run: .venv/bin/python bench/load.py [--labellers 16] [--seconds 60] [--images 100000] [--think-ms 500]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlencode

import httpx
from _server import OUT, REAL_IMAGES, build, rss_mb, serve

from app.config import Settings
from app.db.migrate import upgrade_head
from app.images.store import preview_path

STAGE = re.compile(r'data-image-id="(\d*)" data-prefetch="([\d,]*)"')
MAX_SECONDS, MAX_LABELLERS = 600, 64


def link_previews(data: Path) -> None:
    """Give the copied image rows their real image's preview (a hard link each), once per cached data dir.

    _server.build makes most rows copies of 2,000 real imports with new hashes;
    the page fetches previews by hash, so each copy needs its file.
    """
    if (data / "previews-linked").exists():
        return
    settings = Settings(data=data)
    con = sqlite3.connect(data / "loupe.db")
    shas = [r[0] for r in con.execute("SELECT sha256 FROM images ORDER BY id")]
    con.close()
    real = shas[:REAL_IMAGES]
    for sha in shas[REAL_IMAGES:]:
        # build() names copy k of real image r printf('%064x', k * 1000000 + r)
        source = preview_path(settings, real[int(sha, 16) % 1_000_000 - 1])
        target = preview_path(settings, sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(source, target)
    (data / "previews-linked").touch()


def fresh_copy(data: Path) -> Path:
    """A run directory with a copy of the cached database; image files are shared (read-only here)."""
    upgrade_head(Settings(data=data).database_url)   # once for the cache, not at every server start
    run = OUT / f"load-run-{data.name}"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    src, dst = sqlite3.connect(data / "loupe.db"), sqlite3.connect(run / "loupe.db")
    src.backup(dst)   # unlike a file copy, this includes what is still in the WAL
    src.close()
    dst.close()
    for sub in ("store", "thumbs", "previews"):
        (run / sub).symlink_to((data / sub).resolve())
    return run


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter = Counter()
        self.saved: Counter = Counter()

    def add(self, kind: str, ms: float) -> None:
        with self.lock:
            self.ms[kind].append(ms)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] += 1


class Connection:
    """One keep-alive HTTP/1.1 connection with a cookie jar of one: what one browser tab holds.

    http.client rather than httpx: about a millisecond per request cheaper on
    the client side, which shares the two cores with the server.
    """

    def __init__(self, base: str):
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.cookie = ""

    def request(self, method: str, url: str, form: dict | None = None) -> tuple[int, str]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, url, body=body, headers=headers)
        r = self.conn.getresponse()
        data = r.read()
        cookie = r.getheader("set-cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        kind = r.getheader("content-type") or ""
        return r.status, data.decode() if kind.startswith("text/") else ""


def labeller(n: int, base: str, deadline: float, think_s: float, stats: Stats) -> None:
    client = Connection(base)
    fetched: set[str] = set()

    def call(kind: str, method: str, url: str, form: dict | None = None) -> str | None:
        t0 = time.perf_counter()
        try:
            status, text = client.request(method, url, form)
        except (OSError, http.client.HTTPException) as exc:
            stats.error(f"{kind} {type(exc).__name__}")
            client.conn.close()   # the next request opens a new connection
            return None
        stats.add(kind, (time.perf_counter() - t0) * 1000)
        if status != 200:
            stats.error(f"{kind} {status}")
            return None
        return text

    def previews(image: str, prefetch: str) -> None:
        for i in [image, *prefetch.split(",")]:   # the page shows one and prefetches the rest
            if i and i not in fetched:
                fetched.add(i)
                call("preview", "GET", f"/api/images/{i}/preview")

    page = call("page", "GET", "/label")
    m = page and STAGE.search(page)
    while m and m.group(1) and time.monotonic() < deadline:
        image = m.group(1)
        previews(image, m.group(2))
        if think_s:
            time.sleep(think_s)
        text = call("save", "POST", f"/label/{image}", {
            "class": str(1 + (n + int(image)) % 10), "confidence": "0.8", "annotator": f"labeller {n}",
            "ms": "1200", "skip": "", "queue": "unlabelled", "order": "import",
        })
        if text is None:
            break
        with stats.lock:
            stats.saved[image] += 1
        m = STAGE.search(text)
    client.conn.close()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--labellers", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--think-ms", type=float, default=500, help="pause before each save (0: saturate)")
    args = ap.parse_args()
    labellers = max(1, min(args.labellers, MAX_LABELLERS))
    seconds = max(1.0, min(args.seconds, MAX_SECONDS))

    data = build(args.images)
    link_previews(data)
    run = fresh_copy(data)
    stats = Stats()
    with serve(run) as (base, pid):
        httpx.get(f"{base}/label", timeout=60)   # warm up: templates, first queries
        started, server_cpu, client_cpu = time.monotonic(), cpu_s(pid), time.process_time()
        threads = [threading.Thread(target=labeller, args=(n, base, started + seconds, args.think_ms / 1000, stats))
                   for n in range(labellers)]
        for t in threads:
            t.start()
            time.sleep(min(1.0, seconds / 10) / labellers)   # people do not all open the page in the same instant
        for t in threads:
            t.join(timeout=seconds + 60)
        elapsed = time.monotonic() - started
        server_cpu, client_cpu = cpu_s(pid) - server_cpu, time.process_time() - client_cpu
        rss, peak = rss_mb(pid)
    shutil.rmtree(run, ignore_errors=True)

    everything = [x for xs in stats.ms.values() for x in xs]
    kinds = " ".join(f"{k} {pct(v, 50):.0f}/{pct(v, 99):.0f}" for k, v in sorted(stats.ms.items()))
    labels = len(stats.ms["save"])
    twice = sum(1 for c in stats.saved.values() if c > 1)
    errors = sum(stats.errors.values())
    detail = f" ({', '.join(f'{k}: {v}' for k, v in stats.errors.most_common(3))})" if errors else ""
    print(f"load: {labellers} labellers x {elapsed:.0f} s, {args.images} images, think {args.think_ms:.0f} ms: "
          f"{labels / elapsed:.1f} labels/s, {len(everything) / elapsed:.1f} req/s; p50/p99 ms {kinds} "
          f"all {pct(everything, 50):.0f}/{pct(everything, 99):.0f}; errors {errors}{detail}; "
          f"images saved twice {twice}; target (0 errors, p99 < 100 ms) "
          f"{'met' if not errors and pct(everything, 99) < 100 else 'NOT met'}; CPU cores used: server {server_cpu / elapsed:.2f}, "
          f"client {client_cpu / elapsed:.2f}; server RSS {rss:.0f} MiB (peak {peak:.0f})")


if __name__ == "__main__":
    main()
