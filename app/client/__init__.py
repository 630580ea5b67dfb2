"""A Python client for Loupe's HTTP API, for notebooks and scripts.

    from app.client import Loupe
    loupe = Loupe("http://127.0.0.1:8000", token="loupe_...")   # token: only where logins are required
    loupe.import_folder("./photos", source="phone", labels="label-studio")
    snap = loupe.create_snapshot("v1", val=0.2)
    train = loupe.snapshot_dataset(snap.id, split="train", transform=to_tensor)   # a torch Dataset
    job = loupe.wait(loupe.train(snap.id, epochs=5))                              # with a progress bar
    for flag in loupe.flags(kind="mislabel"): ...

It speaks only HTTP (httpx), so it works against a Loupe on another machine,
and answers with the API's own response models (app.web.schemas): what the
OpenAPI document at /docs describes is what a method returns. An error from
the server is a `LoupeError` carrying its status and its sentence.
"""

from __future__ import annotations

import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from app.web.schemas.flags import FlagPage, FlagView
from app.web.schemas.images import ImageDetail, ImageItem, ImagePage, ImportReport
from app.web.schemas.jobs import Job, JobDetail, JobList, JobState, Predictions
from app.web.schemas.snapshots import (
    CreatedSnapshot,
    Snapshot,
    SnapshotDetail,
    SnapshotItem,
    SnapshotItems,
    SnapshotList,
)

M = TypeVar("M", bound=BaseModel)
FINISHED = ("succeeded", "failed", "cancelled")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".zip"}


class LoupeError(Exception):
    """The server refused or failed a request: `status` (HTTP) and `detail` (its sentence)."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(detail, list):  # a 422 from request validation: where and what
        return "; ".join(f"{'.'.join(map(str, d.get('loc', ())))}: {d.get('msg')}" for d in detail)
    return str(detail)


class Loupe:
    """One Loupe server. `url` as the browser opens it; `token` an API token (`loupe token create`)."""

    def __init__(self, url: str = "http://127.0.0.1:8000", token: str | None = None, *, timeout: float = 120):
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Loupe:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the wire ------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise LoupeError(response.status_code, _detail(response))
        return response

    def _get(self, path: str, model: type[M], **params) -> M:
        params = {k: v for k, v in params.items() if v is not None}
        return model.model_validate(self.request("GET", path, params=params).json())

    def _post(self, path: str, model: type[M], **kwargs) -> M:
        return model.model_validate(self.request("POST", path, **kwargs).json())

    # -- images --------------------------------------------------------------------------------------------
    def images(self, *, status: str | None = None, source: str | None = None, class_: str | None = None,
               tag: str | None = None, min_confidence: float | None = None, max_confidence: float | None = None,
               split: str | None = None, page: int = 500) -> Iterator[ImageItem]:
        """Every image matching the filters (as on /browse), in import order, fetched a page at a time."""
        after = None
        while True:
            got = self._get("/api/images", ImagePage, status=status, source=source, tag=tag, split=split,
                            min_confidence=min_confidence, max_confidence=max_confidence, limit=page, after=after,
                            **{"class": class_})
            yield from got.items
            if got.next is None:
                return
            after = got.next

    def count_images(self, **filters) -> int:
        """How many images match the filters (the same keywords as `images`)."""
        filters["class"] = filters.pop("class_", None)
        return self._get("/api/images", ImagePage, limit=1, **filters).total

    def image(self, image_id: int) -> ImageDetail:
        """One image: metadata, current label, label history, exclusions, the latest model's prediction."""
        return self._get(f"/api/images/{image_id}", ImageDetail)

    def image_bytes(self, image_id: int) -> bytes:
        """The image's file, as imported."""
        return self.request("GET", f"/api/images/{image_id}/file").content

    def import_folder(self, path: str | Path, *, source: str, labels: str | Path | None = None) -> ImportReport:
        """Upload every image under `path` (one zip, paths relative to `path`) as `source`.

        `labels`: "folders" (each image's class is its folder), a label file's path, or a format's name
        (hf, label-studio, cvat, fiftyone: its usual file is looked for under `path`), as
        `loupe import --labels`. Nothing is imported if the labels are wrong (LoupeError says where).
        """
        root = Path(path)
        if not root.is_dir():
            raise LoupeError(400, f"not a folder: {root}")
        data, label_file = {"source": source}, None
        if labels == "folders":
            data["labels_format"] = "folders"
        elif labels is not None:
            label_file = self._label_file(root, str(labels))
        with tempfile.TemporaryFile() as bundle:
            with zipfile.ZipFile(bundle, "w", zipfile.ZIP_STORED) as z:  # images are compressed already
                for file in sorted(root.rglob("*")):
                    if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES and file != label_file:
                        z.write(file, file.relative_to(root).as_posix())
            bundle.seek(0)
            files: list[tuple[str, Any]] = [("files", (f"{root.name}.zip", bundle, "application/zip"))]
            if label_file is None:
                return self._post("/api/images", ImportReport, data=data, files=files)
            with open(label_file, "rb") as f:
                files.append(("labels", (label_file.name, f, "application/octet-stream")))
                return self._post("/api/images", ImportReport, data=data, files=files)

    @staticmethod
    def _label_file(root: Path, spec: str) -> Path:
        from app.formats import READERS, module  # the readers' own rule for where a format keeps its file

        if spec not in READERS:
            if not Path(spec).is_file():
                raise LoupeError(400, f"labels: no such file: {spec} (give a label file, 'folders', or a format: "
                                      f"{', '.join(READERS)})")
            return Path(spec)
        reader = module(spec, READERS)
        found = reader.find([root])
        if found is None:
            raise LoupeError(400, f"labels: no {spec} label file found in {root}; give its path instead")
        if Path(found).is_dir():  # a dataset folder (hf): an upload carries one label file
            files = [p for p in sorted(Path(found).rglob("*")) if p.is_file() and reader.detect(p)]
            if len(files) != 1:
                raise LoupeError(400, f"labels: {root} holds {len(files)} {spec} label files, and an upload "
                                      "carries one: give one file, or run `loupe import --labels` where the "
                                      "data folder is")
            found = files[0]
        return Path(found)

    # -- snapshots -----------------------------------------------------------------------------------------
    def snapshots(self) -> list[Snapshot]:
        return self._get("/api/snapshots", SnapshotList).items

    def snapshot(self, ref: int | str) -> SnapshotDetail:
        """A snapshot by id or name."""
        return self._get(f"/api/snapshots/{self._snapshot_id(ref)}", SnapshotDetail)

    def _snapshot_id(self, ref: int | str) -> int:
        if isinstance(ref, int) or str(ref).isdigit():
            return int(ref)
        for s in self.snapshots():
            if s.name == ref:
                return s.id
        raise LoupeError(404, f"no snapshot named '{ref}'")

    def create_snapshot(self, name: str, *, val: float = 0.2, test: float = 0.0, seed: int = 0, folds: int = 5,
                        **filters) -> CreatedSnapshot:
        """Freeze the current labels (filters as POST /api/snapshots: sources, classes, min_confidence, ...)."""
        body = {"name": name, "filter": filters, "split": {"val": val, "test": test, "seed": seed, "folds": folds}}
        return self._post("/api/snapshots", CreatedSnapshot, json=body)

    def snapshot_items(self, ref: int | str, *, split: str | None = None, page: int = 5000) -> Iterator[SnapshotItem]:
        """A snapshot's images with their frozen class, split and fold, by image id."""
        sid, after = self._snapshot_id(ref), None
        while True:
            got = self._get(f"/api/snapshots/{sid}/items", SnapshotItems, limit=page, after=after)
            yield from (i for i in got.items if split is None or i.split == split)
            if got.next is None:
                return
            after = got.next

    def snapshot_rows(self, ref: int | str, *, split: str | None = None):
        """The snapshot as rows (image, class, split, fold, label_event; a multi-label snapshot's `classes`, a
        list, instead of `class`): a pandas DataFrame when pandas is installed, else a list of dicts."""
        items = list(self.snapshot_items(ref, split=split))
        multi = any(item.classes is not None for item in items)
        columns = ["image", "classes" if multi else "class", "split", "fold", "label_event"]
        rows = [{k: v for k, v in item.model_dump(by_alias=True).items() if k in columns} for item in items]
        try:
            import pandas
        except ImportError:
            return rows
        return pandas.DataFrame(rows, columns=columns)

    def snapshot_dataset(self, ref: int | str, *, split: str | None = None, transform=None, cache: str | Path |
                         None = None):
        """The snapshot (or one of its splits) as a `torch.utils.data.Dataset` of (image, class index): PIL
        images through `transform`, classes indexed as the snapshot's `classes` list (what a train job's
        model outputs). Images are fetched when first read, kept under `cache` when given."""
        from app.client.dataset import SnapshotDataset  # torch only when asked for

        detail = self.snapshot(ref)
        return SnapshotDataset(self.url, self.headers, detail.classes, list(self.snapshot_items(detail.id,
                               split=split)), transform=transform, cache=cache)

    # -- review and jobs -----------------------------------------------------------------------------------
    def flags(self, *, status: str | None = "open", kind: str | None = None, image: int | None = None,
              page: int = 500) -> Iterator[FlagView]:
        """Flags, highest score first (status open by default; None: every status)."""
        offset = 0
        while True:
            got = self._get("/api/flags", FlagPage, status=status or "", kind=kind, image=image, limit=page,
                            offset=offset)
            yield from got.items
            offset += len(got.items)
            if not got.items or offset >= got.total:
                return

    def jobs(self) -> list[Job]:
        return self._get("/api/jobs", JobList).items

    def job(self, job_id: int) -> JobDetail:
        return self._get(f"/api/jobs/{job_id}", JobDetail)

    def predictions(self, job_id: int) -> Predictions:
        """A finished job's class probabilities per image (in the order of `classes`)."""
        return self._get(f"/api/jobs/{job_id}/predictions", Predictions)

    def train(self, snapshot: int | str, **config) -> JobState:
        """Queue a train job on a snapshot; `config` as POST /api/jobs (model, epochs, image_size, folds, ...)."""
        return self._post("/api/jobs", JobState, json={"kind": "train", "snapshot": self._snapshot_id(snapshot),
                                                        "config": config})

    def cancel(self, job_id: int) -> JobState:
        return self._post(f"/api/jobs/{job_id}/cancel", JobState)

    def wait(self, job: int | JobState | Job, *, progress: bool = True, poll: float = 1.0,
             timeout: float | None = None) -> JobDetail:
        """Poll a job until it succeeds, fails or is cancelled, with a progress bar (tqdm when installed, else a
        line on stderr); returns its final state. A job still running at `timeout` raises TimeoutError."""
        job_id = job if isinstance(job, int) else job.id
        bar = _Progress(f"job {job_id}") if progress else None
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                state = self.job(job_id)
                if bar is not None:
                    bar.show(state.progress, state.message)
                if state.status in FINISHED:
                    return state
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} is still {state.status} after {timeout} s: {state.message}")
                time.sleep(poll)
        finally:
            if bar is not None:
                bar.close()


class _Progress:
    """tqdm's bar where tqdm is installed (notebooks get its widget), else one rewritten stderr line."""

    def __init__(self, name: str):
        self.name = name
        try:
            from tqdm.auto import tqdm
        except ImportError:
            self.bar = None
        else:
            self.bar = tqdm(total=1.0, desc=name, bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")

    def show(self, fraction: float, message: str) -> None:
        if self.bar is None:
            print(f"\r{self.name}: {fraction:4.0%} {message[:60]:<60}", end="", file=sys.stderr, flush=True)
            return
        self.bar.n = fraction
        self.bar.set_postfix_str(message[:60], refresh=True)

    def close(self) -> None:
        if self.bar is None:
            print(file=sys.stderr)
        else:
            self.bar.close()
