"""The analyse job's parts over plain arrays: kNN (exact and through the ANN index), outlier scores and the
flag cut, neighbour share, the diverse order."""

from __future__ import annotations

import numpy as np
import pytest

from app.embeddings import diversity, knn, neighbours, outliers


def clusters(n_per: int = 50, k: int = 5, dim: int = 16, spread: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim))
    label = np.repeat(np.arange(k), n_per)
    rows = centres[label] + spread * rng.normal(size=(k * n_per, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32), label


def brute(unit, k, candidates=None):
    d = 1.0 - unit @ unit.T
    np.fill_diagonal(d, np.inf)
    if candidates is not None:
        mask = np.ones(len(unit), dtype=bool)
        mask[candidates] = False
        d[:, mask] = np.inf
    return np.argsort(d, axis=1, kind="stable")[:, :k], np.sort(d, axis=1)[:, :k]


def test_exact_knn_is_the_brute_force_answer_in_small_blocks(monkeypatch):
    unit, _ = clusters()
    monkeypatch.setattr(knn, "BLOCK_BYTES", 4 * 250 * 16)  # 16 rows a block: many blocks
    rows, dist = knn.exact(unit, 7)
    want_rows, want_dist = brute(unit, 7)
    assert rows.dtype == np.int32 and dist.dtype == np.float16
    assert (rows == want_rows).mean() > 0.99  # float16 ties aside
    assert np.allclose(dist.astype(np.float32), want_dist, atol=2e-3)
    assert (rows != np.arange(len(unit))[:, None]).all()


def test_exact_knn_among_candidates_pads_what_is_missing():
    unit, _ = clusters()
    candidates = np.arange(0, 250, 25)  # 10 rows
    rows, dist = knn.exact(unit, 12, candidates=candidates)
    assert rows.shape == (250, 10)  # k cut to what there is
    assert np.isin(rows[rows >= 0], candidates).all()
    assert (rows[candidates] == -1).sum(axis=1).tolist() == [1] * 10  # a candidate never finds itself
    assert np.isinf(dist[candidates, -1].astype(np.float32)).all()
    want_rows, _ = brute(unit, 9, candidates)
    assert (rows[candidates, :9] == want_rows[candidates]).all()


def test_to_reference_through_the_ann_index_matches_exact(monkeypatch):
    pytest.importorskip("faiss")
    unit, _ = clusters(n_per=200, k=5, dim=32, spread=0.3)
    reference = np.arange(0, 1000, 2)
    exact_rows, exact_dist = knn.to_reference(unit, reference, 10)
    monkeypatch.setattr(knn, "EXACT_MAX", 100)  # above it: HNSW over the reference rows
    rows, dist = knn.to_reference(unit, reference, 10)
    assert rows.shape == (1000, 10) and (rows != np.arange(1000)[:, None]).all()
    assert np.isin(rows, reference).all()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows.tolist(), exact_rows.tolist())])
    assert recall >= 0.95
    assert np.allclose(np.sort(dist.astype(np.float32), axis=1)[:, 0], exact_dist[:, 0].astype(np.float32),
                       atol=5e-3)


def test_outlier_z_is_per_class_with_the_global_scale_as_floor():
    rng = np.random.default_rng(0)
    tight = 0.05 + 0.001 * rng.normal(size=100)  # a crowded class
    loose = 0.30 + 0.050 * rng.normal(size=100)  # a spread one
    d = np.concatenate([tight, loose, [0.6, 0.6]]).astype(np.float32)
    groups = np.array([0] * 100 + [1] * 100 + [1, -1])
    z, usual = outliers.robust_z(d, groups)
    assert usual[0] == pytest.approx(np.median(tight), rel=1e-3) and usual[150] == pytest.approx(np.median(loose), rel=1e-3)
    assert np.abs(z[:100]).max() < 1  # tight: its tiny MAD does not blow its members up (the floor)
    assert z[200] > 3 and z[201] > z[200] - 5
    reference = np.ones(len(d), dtype=bool)
    reference[200] = False
    z2, usual2 = outliers.robust_z(d, groups, reference)
    assert usual2[200] == pytest.approx(np.median(loose), rel=1e-5) and z2[200] > 3  # excluded: shapes nothing
    small = outliers.robust_z(d[:5], np.zeros(5, dtype=int))[0]
    assert np.isfinite(small).all()  # a group under MIN_GROUP: against every image


def test_kth_distance_and_the_flag_cut():
    dist = np.array([[0.1, 0.2, np.inf], [0.3, 0.4, 0.5], [np.inf, np.inf, np.inf]], dtype=np.float16)
    got = outliers.kth_distance(dist)
    assert got[:2].tolist() == pytest.approx([0.2, 0.5], abs=1e-3) and np.isnan(got[2])
    z = np.array([5.0, 9.0, 1.0, 3.6, np.nan, 4.0] + [0.0] * 94, dtype=np.float32)
    eligible = np.ones(100, dtype=bool)
    eligible[1] = False  # excluded
    assert outliers.to_flag(z, eligible).tolist() == [0, 5]  # cap: 2 % of 100; strongest first
    assert outliers.to_flag(z[:6], np.ones(6, dtype=bool)).tolist() == [1]  # at least one


def test_share_and_diverse_order_on_arrays():
    labels = np.array([0, 0, 1, -1, 1])
    nb = np.array([[1, 2], [0, 4], [4, -1], [0, 1], [-1, -1]])
    got = neighbours.share(labels, nb)
    assert got[:3].tolist() == [0.5, 0.5, 1.0] and np.isnan(got[3]) and np.isnan(got[4])
    with pytest.raises(ValueError):
        neighbours.share(labels, nb[:3])
    unit, cluster = clusters()  # imported cluster by cluster
    ids = np.arange(250) + 1000
    seeds = np.flatnonzero(cluster == 0)[:10]  # cluster 0 is labelled already
    candidates = np.setdiff1d(np.arange(250), seeds)
    order = diversity.diverse_ids(ids, unit, candidates, seeds)
    assert sorted(order.tolist()) == sorted(ids[candidates].tolist())
    assert {int(cluster[i - 1000]) for i in order[:4]} == {1, 2, 3, 4}  # away from what is labelled
    capped = diversity.diverse_ids(ids, unit, candidates, seeds, rank_max=20)
    assert sorted(capped.tolist()) == sorted(ids[candidates].tolist())
    assert (np.diff(capped[20:]) > 0).all()  # the unranked follow in import order
    margins = np.where(cluster[candidates] == 3, 0.0, 1.0)  # the model is unsure of cluster 3 only
    first = diversity.diverse_ids(ids, unit, candidates, seeds, margins, mix=1.0)[0]
    assert cluster[first - 1000] == 3
    assert diversity.diverse_ids(ids, unit, np.zeros(0, dtype=int), seeds).tolist() == []


def test_out_of_sample_neighbours_stay_within_their_fold():
    unit, cluster = clusters(n_per=40, k=3)
    ids = np.arange(120) * 3 + 7
    folds = np.arange(120) % 2
    labels = cluster.copy()
    labels[5] = -1  # unlabelled (or excluded): no share, never a neighbour
    share, found = neighbours.out_of_sample(ids, unit, labels, folds)
    assert np.isnan(share[5]) and np.isfinite(np.delete(share, 5)).all()
    assert ids[5] not in found
    row_of = {int(i): r for r, i in enumerate(ids)}
    for r in range(120):
        assert all(folds[row_of[int(i)]] == folds[r] for i in found[r] if i >= 0)
    assert np.nanmean(share) > 0.9  # tight clusters: neighbours share the label


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_a_space_of_a_few_images_is_analysed_without_error(n):
    unit = np.eye(4, dtype=np.float32)[:n]
    rows, dist, method = knn.graph(unit, knn.K)
    assert method == "exact" and rows.shape[0] == n and (rows < n).all()
    z, _ = outliers.robust_z(outliers.kth_distance(dist), np.full(n, -1))
    assert len(z) == n and len(outliers.to_flag(z, np.ones(n, dtype=bool))) <= 1
    share, found = neighbours.out_of_sample(np.arange(n), unit, np.zeros(n, dtype=int), None)
    assert found.shape == (n, knn.K) and (n < 2 or np.isfinite(share).all())
    assert sorted(diversity.diverse_ids(np.arange(n), unit, np.arange(n), np.zeros(0, dtype=int))) == list(range(n))


def test_the_graph_through_hnsw_matches_exact(monkeypatch):
    pytest.importorskip("faiss")
    unit, _ = clusters(n_per=200, k=5, dim=32, spread=0.3)
    exact_rows, _, method = knn.graph(unit, 10)
    assert method == "exact"
    monkeypatch.setattr(knn, "EXACT_MAX", 100)
    rows, dist, method = knn.graph(unit, 10)
    assert method == "hnsw" and rows.shape == (1000, 10) and (rows != np.arange(1000)[:, None]).all()
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows.tolist(), exact_rows.tolist())])
    assert recall >= 0.95 and (np.diff(dist.astype(np.float32), axis=1) >= -1e-3).all()


def test_an_analysis_finishing_after_a_newer_one_leaves_the_flags_alone(db):
    from app.db.models import Flag, Image, Job
    from app.embeddings import analyse

    with db.writing() as s:
        older = Job(kind="analyse", config={"space": 1}, status="succeeded", notes=[], artifacts={})
        newer = Job(kind="analyse", config={"space": 1}, status="succeeded", notes=[], artifacts={})
        s.add_all([older, newer])
        s.commit()
        older_id, newer_id = older.id, newer.id
        open_flags = s.query(Flag).filter(Flag.kind == "outlier", Flag.status == "open").count()
        assert s.query(Image).count() == 0
    got = analyse.after_analysis(db, older_id)
    assert got == {"analysis": older_id, "skipped": f"analysis #{newer_id} is newer"}
    with db.reading() as s:
        assert s.get(Job, older_id).metrics["outlier_flags"] == {"skipped": f"analysis #{newer_id} is newer"}
        assert s.query(Flag).filter(Flag.kind == "outlier", Flag.status == "open").count() == open_flags


def test_among_gives_exacts_answer_for_each_pool_in_one_pass_whatever_the_block(monkeypatch):
    rng = np.random.default_rng(3)
    unit = rng.normal(size=(3000, 16)).astype(np.float32)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    queries = np.array([0, 5, 1500, 2999])
    pool = np.ones(3000, dtype=bool)
    pool[::3] = False
    for block in (knn.BLOCK_BYTES, 4 * 4 * 1024):  # one block; blocks of 1,024 rows (the running best merged)
        monkeypatch.setattr(knn, "BLOCK_BYTES", block)
        (rows, dist), (in_pool, in_pool_d) = knn.among(unit, queries, 10, [np.ones(3000, dtype=bool), pool])
        exact_rows, exact_dist = knn.exact(unit, 10, queries=queries)
        assert np.array_equal(rows, exact_rows) and not (rows == queries[:, None]).any()
        assert np.allclose(dist.astype(np.float32), exact_dist.astype(np.float32), atol=1e-3)
        assert np.array_equal(in_pool, knn.exact(unit, 10, candidates=np.flatnonzero(pool), queries=queries)[0])
        assert pool[in_pool].all()
