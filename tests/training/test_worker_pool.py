"""Several workers on one queue: every job is claimed once and run by one worker.

Runs on SQLite by default and on PostgreSQL (FOR UPDATE SKIP LOCKED) with
LOUPE_TEST_DATABASE_URL set.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter

from sqlalchemy import select

from app.db.engine import Database
from app.db.models import Job, JobLog
from app.training import jobs
from tests.factories import labelled_snapshot
from tests.workers import FAST, finished, start_worker, stop, wait_for

CLAIMERS = 6
JOBS = 40


def _claim_all(url: str, name: str, start, out) -> None:
    """Claim until the queue is empty, as fast as possible; report what was claimed."""
    db = Database(url)
    start.wait()
    got = []
    while True:
        with db.writing() as session:
            job = jobs.claim(session, name)
        if job is None:
            break
        got.append(job.id)
    db.dispose()
    out.put((name, got))


def test_concurrent_claims_take_each_job_exactly_once(client, settings):
    snap = labelled_snapshot(client, 12, classes=2, folds=2)
    ids = {client.post("/api/jobs", json={"snapshot": snap["id"], "config": FAST}).json()["id"] for _ in range(JOBS)}
    ctx = multiprocessing.get_context("spawn")  # fresh processes: no connection crosses a fork
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(settings.database_url, f"c{i}", start, out))
             for i in range(CLAIMERS)]
    for p in procs:
        p.start()
    start.set()
    claimed = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    everything = [j for got in claimed.values() for j in got]
    assert Counter(everything) == Counter(ids)  # each job once, none lost
    db = Database(settings.database_url)
    with db.reading() as s:
        rows = s.execute(select(Job.id, Job.worker, Job.attempts, Job.status)).all()
    db.dispose()
    owner = {j: name for name, got in claimed.items() for j in got}
    assert {(i, owner[i], 1, "running") for i in ids} == set(map(tuple, rows))


def test_three_workers_share_a_queue_and_run_each_job_once(client, settings):
    snap = labelled_snapshot(client, 24, classes=2, folds=2)
    tiny = {**FAST, "epochs": 2, "image_size": 16}
    ids = [client.post("/api/jobs", json={"snapshot": snap["id"], "config": tiny}).json()["id"] for _ in range(6)]
    workers = [start_worker(settings.data_dir) for _ in range(3)]
    try:
        bodies = [wait_for(client, i, finished, timeout=300) for i in ids]
    finally:
        for w in workers:
            stop(w)
    assert [b["status"] for b in bodies] == ["succeeded"] * len(ids), [b["error"] for b in bodies]
    assert all(b["attempts"] == 1 for b in bodies)
    db = Database(settings.database_url)
    with db.reading() as s:
        starts = s.execute(select(JobLog.job_id, JobLog.message).where(JobLog.message.like("% starts:%"))).all()
    db.dispose()
    # One start per job, by the worker recorded as its owner: no job ran twice or on two workers.
    assert sorted(j for j, _ in starts) == ids
    by_job = {j: m.split(" starts:")[0] for j, m in starts}
    assert all(by_job[b["id"]] == b["worker"] for b in bodies)
    pids = {f":{w.pid}" for w in workers}
    assert all(any(b["worker"].endswith(p) for p in pids) for b in bodies)
