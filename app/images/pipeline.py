"""The CPU-heavy half of an import: hash, decode and derive, in worker processes.

A worker gets a chunk of tasks (a path to read, or bytes from a zip or an
upload), and for each one returns either `Prepared` (metadata plus the
original, thumbnail and preview written to temporary files) or `Failed` (the
reason). Results come back in the order the tasks went in. Workers never touch
the database.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from app.images import store
from app.images.decode import Limits, Unreadable, decode, too_big

PARALLEL_FROM = 32  # fewer files than this: decode in-process, a pool costs more than it saves
CHUNK_FILES = 32
CHUNK_BYTES = 4_000_000  # a few big JPEGs per chunk keeps workers evenly loaded


@dataclass(frozen=True)
class Task:
    filename: str
    path: str | None = None
    data: bytes | None = None
    size: int = 0


@dataclass(frozen=True)
class Job:
    """What every task of one import shares."""

    limits: Limits
    max_file_bytes: int
    workdir: str  # temporary files go here (same filesystem as the store)


@dataclass(frozen=True)
class Failed:
    filename: str
    error: str


@dataclass(frozen=True)
class Prepared:
    filename: str
    sha256: str
    byte_size: int
    width: int
    height: int
    format: str
    mode: str
    ext: str
    phash: int
    original: str  # temporary files, moved into the store by the parent
    thumb: str
    preview: str


def prepare(job: Job, task: Task) -> Prepared | Failed:
    try:
        data = task.data if task.data is not None else _read(task.path, job.max_file_bytes)
        decoded = decode(data, job.limits)
    except Unreadable as exc:
        return Failed(task.filename, str(exc))
    except Exception as exc:  # a decoder bug on one odd file must not stop the import
        return Failed(task.filename, f"could not process this image ({type(exc).__name__}: {exc})")
    workdir = Path(job.workdir)
    return Prepared(
        filename=task.filename,
        sha256=hashlib.sha256(data).hexdigest(),
        byte_size=len(data),
        width=decoded.width,
        height=decoded.height,
        format=decoded.format,
        mode=decoded.mode,
        ext=decoded.ext,
        phash=decoded.phash,
        original=str(store.write_temp(workdir, data)),
        thumb=str(store.write_temp(workdir, decoded.thumb)),
        preview=str(store.write_temp(workdir, decoded.preview)),
    )


def prepare_chunk(job: Job, items: list[Task | Failed]) -> list[Prepared | Failed]:
    return [item if isinstance(item, Failed) else prepare(job, item) for item in items]


def _read(path: str, max_file_bytes: int) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(max_file_bytes + 1)
    except OSError as exc:
        raise Unreadable(f"cannot read file ({exc.strerror})") from None
    if len(data) > max_file_bytes:
        raise too_big(os.path.getsize(path), max_file_bytes)
    return data


def worker_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run(job: Job, entries: list, load: Callable[[object], Task]) -> Iterator[Prepared | Failed]:
    """Prepare every entry, yielding results in order; `load` (in this process) reads an entry."""
    chunks = _chunks(entries, load)
    workers = min(worker_count(), 8)
    if len(entries) < PARALLEL_FROM or workers < 2:
        for chunk in chunks:
            yield from prepare_chunk(job, chunk)
        return
    # Forking a process that runs other threads (the web server) can deadlock
    # the child on a lock held by one of them: fork only a single-threaded
    # parent (the CLI), which saves the interpreter start and imports.
    methods = multiprocessing.get_all_start_methods()
    if threading.active_count() == 1 and "fork" in methods:
        context = multiprocessing.get_context("fork")
    elif "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:
        context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        in_flight: deque = deque()
        for chunk in chunks:
            in_flight.append(pool.submit(prepare_chunk, job, chunk))
            if len(in_flight) >= 2 * workers:
                yield from in_flight.popleft().result()
        while in_flight:
            yield from in_flight.popleft().result()


def _chunks(entries: Iterable, load: Callable[[object], Task]) -> Iterator[list[Task | Failed]]:
    chunk: list[Task | Failed] = []
    weight = 0
    for entry in entries:
        try:
            item = load(entry)
            weight += item.size
        except Unreadable as exc:
            item = Failed(entry.filename, str(exc))
        chunk.append(item)
        if len(chunk) >= CHUNK_FILES or weight >= CHUNK_BYTES:
            yield chunk
            chunk, weight = [], 0
    if chunk:
        yield chunk
