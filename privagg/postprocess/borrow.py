"""Estimators that borrow strength across time and space, as post-processing of released values only.

A cell's days (or a zone's hours) are alike: the value of a key at one time bin is predicted well by the
same key's other bins. :func:`shrink_over_time` pulls each released value toward that prediction by as
much as the noise justifies (empirical Bayes, James-Stein type), and :func:`shrink_toward_parent` pulls a
small area's value toward its share of its coarser area's value.

Model and its bias
------------------
For key ``k`` (e.g. a cell) and time bin ``t`` released with independent noise of variance ``s``
(public, from the mechanism's scale), the prior mean is ``mu = m_k * f_t``: ``m_k`` the key's mean over its
bins and ``f_t`` the relative level of bin ``t`` in all keys (hour of day, day of week), both from released
values. The truth varies around it with variance ``tau^2``, estimated by moments from the released values within
groups of keys-bins of similar prior (``kappa``: the overall relative spread, for reference). The estimate

    x = mu + w (y - mu),   w = tau^2 / (tau^2 + s)

is not unbiased for a single key: its bias is ``(1 - w) (E[mu] - truth)``, large where a key's bin departs
from its profile (an event day) and the noise is large. It is reported per key (``bias_bound``: the
bias at a departure of two prior standard deviations), beside the error.

Intervals: ``x +/- z sqrt(v)`` with ``v = (1 - w)^2 (max(tau^2, tau_g^2) + var(mu)) + w^2 s``, the
estimator's mean squared error when the truth departs from the prior as much as the key itself or its
group (``tau_g^2``) does on average, whichever is more,
widened within each group by how much the observed standardised residuals' tail exceeds the normal's. They are honest on average over keys when the model's spread is right (their coverage is
measured in ``benchmarks/bench_structure.py``), not for every key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from privagg.errors import PrivaggInputError


@dataclass(frozen=True)
class Shrunk:
    """A structured estimate: values, interval bounds, weights on the released value, and bias bounds.

    Examples
    --------
    >>> import numpy as np
    >>> est = shrink_over_time(np.array([[100.0, 110, 90, 105], [10, 12, 9, 30]]), noise_variance=25.0)
    >>> isinstance(est, Shrunk) and est.value.shape == (2, 4) and bool((est.low <= est.high).all())
    True
    """

    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    weight: np.ndarray
    bias_bound: np.ndarray
    kappa: float


def shrink_over_time(released: np.ndarray, noise_variance: float, *, period: int | None = None,
                     level: float = 0.95, groups: int = 10, key_groups: np.ndarray | None = None,
                     own_spread: float = 0.5) -> Shrunk:
    """Shrink a keys x bins matrix of released values toward each key's profile over time.

    Parameters
    ----------
    released
        Noisy released values, one row per key (cell, zone), one column per time bin, in time order.
    noise_variance
        Variance of the noise of one released value (public).
    period
        Bins per cycle of the common profile (24 for hours: the hour-of-day profile); ``None``: the
        profile is per column (e.g. day of week over one week).
    level
        Interval level.
    groups
        Quantile groups of the prior, each split by phase of the cycle, within which the truth's spread
        ``tau^2`` is estimated.
    key_groups
        Optional public label per key (e.g. the cells' ``land_use``): each label gets its own profile over
        time (offices are busy on weekdays, homes at weekends).
    own_spread
        Weight of a key's own spread around its profile (its bins' residuals) against its group's in
        ``tau^2``: keys that follow their profile poorly are shrunk less.

    Examples
    --------
    >>> y = np.array([[100.0, 104, 96, 101], [10, 14, 5, 11]])
    >>> shrink_over_time(y, 25.0).value.round(1).tolist()[1][2] > 5
    True
    """
    y = np.asarray(released, dtype=float)
    if y.ndim != 2 or y.shape[1] < 2:
        raise PrivaggInputError("released must be a keys x time-bins matrix with at least 2 bins. "
                                "Fix: pivot the release so that each row is a key and each column a time bin.")
    n_keys, n_bins = y.shape
    s = float(noise_variance)
    cycle = n_bins if period is None else int(period)
    phase = np.arange(n_bins) % cycle
    # common profile: each phase's share of the keys' level (from all keys: its noise is negligible)
    labels = np.zeros(n_keys, dtype=int) if key_groups is None else np.unique(np.asarray(key_groups),
                                                                               return_inverse=True)[1]
    f = np.ones((n_keys, n_bins))
    for lab in np.unique(labels):
        rows = labels == lab
        col = np.bincount(phase, weights=y[rows].sum(axis=0), minlength=cycle) / np.bincount(phase, minlength=cycle)
        f[rows] = (col / max(col.mean(), 1e-12))[phase]
    f = np.maximum(f, 1e-6)
    # the prior of a bin leaves that bin out, so it is independent of the bin's own noise (otherwise the
    # spread would be underestimated by the covariance and the intervals too narrow)
    r = y / f
    level_loo = (r.sum(axis=1, keepdims=True) - r) / (n_bins - 1)
    inv2 = (1 / f ** 2).sum(axis=1, keepdims=True)
    var_level = s * f ** 2 * (inv2 - 1 / f ** 2) / (n_bins - 1) ** 2
    if period is not None and n_bins // cycle >= 2:
        # and the mean of the same phase on the other cycles (a zone's 8 am on the other days)
        reps = n_bins // cycle
        same_sum = np.stack([y[:, phase == p].sum(axis=1) for p in range(cycle)], axis=1)[:, phase]
        same_loo = (same_sum - y) / (reps - 1)
        prior = 0.5 * same_loo + 0.5 * level_loo * f
        var_prior = 0.25 * s / (reps - 1) + 0.25 * var_level
    else:
        prior = level_loo * f
        var_prior = var_level
    prior = np.maximum(prior, 0.0)
    return shrink_toward(y, prior, var_prior, s, phase=np.broadcast_to(phase[None, :], y.shape), groups=groups,
                         level=level, own_spread=own_spread)


def shrink_toward(released: np.ndarray, prior: np.ndarray, prior_variance: np.ndarray | float,
                  noise_variance: float, *, phase: np.ndarray | None = None, groups: int = 10,
                  level: float = 0.95, own_spread: float = 0.0) -> Shrunk:
    """Empirical-Bayes shrinkage of released values toward a prior built from *other* released values.

    ``prior`` must not contain a value's own noise (leave it out), ``prior_variance`` is the prior's noise
    variance, ``phase`` an optional public label per value that splits the groups in which the truth's
    spread around the prior is estimated (with ``groups`` quantile groups of the prior). ``own_spread``
    (2-D inputs only) mixes in each row's own spread. See the module docstring for the bias and intervals.
    """
    y = np.asarray(released, dtype=float)
    prior = np.asarray(prior, dtype=float)
    s = float(noise_variance)
    var_prior = np.broadcast_to(np.asarray(prior_variance, dtype=float), y.shape)
    phase = np.zeros(y.shape, dtype=int) if phase is None else np.unique(np.asarray(phase), return_inverse=True)[1].reshape(y.shape)
    cycle = int(phase.max()) + 1
    resid2 = (y - prior) ** 2 - s - var_prior  # moment estimate of the truth's spread around the prior
    kappa = max(float(resid2.sum() / max((prior ** 2).sum(), 1e-12)), 0.0)
    # the spread is estimated within groups of keys-bins of similar prior (quantiles), so small and large
    # areas each get their own; the groups come from released values only
    edges = np.unique(np.quantile(prior, np.linspace(0, 1, groups + 1)))
    group = np.clip(np.searchsorted(edges, prior, side="right") - 1, 0, max(len(edges) - 2, 0))
    # and per phase of the cycle: weekends and nights depart from a key's profile more than weekdays do
    group = group * cycle + phase
    group = np.unique(group, return_inverse=True)[1].reshape(prior.shape)
    spread = np.bincount(group.ravel(), weights=resid2.ravel()) / np.maximum(np.bincount(group.ravel()), 1)
    tau2 = np.maximum(spread, 0.0)[group]
    tau2_group = tau2
    if own_spread > 0 and y.ndim == 2:
        own = np.maximum(resid2.mean(axis=1, keepdims=True), 0.0)
        tau2 = (1 - own_spread) * tau2 + own_spread * own
    w = tau2 / (tau2 + s)
    x = prior + w * (y - prior)
    # the estimator's mean squared error when the truth departs from the prior as the key or its group does
    # (the larger: a key's own spread, from few bins, may understate it)
    v = (1 - w) ** 2 * (np.maximum(tau2, tau2_group) + var_prior) + w ** 2 * s
    z = float(norm.ppf(0.5 + level / 2))
    # the model's normal spread understates departures' tails (event days, new areas): widen each group's
    # intervals by how much the observed standardised residuals' level-quantile exceeds the normal one
    std = np.abs(y - prior) / np.sqrt(s + tau2_group + var_prior)
    widen = np.ones(len(spread))
    for g in range(len(spread)):
        inside = std[group == g]
        if inside.size:
            widen[g] = max(float(np.quantile(inside, level)) / z, 1.0)
    half = z * np.sqrt(v) * widen[group]
    return Shrunk(x, x - half, x + half, w, (1 - w) * 2 * np.sqrt(tau2), kappa)


def shrink_od(released: np.ndarray, noise_variance: float, *, distance: np.ndarray | None = None,
              distance_bins: int = 12, groups: int = 10, level: float = 0.95, iterations: int = 30) -> Shrunk:
    """Shrink an origins x destinations matrix of released flows toward a gravity model fitted to them.

    The prior is ``a_o b_d g(distance band)`` fitted by iterative proportional fitting to the released
    (non-negative) flows' row sums, column sums and sums per distance band (``distance``: the public
    distance between the areas' centres; ``None``: no distance term). Each margin sums many flows, so a
    flow's own noise moves its prior by a small part (about 1 / the margin's size), which is neglected.
    Intra-area flows (distance 0: the diagonal) are their own band and group.

    Examples
    --------
    >>> import numpy as np
    >>> flows = np.outer([50.0, 30, 20, 10], [40.0, 30, 20, 10]) / 10 + np.array([3.0, -2, 1, 0] * 4).reshape(4, 4)
    >>> est = shrink_od(flows, noise_variance=4.0)
    >>> est.value.shape, bool((est.weight >= 0).all() and (est.weight <= 1).all())
    ((4, 4), True)
    """
    y = np.asarray(released, dtype=float)
    if y.ndim != 2 or min(y.shape) < 3:
        raise PrivaggInputError("released must be an origins x destinations matrix (at least 3 x 3). "
                                "Fix: pivot the OD release with origins as rows and destinations as columns.")
    s = float(noise_variance)
    n, m = y.shape
    target = np.maximum(y, 0)
    band = np.zeros(y.shape, dtype=int)
    if distance is not None:
        d = np.asarray(distance, dtype=float)
        if d.shape != y.shape:
            raise PrivaggInputError(f"distance has shape {d.shape}, expected {y.shape}. "
                                    "Fix: pass the distance between every origin and destination area.")
        off = d > 0
        edges = np.quantile(d[off], np.linspace(0, 1, distance_bins + 1)[1:-1]) if off.any() else []
        band = np.where(off, 1 + np.searchsorted(edges, d), 0)
    elif n == m:
        np.fill_diagonal(band, 1)
    prior = np.full(y.shape, max(target.mean(), 1e-9))
    band_sum = np.bincount(band.ravel(), weights=target.ravel())
    for _ in range(iterations):
        prior *= (target.sum(axis=1, keepdims=True) / np.maximum(prior.sum(axis=1, keepdims=True), 1e-12))
        prior *= (target.sum(axis=0, keepdims=True) / np.maximum(prior.sum(axis=0, keepdims=True), 1e-12))
        fit = np.bincount(band.ravel(), weights=prior.ravel(), minlength=len(band_sum))
        prior *= (band_sum / np.maximum(fit, 1e-12))[band]
    var_prior = s * (prior / np.maximum(prior.sum(axis=1, keepdims=True), 1e-9)) ** 2 * m  # a margin's noise share
    return shrink_toward(y, prior, var_prior, s, phase=(band == 0).astype(int), groups=groups, level=level)


def shrink_toward_parent(released: np.ndarray, noise_variance: float, parent: np.ndarray, *,
                         temporal_prior: bool = True, groups: int = 10, level: float = 0.95) -> Shrunk:
    """Shrink small areas toward their share of their coarser area (and, by default, their own profile).

    ``released`` is areas x time bins (e.g. cells x days), ``parent`` the public coarser area of each row
    (e.g. the cell's zone). The spatial prior of area ``c`` at bin ``t`` is its siblings' sum at ``t``
    times ``c``'s ratio to its siblings over the other bins (both without ``(c, t)`` itself); with
    ``temporal_prior`` it is averaged, weighted by each prior's observed mean squared misfit, with the
    leave-one-out temporal prior of :func:`shrink_over_time`. Small areas, whose noise is largest against
    their value, get the most from their parent.

    Examples
    --------
    >>> import numpy as np
    >>> cells_by_day = np.array([[40.0, 42, 38], [20, 19, 22], [5, 30, 6], [60, 58, 61]])
    >>> est = shrink_toward_parent(cells_by_day, noise_variance=9.0, parent=np.array([0, 0, 1, 1]))
    >>> est.value.shape
    (4, 3)
    """
    y = np.asarray(released, dtype=float)
    par = np.unique(np.asarray(parent), return_inverse=True)[1]
    if y.ndim != 2 or len(par) != y.shape[0] or y.shape[1] < 2:
        raise PrivaggInputError("released must be areas x time bins with one parent per area. "
                                "Fix: pass the pivoted release and the coarser area of each of its rows.")
    s = float(noise_variance)
    n_bins = y.shape[1]
    zone = np.stack([np.bincount(par, weights=y[:, t]) for t in range(n_bins)], axis=1)[par]
    sib = zone - y                                     # siblings at t, without (c, t)
    count = np.bincount(par)[par][:, None]
    own_other = y.sum(axis=1, keepdims=True) - y       # c over the other bins
    sib_other = sib.sum(axis=1, keepdims=True) - sib   # siblings over the other bins
    ratio = np.maximum(own_other, 0) / np.maximum(sib_other, 1.0)
    prior = np.maximum(sib, 0) * ratio
    var_prior = ratio ** 2 * s * np.maximum(count - 1, 1) + prior ** 2 * s * (n_bins - 1) / np.maximum(own_other, 1) ** 2
    if temporal_prior:
        f = np.maximum(y.sum(axis=0) / max(y.sum(axis=0).mean(), 1e-12), 1e-6)[None, :]
        r = y / f
        t_prior = np.maximum((r.sum(axis=1, keepdims=True) - r) / (n_bins - 1) * f, 0)
        t_var = s * f ** 2 * ((1 / f ** 2).sum() - 1 / f ** 2) / (n_bins - 1) ** 2
        # each prior weighted by its observed misfit (mean over all values of (y - prior)^2 - s)
        mse_s = max(float(np.mean((y - prior) ** 2) - s), 1e-9)
        mse_t = max(float(np.mean((y - t_prior) ** 2) - s), 1e-9)
        a = mse_t / (mse_s + mse_t)
        prior = a * prior + (1 - a) * t_prior
        var_prior = a ** 2 * var_prior + (1 - a) ** 2 * t_var
    phase = np.broadcast_to(np.arange(n_bins)[None, :], y.shape)
    return shrink_toward(y, prior, var_prior, s, phase=phase, groups=groups, level=level)
