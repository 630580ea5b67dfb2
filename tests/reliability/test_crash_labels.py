"""SIGKILL the real server in the middle of a burst of label writes: every acknowledged write survives.

Several client threads label real images, each write carrying its own note
and `ms` so it can be found again; a taxonomy merge races with them. The
server is killed without warning (no shutdown, no WAL checkpoint), started
again on the same data directory, and checked.
"""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest

from tests.factories import add_class, upload_fmnist
from tests.reliability.helpers import check_database, check_history
from tests.servers import start_server, stop

pytestmark = pytest.mark.slow

WRITERS = 6
KILL_AFTER_ACKS = 250
CLASSES = ["shirt", "trouser", "bag", "boot"]


class Burst:
    """Label writes from several threads; remembers each acknowledged one."""

    def __init__(self, base: str, image_ids: list[int], class_ids: list[int]):
        self.base, self.image_ids, self.class_ids = base, image_ids, class_ids
        self.acked: list[dict] = []
        self.failed = 0           # connection dropped: the server died with the request in flight (or before)
        self.refused: list[str] = []  # 4xx, e.g. a class merged away a moment ago
        self.broken: list[str] = []   # 5xx: never acceptable
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def writer(self, n: int) -> None:
        rng = random.Random(n)
        classes = list(self.class_ids)
        with httpx.Client(base_url=self.base, timeout=10) as client:
            for seq in range(100_000):
                if self.stop.is_set():
                    return
                image, cls = rng.choice(self.image_ids), rng.choice(classes)
                body = {"class": cls, "confidence": 0.5, "note": f"w{n}-{seq}", "ms": n * 100_000 + seq,
                        "annotator": f"writer {n}"}
                try:
                    r = client.post(f"/api/images/{image}/labels", json=body)
                except httpx.TransportError:
                    with self.lock:
                        self.failed += 1
                    return
                with self.lock:
                    if r.is_success:
                        self.acked.append({**body, "image": image, "event": r.json()})
                    elif r.status_code >= 500:
                        self.broken.append(r.text)
                        return
                    else:
                        self.refused.append(r.json()["detail"])
                        classes.remove(cls)   # merged away: its labels moved on, and so does this writer

    def count(self) -> int:
        with self.lock:
            return len(self.acked)


def merge_once(base: str, result: dict) -> None:
    """Merge two classes into a new one while the writers run."""
    with httpx.Client(base_url=base, timeout=30) as client:
        try:
            r = client.post("/api/taxonomy/changes", json={"op": "merge", "classes": ["shirt", "trouser"],
                                                           "into": "clothing"})
        except httpx.TransportError:
            return
        result.update(r.json() if r.is_success else {"refused": r.text})


def test_sigkill_during_a_label_burst_loses_no_acknowledged_write(tmp_path):
    data = tmp_path / "data"
    proc, base = start_server(data)
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            class_ids = [add_class(client, name)["id"] for name in CLASSES]
            image_ids = upload_fmnist(client, 300)
        burst = Burst(base, image_ids, class_ids)
        threads = [threading.Thread(target=burst.writer, args=(n,)) for n in range(WRITERS)]
        for t in threads:
            t.start()
        merged: dict = {}
        merger = None
        deadline = time.monotonic() + 30
        while (burst.count() < KILL_AFTER_ACKS or not merged) and time.monotonic() < deadline:
            if merger is None and burst.count() >= KILL_AFTER_ACKS // 3:
                merger = threading.Thread(target=merge_once, args=(base, merged))
                merger.start()
            time.sleep(0.01)
        proc.kill()   # SIGKILL: no shutdown handlers, no checkpoint
        proc.wait()
        burst.stop.set()
        for t in threads + ([merger] if merger else []):
            t.join(timeout=30)
    finally:
        stop(proc)

    assert burst.broken == []
    assert all("retired" in detail for detail in burst.refused), burst.refused
    assert burst.count() >= KILL_AFTER_ACKS, "the burst was too slow to be interrupted mid-way"
    assert burst.failed > 0, "no request was cut off: the kill did not land mid-burst"
    wal = data / "loupe.db-wal"
    assert wal.exists() and wal.stat().st_size > 0   # recovery has real work to do

    proc, base = start_server(data)
    try:
        check_database(data)
        with httpx.Client(base_url=base, timeout=30) as client:
            histories = {i: check_history(client, i) for i in {a["image"] for a in burst.acked}}
            for ack in burst.acked:
                stored = {e["id"]: e for e in histories[ack["image"]]}
                returned = ack["event"]
                assert returned["id"] in stored, f"acknowledged write {ack['note']} is gone"
                event = stored[returned["id"]]
                assert (event["note"], event["ms"], event["class_id"], event["annotator"], event["confidence"]) == (
                    ack["note"], ack["ms"], ack["class"], ack["annotator"], 0.5)
                assert event["created_at"] == returned["created_at"] and event["kind"] == "manual"
            taxonomy = client.get("/api/taxonomy").json()
            names = {c["name"] for c in taxonomy["classes"]}
            # The merge was acknowledged: it is there, and no current label names a merged class.
            assert "version" in merged, merged
            assert taxonomy["version"] >= merged["version"]
            assert "clothing" in names and not {"shirt", "trouser"} & names
            current = [h[-1] for h in histories.values() if h]
            assert not [e for e in current if e["class_id"] in class_ids[:2]]
            # The server takes writes again after the crash.
            r = client.post(f"/api/images/{image_ids[0]}/labels", json={"class": "bag", "note": "after"})
            assert r.status_code == 201 and check_history(client, image_ids[0])[-1]["note"] == "after"
    finally:
        stop(proc)
