"""A multi-label dataset from real images: four 28x28 images tiled 2x2 into one 56x56 image.

Each tile is, independently, blank (with BLANK) or a random image of the
source dataset (Fashion-MNIST or the rendered letters); the tiled image's set
is the classes of its non-blank tiles, so sets have 0 to 4 members and an
empty one ("none of these") occurs. Seeded: the same n and seed give the same
images.

Planted noise (`plant`): a *missing* tag drops one class from an image's set;
a *wrong* tag adds one class the image does not show. Both are chosen per
(image, class) pair at the given rates of the pairs that can take them, with
`lookalike` the wrong tag is a class confusable with one in the set (the
careless annotator's mistake) rather than any.
"""

from __future__ import annotations

import numpy as np

from tests import fmnist, letters

BLANK = 0.3


def load(dataset: str, n: int, seed: int = 0, n_classes: int | None = None
         ) -> tuple[np.ndarray, list[tuple[int, ...]], list[str]]:
    """(images uint8 (n, 56, 56), sets (sorted class indices), class names); tiles from the first `n_classes`
    classes only when given."""
    if dataset == "letters":
        pool, labels = letters.load(max(2000, n))
        classes = letters.CLASSES
    else:
        pool, labels = fmnist.load("train", max(6000, 2 * n))
        classes = fmnist.CLASSES
    if n_classes:
        keep = labels < n_classes
        pool, labels, classes = pool[keep], labels[keep], classes[:n_classes]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(pool), size=(n, 4))
    blank = rng.random((n, 4)) < BLANK
    images = np.zeros((n, 56, 56), dtype=np.uint8)
    sets = []
    for i in range(n):
        for t in range(4):
            if not blank[i, t]:
                r, c = divmod(t, 2)
                images[i, 28 * r:28 * r + 28, 28 * c:28 * c + 28] = pool[picks[i, t]]
        sets.append(tuple(sorted({int(labels[picks[i, t]]) for t in range(4) if not blank[i, t]})))
    return images, sets, list(classes)


def plant(sets: list[tuple[int, ...]], n_classes: int, rng: np.random.Generator, *, missing: float, wrong: float,
          lookalike: dict[int, list[int]] | None = None) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Noisy sets and the (N, K) matrix of planted errors: +1 a tag dropped (missing), -1 a tag added (wrong)."""
    truth = np.zeros((len(sets), n_classes), dtype=bool)
    for i, s in enumerate(sets):
        truth[i, list(s)] = True
    given = truth.copy()
    drop = truth & (rng.random(truth.shape) < missing)
    given[drop] = False
    planted = drop.astype(np.int8)
    if lookalike:
        for i in np.flatnonzero(rng.random(len(sets)) < wrong * (n_classes - truth.sum(1).mean())):
            options = sorted({c for k in sets[i] for c in lookalike.get(k, ()) if not truth[i, c]})
            if options:
                c = options[int(rng.integers(len(options)))]
                given[i, c], planted[i, c] = True, -1
    else:
        add = ~truth & (rng.random(truth.shape) < wrong)
        given[add] = True
        planted[add] = -1
    return [tuple(np.flatnonzero(row).tolist()) for row in given], planted
