"""Candidate near-duplicate pairs among N random 64-bit pHashes (no two close): time and peak RSS of the search.

    .venv/bin/python bench/neardup_scale.py [--images 1000000]

Random hashes are the plain case of a large, varied library: the search must not grow with
the square of the number of hashes, nor hold its candidates all at once. Prints one line.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from _server import ROOT  # noqa: F401  (puts the repo on sys.path)

from app.snapshots import neardup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1_000_000)
    n = ap.parse_args().images
    hashes = np.random.default_rng(0).integers(-2**63, 2**63 - 1, size=n, dtype=np.int64)
    start = time.perf_counter()
    a, _ = neardup.candidate_pairs(hashes)
    took = time.perf_counter() - start
    bands, radius = neardup._bands(np.unique(hashes.view(np.uint64)), neardup.MAX_DISTANCE)
    print(f"neardup candidates among {n:,} random pHashes: {took:.1f} s, {len(a)} pairs, {len(bands)} bands "
          f"searched within {radius} bit(s), peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")


if __name__ == "__main__":
    main()
