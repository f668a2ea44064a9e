"""Top-down consistent OD hierarchies: flows that add up from the total to districts to zones (to cells).

Post-processing only (rule 6 of the design): every function here reads noisy released vectors, their
public noise variances and the public nesting of areas (``cells`` table); nothing else.

Method (after InfTDA, arXiv 2412.09256, and Hay et al. 2010 for the combination step)
----------------------------------------------------------------------------------------
Levels ``0 .. L`` (total, district pairs, zone pairs, ...), each a noisy vector ``y_l`` with noise
variance ``s_l`` per entry, each entry nested in one parent of the level above.

1. Combination: a parent's estimate is the inverse-variance average of its own noisy value and the
   sum of its noisy children (variance ``n_children * s_child``), so the finer level also informs the
   coarser one.
2. Top-down: the (integer) total is fixed first; the children of each parent are the closest vector to
   their noisy values, in least squares, that is non-negative and sums to the parent's final value:
   ``x = max(y - tau, 0)`` with ``tau`` such that ``sum x = parent`` (a projection on the simplex).
   Negative and small noisy values, which are mostly the noise of empty pairs, become 0 - the step that
   keeps the released total near the truth and false positives down.
3. Integer step: ``floor(x)`` plus one unit to the largest fractional parts until the sum is the
   parent's integer value, so every released flow is a whole number and every level adds up exactly.
4. A privately selected finest level (keys not public: only children whose noisy count passed a
   threshold are released) is fitted by :func:`fit_selected`: its released children of a parent sum to
   *at most* the parent's value, and the rest of the parent is reported as the flow in unreleased
   children, so children plus remainders add up exactly. The selected children do not inform their
   parents in step 1: which of them exist depends on the threshold, so their sum is a biased child sum.
"""

from __future__ import annotations

import numpy as np

from privagg.errors import PrivaggInputError


def project_to_sum(y: np.ndarray, total: float) -> np.ndarray:
    """The non-negative vector closest to ``y`` (least squares) whose entries sum to ``total``.

    Examples
    --------
    >>> project_to_sum(np.array([5.0, 1.0, -3.0]), 4.0)
    array([4., 0., 0.])
    """
    y = np.asarray(y, dtype=float)
    if total <= 0 or len(y) == 0:
        return np.zeros_like(y)
    u = np.sort(y)[::-1]
    css = np.cumsum(u) - total
    k = np.arange(1, len(u) + 1)
    rho = np.nonzero(u - css / k > 0)[0][-1]
    tau = css[rho] / (rho + 1)
    return np.maximum(y - tau, 0.0)


def integer_split(x: np.ndarray, total: int) -> np.ndarray:
    """Whole numbers close to ``x`` (non-negative, summing to ``total``): floors, then the largest remainders."""
    base = np.floor(x).astype(np.int64)
    short = int(total) - int(base.sum())
    if short > 0:
        order = np.argsort(-(x - base), kind="stable")
        base[order[:short]] += 1
    elif short < 0:  # only from float rounding: take units back from the largest entries
        order = np.argsort(-x, kind="stable")
        for i in order[: -short]:
            base[i] -= 1 if base[i] > 0 else 0
    return base


def top_down(levels: list[np.ndarray], variances: list[float], parents: list[np.ndarray]) -> list[np.ndarray]:
    """Consistent non-negative integer estimates for every level, from noisy released values only.

    Parameters
    ----------
    levels
        Noisy released vectors, coarsest first; ``levels[0]`` has one entry (the total).
    variances
        Noise variance of one entry of each level (public: from the mechanism's scale).
    parents
        ``parents[l]`` (for ``l >= 1``) gives, for each entry of ``levels[l]``, the index of its parent
        in ``levels[l - 1]``; ``parents[0]`` is ignored.

    Returns
    -------
    list of int64 arrays, one per level, each summing within every parent to the parent's value.
    """
    if len(levels) != len(variances) or len(levels) != len(parents) or len(levels[0]) != 1:
        raise PrivaggInputError("levels, variances and parents must have one entry per level, the first being the "
                                "total. Fix: pass [total, coarse, ..., fine] noisy vectors with their variances.")
    y = [np.asarray(v, dtype=float) for v in levels]
    est = [v.copy() for v in y]
    var = [np.full(len(v), float(s)) for v, s in zip(y, variances)]
    # 1. bottom-up combination (Hay et al.): each parent with the sum of its children's estimates
    for lvl in range(len(y) - 1, 0, -1):
        par = np.asarray(parents[lvl])
        child_sum = np.bincount(par, weights=est[lvl], minlength=len(y[lvl - 1]))
        child_var = np.bincount(par, weights=var[lvl], minlength=len(y[lvl - 1]))
        w_own, w_kids = 1 / var[lvl - 1], np.where(child_var > 0, 1 / np.maximum(child_var, 1e-300), 0)
        est[lvl - 1] = (est[lvl - 1] * w_own + child_sum * w_kids) / (w_own + w_kids)
        var[lvl - 1] = 1 / (w_own + w_kids)
    # 2-3. top-down: the total, then every parent's children projected to sum to its final integer value
    out = [np.array([max(int(round(est[0][0])), 0)], dtype=np.int64)]
    for lvl in range(1, len(y)):
        par = np.asarray(parents[lvl])
        final = np.zeros(len(y[lvl]), dtype=np.int64)
        order = np.argsort(par, kind="stable")
        bounds = np.searchsorted(par[order], np.arange(len(out[-1]) + 1))
        for p in range(len(out[-1])):
            idx = order[bounds[p]:bounds[p + 1]]
            if len(idx) == 0 or out[-1][p] == 0:
                continue
            final[idx] = integer_split(project_to_sum(est[lvl][idx], out[-1][p]), out[-1][p])
        out.append(final)
    return out



def fit_selected(values: np.ndarray, parents: np.ndarray, parent_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Privately selected children fitted under their parents' final values (released values only).

    A selected level releases only the children whose noisy count passed a threshold; the others' flows
    are unknown but part of the parent. So the released children of a parent are the closest
    non-negative vector to their noisy values (least squares) whose sum is *at most* the parent's value:
    unchanged when they fit, else projected to sum to it (:func:`project_to_sum`) and made whole
    (:func:`integer_split`). A child under a parent whose value is 0 becomes 0.

    Parameters
    ----------
    values
        Noisy released counts of the selected children.
    parents
        Index of each child's parent in ``parent_values``.
    parent_values
        The parents' final (consistent, whole) values.

    Returns
    -------
    (children, remainder): int64 values of the children, and per parent the flows in children not
    released (``parent_values`` minus the children's sum, never negative), so that children and
    remainders add up exactly to the parents.

    Examples
    --------
    >>> kids, rest = fit_selected(np.array([30, 12, 50]), np.array([0, 0, 1]), np.array([60, 40]))
    >>> kids.tolist(), rest.tolist()
    ([30, 12, 40], [18, 0])
    """
    y = np.maximum(np.asarray(values, dtype=float), 0.0)
    par = np.asarray(parents, dtype=np.int64)
    pv = np.asarray(parent_values, dtype=np.int64)
    if len(y) != len(par) or (len(par) and (par.min() < 0 or par.max() >= len(pv))):
        raise PrivaggInputError("values and parents must have one entry per child, each parent an index of "
                                "parent_values. Fix: pass the selected level's released values and parent indices.")
    out = np.zeros(len(y), dtype=np.int64)
    order = np.argsort(par, kind="stable")
    cuts = np.searchsorted(par[order], np.arange(len(pv) + 1))
    for p in np.flatnonzero(np.diff(cuts)):
        idx = order[cuts[p]:cuts[p + 1]]
        if pv[p] <= 0:
            continue
        if y[idx].sum() <= pv[p]:
            out[idx] = integer_split(y[idx], int(round(y[idx].sum())))
        else:
            out[idx] = integer_split(project_to_sum(y[idx], float(pv[p])), int(pv[p]))
    rest = pv - np.bincount(par, weights=out, minlength=len(pv)).astype(np.int64)
    return out, rest
