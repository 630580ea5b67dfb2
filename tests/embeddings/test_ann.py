"""Approximate nearest neighbours (app.embeddings.ann) and similar-image search through a space's saved index."""

from __future__ import annotations

import numpy as np
import pytest

from app.db.models import Job
from app.embeddings import analyses, ann, files, similar
from app.timeutil import utcnow
from tests.factories import upload_fmnist


def clustered(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Unit rows from 50 Gaussian clusters in a 12-d subspace, plus noise (bench/similar.py's kind of data)."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((12, dim)).astype(np.float32)
    label = rng.integers(0, 50, n)
    z = rng.standard_normal((50, 12))[label] + 0.5 * rng.standard_normal((n, 12))
    return similar.normalise((z @ basis + 0.05 * rng.standard_normal((n, dim))).astype(np.float32))


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist())]))


def test_the_hnsw_graph_finds_what_the_exact_one_does(monkeypatch):
    unit = clustered(3000)
    exact_rows, exact_dist = ann.graph(unit, 10)                  # small: exact
    monkeypatch.setattr(ann, "GRAPH_EXACT_MAX", 100)
    rows, dist = ann.graph(unit, 10)                              # through HNSW
    assert rows.shape == (3000, 10) and rows.dtype == np.int32 and dist.dtype == np.float16
    assert not (rows == np.arange(3000)[:, None]).any()           # never itself
    assert (np.diff(dist.astype(np.float32), axis=1) >= 0).all()  # nearest first
    assert recall(rows, exact_rows) >= 0.99
    again = 1 - np.einsum("ij,ikj->ik", unit, unit[rows])         # the distances are the rows' own
    assert np.allclose(dist, again, atol=2e-3)
    assert np.allclose(np.sort(exact_dist, axis=1), exact_dist) and exact_rows.dtype == np.int32


def test_a_copy_of_a_row_does_not_make_the_graph_keep_the_row_itself(monkeypatch):
    unit = clustered(400)
    unit[7] = unit[3]                                             # two identical rows: either may come first
    monkeypatch.setattr(ann, "GRAPH_EXACT_MAX", 10)
    rows, dist = ann.graph(unit, 5)
    assert rows[3, 0] == 7 and rows[7, 0] == 3 and dist[3, 0] == 0
    assert not (rows == np.arange(400)[:, None]).any()


def test_recall_at_20_on_a_clustered_set_is_at_least_095():
    unit = clustered(20_000, dim=128, seed=1)
    index = ann.build(unit)
    queries = np.random.default_rng(2).choice(len(unit), 200, replace=False)
    found, _ = ann.search(index, unit[queries], 21)
    truth = np.stack([similar.nearest(unit, unit[q], 20, exclude=int(q))[0] for q in queries])
    found = np.stack([f[f != q][:20] for f, q in zip(found, queries)])
    assert recall(found, truth) >= 0.95


def test_the_saved_index_round_trips_and_small_spaces_get_none(tmp_path, monkeypatch):
    unit = clustered(1000)
    ids = np.arange(1000, dtype=np.int64) * 3 + 5
    assert ann.build_for_analysis(ids, unit, tmp_path) == {}      # exact search will do
    monkeypatch.setattr(ann, "EXACT_MAX", 500)
    assert ann.exact_max(64) == 500 and ann.exact_max(1280) == 100          # wider rows: fewer searched exactly
    assert ann.build_for_analysis(ids[:250], np.tile(unit[:250], (1, 8)), tmp_path) == {}   # 512 dims: 250 exact
    assert "ann_index" in ann.build_for_analysis(ids[:251], np.tile(unit[:251], (1, 8)), tmp_path / "wide")
    saved = ann.build_for_analysis(ids, unit, tmp_path)
    assert sorted(saved) == ["ann_ids", "ann_index"] and not list(tmp_path.glob(".*.part"))
    index, loaded_ids = ann.load(saved["ann_index"], saved["ann_ids"])
    assert index.ntotal == 1000 and loaded_ids.tolist() == ids.tolist()
    before, before_dist = ann.search(ann.build(unit), unit[:50], 10)
    after, after_dist = ann.search(index, unit[:50], 10)
    assert (before == after).all() and np.allclose(before_dist, after_dist)


def _space(settings, db, ids: list[int], vectors: np.ndarray, kind: str = "embed", model_job: int | None = None) -> int:
    """A succeeded job whose embedding files hold `vectors` for `ids`, written with the worker's writer."""
    with db.writing() as s:
        job = Job(kind=kind, config={"model_job": model_job} if model_job else {}, status="succeeded")
        s.add(job)
        s.flush()
        writer = files.Writer(settings.jobs_dir / f"job-{job.id}", ids, vectors.shape[1])
        writer.write(ids, vectors)
        info = writer.finish()
        job.artifacts = {"embeddings": info["embeddings"], "embedding_ids": info["embedding_ids"]}
        job.finished_at = utcnow()
        s.commit()
        return job.id


def _analysis(settings, db, space: int) -> int:
    """A succeeded analysis of `space` that saved its ANN index (as the analyse job does)."""
    with db.reading() as s:
        index = similar.load_index(s, settings, space)
    with db.writing() as s:
        job = Job(kind="analyse", config={"space": space}, status="succeeded")
        s.add(job)
        s.flush()
        folder = settings.jobs_dir / f"job-{job.id}"
        saved = {"ids": analyses.save(folder, "ids", index.ids),
                 **ann.build_for_analysis(index.ids, index.vectors, folder)}
        job.artifacts = {"space": space, "files": saved}
        s.commit()
        return job.id


def test_similar_images_through_the_saved_index_are_the_exact_ones(client, settings, db, monkeypatch):
    """Real uploaded images, a space over them, an analysis with an index: the API answers as exact search
    does (same images, same distances, nearest first, the image itself left out), images embedded after the
    analysis included; a broken index file falls back to exact search."""
    ids = upload_fmnist(client, 80)
    later = ids[60:]
    unit = clustered(80, dim=32, seed=3)
    space = _space(settings, db, ids[:60], unit[:60])
    monkeypatch.setattr(ann, "EXACT_MAX", 20)
    similar.clear_cache()

    def answer(image_id, k=10):
        r = client.get(f"/api/images/{image_id}/similar", params={"k": k})
        assert r.status_code == 200, r.text
        return [(it["image"], it["distance"]) for it in r.json()["items"]]

    exact_before = {i: answer(i) for i in ids[:60:7]}               # no analysis yet: exact
    analysis = _analysis(settings, db, space)
    with db.reading() as s:
        index = similar.load_index(s, settings, space)
        approx = similar.load_approx(s, settings, index)
    assert approx is not None and approx.analysis == analysis and len(approx.rest) == 0
    for image_id, expected in exact_before.items():
        got = answer(image_id)
        assert [i for i, _ in got] == [i for i, _ in expected] and image_id not in {i for i, _ in got}
        assert np.allclose([d for _, d in got], [d for _, d in expected], atol=1e-5)

    # A predict job embeds 20 images imported later: they come back from exact search beside the index.
    _space(settings, db, later, unit[60:], kind="predict", model_job=space)
    with db.reading() as s:
        index = similar.load_index(s, settings, space)
        approx = similar.load_approx(s, settings, index)
    assert sorted(index.ids[approx.rest].tolist()) == sorted(later)
    for image_id in (ids[0], later[0]):
        got = answer(image_id, k=30)
        row = int(np.searchsorted(index.ids, image_id))
        truth_rows, truth_dist = similar.nearest(index.vectors, index.vectors[row], 30, exclude=row)
        assert [i for i, _ in got] == index.ids[truth_rows].tolist()
        assert np.allclose([d for _, d in got], truth_dist, atol=1e-5)

    # The index file broken: searched exactly, no error.
    with db.reading() as s:
        path = analyses.latest(s, settings, space=space).path("ann_index")
    path.write_bytes(b"not an index")
    similar.clear_cache()
    with db.reading() as s:
        assert similar.load_approx(s, settings, similar.load_index(s, settings, space)) is None
    assert len(answer(ids[0], k=30)) == 30


@pytest.mark.parametrize("n", [0, 1, 2])
def test_the_graph_of_a_tiny_space(n):
    rows, dist = ann.graph(clustered(max(n, 1))[:n], 10)
    assert rows.shape == (n, max(0, n - 1)) and dist.shape == rows.shape


def test_a_build_reports_progress_and_stops_when_progress_raises(monkeypatch):
    unit = clustered(1000)
    monkeypatch.setattr(ann, "ADD_ROWS", 300)
    monkeypatch.setattr(ann, "GRAPH_EXACT_MAX", 10)
    seen = []
    rows, _ = ann.graph(unit, 5, progress=seen.append)
    assert seen[:4] == pytest.approx([0.24, 0.48, 0.72, 0.8]) and seen[-1] == 1.0 and len(rows) == 1000

    class Stop(Exception):
        pass

    def cancel(share):
        if share > 0.3:
            raise Stop()

    with pytest.raises(Stop):
        ann.build(unit, progress=cancel)
