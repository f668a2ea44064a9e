"""Tree-based continual release: its noise, its ledger charge, its range totals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from privagg.dp.budget import Budget
from privagg.errors import BudgetExceededError, PrivaggInputError
from privagg.releases.continual import TreeCounter, bounded_daily_footfall, tree_levels


def _run(counter: TreeCounter, daily: np.ndarray) -> None:
    for row in daily:
        counter.add_day(row)


def _exact_node(daily: np.ndarray, h: int, j: int) -> np.ndarray:
    return daily[j << h:(j + 1) << h].sum(axis=0)


def _noise_variance_matches(counter: TreeCounter, daily: np.ndarray, claimed: float) -> bool:
    """Whether the published nodes' empirical noise variance is within 6 standard errors of ``claimed``."""
    noise = np.concatenate([counter.nodes[n] - _exact_node(daily, *n) for n in counter.nodes]).astype(float)
    ratio = noise.var() / claimed
    return abs(ratio - 1) < 6 * math.sqrt(2 / len(noise)) + 1e-3


def test_tree_noise_has_the_calibrated_variance():
    """Every node's noise is the discrete Gaussian of its level's rho at l2 sensitivity sqrt(L0).

    30,000 noise draws (2,000 keys x 15 nodes); the sample variance of a discrete Gaussian has relative
    standard error sqrt(2 / n) = 0.8%, and the check allows 6 of them: false-failure probability < 1e-8.
    """
    rng = np.random.default_rng(0)
    daily = rng.integers(0, 50, size=(8, 2000))
    counter = TreeCounter(n_keys=2000, loss=0.02, budget=Budget(rho=1.0), max_partitions=4, horizon=8)
    _run(counter, daily)
    assert len(counter.nodes) == 15
    assert counter.noise.sensitivity == pytest.approx(2.0)  # sqrt(L0)
    assert counter.noise.privacy_map() <= counter.node_loss + 1e-15
    assert counter.noise.scale == pytest.approx(2.0 / math.sqrt(2 * 0.02 / 4), rel=1e-9)
    assert _noise_variance_matches(counter, daily, counter.noise.variance())


def test_noise_check_fails_at_half_the_noise():
    """Companion: a tree with half the noise sigma (4x the rho per level) fails the same check
    (its variance is a quarter of the claim; the check's tolerance is 5%)."""
    rng = np.random.default_rng(1)
    daily = rng.integers(0, 50, size=(8, 2000))
    honest = TreeCounter(n_keys=2000, loss=0.02, budget=Budget(rho=1.0), max_partitions=4, horizon=8)
    weak = TreeCounter(n_keys=2000, loss=0.08, budget=Budget(rho=1.0), max_partitions=4, horizon=8)
    _run(weak, daily)
    assert weak.noise.scale == pytest.approx(honest.noise.scale / 2, rel=1e-6)
    assert not _noise_variance_matches(weak, daily, honest.noise.variance())


def test_ledger_charge_equals_the_tree_cost():
    budget = Budget(rho=1.0)
    counter = TreeCounter(n_keys=3, loss=0.5, budget=budget, horizon=28)
    assert tree_levels(28) == 5 and counter.levels_charged == 5
    assert budget.spent["rho"] == pytest.approx(0.5)  # charged at construction, before any noise
    assert counter.cost.rho == pytest.approx(5 * counter.node_loss)
    _run(counter, np.ones((28, 3), dtype=np.int64))
    assert budget.spent["rho"] == pytest.approx(0.5)
    # past the horizon, day 32 completes a 32-day block: one more node level, charged before its noise
    _run(counter, np.ones((4, 3), dtype=np.int64))
    assert counter.levels_charged == 6 and (5, 0) in counter.nodes
    assert budget.spent["rho"] == pytest.approx(0.6)
    assert len(budget.entries) == 2


def test_refused_charge_draws_nothing():
    budget = Budget(epsilon=1.0)
    with pytest.raises(BudgetExceededError):
        TreeCounter(n_keys=3, loss=2.0, budget=budget, mechanism="laplace", horizon=8)
    assert budget.spent["epsilon"] == 0.0
    counter = TreeCounter(n_keys=1, loss=1.0, budget=budget, mechanism="laplace", horizon=2)
    _run(counter, np.ones((3, 1), dtype=np.int64))
    with pytest.raises(BudgetExceededError):  # day 4 would need a third level
        counter.add_day(np.ones(1, dtype=np.int64))
    assert (2, 0) not in counter.nodes and (0, 3) not in counter.nodes


def test_range_totals_use_log_many_nodes_and_are_exact_without_noise():
    rng = np.random.default_rng(2)
    daily = rng.integers(0, 100, size=(28, 4))
    counter = TreeCounter(n_keys=4, loss=90.0, budget=Budget(rho=100.0), horizon=28)  # sigma ~ 0.17: noise 0
    _run(counter, daily)
    for start, stop in [(0, 7), (7, 14), (3, 27), (0, 28), (13, 14)]:
        assert len(counter.dyadic_nodes(start, stop)) <= 2 * tree_levels(28)
        np.testing.assert_allclose(counter.range_total(start, stop), daily[start:stop].sum(axis=0))
        est, var = counter.consistent_range_total(start, stop)
        np.testing.assert_allclose(est, daily[start:stop].sum(axis=0), atol=1e-6)
        assert var <= counter.range_variance(start, stop) + 1e-12
    with pytest.raises(PrivaggInputError, match="Fix:"):
        counter.range_total(0, 29)


def test_daily_bounding_keeps_each_subscriber_in_at_most_l0_keys():
    events = pd.DataFrame({"user_id": [1, 1, 1, 2, 2, 3], "cell_id": [10, 11, 12, 10, 10, 12],
                           "ts": pd.to_datetime(["2026-01-05 08:00"] * 5 + ["2026-01-06 08:00"])})
    key_of_cell = pd.Series([0, 1, 2], index=[10, 11, 12])
    full = bounded_daily_footfall(events, key_of_cell, np.array([0, 1, 2]), "2026-01-05", max_partitions=2)
    assert full.sum() == 3  # user 1 kept in 2 keys, user 2 in 1; user 3 is another day
    without_1 = bounded_daily_footfall(events[events.user_id != 1], key_of_cell, np.array([0, 1, 2]),
                                       "2026-01-05", max_partitions=2)
    assert np.abs(full - without_1).sum() <= 2
