"""ROC curves, AUC, their bootstrap intervals and the DP trade-off bounds.

The figures every membership test is judged by: :func:`roc_curve` (the
(FPR, TPR) points at every threshold), the AUC and the TPR at a given
false-positive rate, :func:`auc_interval` (a two-level bootstrap over
targets and their test groups), and the bounds any test faces against an
(epsilon, delta)-DP release: :func:`dp_tpr_bound` (the trade-off curve of
Kairouz, Oh and Viswanath 2015) and :func:`dp_auc_bound` (the area under
it). :mod:`privagg.attacks.membership` and :mod:`privagg.harness.plots`
take them from here.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["auc_interval", "dp_auc_bound", "dp_tpr_bound", "roc_curve"]


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every threshold, from (0, 0) to (1, 1); ties handled as one step."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels).astype(bool)
    order = np.argsort(-scores, kind="stable")
    s, lab = scores[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(lab)[distinct]
    fp = np.cumsum(~lab)[distinct]
    tpr = np.r_[0.0, tp / max(lab.sum(), 1)]
    fpr = np.r_[0.0, fp / max((~lab).sum(), 1)]
    return fpr, tpr


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from scipy.stats import rankdata

    labels = np.asarray(labels).astype(bool)
    n1, n0 = labels.sum(), (~labels).sum()
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _tpr_at(fpr_target: float, fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(tpr[fpr <= fpr_target + 1e-12].max())


def dp_tpr_bound(fpr: np.ndarray | float, epsilon: float, delta: float = 0.0) -> np.ndarray | float:
    """Largest TPR any test can reach at false-positive rate ``fpr`` against an (epsilon, delta)-DP release.

    From ``P[S | in] <= e^eps P[S | out] + delta`` applied to the rejection
    region and its complement (Kairouz, Oh and Viswanath 2015):
    ``TPR <= min(1, e^eps FPR + delta, 1 - e^-eps (1 - FPR - delta))``.
    """
    fpr = np.asarray(fpr, dtype=float)
    bound = np.minimum.reduce([
        np.ones_like(fpr),
        np.exp(epsilon) * fpr + delta,
        1.0 - np.exp(-epsilon) * (1.0 - fpr - delta),
    ])
    bound = np.clip(bound, 0.0, 1.0)
    return float(bound) if bound.ndim == 0 else bound


def dp_auc_bound(epsilon: float, delta: float = 0.0) -> float:
    """Largest AUC reachable against an (epsilon, delta)-DP release (area under :func:`dp_tpr_bound`)."""
    grid = np.linspace(0.0, 1.0, 100_001)
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only the old name
    return float(trapezoid(dp_tpr_bound(grid, epsilon, delta), grid))


def _roc_exceeds_bound(scores: np.ndarray, labels: np.ndarray, epsilon: float, delta: float,
                       alpha: float = 0.05) -> float:
    """Largest amount by which the ROC exceeds the DP bound beyond sampling error (<= 0: within it).

    The margins are uniform over thresholds, from the one-sided
    Dvoretzky-Kiefer-Wolfowitz inequality with Massart's constant: with
    probability at least ``1 - alpha``, at every threshold at once the true
    TPR is at least the empirical one minus ``sqrt(ln(2/alpha) / (2 n_in))``
    and the true FPR at most the empirical one plus ``sqrt(ln(2/alpha) / (2 n_out))``.
    Against a release that honours its guarantee the excess is therefore
    positive with probability at most ``alpha``, however the threshold was
    chosen (pointwise intervals at data-chosen thresholds would not say that).
    """
    labels = np.asarray(labels).astype(bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    fpr, tpr = roc_curve(scores, labels)
    m1 = np.sqrt(np.log(2 / alpha) / (2 * n1))
    m0 = np.sqrt(np.log(2 / alpha) / (2 * n0))
    return float(np.max((tpr - m1) - dp_tpr_bound(np.minimum(fpr + m0, 1.0), epsilon, delta)))


def _tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    """TPR at the ROC point with the largest TPR among those with FPR <= ``fpr`` (ties as one step).

    That point accepts every score above the ``(floor(fpr * n_out) + 1)``-th
    largest "out" score; the same figure as :func:`roc_curve` gives.
    """
    allowed = int(np.floor(fpr * neg.size + 1e-9))
    if allowed >= neg.size:
        return 1.0
    v = np.partition(neg, neg.size - 1 - allowed)[neg.size - 1 - allowed]
    return float(np.mean(pos > v))


def _auc_pn(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC from the "in" and "out" scores (ties count one half), as :func:`_auc`."""
    neg = np.sort(neg)
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (pos.size * neg.size))


def _bootstrap(scored: Sequence[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator, n_bootstrap: int,
               level: float, fprs: Sequence[float] = ()) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the mean AUC and of the mean TPR at each of ``fprs``, over targets.

    Two levels: targets are resampled, then each drawn target's test groups
    (stratified by label), the same resamples for every figure.
    """
    split = []
    for scores, labels in scored:
        labels = np.asarray(labels).astype(bool)
        split.append((np.asarray(scores, dtype=float)[labels], np.asarray(scores, dtype=float)[~labels]))
    names = ["auc"] + [f"tpr_at_{f:g}_fpr" for f in fprs]
    boot = np.empty((n_bootstrap, len(names)))
    n = len(split)
    for b in range(n_bootstrap):
        vals = np.zeros(len(names))
        for t in rng.integers(0, n, n):
            pos, neg = split[t]
            p, q = pos[rng.integers(0, pos.size, pos.size)], neg[rng.integers(0, neg.size, neg.size)]
            vals[0] += _auc_pn(p, q)
            for i, f in enumerate(fprs, start=1):
                vals[i] += _tpr_at_fpr(p, q, f)
        boot[b] = vals / n
    alpha = 1 - level
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    return {name: (float(low[i]), float(high[i])) for i, name in enumerate(names)}


def auc_interval(scored: Sequence[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator,
                 n_bootstrap: int = 500, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean AUC over targets.

    Two levels: targets are resampled, then each drawn target's test groups
    (stratified by label). Resampling targets carries the spread between
    targets, and with it the variance of training a classifier per target,
    which resampling test groups alone would leave out.

    Parameters
    ----------
    scored
        Per target: the attack's scores on the test groups and their labels (True = member).
    rng
        Generator for the resampling.
    n_bootstrap, level
        Resamples and confidence level.
    """
    return _bootstrap(scored, rng, n_bootstrap, level)["auc"]
