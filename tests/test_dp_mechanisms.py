"""Noise mechanisms: calibration against OpenDP's privacy map, and statistical tests of the noise.

Statistical tests use the Dvoretzky-Kiefer-Wolfowitz inequality,
P(sup_k |F_n(k) - F(k)| > t) <= 2 exp(-2 n t^2), which holds for discrete
distributions too. With t = sqrt(log(2 / alpha) / (2 n)) a correct sampler
fails with probability <= alpha = 1e-6. Each test has a companion showing
that noise at half the claimed scale is rejected.
"""

import math

import numpy as np
import pytest

from privagg.dp.mechanisms import (
    NoiseMechanism, gaussian, gaussian_tail, laplace, laplace_tail, noise_half_width, noise_variance, zcdp_epsilon,
)

ALPHA = 1e-6
N = 20_000
DKW = math.sqrt(math.log(2 / ALPHA) / (2 * N))


def laplace_cdf(scale, k):
    k = np.asarray(k, dtype=float)
    a = math.exp(-1 / scale)
    # P(Z <= k): for k < 0, a^|k| / (1 + a); for k >= 0, 1 - a^(k+1) / (1 + a)
    return np.where(k < 0, np.exp(-np.abs(k) / scale) / (1 + a), 1 - np.exp(-(k + 1) / scale) / (1 + a))


def gaussian_cdf(sigma, k):
    support = np.arange(-int(14 * sigma + 20), int(14 * sigma + 20) + 1)
    p = np.exp(-support.astype(float) ** 2 / (2 * sigma * sigma))
    p /= p.sum()
    cdf = np.cumsum(p)
    return cdf[np.clip(np.asarray(k) - support[0], 0, len(cdf) - 1)]


def ks_distance(samples, cdf):
    values, counts = np.unique(samples, return_counts=True)
    empirical = np.cumsum(counts) / len(samples)
    # Both CDFs are step functions on the integers: compare at every sample value and just below it.
    below = np.concatenate(([0.0], empirical[:-1]))
    return max(np.max(np.abs(empirical - cdf(values))), np.max(np.abs(below - cdf(values - 1))))


@pytest.mark.parametrize("epsilon,sensitivity", [(1.0, 24), (0.1, 1), (0.37, 7), (3.0, 100)])
def test_laplace_calibration_certified_by_opendp(epsilon, sensitivity):
    mech = laplace(epsilon, sensitivity)
    assert mech.scale == pytest.approx(sensitivity / epsilon, rel=1e-9)
    assert mech.measurement().map(sensitivity) <= epsilon


@pytest.mark.parametrize("rho,l0", [(0.5, 24), (0.01, 1), (2.0, 7)])
def test_gaussian_calibration_certified_by_opendp(rho, l0):
    mech = gaussian(rho, math.sqrt(l0))
    assert mech.scale == pytest.approx(math.sqrt(l0) / math.sqrt(2 * rho), rel=1e-9)
    assert mech.measurement().map(math.sqrt(l0)) <= rho


@pytest.mark.statistical
def test_discrete_laplace_matches_its_distribution_and_rejects_half_scale():
    mech = laplace(1.0, 8)  # scale 8
    samples = mech.sample(np.zeros(N, dtype=np.int64))
    assert ks_distance(samples, lambda k: laplace_cdf(8.0, k)) < DKW
    # Companion: the same test rejects noise at half the claimed scale.
    half = NoiseMechanism("laplace", 4.0, 4, 1.0).sample(np.zeros(N, dtype=np.int64))
    assert ks_distance(half, lambda k: laplace_cdf(8.0, k)) > DKW


@pytest.mark.statistical
def test_discrete_gaussian_matches_its_distribution_and_rejects_half_scale():
    mech = gaussian(0.125, 4.0)  # sigma = 4 / sqrt(0.25) = 8
    assert mech.scale == pytest.approx(8.0)
    samples = mech.sample(np.zeros(N, dtype=np.int64))
    assert ks_distance(samples, lambda k: gaussian_cdf(8.0, k)) < DKW
    half = NoiseMechanism("gaussian", 4.0, 4.0, 0.5).sample(np.zeros(N, dtype=np.int64))
    assert ks_distance(half, lambda k: gaussian_cdf(8.0, k)) > DKW


def test_sample_adds_noise_to_values_and_keeps_input():
    values = np.arange(1000, dtype=np.int64) * 1000
    before = values.copy()
    out = laplace(1.0, 1).sample(values)
    assert np.array_equal(values, before)
    assert np.all(np.abs(out - values) < 100)  # P(|Z| >= 100) at scale 1 is ~1e-44
    ro = values.copy()
    ro.flags.writeable = False
    assert len(laplace(1.0, 1).sample(ro)) == 1000  # read-only input is copied for OpenDP


def test_threaded_noise_has_the_same_distribution():
    mech = laplace(1.0, 8)
    samples = mech.sample(np.zeros(N * 6, dtype=np.int64), threads=2)  # large enough to be chunked
    dkw = math.sqrt(math.log(2 / ALPHA) / (2 * len(samples)))
    assert ks_distance(samples, lambda k: laplace_cdf(8.0, k)) < dkw


@pytest.mark.parametrize("scale", [0.5, 3.0, 24.0, 1000.0])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_laplace_half_width_is_the_exact_quantile(scale, level):
    t = noise_half_width("laplace", scale, level)
    k = np.arange(-int(60 * scale) - 50, int(60 * scale) + 51)
    p = np.exp(-np.abs(k) / scale)
    p /= p.sum()
    inside = lambda h: p[np.abs(k) <= h].sum()
    assert inside(t) >= level - 1e-12
    if t > 0:
        assert inside(t - 1) < level
    assert float(laplace_tail(scale, t + 1)) == pytest.approx(1 - inside(t), abs=1e-12)


@pytest.mark.parametrize("sigma", [0.7, 5.0, 80.0])
def test_gaussian_half_width_is_the_exact_quantile(sigma):
    t = noise_half_width("gaussian", sigma, 0.95)
    assert 1 - float(gaussian_tail(sigma, t + 1)) >= 0.95
    if t > 0:
        assert 1 - float(gaussian_tail(sigma, t)) < 0.95
    assert noise_variance("gaussian", sigma) <= sigma**2 + 1e-9


def test_zcdp_to_epsilon_is_below_the_simple_bound():
    for rho, delta in [(0.5, 1e-9), (0.01, 1e-6), (2.0, 1e-5)]:
        eps = zcdp_epsilon(rho, delta)
        assert 0 < eps <= rho + 2 * math.sqrt(rho * math.log(1 / delta))
    assert zcdp_epsilon(0.5, 0.0) == math.inf


@pytest.mark.parametrize("kind,loss", [("laplace", 1.0), ("gaussian", 0.5)])
def test_partition_selection_threshold_is_the_smallest_meeting_delta(kind, loss):
    from privagg.dp.partition_selection import _make, calibrate

    mech = calibrate(kind, loss, 1e-9, 24, 1)
    assert mech.loss <= loss and mech.delta <= 1e-9
    eps, delta = _make(kind, mech.scale, mech.threshold - 1).map(mech.d_in())
    assert delta > 1e-9
