"""Contribution bounding in the local engine (before any noise)."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privagg.dp.bounds import Bounds
from privagg.engines import LocalEngine
from privagg.engines.base import Contributions
from privagg.errors import PrivaggInputError
from privagg.queries import KeySet

N_PARTITIONS = 30
DOMAIN = KeySet.from_values(k=np.arange(N_PARTITIONS))


def bounded_totals(ids, parts, bounds, *, distinct, rng=None):
    engine = LocalEngine(rng=rng)
    contrib = Contributions(np.asarray(ids, dtype=np.int64), np.asarray(parts, dtype=np.int64), DOMAIN, True,
                            distinct=distinct)
    pairs = engine.bound_contributions(engine.per_user_partition(contrib), bounds)
    return engine.aggregate(pairs, N_PARTITIONS, dense=True).counts


rows = st.lists(st.tuples(st.integers(0, 20), st.integers(0, N_PARTITIONS - 1)), max_size=200)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=rows,
    extra=st.lists(st.integers(0, N_PARTITIONS - 1), min_size=1, max_size=400),
    l0=st.integers(1, 10),
    linf=st.integers(1, 5),
    distinct=st.booleans(),
)
def test_one_extreme_subscriber_changes_at_most_l0_partitions_by_at_most_linf(rows, extra, l0, linf, distinct):
    """Sensitivity: adding one subscriber (any activity) moves at most L0 keys, each by at most Linf
    (1 for distinct counts), so the l1 change is at most L0 * Linf."""
    bounds = Bounds(max_partitions=l0, max_per_partition=linf)
    ids = [u for u, _ in rows]
    parts = [p for _, p in rows]
    # The same secret (seeded generator) in both runs: bounding ranks each (subscriber, partition) by a
    # keyed hash, so the subscribers already there keep exactly the same partitions.
    seed = 12345
    before = bounded_totals(ids, parts, bounds, distinct=distinct, rng=np.random.default_rng(seed))
    new_user = 1000
    after = bounded_totals(ids + [new_user] * len(extra), parts + extra, bounds, distinct=distinct,
                           rng=np.random.default_rng(seed))
    diff = after - before
    cap = 1 if distinct else linf
    assert np.all(diff >= 0)
    assert np.count_nonzero(diff) <= l0
    assert diff.max() <= cap
    assert diff.sum() <= l0 * cap


def test_bounding_is_exact_for_subscribers_within_the_bounds():
    ids = [1, 1, 2, 2, 2]
    parts = [0, 1, 0, 0, 5]
    counts = bounded_totals(ids, parts, Bounds(max_partitions=5, max_per_partition=3), distinct=False)
    assert counts[[0, 1, 5]].tolist() == [3, 1, 1]
    counts = bounded_totals(ids, parts, Bounds(max_partitions=5, max_per_partition=1), distinct=False)
    assert counts[[0, 1, 5]].tolist() == [2, 1, 1]
    counts = bounded_totals(ids, parts, Bounds(max_partitions=5), distinct=True)
    assert counts[[0, 1, 5]].tolist() == [2, 1, 1]


@pytest.mark.statistical
def test_l0_keeps_a_uniformly_random_subset_not_the_first():
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
    counts = bounded_totals(ids, parts, Bounds(max_partitions=3), distinct=True)[:10]
    sd = math.sqrt(r * 0.3 * 0.7)
    assert counts.sum() == 3 * r
    assert np.all(np.abs(counts - 0.3 * r) < 5.3 * sd), counts
    first_three = np.array([r] * 3 + [0] * 7)
    assert not np.all(np.abs(first_three - 0.3 * r) < 5.3 * sd)


def test_bounding_randomness_is_fresh_per_call():
    ids = np.zeros(50, dtype=np.int64)
    parts = np.arange(50)
    kept = {tuple(np.flatnonzero(bounded_totals(ids, parts, Bounds(max_partitions=5), distinct=True)))
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
