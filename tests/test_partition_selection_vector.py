"""Private partition selection through OpenDP's vector sampler has the threshold mechanism's distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from privagg.dp.partition_selection import ThresholdMechanism, calibrate

N = 20_000
Z = 5.3  # two-sided normal quantile: P(|N(0,1)| > 5.3) ~ 1.2e-7


def _accepts(kept: int, n: int, p: float) -> bool:
    """Binomial(n, p) count within Z standard deviations of its mean."""
    return abs(kept - n * p) <= Z * math.sqrt(n * p * (1 - p))


def _p_at_least(scale: float, k: int) -> float:
    """P(Z >= k) of the discrete Laplace at ``scale``, for k >= 1."""
    a = math.exp(-1 / scale)
    return a**k / (1 + a)


@pytest.fixture(scope="module")
def mech() -> ThresholdMechanism:
    return calibrate("laplace", 1.0, 1e-6, 1, 1)


@pytest.mark.parametrize("path", ["release", "release_map"])
def test_release_rate_matches_the_threshold_mechanism(mech, path):
    """Candidates one below the threshold are kept with probability P(Z >= 1), by the vector path and by
    OpenDP's map measurement alike; kept values are >= threshold and keys come back sorted.
    False-failure probability about 1.2e-7 per path (normal approximation of a binomial at 5.3 sd)."""
    codes = np.arange(N, dtype=np.int64)[::-1].copy()
    counts = np.full(N, mech.threshold - 1, dtype=np.int64)
    out_codes, out_counts = getattr(mech, path)(codes, counts, threads=2)
    assert np.all(np.diff(out_codes) > 0)
    assert np.all(out_counts >= mech.threshold)
    assert _accepts(len(out_codes), N, _p_at_least(mech.scale, 1))


def test_the_rate_check_rejects_half_the_noise(mech):
    """The check above fails on a wrong distribution: half the noise scale keeps far fewer candidates.
    False-failure probability below 1e-12 (the rates 0.27 and 0.12 are ~60 sd apart at N = 20,000)."""
    weak = ThresholdMechanism(mech.kind, mech.scale / 2, mech.threshold, 1, 1, mech.loss, mech.delta)
    codes = np.arange(N, dtype=np.int64)
    counts = np.full(N, mech.threshold - 1, dtype=np.int64)
    out_codes, _ = weak.release(codes, counts, threads=2)
    assert not _accepts(len(out_codes), N, _p_at_least(mech.scale, 1))
    assert _accepts(len(out_codes), N, _p_at_least(weak.scale, 1))


def test_gaussian_threshold_releases_through_the_vector_path():
    """The zCDP variant: high counts always pass, the threshold is applied to the noisy value.
    False-failure probability below 1e-6 (the count of 1 passing is what delta bounds)."""
    mech = calibrate("gaussian", 0.5, 1e-6, 2, 1)
    codes = np.array([3, 7, 9], dtype=np.int64)
    counts = np.array([mech.threshold * 10 + 100, 1, mech.threshold * 10 + 100], dtype=np.int64)
    out_codes, out_counts = mech.release(codes, counts)
    assert out_codes.tolist() == [3, 9]
    assert np.all(out_counts >= mech.threshold)
