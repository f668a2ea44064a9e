"""Utility metrics: how far a released table is from the true one.

Every metric compares two tables with the same key columns and a ``value``
column: the true aggregate (e.g. from :func:`privagg.exact.exact_aggregate`)
and a release (``Release.to_pandas()`` or any DataFrame of the same shape).
The tables are aligned on their keys first (:func:`align`):

* a key present in the truth but absent from the release, or released with
  ``value`` NaN (suppressed), counts as released **0** for error metrics and
  as a **false negative** for partition-selection metrics;
* a key present in the release but absent from the truth has true value 0
  (for a public key domain the truth lists every key, empty ones included).

All functions are pure: they never modify their inputs.

==========================  ====================================================
metric                      meaning
==========================  ====================================================
``mae``                     mean absolute error over all keys
``rmse``                    root mean squared error over all keys
``mean_relative_error``     mean of ``|x̂ - x| / max(x, floor)``
``share_within``            share of keys with ``|x̂ - x| <= tol * max(x, floor)``
``hotspot_spearman``        Spearman correlation of area rankings by total value
``top_k_recall``            share of the true top-k keys among the released top-k
``false_positive_keys``     released keys whose true value is 0
``false_negative_keys``     keys with a true value > 0 that were not released
``direction_accuracy``      share of like-for-like changes whose sign is right
==========================  ====================================================
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from privagg.errors import PrivaggInputError

AREA_COLUMNS = ("cell_id", "zone_id", "district_id", "area", "area_id")

__all__ = [
    "METRICS",
    "align",
    "compute_metrics",
    "direction_accuracy",
    "false_negative_keys",
    "false_positive_keys",
    "hotspot_spearman",
    "mae",
    "mean_relative_error",
    "rmse",
    "share_within",
    "top_k_recall",
]


def _key_columns(true: pd.DataFrame, released: pd.DataFrame, key_columns: Sequence[str] | None) -> list[str]:
    for name, df in (("true", true), ("released", released)):
        if "value" not in df.columns:
            raise PrivaggInputError(
                f"{name} table has no 'value' column (columns: {list(df.columns)}). "
                "Fix: pass tables with the key columns and 'value', e.g. Release.to_pandas()."
            )
    if key_columns is None:
        skip = {"value", "ci_low", "ci_high"}
        key_columns = [c for c in true.columns if c not in skip]
    key_columns = list(key_columns)
    for name, df in (("true", true), ("released", released)):
        missing = [c for c in key_columns if c not in df.columns]
        if missing:
            raise PrivaggInputError(
                f"{name} table lacks key column(s) {missing}. "
                "Fix: compare tables of the same statistic, level and time bin."
            )
    return key_columns


def align(
    true: pd.DataFrame, released: pd.DataFrame, key_columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """Align a true and a released table on their keys.

    Parameters
    ----------
    true
        True aggregate: key columns and ``value``.
    released
        Released table: key columns and ``value`` (NaN where suppressed).
    key_columns
        Key columns; by default every column of ``true`` except ``value``,
        ``ci_low`` and ``ci_high``.

    Returns
    -------
    pandas.DataFrame
        One row per key of either table with the key columns and
        ``true`` (0 where absent), ``released`` (0 where absent or NaN) and
        ``is_released`` (True where the release holds a non-NaN value).
    """
    keys = _key_columns(true, released, key_columns)
    left = true.loc[:, [*keys, "value"]].rename(columns={"value": "true"})
    right = released.loc[:, [*keys, "value"]].rename(columns={"value": "released"})
    if left.duplicated(keys).any() or right.duplicated(keys).any():
        raise PrivaggInputError(
            f"a table has duplicate keys on {keys}. Fix: aggregate to one row per key before comparing."
        )
    if keys:
        merged = left.merge(right, on=keys, how="outer", sort=False)
    else:
        merged = pd.concat([left.reset_index(drop=True), right.reset_index(drop=True)], axis=1)
    released_values = pd.to_numeric(merged["released"], errors="coerce").astype(float)
    merged["is_released"] = released_values.notna().to_numpy()
    merged["released"] = released_values.fillna(0.0).to_numpy()
    merged["true"] = pd.to_numeric(merged["true"], errors="coerce").astype(float).fillna(0.0).to_numpy()
    return merged.reset_index(drop=True)


def _errors(true: pd.DataFrame, released: pd.DataFrame, key_columns: Sequence[str] | None) -> pd.DataFrame:
    return align(true, released, key_columns)


def mae(true: pd.DataFrame, released: pd.DataFrame, key_columns: Sequence[str] | None = None) -> float:
    """Mean absolute error ``mean |x̂ - x|`` over all keys of either table.

    Returns NaN when both tables are empty.
    """
    a = _errors(true, released, key_columns)
    if not len(a):
        return float("nan")
    return float(np.mean(np.abs(a["released"] - a["true"])))


def rmse(true: pd.DataFrame, released: pd.DataFrame, key_columns: Sequence[str] | None = None) -> float:
    """Root mean squared error ``sqrt(mean (x̂ - x)^2)`` over all keys of either table."""
    a = _errors(true, released, key_columns)
    if not len(a):
        return float("nan")
    return float(np.sqrt(np.mean((a["released"] - a["true"]) ** 2)))


def _check_positive(name: str, value: float) -> None:
    if not np.isfinite(value) or value <= 0:
        raise PrivaggInputError(f"{name}={value!r}: must be a positive number. Fix: e.g. {name}=1.")


def mean_relative_error(
    true: pd.DataFrame,
    released: pd.DataFrame,
    key_columns: Sequence[str] | None = None,
    *,
    floor: float = 1.0,
) -> float:
    """Mean relative error with a floor: ``mean |x̂ - x| / max(x, floor)``.

    The floor keeps empty and tiny keys from dominating: with ``floor=10`` an
    error of 5 on a key of true value 0 counts as 0.5, not infinity.
    """
    _check_positive("floor", floor)
    a = _errors(true, released, key_columns)
    if not len(a):
        return float("nan")
    denom = np.maximum(a["true"].to_numpy(), floor)
    return float(np.mean(np.abs(a["released"].to_numpy() - a["true"].to_numpy()) / denom))


def share_within(
    true: pd.DataFrame,
    released: pd.DataFrame,
    key_columns: Sequence[str] | None = None,
    *,
    tolerance: float = 0.1,
    floor: float = 1.0,
) -> float:
    """Share of keys whose released value lies within ``tolerance`` (10%) of the truth.

    A key is within when ``|x̂ - x| <= tolerance * max(x, floor)``.
    """
    _check_positive("tolerance", tolerance)
    _check_positive("floor", floor)
    a = _errors(true, released, key_columns)
    if not len(a):
        return float("nan")
    t = a["true"].to_numpy()
    return float(np.mean(np.abs(a["released"].to_numpy() - t) <= tolerance * np.maximum(t, floor) + 1e-12))


def _area_column(keys: Sequence[str], area_column: str | None) -> str | None:
    if area_column is not None:
        if area_column not in keys:
            raise PrivaggInputError(
                f"area_column={area_column!r} is not a key column ({list(keys)}). Fix: pass one of them."
            )
        return area_column
    for c in AREA_COLUMNS:
        if c in keys:
            return c
    return None


def hotspot_spearman(
    true: pd.DataFrame,
    released: pd.DataFrame,
    key_columns: Sequence[str] | None = None,
    *,
    area_column: str | None = None,
    top_n: int | None = None,
) -> float:
    """Spearman correlation between the true and released ranking of hotspots.

    Values are summed per area (``area_column``; by default the first of
    ``cell_id``, ``zone_id``, ``district_id``, ``area`` among the keys, or
    every key when there is none) and the two totals are rank-correlated
    with :func:`scipy.stats.spearmanr`. With ``top_n`` only the true top
    ``top_n`` areas are compared (how well the hottest spots are ordered).

    Returns NaN when fewer than two areas remain or a ranking is constant.
    """
    keys = _key_columns(true, released, key_columns)
    a = align(true, released, keys)
    area = _area_column(keys, area_column)
    if area is not None:
        totals = a.groupby(area, sort=True)[["true", "released"]].sum()
    else:
        totals = a[["true", "released"]]
    if top_n is not None:
        if int(top_n) < 2:
            raise PrivaggInputError(f"top_n={top_n!r}: need at least 2 areas to rank. Fix: e.g. top_n=20.")
        totals = totals.sort_values("true", ascending=False, kind="stable").head(int(top_n))
    if len(totals) < 2 or totals["true"].nunique() < 2 or totals["released"].nunique() < 2:
        return float("nan")
    from scipy import stats  # imported here: scipy.stats takes seconds to import

    rho = stats.spearmanr(totals["true"].to_numpy(), totals["released"].to_numpy()).statistic
    return float(rho)


def _top_keys(values: pd.Series, k: int) -> set[int]:
    # Stable descending order, ties broken by the row order of the aligned table.
    order = np.argsort(-values.to_numpy(), kind="stable")
    return set(order[:k].tolist())


def top_k_recall(
    true: pd.DataFrame,
    released: pd.DataFrame,
    key_columns: Sequence[str] | None = None,
    *,
    k: int = 10,
) -> float:
    """Share of the true top-``k`` keys (e.g. OD pairs by flow) found among the released top-``k``.

    Keys not released (absent or suppressed) rank as 0. Ties are broken by
    key order, the same way for both tables.
    """
    if int(k) < 1:
        raise PrivaggInputError(f"k={k!r}: must be at least 1. Fix: e.g. k=10.")
    keys = _key_columns(true, released, key_columns)
    a = align(true, released, keys)
    if keys:
        a = a.sort_values(keys, kind="stable").reset_index(drop=True)
    k = min(int(k), len(a))
    if k == 0:
        return float("nan")
    true_top = _top_keys(a["true"], k)
    released_top = _top_keys(a["released"], k)
    return len(true_top & released_top) / k


def false_positive_keys(
    true: pd.DataFrame, released: pd.DataFrame, key_columns: Sequence[str] | None = None
) -> int:
    """Number of released keys (non-NaN value) whose true value is 0 or that are absent from the truth.

    Under private partition selection these are keys the release invented;
    with a public key domain every empty key is released and counts here.
    """
    a = align(true, released, key_columns)
    return int(((a["is_released"]) & (a["true"] <= 0)).sum())


def false_negative_keys(
    true: pd.DataFrame, released: pd.DataFrame, key_columns: Sequence[str] | None = None
) -> int:
    """Number of keys with a true value > 0 that the release dropped (absent or NaN)."""
    a = align(true, released, key_columns)
    return int(((~a["is_released"]) & (a["true"] > 0)).sum())


def direction_accuracy(
    true_a: pd.DataFrame,
    true_b: pd.DataFrame,
    released_a: pd.DataFrame,
    released_b: pd.DataFrame,
    key_columns: Sequence[str] | None = None,
    *,
    min_change: float = 0.0,
) -> float:
    """Share of like-for-like changes whose direction the releases get right.

    For each key, the true change is ``true_b - true_a`` and the released
    change ``released_b - released_a`` (missing or suppressed values count as
    0). Keys whose true change is larger than ``min_change`` in absolute
    value are scored: right when both changes have the same sign (a released
    change of exactly 0 is never right).

    Parameters
    ----------
    true_a, true_b
        True tables of the two periods (or places) being compared.
    released_a, released_b
        The released tables of the same two periods.
    key_columns
        Keys shared by the four tables (e.g. ``["cell_id", "hour"]``).
    min_change
        Ignore true changes of at most this size.

    Returns
    -------
    float
        The share, NaN when no key has a true change above ``min_change``.
    """
    keys = _key_columns(true_a, released_a, key_columns)
    a = align(true_a, released_a, keys).rename(columns={"true": "true_a", "released": "rel_a"})
    b = align(true_b, released_b, keys).rename(columns={"true": "true_b", "released": "rel_b"})
    m = a[[*keys, "true_a", "rel_a"]].merge(b[[*keys, "true_b", "rel_b"]], on=keys, how="outer")
    m = m.fillna(0.0)
    true_change = m["true_b"].to_numpy() - m["true_a"].to_numpy()
    released_change = m["rel_b"].to_numpy() - m["rel_a"].to_numpy()
    scored = np.abs(true_change) > min_change
    if not scored.any():
        return float("nan")
    right = np.sign(true_change[scored]) == np.sign(released_change[scored])
    return float(np.mean(right))


# Metrics the harness can compute from one (true, released) pair, by spec name.
METRICS: dict[str, Callable[..., float]] = {
    "mae": mae,
    "rmse": rmse,
    "mean_relative_error": mean_relative_error,
    "share_within_10pct": share_within,
    "hotspot_spearman": hotspot_spearman,
    "top_k_recall": top_k_recall,
    "false_positive_keys": false_positive_keys,
    "false_negative_keys": false_negative_keys,
}

# Whether a smaller value is better, for plots and verdicts.
LOWER_IS_BETTER: dict[str, bool] = {
    "mae": True,
    "rmse": True,
    "mean_relative_error": True,
    "share_within_10pct": False,
    "hotspot_spearman": False,
    "top_k_recall": False,
    "false_positive_keys": True,
    "false_negative_keys": True,
    "direction_accuracy": False,
}


def compute_metrics(
    true: pd.DataFrame,
    released: pd.DataFrame,
    names: Sequence[str] | None = None,
    key_columns: Sequence[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, float]:
    """Compute several metrics of :data:`METRICS` at once.

    Parameters
    ----------
    true, released
        The two tables.
    names
        Metric names; all of :data:`METRICS` by default.
    key_columns
        Key columns (see :func:`align`).
    options
        Per-metric keyword arguments, e.g. ``{"top_k_recall": {"k": 20}}``.
    """
    names = list(METRICS) if names is None else list(names)
    options = options or {}
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise PrivaggInputError(
            f"unknown metric(s) {unknown}. Fix: use some of {', '.join(METRICS)}."
        )
    return {n: float(METRICS[n](true, released, key_columns, **options.get(n, {}))) for n in names}
