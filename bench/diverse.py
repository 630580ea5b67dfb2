"""The diverse order's mix of distance and uncertainty, measured by what the first picks teach.

A simulated labelling session on a real space: bench/outliers.py condition A's
train job (3,000 Fashion-MNIST images, 84 % accurate model; its strays left
out). 50 images start labelled (5 per class); the rest is the pool, in import
order. Each order picks the first B images of the pool; they are labelled
with their true class, and a 5-nearest-neighbour classifier over the
embeddings, from the labelled images, labels the rest of the pool. One line
per order and B: that accuracy (mean of 5 seeds of the starting set) and the
classes among the first 100 picks. Margins are the train job's own
out-of-sample ones (role oof, or suggestion for images it never had a label for).

Run (after bench/outliers.py --conditions A): .venv/bin/python bench/diverse.py
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.embeddings import diversity, similar  # noqa: E402
from tests import fmnist  # noqa: E402

DATA = ROOT / "bench" / "out" / "outliers-A-e6"


def load():
    ids = np.load(DATA / "jobs" / "job-1" / "embedding-ids.npy")
    unit = similar.normalise(np.load(DATA / "jobs" / "job-1" / "embeddings.npy"))
    con = sqlite3.connect(DATA / "loupe.db")
    names = dict(con.execute("SELECT id, original_filename FROM images"))
    _, labels = fmnist.load("train")
    truth = np.array([int(labels[int(names[int(i)][7:12])]) if names[int(i)].startswith("fmnist-") else -1
                      for i in ids])
    margin = np.full(len(ids), np.nan, dtype=np.float32)
    for image_id, m in con.execute("SELECT image_id, margin FROM predictions ORDER BY job_id"):
        at = np.searchsorted(ids, image_id)
        if at < len(ids) and ids[at] == image_id:
            margin[at] = m
    keep = truth >= 0
    return ids[keep], unit[keep], truth[keep], margin[keep]


def knn_accuracy(unit, truth, labelled, k=5) -> float:
    rest = np.flatnonzero(~labelled)
    ref = np.flatnonzero(labelled)
    sims = unit[rest] @ unit[ref].T
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    votes = truth[ref][top]
    guess = np.array([np.bincount(v, minlength=10).argmax() for v in votes])
    return float((guess == truth[rest]).mean())


def main() -> None:
    ids, unit, truth, margin = load()
    n = len(ids)
    results: dict[str, dict[int, list[float]]] = {}
    coverage: dict[str, list[int]] = {}
    for seed in range(5):
        rng = np.random.default_rng(seed)
        start = np.concatenate([rng.choice(np.flatnonzero(truth == c), 5, replace=False) for c in range(10)])
        pool = np.setdiff1d(np.arange(n), start)
        orders = {"import": pool, "random": rng.permutation(pool),
                  "uncertain": pool[np.lexsort((pool, np.nan_to_num(margin[pool], nan=1.0)))]}
        for mix in (0.0, 0.25, 0.5, 0.75, 1.0):
            w = diversity.weights(margin[pool], len(pool), mix)
            orders[f"k-center mix={mix}"] = pool[diversity.order(unit[pool], unit[start], w, greedy=300)]
        for name, order in orders.items():
            coverage.setdefault(name, []).append(len(set(truth[order[:100]].tolist())))
            for b in (100, 300):
                labelled = np.zeros(n, dtype=bool)
                labelled[start] = True
                labelled[order[:b]] = True
                results.setdefault(name, {}).setdefault(b, []).append(knn_accuracy(unit, truth, labelled))
    for name, by_b in results.items():
        accs = " ".join(f"acc@{b}={np.mean(v):.3f}" for b, v in by_b.items())
        print(f"diverse order={name:20s} {accs} classes_in_first_100={np.mean(coverage[name]):.1f}")
    print(json.dumps({"images": n}))


if __name__ == "__main__":
    main()
