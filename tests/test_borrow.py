"""Shrinkage over time: more accurate than the released values, with intervals that cover at their level."""

from __future__ import annotations

import numpy as np
import pytest

from privagg.dp.mechanisms import gaussian
from privagg.errors import PrivaggInputError
from privagg.postprocess.borrow import shrink_over_time


def _world(seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """1,000 keys x 7 days: a level per key, a weekly profile, 10% day-to-day departures (seeded numpy: this
    is the synthetic truth); the release's noise comes from OpenDP's discrete Gaussian."""
    rng = np.random.default_rng(seed)
    level = rng.lognormal(4.5, 1.0, size=(1000, 1))
    profile = np.array([1.0, 1.0, 1.05, 1.0, 1.1, 0.8, 0.7])
    truth = np.round(level * profile * rng.lognormal(0, 0.1, size=(1000, 7)))
    mech = gaussian(0.01, 1.0)  # sigma ~ 7
    released = mech.sample(truth.ravel().astype(np.int64)).reshape(truth.shape).astype(float)
    return truth, released, mech.variance()


def _covers(truth: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    return float(((low <= truth) & (truth <= high)).mean())


def test_shrinkage_is_more_accurate_and_its_intervals_cover():
    """7,000 key-days; the coverage of a 95% interval is a mean of 7,000 nearly independent indicators
    (sd 0.26%, with the moment estimates' own error well below 1%): the check allows [0.92, 0.98],
    false-failure probability below 1e-6."""
    truth, released, s = _world()
    est = shrink_over_time(released, s)
    assert np.abs(est.value - truth).sum() < 0.9 * np.abs(released - truth).sum()
    assert 0.92 <= _covers(truth, est.low, est.high) <= 0.98
    assert ((0 <= est.weight) & (est.weight <= 1)).all()


def test_coverage_check_fails_when_the_noise_is_understated():
    """Companion: intervals computed as if the noise had a quarter of its variance (half its sigma)
    fail the same coverage check."""
    truth, released, s = _world(1)
    est = shrink_over_time(released, s / 4)
    assert not 0.92 <= _covers(truth, est.low, est.high) <= 0.98


def test_reads_only_the_released_matrix():
    truth, released, s = _world(2)
    a = shrink_over_time(released.copy(), s)
    b = shrink_over_time(released.copy(), s)
    np.testing.assert_array_equal(a.value, b.value)
    with pytest.raises(PrivaggInputError, match="Fix:"):
        shrink_over_time(released[:, :1], s)


def test_od_shrinkage_toward_a_gravity_model_lowers_the_error():
    """40 x 40 flows from a gravity model with 20% departures (seeded synthetic truth), OpenDP noise of sd ~ 7:
    the shrunk flows' absolute error is below 80% of the released flows' (it is about 50-57%; a failure
    would need the moment estimates to be off by far more than their sampling error on 1,600 flows)."""
    from privagg.postprocess.borrow import shrink_od

    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 10, size=(40, 2))
    dist = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    mass = rng.lognormal(3, 0.7, size=40)
    truth = np.round(np.outer(mass, mass) / 20 * np.exp(-dist / 3) * rng.lognormal(0, 0.2, size=(40, 40)))
    mech = gaussian(0.01, 1.0)
    released = mech.sample(truth.ravel().astype(np.int64)).reshape(truth.shape).astype(float)
    est = shrink_od(released, mech.variance(), distance=dist)
    assert np.abs(np.maximum(est.value, 0) - truth).sum() < 0.8 * np.abs(np.maximum(released, 0) - truth).sum()
    with pytest.raises(PrivaggInputError, match="distance"):
        shrink_od(released, mech.variance(), distance=dist[:3])


def test_shrinkage_toward_the_parent_lowers_the_error_of_small_areas():
    """200 small areas in 20 parents x 7 days, each area a stable share of its parent (seeded synthetic truth),
    OpenDP noise of sd ~ 7 against values of ~ 15: the shrunk error is below 80% of the released values'
    (it is about 60%; a failure would need the misfit estimates to be off by far more than their sampling
    error on 1,400 values)."""
    from privagg.postprocess.borrow import shrink_toward_parent

    rng = np.random.default_rng(5)
    parent = np.repeat(np.arange(20), 10)
    zone_days = rng.lognormal(5, 0.3, size=(20, 7))
    share = rng.dirichlet(np.ones(10), size=20).ravel()
    truth = np.round(zone_days[parent] * share[:, None] * rng.lognormal(0, 0.1, size=(200, 7)))
    mech = gaussian(0.01, 1.0)
    released = mech.sample(truth.ravel().astype(np.int64)).reshape(truth.shape).astype(float)
    est = shrink_toward_parent(released, mech.variance(), parent)
    assert np.abs(np.maximum(est.value, 0) - truth).sum() < 0.8 * np.abs(np.maximum(released, 0) - truth).sum()
    with pytest.raises(PrivaggInputError, match="Fix:"):
        shrink_toward_parent(released, mech.variance(), parent[:5])
