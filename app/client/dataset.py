"""A snapshot as a torch Dataset, read over HTTP: the client's one module that needs torch."""

from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import torch
from PIL import Image
from torch.utils.data import Dataset


class SnapshotDataset(Dataset):
    """(RGB image, class index) pairs of a snapshot's items; `classes`, `class_to_idx` and `targets` as
    torchvision's ImageFolder has them, `items` the snapshot's rows (image id, class, split, fold). A
    multi-label snapshot gives (RGB image, 0/1 float vector over `classes`)."""

    def __init__(self, url: str, headers: dict, classes: list[str], items: list, *, transform=None,
                 cache: str | Path | None = None):
        self.url, self.headers, self.transform = url, dict(headers), transform
        self.classes = list(classes)
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.items = items
        # A multi-label snapshot's items carry sets: the target is then a 0/1 vector over `classes` (what a
        # sigmoid output and BCE loss take), else a class index as ImageFolder gives.
        self.multi = any(item.classes is not None for item in items)
        self.targets = [[self.class_to_idx[c] for c in item.classes] if self.multi else self.class_to_idx[item.class_]
                        for item in items]
        self.cache = Path(cache) if cache is not None else None
        self._http: httpx.Client | None = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        image = Image.open(io.BytesIO(self._bytes(self.items[index].image))).convert("RGB")  # as ImageFolder
        target = self.targets[index]
        if self.multi:
            hot = torch.zeros(len(self.classes))
            hot[target] = 1.0
            target = hot
        return (self.transform(image) if self.transform else image), target

    def _bytes(self, image_id: int) -> bytes:
        path = self.cache / str(image_id) if self.cache is not None else None
        if path is not None and path.exists():
            return path.read_bytes()
        response = self._client().get(f"/api/images/{image_id}/file")
        response.raise_for_status()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.part")  # DataLoader workers may fetch the same image
            tmp.write_bytes(response.content)
            tmp.replace(path)
        return response.content

    def _client(self) -> httpx.Client:
        # One connection pool per process: a DataLoader's worker processes must not share the parent's.
        if self._http is None or self._pid != os.getpid():
            self._http, self._pid = httpx.Client(base_url=self.url, headers=self.headers, timeout=60), os.getpid()
        return self._http

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_http": None, "_pid": -1}
