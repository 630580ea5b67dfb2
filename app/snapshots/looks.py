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

Embeddings (issue 14): where both images of a pair have one in the latest
embedding space (app.embeddings.spaces), their cosine distance must also be
at most MAX_EMBEDDING_DISTANCE. bench/neardup.py --max-d, same 10,000 images,
through a small CNN trained on them for 2 epochs at 28 px (bench/_fmnist_embed.py;
a train job's model on them, flips being its only augmentation at that size):
  max d    pHash + embeddings              pHash + thumbnails + embeddings
           pairs   groups   copies kept     pairs (false)   groups   copies kept (of 1,112 pHash accepts)
  -        3,341   190      100 %           11 (8)          11       94.2 %   (thumbnails alone)
  0.002       81    24      54.1 %           4 (1)           4       53.7 %
  0.01     1,289   122      80.8 %           9 (6)           9       80.1 %
  0.03     2,326   183      89.4 %          11 (8)          11       88.1 %
  0.1      2,917   188      94.4 %          11 (8)          11       92.0 %
  0.3      3,258   187      99.1 %          11 (8)          11       93.9 %   <- chosen
Copies lie further apart than look-alikes in that space: the true pairs sit
at 0.0001-0.0003, the 8 false ones at 0.0012-0.029, but a fifth of the copies
beyond 0.01 (a 28 px image doubled or halved and read back at 28 px: resampling
blur moves its embedding as far as another garment; JPEG and brightness move it
less). Every threshold that removes a false pair loses 60 or more copies for
each (a cut relative to each image's nearest-neighbour distance did no better), so
embeddings only veto pairs the model sees as plainly different things (Fashion-
MNIST: random pairs 0.79 apart, nearest same-class neighbours 0.007); that
costs 4 of the 1,048 copies the thumbnails keep (halved 28 px images) and guards against two
different pictures whose grayscale 16x16 looks correlate (colour, fine detail).
The cost at a freeze: one query for the candidate images' ids and their rows
read from the embedding files' memory maps (bench/neardup.py prints it).

Only candidate pairs are checked, so thumbnails are read for the few images that
have one; each image's look is kept in memory by sha256 (a thumbnail never changes),
and each pair's correlation in the data directory's cache (`app.snapshots.pairs`),
so a refresh reads the thumbnails of new images only.
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
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.db.models import Image as ImageRow
from app.images.hashing import LOOK_SIZE, alike, look
from app.images.store import thumb_key
from app.snapshots import pairs

log = logging.getLogger("loupe.neardup")
MIN_CORRELATION = 0.99
MAX_EMBEDDING_DISTANCE = 0.3  # cosine distance in the latest space: a veto, not a verdict (docstring)
CACHE_SIZE = 100_000  # kept as bytes, ~300 bytes each with the dict's share: ~30 MB at most
_UNKNOWN = np.zeros(0, np.uint8)
LOOKUP_CHUNK = 5000  # sha256s per id query (SQLite allows 32,766 parameters; PostgreSQL more)

_stores: dict[str, object] = {}
_settings: dict[str, object] = {}  # database URL -> Settings: where that database's embedding files are
_cache: OrderedDict[str, bytes] = OrderedDict()
_lock = threading.Lock()
_warned: set[str] = set()
_memories: dict[str, pairs.Memory] = {}


def register(settings) -> None:
    """Say where the thumbnails of `settings.database_url`'s images are (the app and the worker call this)."""
    from app.images.blobs import for_settings

    _stores[_key(settings.database_url)] = for_settings(settings)
    _settings[_key(settings.database_url)] = settings


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


def verdict(r: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Whether pairs with thumbnail correlation r and embedding cosine distance d are near-duplicates.

    NaN means not known: an unknown look or a missing embedding adds no evidence, and a pair with
    neither keeps the pHash verdict (True).
    """
    r, d = np.asarray(r, dtype=np.float64), np.asarray(d, dtype=np.float64)
    return ~(r < MIN_CORRELATION) & ~(d > MAX_EMBEDDING_DISTANCE)


Embeddings = tuple[np.ndarray, np.ndarray]  # (indices, sorted int64; their unit rows float32 (m, D))
NO_EMBEDDINGS: Embeddings = (np.zeros(0, np.int64), np.zeros((0, 0), np.float32))


def embedded(by_index: dict[int, np.ndarray]) -> Embeddings:
    """Embeddings from {index: unit row}."""
    if not by_index:
        return NO_EMBEDDINGS
    keys = np.array(sorted(by_index), dtype=np.int64)
    return keys, np.stack([np.asarray(by_index[int(k)], dtype=np.float32) for k in keys])


def correlations(vectors: dict[int, np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each pair's thumbnail correlation; NaN where a look is unknown."""
    known = np.array([len(vectors[int(i)]) == LOOK_SIZE**2 and len(vectors[int(j)]) == LOOK_SIZE**2
                      for i, j in zip(a.tolist(), b.tolist())], dtype=bool)
    r = np.full(len(a), np.nan)
    if known.any():
        x = np.stack([vectors[int(i)] for i in a[known].tolist()])
        y = np.stack([vectors[int(j)] for j in b[known].tolist()])
        r[known] = alike(x, y)
    return r


def distances(embeddings: Embeddings, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each pair's cosine distance in `embeddings`; NaN where either image has none."""
    d = np.full(len(a), np.nan)
    keys, rows = embeddings
    if len(keys) and len(a):
        at_a = np.minimum(np.searchsorted(keys, a), len(keys) - 1)
        at_b = np.minimum(np.searchsorted(keys, b), len(keys) - 1)
        both = (keys[at_a] == a) & (keys[at_b] == b)
        d[both] = 1.0 - np.einsum("ij,ij->i", rows[at_a[both]], rows[at_b[both]])
    return d


def confirm_pairs(vectors: dict[int, np.ndarray], a: np.ndarray, b: np.ndarray,
                  embeddings: Embeddings = NO_EMBEDDINGS) -> np.ndarray:
    """Whether each pair (a[k], b[k]) is confirmed (see `verdict`); `embeddings` of some of the indices."""
    return verdict(correlations(vectors, a, b), distances(embeddings, a, b))


def embeddings(session: Session, shas: dict[int, str]) -> Embeddings:
    """The latest embedding space's unit rows of the images (index -> sha256) it holds.

    None held when there is no space yet, or its files cannot be read (logged): the looks decide alone then.
    """
    if _store_for(session) is None:  # registers the settings too, when they can be found
        return NO_EMBEDDINGS
    settings = _settings.get(_key(session.get_bind().url))
    from app.embeddings import similar, spaces
    from app.errors import NotFound

    space = spaces.latest_space(session) if settings is not None and shas else None
    if space is None:
        return NO_EMBEDDINGS
    wanted = sorted(set(shas.values()))
    ids: dict[str, int] = {}
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start:start + LOOKUP_CHUNK]
        ids.update(session.execute(select(ImageRow.sha256, ImageRow.id).where(ImageRow.sha256.in_(chunk))).all())
    try:
        found, rows = similar.vectors_for(session, settings, space.id, ids.values())
    except (OSError, ValueError, NotFound) as exc:
        log.warning("near-duplicates: the embeddings of job %s cannot be read (%s); thumbnails decide alone",
                    space.id, exc)
        return NO_EMBEDDINGS
    if not len(found):
        return NO_EMBEDDINGS
    index = np.fromiter(shas.keys(), dtype=np.int64, count=len(shas))
    image = np.fromiter((ids.get(sha, -1) for sha in shas.values()), dtype=np.int64, count=len(shas))
    at = np.minimum(np.searchsorted(found, image), len(found) - 1)
    hit = found[at] == image
    order = np.argsort(index[hit])
    return index[hit][order], rows[at[hit]][order]


def _memory_for(session: Session) -> pairs.Memory:
    """The compared pairs kept for this database (in its data directory's cache when that is known)."""
    url = _key(session.get_bind().url)
    with _lock:
        memory, settings = _memories.get(url), _settings.get(url)
        if memory is None or (memory.path is None and settings is not None):
            memory = _memories[url] = pairs.Memory(settings.cache_dir / pairs.FILE if settings is not None else None)
    return memory


def confirmer(session: Session, shas: Sequence[str]):
    """A `confirm` for `neardup.groups` over images given by sha256 (aligned with the pHashes passed there).

    Correlations already kept for a pair (`app.snapshots.pairs`) are not computed again; the thumbnails of
    the other pairs are read and their correlations kept."""
    store = _store_for(session)
    memory = _memory_for(session)

    def confirm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        k = pairs.keys([shas[i] for i in a.tolist()], [shas[i] for i in b.tolist()])
        r = memory.lookup(k)
        todo = np.flatnonzero(np.isnan(r))
        if len(todo):
            wanted = sorted(set(a[todo].tolist()) | set(b[todo].tolist()))
            vectors = dict(zip(wanted, looks(store, [shas[i] for i in wanted])))
            missing = sum(1 for v in vectors.values() if not len(v))
            if missing and (key := str(session.get_bind().url)) not in _warned:
                _warned.add(key)
                log.warning("near-duplicates: %d of %d thumbnails could not be read; those pairs are judged by "
                            "pHash alone", missing, len(vectors))
            r[todo] = correlations(vectors, a[todo], b[todo])
            memory.add(k[todo], r[todo])
            memory.save()
        involved = set(a.tolist()) | set(b.tolist())
        return verdict(r, distances(embeddings(session, {i: shas[i] for i in sorted(involved)}), a, b))

    return confirm
