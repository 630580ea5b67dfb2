"""The second near-duplicate check: compare candidate pairs' thumbnails, read from the image store on demand.

`confirmer(session, shas)` gives `neardup.groups` its `confirm`: a pHash
candidate pair is a near-duplicate only when the 16x16 grayscale looks of the
two thumbnails correlate at least MIN_CORRELATION (`app.images.hashing.alike`).

MIN_CORRELATION = 0.99, from bench/neardup.py (--min-r R) on 10,000 Fashion-MNIST
images. pHash alone: 3,341 candidate pairs within 4 bits, chained into 190 groups
holding 1,588 images; by eye (contact sheet, --sheet) 3 pairs are the same picture.
  min r    pairs kept   groups (images)   planted copies kept (of 1,112 that pHash accepts)
  0.98     109          75 (178)          97.0 %
  0.985     48          39 (86)           96.4 %
  0.99      11          11 (22)           94.2 %   <- chosen
  0.995      3           3 (6)            88.6 %
At 0.99 the 8 false pairs left are plain look-alike sweaters and tees; the copies
missed are 1 % crops (a whole pixel of a 28-pixel image) and copies halved to
14x14, most of which pHash misses anyway. JPEG, resized and brightened copies of
photos and of images of 112 pixels or more all pass.

Only candidate pairs are checked, so thumbnails are read for the few images that
have one; each image's look is kept in memory by sha256 (a thumbnail never changes).
When a thumbnail cannot be read (no store known, file missing) the pair falls
back to the pHash verdict alone, and the log says so once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.images.hashing import LOOK_SIZE, alike, look
from app.images.store import thumb_key

log = logging.getLogger("loupe.neardup")
MIN_CORRELATION = 0.99
CACHE_SIZE = 100_000  # kept as bytes, ~300 bytes each with the dict's share: ~30 MB at most
_UNKNOWN = np.zeros(0, np.uint8)

_stores: dict[str, object] = {}
_cache: OrderedDict[str, bytes] = OrderedDict()
_lock = threading.Lock()
_warned: set[str] = set()


def register(settings) -> None:
    """Say where the thumbnails of `settings.database_url`'s images are (the app and the worker call this)."""
    from app.images.blobs import for_settings

    _stores[_key(settings.database_url)] = for_settings(settings)


def _key(url) -> str:
    return make_url(str(url)).render_as_string(hide_password=False)


def _store_for(session: Session):
    url = _key(session.get_bind().url)
    if url in _stores:
        return _stores[url]
    from app.config import Settings  # the CLI sets LOUPE_DATA and LOUPE_DATABASE_URL for serve and worker

    try:
        settings = Settings()
        if _key(settings.database_url) == url:
            register(settings)
            return _stores[url]
    except Exception:  # settings from a stray environment must not break grouping
        pass
    if url.startswith("sqlite:///"):  # the default layout: the database file in the data dir
        data = Path(url.split(":///", 1)[1]).parent
        if (data / "thumbs").is_dir():
            settings = Settings(data=data, database_url=url)
            register(settings)
            return _stores[url]
    return None


def _read(store, sha: str) -> np.ndarray:
    try:
        with store.open(thumb_key(sha)) as f, Image.open(f) as img:
            return look(img)
    except Exception:  # a missing or unreadable thumbnail: no second opinion for this image
        return _UNKNOWN


def looks(store, shas: Sequence[str]) -> list[np.ndarray]:
    """Each image's look (an empty array when its thumbnail cannot be read), cached by sha256."""
    out = []
    for sha in shas:
        with _lock:
            cached = _cache.get(sha)
            if cached is not None:
                _cache.move_to_end(sha)
        if cached is not None:
            got = np.frombuffer(cached, dtype=np.uint8)
        else:
            got = _read(store, sha) if store is not None else _UNKNOWN
            if len(got):
                with _lock:
                    _cache[sha] = got.tobytes()
                    while len(_cache) > CACHE_SIZE:
                        _cache.popitem(last=False)
        out.append(got)
    return out


def confirm_pairs(vectors: dict[int, np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether each pair (a[k], b[k]) is confirmed; a pair with an unknown look keeps the pHash verdict."""
    known = np.array([len(vectors[int(i)]) == LOOK_SIZE**2 and len(vectors[int(j)]) == LOOK_SIZE**2
                      for i, j in zip(a.tolist(), b.tolist())], dtype=bool)
    ok = np.ones(len(a), dtype=bool)
    if known.any():
        x = np.stack([vectors[int(i)] for i in a[known].tolist()])
        y = np.stack([vectors[int(j)] for j in b[known].tolist()])
        ok[known] = alike(x, y) >= MIN_CORRELATION
    return ok


def confirmer(session: Session, shas: Sequence[str]):
    """A `confirm` for `neardup.groups` over images given by sha256 (aligned with the pHashes passed there)."""
    store = _store_for(session)

    def confirm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        wanted = sorted(set(a.tolist()) | set(b.tolist()))
        vectors = dict(zip(wanted, looks(store, [shas[i] for i in wanted])))
        missing = sum(1 for v in vectors.values() if not len(v))
        if missing and (key := str(session.get_bind().url)) not in _warned:
            _warned.add(key)
            log.warning("near-duplicates: %d of %d thumbnails could not be read; those pairs are judged by "
                        "pHash alone", missing, len(vectors))
        return confirm_pairs(vectors, a, b)

    return confirm
