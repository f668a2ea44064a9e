"""Contribution bounding in the local engine (before any noise)."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privagg.dp.bounds import Bounds
from privagg.engines import LocalEngine
from privagg.engines.base import ContributionChunks, Contributions
from privagg.errors import PrivaggInputError
from privagg.queries import KeySet

N_PARTITIONS = 30
DOMAIN = KeySet.from_values(k=np.arange(N_PARTITIONS))


PATHS = ("steps", "packed", "chunked")


def bounded_totals(ids, parts, bounds, *, distinct, rng=None, path="packed"):
    """Dense bounded counts through one of the engine's three ways to get them.

    ``steps``: per_user_partition -> bound_contributions -> aggregate (the
    general path, also used for sums); ``packed``: one sort of packed rows;
    ``chunked``: packed rows built from chunks on two threads, in two shards.
    """
    engine = LocalEngine(rng=rng, threads=2)
    ids = np.asarray(ids, dtype=np.int64)
    parts = np.asarray(parts, dtype=np.int64)
    contrib = Contributions(ids, parts, DOMAIN, True, distinct=distinct)
    if path == "steps":
        pairs = engine.bound_contributions(engine.per_user_partition(contrib), bounds)
        return engine.aggregate(pairs, N_PARTITIONS, dense=True).counts
    if path == "chunked":
        contrib = chunked(ids, parts, distinct=distinct)
    return engine.bounded_totals(contrib, bounds, dense=True).counts


def chunked(ids, parts, *, distinct, n_chunks=5, capacity=None):
    """``ids``/``parts`` as ContributionChunks of consecutive rows (a subscriber spans several)."""
    bounds = np.linspace(0, len(ids), n_chunks + 1).astype(int)

    def chunk(i):
        return Contributions(ids[bounds[i]:bounds[i + 1]], parts[bounds[i]:bounds[i + 1]], DOMAIN, True, distinct)

    lo, hi = (int(ids.min()), int(ids.max())) if len(ids) else (0, 0)
    return ContributionChunks(n_chunks, chunk, DOMAIN, True, distinct, len(ids) if capacity is None else capacity,
                              (lo, hi), ids.copy())


rows = st.lists(st.tuples(st.integers(0, 20), st.integers(0, N_PARTITIONS - 1)), max_size=200)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=rows,
    extra=st.lists(st.integers(0, N_PARTITIONS - 1), min_size=1, max_size=400),
    l0=st.integers(1, 10),
    linf=st.integers(1, 5),
    distinct=st.booleans(),
    path=st.sampled_from(PATHS),
)
def test_one_extreme_subscriber_changes_at_most_l0_partitions_by_at_most_linf(rows, extra, l0, linf, distinct, path):
    """Sensitivity: adding one subscriber (any activity) moves at most L0 keys, each by at most Linf
    (1 for distinct counts), so the l1 change is at most L0 * Linf."""
    bounds = Bounds(max_partitions=l0, max_per_partition=linf)
    ids = [u for u, _ in rows]
    parts = [p for _, p in rows]
    # The same secret (seeded generator) in both runs: bounding ranks each (subscriber, partition) by a
    # keyed hash, so the subscribers already there keep exactly the same partitions.
    seed = 12345
    before = bounded_totals(ids, parts, bounds, distinct=distinct, rng=np.random.default_rng(seed), path=path)
    new_user = 1000
    after = bounded_totals(ids + [new_user] * len(extra), parts + extra, bounds, distinct=distinct,
                           rng=np.random.default_rng(seed), path=path)
    diff = after - before
    cap = 1 if distinct else linf
    assert np.all(diff >= 0)
    assert np.count_nonzero(diff) <= l0
    assert diff.max() <= cap
    assert diff.sum() <= l0 * cap


@pytest.mark.parametrize("path", PATHS)
def test_bounding_is_exact_for_subscribers_within_the_bounds(path):
    ids = [1, 1, 2, 2, 2]
    parts = [0, 1, 0, 0, 5]
    counts = bounded_totals(ids, parts, Bounds(max_partitions=5, max_per_partition=3), distinct=False, path=path)
    assert counts[[0, 1, 5]].tolist() == [3, 1, 1]
    assert counts.sum() == 5
    counts = bounded_totals(ids, parts, Bounds(max_partitions=5, max_per_partition=1), distinct=False, path=path)
    assert counts[[0, 1, 5]].tolist() == [2, 1, 1]
    counts = bounded_totals(ids, parts, Bounds(max_partitions=5), distinct=True, path=path)
    assert counts[[0, 1, 5]].tolist() == [2, 1, 1]
    assert counts.sum() == 4


@pytest.mark.statistical
@pytest.mark.parametrize("path", PATHS)
def test_l0_keeps_a_uniformly_random_subset_not_the_first(path):
    """A subscriber in 10 partitions with L0 = 3 keeps each with probability 3/10.

    Over R = 3000 independent boundings, each partition's keep count is
    Binomial(3000, 0.3); |count - 900| > 5.3 * sd (sd = 25.1) has probability
    < 1e-7 per partition, so the test fails falsely with probability < 1e-6.
    Keeping the first three partitions (the bug this guards against) puts 3000
    on partitions 0-2 and fails it.
    """
    r = 3000
    ids = np.repeat(np.arange(r), 10)
    parts = np.tile(np.arange(10), r)
    counts = bounded_totals(ids, parts, Bounds(max_partitions=3), distinct=True, path=path)[:10]
    sd = math.sqrt(r * 0.3 * 0.7)
    assert counts.sum() == 3 * r
    assert np.all(np.abs(counts - 0.3 * r) < 5.3 * sd), counts
    first_three = np.array([r] * 3 + [0] * 7)
    assert not np.all(np.abs(first_three - 0.3 * r) < 5.3 * sd)


@pytest.mark.parametrize("path", PATHS)
def test_bounding_randomness_is_fresh_per_call(path):
    ids = np.zeros(N_PARTITIONS, dtype=np.int64)
    parts = np.arange(N_PARTITIONS)
    kept = {tuple(np.flatnonzero(bounded_totals(ids, parts, Bounds(max_partitions=5), distinct=True, path=path)))
            for _ in range(5)}
    assert len(kept) > 1  # C(30, 5) subsets: repeats are vanishingly unlikely


def test_sums_are_scaled_down_with_linf_keeping_the_mean():
    engine = LocalEngine()
    contrib = Contributions(np.array([7, 7, 7, 7]), np.array([2, 2, 2, 2]), DOMAIN, True, distinct=False,
                            values=np.array([10.0, 20.0, 30.0, 40.0]))
    pairs = engine.bound_contributions(engine.per_user_partition(contrib), Bounds(max_partitions=1, max_per_partition=2))
    assert pairs.counts.tolist() == [2]
    assert pairs.sums.tolist() == [50.0]  # mean 25 kept, count capped at 2


@pytest.mark.parametrize("kwargs,message", [
    ({"max_partitions": 0}, r"bounds.max_partitions=0 is below 1. Fix: pass a whole number >= 1"),
    ({"max_per_partition": -2}, r"bounds.max_per_partition=-2 is below 1"),
    ({"max_partitions": 2.5}, r"bounds.max_partitions=2.5 is not an integer"),
    ({"lower": 5, "upper": 1}, r"bounds.lower=5 is not below bounds.upper=1. Fix: pass lower < upper."),
    ({"upper": math.inf}, r"bounds.upper=inf is not a finite number"),
])
def test_bad_bounds_are_refused_with_a_fix(kwargs, message):
    with pytest.raises(PrivaggInputError, match=message):
        Bounds(**kwargs)


def test_sensitivities():
    b = Bounds(max_partitions=24, max_per_partition=3)
    assert b.l1_sensitivity == 72
    assert b.l2_sensitivity == pytest.approx(math.sqrt(24) * 3)


def test_chunked_l0_bounding_matches_one_pass(monkeypatch):
    """Large inputs are ranked in blocks of whole subscribers; with the same secret the kept rows are identical."""
    from privagg.engines import local

    rng = np.random.default_rng(3)
    ids = np.sort(rng.integers(0, 300, 5000))
    parts = rng.integers(0, N_PARTITIONS, 5000)
    bounds = Bounds(max_partitions=4)
    one = bounded_totals(ids, parts, bounds, distinct=True, rng=np.random.default_rng(9))
    monkeypatch.setattr(local, "CHUNK_ROWS", 50)
    chunked = bounded_totals(ids, parts, bounds, distinct=True, rng=np.random.default_rng(9))
    assert np.array_equal(one, chunked)
    assert one.sum() <= 300 * 4


def test_a_pairs_rank_depends_only_on_that_pair_and_the_secret():
    """The L0 choice of one subscriber must not move when other subscribers' data change."""
    from privagg.engines.local import keyed_hash

    secret = 0x1234_5678_9ABC_DEF0
    alone = keyed_hash(np.array([1, 1]), np.array([0, 1]), secret)
    with_others = keyed_hash(np.array([1, 1, 1000, 7]), np.array([0, 1, 2, 1 << 40]), secret)
    assert alone.tolist() == with_others[:2].tolist()


@pytest.mark.parametrize("distinct", [True, False])
def test_the_three_paths_keep_the_same_partitions_for_the_same_secret(distinct):
    """Steps, packed and chunked bounding rank pairs by the same keyed hash, so under one secret they
    agree exactly: every path compares the full 64-bit ranks."""
    rng = np.random.default_rng(11)
    ids = rng.integers(5_000, 5_400, 20_000)
    parts = rng.integers(0, N_PARTITIONS, 20_000)
    bounds = Bounds(max_partitions=4, max_per_partition=3)
    results = [bounded_totals(ids, parts, bounds, distinct=distinct, rng=np.random.default_rng(4), path=p)
               for p in PATHS]
    assert results[0].sum() < len(ids)  # bounding bit
    for other in results[1:]:
        assert np.array_equal(results[0], other)


def test_a_subscribers_kept_partitions_do_not_move_with_other_subscribers_ids():
    """Packed rows store ids as offsets from the smallest id; the rank must hash the id itself, so a
    newcomer with a smaller id (which shifts every offset) changes no one else's kept partitions."""
    ids = np.repeat([100, 101], N_PARTITIONS)
    parts = np.tile(np.arange(N_PARTITIONS), 2)
    bounds = Bounds(max_partitions=3)
    before = bounded_totals(ids, parts, bounds, distinct=True, rng=np.random.default_rng(8))
    after = bounded_totals(np.append(ids, 7), np.append(parts, 0), bounds, distinct=True,
                           rng=np.random.default_rng(8))
    diff = after - before
    assert diff.sum() == 1 and diff[0] == 1


def test_chunked_rows_beyond_a_shards_capacity_are_kept():
    """A shard's buffer is sized from the table; rows past it (stays spread over many time bins)
    go to an overflow list, not astray."""
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 50, 4_000)
    parts = rng.integers(0, N_PARTITIONS, 4_000)
    engine = LocalEngine(rng=np.random.default_rng(1), threads=2)
    full = engine.bounded_totals(chunked(ids, parts, distinct=False), Bounds(max_partitions=N_PARTITIONS,
                                 max_per_partition=1000), dense=True).counts
    small = LocalEngine(rng=np.random.default_rng(1), threads=2).bounded_totals(
        chunked(ids, parts, distinct=False, capacity=100), Bounds(max_partitions=N_PARTITIONS,
                                                                  max_per_partition=1000), dense=True).counts
    assert full.sum() == len(ids)
    assert np.array_equal(full, small)
    assert np.array_equal(full, np.bincount(parts, minlength=N_PARTITIONS))


def test_ids_too_wide_to_pack_fall_back_to_the_general_path():
    from privagg.engines.packed import PackedLayout

    ids = np.array([0, 1 << 60, 1 << 60], dtype=np.int64)
    assert PackedLayout.fit(int(ids.min()), int(ids.max()), N_PARTITIONS) is None
    counts = bounded_totals(ids, [1, 2, 3], Bounds(max_partitions=1), distinct=True,
                            rng=np.random.default_rng(0))
    assert counts[1] == 1 and counts[2] + counts[3] == 1


def test_packing_refuses_ids_outside_the_declared_range():
    from privagg.engines.packed import PackedLayout

    layout = PackedLayout.fit(100, 200, N_PARTITIONS)
    with pytest.raises(ValueError, match="outside the id range"):
        layout.pack(np.array([99]), np.array([0]), 1)
    with pytest.raises(ValueError, match="outside the id range"):
        layout.pack(np.array([100 + (1 << layout.id_bits)]), np.array([0]), 1)
    assert len(layout.pack(np.array([100, 200]), np.array([0, 1]), 1)) == 2
