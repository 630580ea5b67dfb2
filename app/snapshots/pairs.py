"""What two thumbnails' looks said about each other, kept by content so a refresh reads only new images.

Comparing a candidate pair's thumbnails is most of a near-duplicate report's
cost: every image in a pair is read from the store (20,000 Fashion-MNIST images:
7.4 s of a 7.4 s report, bench/report_refresh.py). A pair's correlation never
changes, since an image's content is fixed by its sha256, so each correlation is
kept under a key made of the two hashes and a refresh only compares pairs
holding an image it has not seen. The embedding veto is not kept: it depends on
the latest embedding space, and is cheap to read again.

Keys are 64 bits: the first 16 hex digits of each sha256, the smaller one
first, mixed. Two different pairs share a key with probability about
n² / 2⁶⁵ (n pairs kept): one in 37 million at a million pairs, and then only one
pair's correlation is taken for the other's.

The file lives in the data directory's cache (`look-pairs.npz`); a process that
cannot read it starts empty, and a write is a whole new file renamed into place
(concurrent writers merge what they find first, so a race loses only work).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger("loupe.neardup")
FILE = "look-pairs.npz"
_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio multiplier: spreads the first hash over every bit


def keys(first: list[str], second: list[str]) -> np.ndarray:
    """One uint64 key per pair of sha256s (order does not matter)."""
    a = np.array([int(s[:16], 16) for s in first], dtype=np.uint64)
    b = np.array([int(s[:16], 16) for s in second], dtype=np.uint64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    with np.errstate(over="ignore"):
        return (lo * _MIX) ^ hi


class Memory:
    """Correlations of pairs, by key: sorted arrays for what was loaded or merged, plus what was added since."""

    def __init__(self, path: Path | None = None):
        self.path = path
        self._keys = np.empty(0, np.uint64)
        self._r = np.empty(0, np.float32)
        self._new: dict[int, float] = {}
        self._lock = threading.Lock()
        if path is not None:
            self._keys, self._r = _read(path)

    def __len__(self) -> int:
        return len(self._keys) + len(self._new)

    def lookup(self, k: np.ndarray) -> np.ndarray:
        """The kept correlation of each key, NaN where none is kept."""
        out = np.full(len(k), np.nan)
        with self._lock:
            if len(self._keys) and len(k):
                at = np.minimum(np.searchsorted(self._keys, k), len(self._keys) - 1)
                hit = self._keys[at] == k
                out[hit] = self._r[at[hit]]
            if self._new:
                for i in np.flatnonzero(np.isnan(out)).tolist():
                    out[i] = self._new.get(int(k[i]), np.nan)
        return out

    def add(self, k: np.ndarray, r: np.ndarray) -> None:
        """Keep the finite correlations (an unknown look is not an answer: its thumbnail may appear later)."""
        known = np.isfinite(r)
        with self._lock:
            self._new.update(zip(k[known].tolist(), np.asarray(r)[known].tolist()))

    def save(self) -> None:
        """Write what is kept, merged with what the file holds now, if anything was added."""
        if self.path is None or not self._new:
            return
        with self._lock:
            added = np.fromiter(self._new.keys(), np.uint64, len(self._new))
            added_r = np.fromiter(self._new.values(), np.float32, len(self._new))
            on_disk = _read(self.path)
            k = np.concatenate([on_disk[0], self._keys, added])
            r = np.concatenate([on_disk[1], self._r, added_r])
            k, first = np.unique(k, return_index=True)
            self._keys, self._r, self._new = k, r[first], {}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
            try:
                np.savez(tmp, keys=self._keys, r=self._r)
                os.replace(tmp, self.path)
            except OSError as exc:
                log.warning("near-duplicates: could not keep the compared pairs in %s (%s)", self.path, exc)
                tmp.unlink(missing_ok=True)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as f:
            k, r = np.asarray(f["keys"], np.uint64), np.asarray(f["r"], np.float32)
        if k.shape != r.shape or (len(k) > 1 and not (k[1:] > k[:-1]).all()):
            raise ValueError("keys and correlations do not match")
        return k, r
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError) as exc:
        log.warning("near-duplicates: %s cannot be read (%s); pairs are compared afresh", path, exc)
    return np.empty(0, np.uint64), np.empty(0, np.float32)
