"""The events that may separate a mechanism's outputs on D from those on D'.

Each builder returns candidate events (``_Candidate``): a description, how
often the event happened on the choosing runs under D and D', and a function
that evaluates it on the measuring runs.
:func:`~privagg.audit.lower_bound.epsilon_lower_bound` chooses among them and
measures the chosen one (see :mod:`privagg.audit.lower_bound` for the list of
events tried and why the choice cannot inflate the bound). Here:

* ``_threshold_candidates``: thresholds ``stat >= t`` and ``stat <= t`` on a
  statistic of the output vector;
* ``_value_candidates``: for discrete outputs (``_is_discrete``), events on
  exact output values and likelihood-ratio regions per partition, and
  thresholds on their naive-Bayes sum;
* ``_mironov_candidates``: Mironov's events (CCS 2012) on floating-point
  outputs, built on :func:`naive_laplace_reachable`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["naive_laplace_reachable"]


# ----------------------------------------------------------------------------- Mironov's event

_LIBM_LOG = np.frompyfunc(math.log, 1, 1)  # libm's log, the one numpy's C sampler calls


def _log(values: np.ndarray) -> np.ndarray:
    """libm's log, bit for bit. numpy's vectorised log is used when it agrees with libm on a
    sample of the inputs (SIMD builds of numpy may differ in the last bit)."""
    flat = values.ravel()
    sample = flat[:: max(1, flat.size // 512)]
    fast = np.log(flat)
    if np.array_equal(fast[:: max(1, flat.size // 512)], _LIBM_LOG(sample).astype(float)):
        return fast.reshape(values.shape)
    return _LIBM_LOG(flat).astype(float).reshape(values.shape)


def naive_laplace_reachable(y: np.ndarray, x: np.ndarray, scale: float, radius: int = 4) -> np.ndarray:
    """Whether each double ``y`` is an output of numpy's textbook Laplace sampler on input ``x``.

    The sampler draws ``U = k * 2**-53`` and returns
    ``x + scale * log(2U)`` (U < 1/2) or ``x - scale * log(2 - 2U)``, each
    operation rounded to a double. We invert ``y`` to the nearest lattice
    points ``k`` and replay the exact floating-point computation. Outputs the
    sampler produced from ``x`` are always recognised; most outputs produced
    from another integer are not, because their low-order bits come from a
    different rounding (Mironov, CCS 2012).
    """
    y, x = np.broadcast_arrays(np.asarray(y, dtype=float), np.asarray(x, dtype=float))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        t = (y - x) / scale
        ustar = np.where(t < 0, 0.5 * np.exp(np.minimum(t, 0)), 1.0 - 0.5 * np.exp(-np.maximum(t, 0)))
        k = np.rint(ustar * 2.0**53)[..., None] + np.arange(-radius, radius + 1)
        valid = (k > 0) & (k < 2.0**53) & np.isfinite(y)[..., None]
        u = np.where(valid, k, 1.0) * 2.0**-53
        arg = np.where(u < 0.5, u + u, 2.0 - u - u)
        log = _log(arg)
        noise = scale * np.where(u < 0.5, log, -log)
        replay = x[..., None] + noise
    return ((replay == y[..., None]) & valid).any(axis=-1)


# ----------------------------------------------------------------------------- event search


@dataclass
class _Candidate:
    description: str
    # how often the event happened on the choosing part under D and D', and a function for the evaluation half
    k0: int
    k1: int
    evaluate: Callable[[np.ndarray], np.ndarray]


def _mironov_candidates(f0: np.ndarray, f1: np.ndarray, c0: np.ndarray, c1: np.ndarray, partitions: np.ndarray,
                        scale: float) -> list[_Candidate]:
    """Events "the output in partition j is not a double the naive sampler can produce from count x".

    Under the dataset whose true count is x this never happens; under the
    other it happens for most outputs. x ranges over integers near the
    median output, so the true counts need not be known. The counts x are
    chosen on the fitting part (``f0``, ``f1``), the events counted on the
    choosing part (``c0``, ``c1``).
    """
    out: list[_Candidate] = []
    n_fit = len(f0)
    width = int(min(25, max(3, np.ceil(6 * scale / np.sqrt(max(n_fit, 1))))))
    best: list[tuple[int, float, bool]] = []
    for j in partitions:
        centre = np.rint(np.median(np.r_[f0[:, j], f1[:, j]]))
        xs = np.arange(centre - width, centre + width + 1)
        fx0 = ~naive_laplace_reachable(f0[:, j, None], xs[None, :], scale)
        fx1 = ~naive_laplace_reachable(f1[:, j, None], xs[None, :], scale)
        gap = np.abs(fx0.mean(axis=0) - fx1.mean(axis=0)) * (np.minimum(fx0.sum(axis=0), fx1.sum(axis=0)) == 0)
        cx0 = (~naive_laplace_reachable(c0[:, j, None], xs[None, :], scale)).sum(axis=0)
        cx1 = (~naive_laplace_reachable(c1[:, j, None], xs[None, :], scale)).sum(axis=0)
        for i, x in enumerate(xs):
            desc = (f"output in partition {j} is not a double numpy's float Laplace sampler can produce "
                    f"from the count {x:g}")
            ev = lambda y, j=j, x=x: ~naive_laplace_reachable(y[:, j], x, scale)  # noqa: E731
            out.append(_Candidate(desc, int(cx0[i]), int(cx1[i]), ev))
        i = int(np.argmax(gap))
        if gap[i] > 0:
            best.append((int(j), float(xs[i]), bool(fx0[:, i].sum() == 0)))
    # Combine: some partition's output is not reachable from its chosen count, within one side's
    # zero-frequency events (the side is chosen on the fitting part like everything else).
    for side in (True, False):
        chosen = [(j, x) for j, x, never_on_d in best if never_on_d == side]
        if len(chosen) > 1:
            js = np.array([c[0] for c in chosen])
            xs = np.array([c[1] for c in chosen])
            desc = (f"in one of partitions {js.tolist()} the output is not a double numpy's float Laplace "
                    f"sampler can produce from the counts {xs.tolist()}")
            ev = lambda y, js=js, xs=xs: (~naive_laplace_reachable(y[:, js], xs, scale)).any(axis=1)  # noqa: E731
            out.append(_Candidate(desc, int(ev(c0).sum()), int(ev(c1).sum()), ev))
    return out


def _threshold_candidates(
    name: str, stat: Callable[[np.ndarray], np.ndarray], c0: np.ndarray, c1: np.ndarray, n_thresholds: int = 256
) -> list[_Candidate]:
    """Events ``stat >= t`` and ``stat <= t``, counted on the choosing part without storing indicators."""
    s0, s1 = np.sort(stat(c0)), np.sort(stat(c1))
    pooled = np.concatenate([s0, s1])
    distinct = np.unique(pooled)
    # a discrete statistic gets every value it takes as a threshold; a continuous one, quantiles
    qs = distinct if len(distinct) <= n_thresholds else np.unique(np.quantile(pooled, np.linspace(0, 1, n_thresholds)))
    ge0 = len(s0) - np.searchsorted(s0, qs, side="left")
    ge1 = len(s1) - np.searchsorted(s1, qs, side="left")
    le0 = np.searchsorted(s0, qs, side="right")
    le1 = np.searchsorted(s1, qs, side="right")
    out = []
    for i, t in enumerate(qs):
        t = float(t)
        out.append(_Candidate(f"{name} >= {t:.6g}", int(ge0[i]), int(ge1[i]), lambda y, t=t: stat(y) >= t))
        out.append(_Candidate(f"{name} <= {t:.6g}", int(le0[i]), int(le1[i]), lambda y, t=t: stat(y) <= t))
    return out


def _value_candidates(f0: np.ndarray, f1: np.ndarray, c0: np.ndarray, c1: np.ndarray, partitions: np.ndarray,
                      max_values: int = 64) -> list[_Candidate]:
    """Events on exact output values, for discrete outputs.

    Per partition: "the output equals v" for its most frequent values, and
    the likelihood-ratio region "the output is one of the values seen more
    often under D' than under D" (and the reverse), the values chosen on the
    fitting part. Together with a naive-Bayes sum of per-value log ratios
    over the partitions (a threshold statistic), these catch mechanisms
    whose outputs take values with very different probabilities on the two
    datasets, including values impossible on one of them.
    """
    out: list[_Candidate] = []
    tables = []
    for j in partitions:
        values, inverse = np.unique(np.r_[f0[:, j], f1[:, j]], return_inverse=True)
        n0 = np.bincount(inverse[: len(f0)], minlength=len(values))
        n1 = np.bincount(inverse[len(f0):], minlength=len(values))
        ratio = np.log((n1 + 0.5) / (n0 + 0.5)) + math.log((len(f0) + 0.5) / (len(f1) + 0.5))
        tables.append((int(j), values, ratio))
        for v in values[np.argsort(-(n0 + n1), kind="stable")[:max_values]]:
            ev = lambda y, j=j, v=v: y[:, j] == v  # noqa: E731
            out.append(_Candidate(f"output in partition {j} equals {v:g}", int((c0[:, j] == v).sum()),
                                  int((c1[:, j] == v).sum()), ev))
        for sign, word in ((1, "D'"), (-1, "D")):
            region = values[sign * ratio > 0]
            if 0 < len(region) < len(values):
                ev = lambda y, j=j, region=region: np.isin(y[:, j], region)  # noqa: E731
                shown = ", ".join(f"{v:g}" for v in region[:8]) + (", ..." if len(region) > 8 else "")
                out.append(_Candidate(f"output in partition {j} is one of the values more frequent under {word} "
                                      f"({shown})", int(ev(c0).sum()), int(ev(c1).sum()), ev))

    def naive_bayes(y: np.ndarray) -> np.ndarray:
        total = np.zeros(len(y))
        for j, values, ratio in tables:
            idx = np.clip(np.searchsorted(values, y[:, j]), 0, len(values) - 1)
            total += np.where(values[idx] == y[:, j], ratio[idx], 0.0)
        return total

    if tables:
        out += _threshold_candidates("sum of per-value log likelihood ratios", naive_bayes, c0, c1)
    return out


def _is_discrete(y: np.ndarray) -> bool:
    """Integer-valued outputs, or so few distinct values per partition that exact-value events make sense."""
    if not len(y):
        return False
    if np.all(np.mod(y, 1.0) == 0):
        return True
    distinct = max(len(np.unique(y[:, j])) for j in range(min(y.shape[1], 32)))
    return distinct <= max(16, len(y) // 20)
