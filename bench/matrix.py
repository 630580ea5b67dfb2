"""The mislabel benchmark matrix: datasets x noise kinds x rates, Loupe's flags vs cleanlab on the same probabilities.

Datasets: Fashion-MNIST (Debian's dataset-fashion-mnist) and letters (20
capital letters in 82 Debian fonts, tests/letters.py). Noise kinds
(tests/noise.py): uniform, lookalike (class-conditional, per-dataset look-alike
pairs), noisy_source (three sources, one at 4x the others' rate), rare_class
(one class cut to 4 % of the images, 1.5 % of the letters, noise out of and
into it). Rates 5, 10, 20 %.

Each cell runs the real pipeline once (bench/_matrix_cells.py: import through
the API, label, freeze, default train job through the real worker) and caches
what detection needs in bench/out/matrix/<cell>.npz. n = 3,000 images per cell
by default (about 2,820 / 2,890 in a Fashion-MNIST / letters rare-class cell):
large enough that a 4 % class has over 110 images and a 5 % cell 150 errors, small enough that the whole
matrix at one rate (8 cells) builds within an hour on 2 cores shared with
other work (a cell's import and 5-fold job). `--reuse` scores only cells already cached and
recomputes the detection from the cache in seconds: edit app/quality/mislabels.py,
rerun with --reuse.

Per cell, one line: out-of-sample accuracy (against the true labels); Loupe:
P / R / F1 of its flags at the default cut (the detection recomputed from the
cache exactly as app.quality.mislabel_flags.detect_mislabels does, neighbours from
the cached oof-embeddings included; the count of flags where it differs from
the worker's own, written when the cell was built, shows when the detector
changed since), precision of the first k flags in review order (score
descending; k = the true number of errors), its F1 without the annotator's
confidence (cleanlab never sees it) and without the neighbours, the estimated
noise rate (the quality page's number, app.quality.mislabels.noise_structure)
vs the true one, the worst class's estimate vs its truth, per source in a
noisy_source cell, and the recall on the rare class's errors in a rare_class
cell; cleanlab: `find_label_issues` (defaults) P / R / F1 and the precision of
its k lowest `get_label_quality_scores`. Then a summary: mean F1 and P@k of
each, the cells where Loupe's F1 is below cleanlab's, and on the 10 % cells
the largest error of the noise estimate overall, per class and per source.

cleanlab is a benchmark dependency only: `.venv/bin/pip install cleanlab`.

Run (under `nice -n 19` on a shared machine):
  .venv/bin/python bench/matrix.py [--datasets fmnist,letters] [--kinds uniform,lookalike,noisy_source,rare_class]
                                   [--rates 10] [--n 3000] [--epochs N] [--reuse] [--rebuild]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.quality import mislabels  # noqa: E402
from app.quality.neighbourhood import neighbour_rows  # noqa: E402
from bench import _matrix_cells as cells  # noqa: E402
from tests import noise  # noqa: E402


def prf(found: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    hit = int((found & truth).sum())
    p = hit / found.sum() if found.sum() else 0.0
    r = hit / truth.sum() if truth.sum() else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def precision_first(order: np.ndarray, truth: np.ndarray, k: int) -> float:
    top = order[:k]
    return float(truth[top].mean()) if len(top) else 0.0


def neighbours_of(c: dict) -> np.ndarray | None:
    """The detector's neighbour rows, as app.quality.neighbourhood finds them from the job's oof-embeddings."""
    if "oof_embeddings" not in c:
        return None
    return neighbour_rows(c["image_ids"], c["oof_embedding_ids"], c["oof_embeddings"], c["given"], c["fold"])


def loupe_detect(c: dict, use_confidence: bool = True, neighbours: np.ndarray | None = None) -> dict:
    """app.quality.mislabel_flags.detect_mislabels on cached arrays: flags, review-order scores and the noise estimate."""
    prior = c["confidence"] if use_confidence else None
    found = mislabels.detect(c["given"], c["probs"], prior=prior, neighbours=neighbours)
    structure = mislabels.noise_structure(c["given"], c["probs"], posterior=found["posterior"],
                                          groups={"source": c["source"]})
    return {"flagged": found["issues"], "score": found["score"], "noise": structure}


def score(path: Path) -> dict:
    c = dict(np.load(path, allow_pickle=False))
    truth = c["given"] != c["true"]
    k = int(truth.sum())
    t = time.perf_counter()
    near = neighbours_of(c)
    found = loupe_detect(c, neighbours=near)
    detect_s = time.perf_counter() - t
    flagged, scores, structure = found["flagged"], found["score"], found["noise"]
    plain = prf(loupe_detect(c, use_confidence=False, neighbours=near)["flagged"], truth)
    alone = prf(loupe_detect(c)["flagged"], truth)
    worker_flags = np.isin(c["image_ids"], c["flag_ids"])
    order = np.argsort(-np.where(flagged, scores, -np.inf), kind="stable")[:int(flagged.sum())]
    est = structure["noise"]
    est_source = np.array([structure["source"].get(s, {"noise": np.nan})["noise"] for s in range(len(c["sources"]))])
    class_error = max(abs(structure["per_class"][j]["noise"] - truth[c["given"] == j].mean())
                      for j in np.unique(c["given"]))

    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    cl = find_label_issues(labels=c["given"], pred_probs=c["probs"])
    cl_order = np.argsort(get_label_quality_scores(labels=c["given"], pred_probs=c["probs"]), kind="stable")
    rare = {}
    if str(c["kind"]) == "rare_class":
        names, _, rare_class, _ = cells.DATASETS[str(c["dataset"])]
        col = list(c["classes"]).index(names[rare_class])
        involved = truth & ((c["true"] == col) | (c["given"] == col))
        rare = {"errors": int(involved.sum()), "loupe": float((flagged & involved).sum() / max(1, involved.sum())),
                "cleanlab": float((cl & involved).sum() / max(1, involved.sum()))}
    true_source = np.array([truth[c["source"] == s].mean() for s in range(len(c["sources"]))])
    return {
        "cell": path.stem, "kind": str(c["kind"]), "n": len(truth), "errors": k,
        "accuracy": float((c["probs"].argmax(axis=1) == c["true"]).mean()),
        "loupe": prf(flagged, truth), "loupe_n": int(flagged.sum()), "loupe_plain": plain, "loupe_alone": alone,
        "class_error": class_error,
        "loupe_p_at": precision_first(order, truth, k),
        "worker_differs": int((worker_flags != flagged).sum()),
        "cleanlab": prf(cl, truth), "cleanlab_n": int(cl.sum()), "cleanlab_p_at": precision_first(cl_order, truth, k),
        "est": est, "true_rate": k / len(truth), "est_source": est_source, "true_source": true_source,
        "detect_s": detect_s, "worker_s": float(c["timings"][1]),
        "has_oof_embeddings": "oof_embeddings" in c, "rare": rare,
    }


def line(r: dict) -> str:
    lp, cp = r["loupe"], r["cleanlab"]
    src = ""
    if r["kind"] == "noisy_source":
        pairs = zip(r["est_source"], r["true_source"])
        src = " | per source est/true " + " ".join(f"{e:.3f}/{t:.3f}" for e, t in pairs)
    if r["rare"]:
        src = (f" | rare class's {r['rare']['errors']} errors (out of or into it): recall loupe "
               f"{r['rare']['loupe']:.3f} cleanlab {r['rare']['cleanlab']:.3f}")
    differs = f" (worker's flags differ on {r['worker_differs']})" if r["worker_differs"] else ""
    return (f"matrix {r['cell']}: {r['n']} images, {r['errors']} wrong, oof accuracy {r['accuracy']:.3f} | "
            f"loupe ({r['loupe_n']}{differs}) P {lp[0]:.3f} R {lp[1]:.3f} F1 {lp[2]:.3f} P@k {r['loupe_p_at']:.3f} "
            f"(without annotator confidence {r['loupe_plain'][2]:.3f}, without neighbours {r['loupe_alone'][2]:.3f}) | "
            f"cleanlab ({r['cleanlab_n']}) "
            f"P {cp[0]:.3f} R {cp[1]:.3f} F1 {cp[2]:.3f} P@k {r['cleanlab_p_at']:.3f} | "
            f"noise est {r['est']:.3f} true {r['true_rate']:.3f}, worst class off by {r['class_error']:.3f}{src} | worker {r['worker_s']:.0f} s, "
            f"detect {r['detect_s']:.2f} s{'' if r['has_oof_embeddings'] else ', no oof-embeddings'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="fmnist,letters")
    parser.add_argument("--kinds", default=",".join(noise.KINDS))
    parser.add_argument("--rates", default="10", help="percent, comma-separated (5,10,20)")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, help="default: the train config's default")
    parser.add_argument("--reuse", action="store_true", help="score cached cells only (no import, no training)")
    parser.add_argument("--rebuild", action="store_true", help="build cells again even when cached")
    args = parser.parse_args()
    results = []
    for dataset in args.datasets.split(","):
        for kind in args.kinds.split(","):
            for rate in (int(x) / 100 for x in args.rates.split(",")):
                path = cells.OUT / f"{cells.cell_name(dataset, kind, rate)}.npz"
                if not path.exists() or args.rebuild:
                    if args.reuse:
                        print(f"matrix {path.stem}: not cached, skipped", flush=True)
                        continue
                    cells.build(dataset, kind, rate, args.n, args.seed, args.epochs)
                results.append(score(path))
                print(line(results[-1]), flush=True)
    if results:
        worse = [r["cell"] for r in results if r["loupe"][2] < r["cleanlab"][2]]
        print(f"matrix summary: {len(results)} cells | mean F1 loupe {np.mean([r['loupe'][2] for r in results]):.3f} "
              f"cleanlab {np.mean([r['cleanlab'][2] for r in results]):.3f} | mean P@k loupe "
              f"{np.mean([r['loupe_p_at'] for r in results]):.3f} cleanlab "
              f"{np.mean([r['cleanlab_p_at'] for r in results]):.3f} | mean |est - true| noise "
              f"{np.mean([abs(r['est'] - r['true_rate']) for r in results]):.3f} | loupe < cleanlab in "
              f"{len(worse)}: {', '.join(worse) or 'none'} | without annotator confidence: mean F1 loupe "
              f"{np.mean([r['loupe_plain'][2] for r in results]):.3f}, below cleanlab in "
              f"{sum(r['loupe_plain'][2] < r['cleanlab'][2] for r in results)} | without neighbours: mean F1 "
              f"{np.mean([r['loupe_alone'][2] for r in results]):.3f}, below cleanlab in "
              f"{sum(r['loupe_alone'][2] < r['cleanlab'][2] for r in results)}", flush=True)
        tens = [r for r in results if abs(r["true_rate"] - 0.1) < 0.01]
        if tens:
            source_error = max(np.nanmax(np.abs(r["est_source"] - r["true_source"])) for r in tens)
            print(f"matrix 10 % cells: noise estimate off by at most "
                  f"{max(abs(r['est'] - r['true_rate']) for r in tens):.3f} overall, "
                  f"{max(r['class_error'] for r in tens):.3f} for a class, {source_error:.3f} for a source", flush=True)


if __name__ == "__main__":
    main()
