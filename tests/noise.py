"""Planted label noise for the mislabel benchmark matrix and tests: four kinds, pure functions.

Each kind takes the true labels, a numpy generator and the cell's rate (the
share of all images whose label is made wrong) and returns ``(noisy labels,
flipped)`` where ``flipped`` is a bool mask of the changed labels; exactly
``round(rate * n)`` labels change (up to rounding per group):

- ``uniform``: a random image gets any other class;
- ``lookalike``: class-conditional: an image of a class that has look-alikes
  gets one of them (``pairs``: class -> look-alike classes; classes without
  look-alikes are never flipped);
- ``noisy_source``: images come from several sources (or annotators); one is
  ``factor`` times as noisy as each of the others, total still ``rate``; flips
  are uniform within a source;
- ``rare_class``: one class is cut to a small share of the images
  (`subsample_rare`), and noise goes both out of it (its images get other
  classes at the cell's rate) and into it (as many other images take its
  label), the rest uniform among the other classes.
"""

from __future__ import annotations

import numpy as np

KINDS = ("uniform", "lookalike", "noisy_source", "rare_class")


def _flip_to_any(labels: np.ndarray, chosen: np.ndarray, rng: np.random.Generator, n_classes: int,
                 exclude: int | None = None) -> np.ndarray:
    """A different class for each chosen image, uniform over the others (never `exclude`)."""
    out = labels.copy()
    for i in chosen:
        options = [c for c in range(n_classes) if c != labels[i] and c != exclude]
        out[i] = rng.choice(options)
    return out


def _mask(n: int, chosen: np.ndarray) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[chosen] = True
    return m


def _count(rate: float, n: int) -> int:
    if not 0 <= rate < 1:
        raise ValueError(f"rate must be in [0, 1), not {rate}")
    return int(round(rate * n))


def uniform(labels, rng: np.random.Generator, rate: float, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """`rate` of all images get a different class, uniform over the other classes."""
    y = np.asarray(labels)
    chosen = rng.choice(len(y), _count(rate, len(y)), replace=False)
    return _flip_to_any(y, chosen, rng, n_classes), _mask(len(y), chosen)


def lookalike(labels, rng: np.random.Generator, rate: float, pairs: dict[int, list[int]]
              ) -> tuple[np.ndarray, np.ndarray]:
    """`rate` of all images get a look-alike of their class (only images of classes that have one)."""
    y = np.asarray(labels)
    pool = np.flatnonzero(np.isin(y, [c for c, alike in pairs.items() if alike]))
    n = _count(rate, len(y))
    if n > len(pool):
        raise ValueError(f"only {len(pool)} images have a look-alike class; {n} asked for")
    chosen = rng.choice(pool, n, replace=False)
    out = y.copy()
    for i in chosen:
        out[i] = rng.choice(pairs[int(y[i])])
    return out, _mask(len(y), chosen)


def source_rates(shares, rate: float, noisy: int = 0, factor: float = 4.0) -> np.ndarray:
    """Per-source noise rates: source `noisy` at `factor` times the others', the share-weighted mean `rate`."""
    s = np.asarray(shares, dtype=np.float64)
    weights = np.ones(len(s))
    weights[noisy] = factor
    return rate * weights / float((s * weights).sum())


def noisy_source(labels, rng: np.random.Generator, rate: float, n_classes: int, sources, *, noisy: int = 0,
                 factor: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Uniform flips within each source, source `noisy` at `factor` times the others' rate; `rate` in all."""
    y, src = np.asarray(labels), np.asarray(sources)
    if src.shape != y.shape:
        raise ValueError("sources must have one value per label")
    values = np.unique(src)
    counts = np.array([(src == v).sum() for v in values])
    rates = source_rates(counts / len(y), rate, int(np.searchsorted(values, noisy)), factor)
    if (rates >= 1).any():
        raise ValueError(f"rate {rate} needs more than all of the noisy source's images")
    chosen = np.concatenate([rng.choice(np.flatnonzero(src == v), int(round(r * c)), replace=False)
                             for v, r, c in zip(values, rates, counts)]).astype(np.int64)
    return _flip_to_any(y, chosen, rng, n_classes), _mask(len(y), chosen)


def subsample_rare(labels, rng: np.random.Generator, rare: int, share: float = 0.04) -> np.ndarray:
    """Sorted indices to keep: every image of the other classes and enough of `rare` to make `share` of the rest."""
    y = np.asarray(labels)
    others = np.flatnonzero(y != rare)
    keep_rare = int(round(share * len(others) / (1 - share)))
    members = np.flatnonzero(y == rare)
    return np.sort(np.concatenate([others, rng.choice(members, min(keep_rare, len(members)), replace=False)]))


def rare_class(labels, rng: np.random.Generator, rate: float, n_classes: int, rare: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Noise out of and into class `rare` (at the cell's rate of its size each way), the rest uniform elsewhere.

    Call on labels `subsample_rare` has already made rare.
    """
    y = np.asarray(labels)
    total = _count(rate, len(y))
    members, others = np.flatnonzero(y == rare), np.flatnonzero(y != rare)
    n_out = int(round(rate * len(members)))
    n_in = min(n_out, total - n_out)
    out_of = rng.choice(members, n_out, replace=False)
    rest = rng.choice(others, total - n_out, replace=False)
    into, elsewhere = rest[:n_in], rest[n_in:]
    noisy = _flip_to_any(y, out_of, rng, n_classes)
    noisy[into] = rare
    noisy = np.where(_mask(len(y), elsewhere), _flip_to_any(y, elsewhere, rng, n_classes, exclude=rare), noisy)
    return noisy, _mask(len(y), np.concatenate([out_of, rest]))
