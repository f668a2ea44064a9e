"""Like-for-like comparison of two releases: difference, ratio, significance.

:func:`compare` lines up two releases of the same shape key by key and gives,
per key, the difference and the ratio of the released values with
confidence intervals, and a flag for a change significant at the chosen
level. It uses only what was published: the released values and the noise
distribution stated in each release's privacy record. It is
post-processing and spends no budget.

Three ways of lining up
-----------------------
* **Same keys** (default): ``compare(a, b)`` matches rows with equal key
  columns, e.g. the same cells and hours released by two methods.
* **Two periods**: ``compare(this_week, last_week, shift={"time": "7D"})``
  adds 7 days to ``last_week``'s ``time`` before matching, so each hour is
  compared with the same hour one week earlier. The output keeps both
  times (``time`` from ``a``, ``time_b`` from ``b``).
* **Two areas**: take the two areas' rows with :func:`select` and match on
  the remaining keys: ``compare(select(rel, zone_id=3), select(rel,
  zone_id=5), on=["time"])``. Key columns left out of ``on`` are kept as
  ``<column>_a`` and ``<column>_b``. Within ``on`` each key must identify
  exactly one row of each release.

How the intervals are computed
------------------------------
The noise of ``a - b`` is the difference of two independent noises whose
distributions the privacy records state (:mod:`privagg.postprocess.noise`).

* Difference: ``[d - q_hi, d - q_lo]`` where ``q_lo, q_hi`` are the exact
  quantiles of ``noise_a - noise_b`` (computed by convolution for discrete
  noise), so the interval covers the true difference with probability at
  least ``level``.
* Ratio ``a / b``: Bonferroni: the exact intervals of ``a`` and ``b`` at
  level ``1 - (1 - level) / 2`` each, divided as intervals (``nonnegative``
  clips them at 0 first, for counts); together they cover the true ratio
  with probability at least ``level``. Unbounded when ``b``'s interval
  reaches 0.
* ``significant``: the difference's interval excludes 0 (a two-sided test
  at ``1 - level``).
* A release without noise (raw, suppression, coarsening) is exact: its
  side adds no width; two such releases give zero-width intervals, which are
  exact statements about the published numbers (not about people: such
  releases have no formal privacy guarantee).
* A release whose noise privagg cannot model from its record (a DP mean is
  a ratio of two noisy sums) falls back on its published intervals: the
  difference interval is ``[lo_a - hi_b, hi_a - lo_b]``, which holds with
  probability at least ``1 - alpha_a - alpha_b``; the result's ``level``
  says so.

The intervals cover noise only, not the bias of contribution bounding
(a subscriber's contributions beyond the bounds were dropped before noise).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from privagg.errors import PrivaggInputError
from privagg.postprocess.noise import NoiseModel, noise_interval, noise_model
from privagg.release import PrivacyRecord, Release

COMPARISON_COLUMNS = (
    "value_a", "value_b", "difference", "diff_ci_low", "diff_ci_high",
    "ratio", "ratio_ci_low", "ratio_ci_high", "significant",
)


@dataclass(frozen=True)
class Comparison:
    """The per-key comparison of two releases.

    Attributes
    ----------
    on
        Key columns the rows were matched on.
    level
        Confidence level the intervals are guaranteed to reach (the requested
        one, or lower when a side's noise could not be modelled; see ``notes``).
    method
        ``"noise distribution"`` (exact quantiles of the stated noise),
        ``"published intervals"`` (Bonferroni of the released intervals) or
        ``"exact"`` (neither release carries noise).
    privacy_a, privacy_b
        The two releases' privacy records.
    n_only_a, n_only_b
        Keys present in one release only (left out of the table).
    notes
        What a reader must know to interpret the table.
    """

    table: pd.DataFrame
    on: tuple[str, ...]
    level: float
    method: str
    privacy_a: PrivacyRecord
    privacy_b: PrivacyRecord
    n_only_a: int
    n_only_b: int
    notes: tuple[str, ...]

    def to_pandas(self) -> pd.DataFrame:
        """A copy of the table: the ``on`` keys, other keys as ``<col>_a``/``<col>_b``, then
        ``value_a, value_b, difference, diff_ci_low, diff_ci_high, ratio, ratio_ci_low,
        ratio_ci_high, significant``."""
        return self.table.copy()

    def __len__(self) -> int:
        return len(self.table)

    @property
    def n_significant(self) -> int:
        """Number of keys whose change is significant at ``level``."""
        return int(self.table["significant"].sum())

    def describe(self) -> str:
        """One paragraph saying what the table shows."""
        return (
            f"{self.privacy_a.statistic} compared on {', '.join(self.on) or 'all rows'}: {len(self)} keys, "
            f"{self.n_significant} with a change significant at {self.level:g} "
            f"(intervals from the {self.method}). " + " ".join(self.notes)
        )

    def __repr__(self) -> str:
        return (
            f"Comparison({self.privacy_a.statistic}, {len(self)} keys on {', '.join(self.on)}; "
            f"{self.n_significant} significant at {self.level:g}; {self.method})"
        )


def select(rel: Release, **where: Any) -> Release:
    """The rows of ``rel`` whose key columns equal the given values (or lie in given lists).

    Post-processing of published rows; the privacy record is kept, with a
    note of the selection.

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> keys = pa.KeySet.areas_by_time(world.cells, level="zone", start=world.start, end=world.end, time_bin="6h")
    >>> rel = pa.footfall(world, epsilon=1.0, level="zone", time_bin="6h", keys=keys)
    >>> len(select(rel, zone_id=0).to_pandas())
    4
    >>> mornings = select(rel, time=list(pd.date_range("2026-01-05 00:00", periods=2, freq="6h")))
    >>> sorted(mornings.to_pandas().time.dt.hour.unique().tolist())
    [0, 6]
    """
    import dataclasses

    if not where:
        raise PrivaggInputError("select needs at least one condition. Fix: e.g. select(rel, zone_id=3).")
    table = rel.to_pandas()
    mask = np.ones(len(table), dtype=bool)
    for column, value in where.items():
        if column not in rel.key_columns:
            raise PrivaggInputError(
                f"select: {column!r} is not a key column of this release. Fix: use one of {list(rel.key_columns)}."
            )
        values = list(value) if isinstance(value, (list, tuple, set, np.ndarray, pd.Index, pd.Series)) else [value]
        mask &= table[column].isin(values).to_numpy()
    if not mask.any():
        raise PrivaggInputError(
            f"select({', '.join(f'{k}={v!r}' for k, v in where.items())}) matches no row of the release. "
            "Fix: check the values against rel.to_pandas()."
        )
    note = "rows selected: " + ", ".join(f"{k}={v!r}" for k, v in where.items())
    privacy = dataclasses.replace(rel.privacy, notes=(*rel.privacy.notes, note))
    return Release(table.loc[mask], rel.key_columns, privacy)


def _side_model(rel: Release, name: str) -> tuple[str, NoiseModel | None, float]:
    """How one side's uncertainty is known: ("model", model, _) or ("intervals", None, alpha)."""
    record = rel.privacy
    # A mean is a ratio of two noisy sums: its error is not one noise draw of noise_scale.
    if "mean" in record.statistic.lower():
        return _intervals_side(rel, name)
    try:
        model = noise_model(record)
    except PrivaggInputError:
        return _intervals_side(rel, name)
    return "model", model, 0.0


def _intervals_side(rel: Release, name: str) -> tuple[str, NoiseModel | None, float]:
    table = rel.to_pandas()
    ok = table["value"].isna() | (table["ci_low"].notna() & table["ci_high"].notna())
    if not ok.all():
        raise PrivaggInputError(
            f"release {name} ({rel.privacy.statistic}) carries noise privagg cannot model from its privacy "
            f"record (mechanism={rel.privacy.mechanism!r}) and publishes no intervals. Fix: compare releases "
            "made by privagg's DP functions, or releases with intervals."
        )
    level = float(rel.privacy.parameters.get("ci_level", 0.95))
    return "intervals", None, 1.0 - level


def _parse_shift(column: str, offset: Any, series: pd.Series) -> Any:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        try:
            delta = pd.Timedelta(offset)
        except (ValueError, TypeError):
            delta = None
        if delta is None or pd.isna(delta):
            raise PrivaggInputError(
                f"shift[{column!r}]={offset!r} is not a duration. Fix: pass e.g. '7D' or pandas.Timedelta(days=7)."
            )
        return delta
    if isinstance(offset, bool) or not isinstance(offset, (int, float, np.integer, np.floating)):
        raise PrivaggInputError(
            f"shift[{column!r}]={offset!r}: column {column!r} is numeric, so the shift must be a number. "
            "Fix: pass a number, or shift a time column by a duration."
        )
    return offset


def compare(
    a: Release,
    b: Release,
    *,
    on: Sequence[str] | None = None,
    shift: Mapping[str, Any] | None = None,
    level: float = 0.95,
    nonnegative: bool = True,
) -> Comparison:
    """Compare release ``a`` with release ``b`` key by key: ``a - b`` and ``a / b``.

    Parameters
    ----------
    a, b
        Two releases of the same statistic with independent noise (two
        separate releases, or two disjoint selections of one release).
    on
        Key columns to match rows on; default: the key columns both share.
        Within them each key must identify one row of each release.
    shift
        Added to ``b``'s key columns before matching, e.g. ``{"time": "7D"}``
        to compare each bin of ``a`` with the bin one week earlier in ``b``.
    level
        Confidence level of the intervals and of the significance flag.
    nonnegative
        The true values cannot be negative (counts, durations): the ratio's
        intervals are clipped at 0. Pass ``False`` for signed statistics.

    Returns
    -------
    Comparison
        ``to_pandas()`` gives one row per key present in both releases.

    Raises
    ------
    PrivaggInputError
        On a bad level, unknown or ambiguous ``on`` columns, a bad ``shift``,
        key columns of different types, or no common key.

    Examples
    --------
    >>> import pandas as pd
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=2, seed=0)   # a tiny synthetic city, two days
    >>> def day(i):
    ...     start = world.start + pd.Timedelta(days=i)
    ...     keys = pa.KeySet.areas_by_time(world.cells, level="zone", start=start, end=start + pd.Timedelta("1D"),
    ...                                    time_bin="6h")
    ...     return pa.footfall(world, epsilon=1.0, level="zone", time_bin="6h", keys=keys)
    >>> cmp = compare(day(1), day(0), shift={"time": "1D"})     # Tuesday against Monday, from released values
    >>> list(cmp.to_pandas().columns)[:5]     # each Tuesday bin beside the Monday bin it is compared with
    ['zone_id', 'time', 'time_b', 'value_a', 'value_b']
    >>> len(cmp.to_pandas())                     # 2 zones x 4 bins of 6 hours
    8
    """
    for name, rel in (("a", a), ("b", b)):
        if not isinstance(rel, Release):
            raise PrivaggInputError(f"compare: {name} is a {type(rel).__name__}. Fix: pass privagg Release objects.")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise PrivaggInputError(f"level={level!r} must be strictly between 0 and 1. Fix: e.g. level=0.95.")
    if a.privacy.statistic != b.privacy.statistic:
        raise PrivaggInputError(
            f"compare: a is '{a.privacy.statistic}' but b is '{b.privacy.statistic}'. "
            "Fix: compare two releases of the same statistic."
        )
    if on is None:
        on = [c for c in a.key_columns if c in b.key_columns]
        if not on:
            raise PrivaggInputError(
                f"compare: a keyed by {list(a.key_columns)} and b by {list(b.key_columns)} share no key column. "
                "Fix: pass on=[...] naming columns both have."
            )
    else:
        on = [on] if isinstance(on, str) else list(on)
        for column in on:
            for name, rel in (("a", a), ("b", b)):
                if column not in rel.key_columns:
                    raise PrivaggInputError(
                        f"on={on!r}: {column!r} is not a key column of {name} ({list(rel.key_columns)}). "
                        "Fix: match on key columns both releases have."
                    )
    ta, tb = a.to_pandas(), b.to_pandas()
    shift = dict(shift or {})
    for column, offset in shift.items():
        if column not in on:
            raise PrivaggInputError(
                f"shift={shift!r}: {column!r} is not among the matched columns {on}. Fix: shift a column of on=."
            )
        tb[f"{column}__orig"] = tb[column]
        tb[column] = tb[column] + _parse_shift(column, offset, tb[column])
    for name, table, rel in (("a", ta, a), ("b", tb, b)):
        dup = table.duplicated(subset=on)
        if dup.any():
            rest = [c for c in rel.key_columns if c not in on]
            raise PrivaggInputError(
                f"release {name} has {int(dup.sum()):,} rows sharing the same {on}, so rows cannot be matched "
                f"(its other key columns: {rest}). Fix: add them to on=, or narrow the release with select()."
            )
    for column in on:
        if _kind(ta[column]) != _kind(tb[column]):
            raise PrivaggInputError(
                f"key column {column!r} is {ta[column].dtype} in a but {tb[column].dtype} in b. "
                "Fix: compare releases built with the same key types."
            )

    rename_a = {c: f"{c}_a" for c in a.key_columns if c not in on}
    rename_b = {c: f"{c}_b" for c in b.key_columns if c not in on}
    rename_b.update({f"{c}__orig": f"{c}_b" for c in shift})
    left = ta.rename(columns={**rename_a, "value": "value_a", "ci_low": "ci_low_a", "ci_high": "ci_high_a"})
    right = tb.rename(columns={**rename_b, "value": "value_b", "ci_low": "ci_low_b", "ci_high": "ci_high_b"})
    merged = left.merge(right, on=on, how="inner", sort=False)
    n_only_a = len(ta) - len(merged)
    n_only_b = len(tb) - len(merged)
    if merged.empty:
        raise PrivaggInputError(
            f"compare: no key of a matches a key of b on {on}"
            + (f" after shift={shift!r}" if shift else "")
            + ". Fix: check on= and shift= (e.g. shift={'time': '7D'} to compare with one week earlier)."
        )

    va = merged["value_a"].to_numpy(dtype=float)
    vb = merged["value_b"].to_numpy(dtype=float)
    diff = va - vb
    alpha = 1.0 - level
    kind_a, model_a, alpha_a = _side_model(a, "a")
    kind_b, model_b, alpha_b = _side_model(b, "b")
    notes: list[str] = []
    if kind_a == "model" and kind_b == "model":
        q_lo, q_hi = noise_interval([model_a, model_b], level, signs=[1, -1])
        d_lo, d_hi = diff - q_hi, diff - q_lo
        # Bonferroni halves for the ratio: each side at 1 - alpha / 2.
        a_lo, a_hi = _side_interval(va, model_a, 1 - alpha / 2)
        b_lo, b_hi = _side_interval(vb, model_b, 1 - alpha / 2)
        achieved = level
        method = "exact" if model_a is None and model_b is None else "noise distribution"
    else:
        a_lo, a_hi = _published_or_model(merged, "a", va, kind_a, model_a, 1 - alpha / 2)
        b_lo, b_hi = _published_or_model(merged, "b", vb, kind_b, model_b, 1 - alpha / 2)
        alpha_a = alpha_a if kind_a == "intervals" else alpha / 2
        alpha_b = alpha_b if kind_b == "intervals" else alpha / 2
        d_lo, d_hi = a_lo - b_hi, a_hi - b_lo
        achieved = 1.0 - alpha_a - alpha_b
        method = "published intervals"
        notes.append(
            "One release's noise is not a single known distribution (e.g. a DP mean), so its published "
            f"intervals were combined (Bonferroni); the intervals hold with probability >= {achieved:g}."
        )
    ratio = np.divide(va, vb, out=np.full_like(va, np.nan), where=vb != 0)
    ratio[(vb == 0) & (va > 0)] = np.inf
    r_lo, r_hi = _divide_intervals(a_lo, a_hi, b_lo, b_hi, nonnegative)
    significant = (d_lo > 0) | (d_hi < 0)
    significant &= ~np.isnan(diff)

    out = merged[[*on, *rename_a.values(), *rename_b.values()]].copy()
    out["value_a"] = va
    out["value_b"] = vb
    out["difference"] = diff
    out["diff_ci_low"] = d_lo
    out["diff_ci_high"] = d_hi
    out["ratio"] = ratio
    out["ratio_ci_low"] = r_lo
    out["ratio_ci_high"] = r_hi
    out["significant"] = significant
    out = out.reset_index(drop=True)

    if method == "exact":
        notes.append(
            "Neither release carries noise: differences and ratios are exact (zero-width intervals); "
            "such releases have no formal privacy guarantee."
        )
    elif model_a is None or model_b is None:
        notes.append("One release carries no noise; its values are taken as exact.")
    notes.append("Intervals cover the release noise only, not the bias of contribution bounding.")
    if any("threshold" in (r.privacy.mechanism or "").lower() for r in (a, b)):
        notes.append(
            "Keys were selected privately (threshold): released values near the threshold are biased upward, "
            "and the intervals describe the noise before selection."
        )
    if n_only_a or n_only_b:
        notes.append(f"{n_only_a} key(s) of a and {n_only_b} of b have no counterpart and are left out.")
    if a.privacy.parameters.get("level") != b.privacy.parameters.get("level") and "level" in a.privacy.parameters:
        notes.append("The two releases are at different spatial levels.")
    return Comparison(out, tuple(on), float(achieved), method, a.privacy, b.privacy, n_only_a, n_only_b, tuple(notes))


def _kind(series: pd.Series) -> str:
    """The key kind of a column, integers and floats alike ("number"), so that 3 and 3.0 keys compare."""
    from privagg.keysets import _kind as column_kind

    kind = column_kind(series.dtype)
    return "number" if kind in ("int", "float") else kind


def _side_interval(values: np.ndarray, model: NoiseModel | None, level: float) -> tuple[np.ndarray, np.ndarray]:
    q_lo, q_hi = noise_interval([model], level)
    return values - q_hi, values - q_lo


def _published_or_model(
    merged: pd.DataFrame, side: str, values: np.ndarray, kind: str, model: NoiseModel | None, level: float
) -> tuple[np.ndarray, np.ndarray]:
    if kind == "model":
        return _side_interval(values, model, level)
    return merged[f"ci_low_{side}"].to_numpy(dtype=float), merged[f"ci_high_{side}"].to_numpy(dtype=float)


def _divide_intervals(
    a_lo: np.ndarray, a_hi: np.ndarray, b_lo: np.ndarray, b_hi: np.ndarray, nonnegative: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Interval of x / y for x in [a_lo, a_hi], y in [b_lo, b_hi] (unbounded where y may be 0)."""
    a_lo, a_hi, b_lo, b_hi = (np.asarray(x, dtype=float).copy() for x in (a_lo, a_hi, b_lo, b_hi))
    if nonnegative:
        a_lo, a_hi, b_lo, b_hi = (np.maximum(x, 0.0) for x in (a_lo, a_hi, b_lo, b_hi))
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        corners = np.stack([a_lo / b_lo, a_lo / b_hi, a_hi / b_lo, a_hi / b_hi])
        lo = np.nanmin(np.where(np.isfinite(corners), corners, np.nan), axis=0) if len(a_lo) else a_lo
        hi = np.nanmax(np.where(np.isfinite(corners), corners, np.nan), axis=0) if len(a_lo) else a_hi
    spans_zero = (b_lo <= 0) & (b_hi >= 0)
    if nonnegative:
        # y may be 0: x / y is unbounded above; below it is at least a_lo / b_hi (>= 0).
        lo = np.where(spans_zero, np.where(b_hi > 0, a_lo / np.where(b_hi > 0, b_hi, 1.0), 0.0), lo)
        hi = np.where(spans_zero, np.inf, hi)
    else:
        lo = np.where(spans_zero, -np.inf, lo)
        hi = np.where(spans_zero, np.inf, hi)
    nan = np.isnan(a_lo) | np.isnan(a_hi) | np.isnan(b_lo) | np.isnan(b_hi)
    return np.where(nan, np.nan, lo), np.where(nan, np.nan, hi)
