"""The one differentially private release procedure behind every statistic.

:func:`release_query` runs, in this order (privacy rules 1-6 of the design):

1. validate every parameter (loss, delta, bounds, keys, budget, ci level);
2. resolve the inputs: validate the tables, drop subscribers without consent,
   fix the window (the privacy unit's window);
3. calibrate the mechanisms from the bounds and the requested loss, and
   check the budget can pay for it — a refused release stops here;
4. build contributions, bound them per subscriber (L0, Linf, clamping) and
   aggregate, through the engine;
5. charge the budget (ledger written) — only then
6. draw the noise from OpenDP, compute exact noise intervals, and return the
   :class:`~privagg.release.Release` with its :class:`~privagg.release.PrivacyRecord`.

Count statistics get one noisy count vector with sensitivity ``L0 * Linf``
(l1, discrete Laplace) or ``sqrt(L0) * Linf`` (l2, discrete Gaussian). Mean
statistics spend half the loss on a noisy count and half on a noisy clamped
sum (in integer units of a public resolution), and release
``clip(sum / max(count, 1), lower, upper)``.

With public keys every key is released. Without them, OpenDP's threshold
mechanism selects keys (``delta > 0``); for zCDP releases, half of ``delta``
goes to selection and half to reporting rho as epsilon.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from privagg.dp.bounds import Bounds, as_bounds
from privagg.dp.budget import Budget
from privagg.dp.units import Loss, PrivacyUnit
from privagg.dp.mechanisms import NoiseMechanism, check_delta, check_loss, gaussian, laplace, noise_half_width, zcdp_epsilon
from privagg.dp.partition_selection import ThresholdMechanism, calibrate
from privagg.engines import default_engine
from privagg.engines.base import Engine
from privagg.errors import PrivaggInputError
from privagg.keysets import KeySet, _kind
from privagg.queries import LEVELS, PER_USER_STATISTICS, TIME_COLUMN, Query, check_domain_size
from privagg.release import PrivacyRecord, Release
from privagg.releases.build import Inputs, clamp_range, contributions, dwell_range, key_columns
from privagg.releases.inputs import resolve

MEAN_STATISTICS = ("dwell_mean", "segment_mean")
DISTINCT_STATISTICS = ("footfall", "segment_counts", "micro_segments", "segment_mean")

BOUNDS_NOTE = (
    "Confidence intervals are exact quantiles of the noise distribution around the bounded aggregate; "
    "they do not cover the bias of contribution bounding (contributions dropped or clamped by the bounds)."
)


def default_bounds(query: Query) -> Bounds:
    """Bounds used when a release is given none (public, data-independent defaults)."""
    return {
        "footfall": Bounds(max_partitions=24, max_per_partition=1),
        "visits": Bounds(max_partitions=24, max_per_partition=2),
        "dwell_times": Bounds(max_partitions=12, max_per_partition=2),
        "dwell_mean": Bounds(max_partitions=12, max_per_partition=4),
        "od_flows": Bounds(max_partitions=8, max_per_partition=1),
        "segment_counts": Bounds(max_partitions=24, max_per_partition=1),
        "segment_mean": Bounds(max_partitions=1, max_per_partition=1),
        "micro_segments": Bounds(max_partitions=1, max_per_partition=1),
    }[query.statistic]


def effective_bounds(query: Query, bounds: Bounds) -> Bounds:
    """The bounds that determine sensitivity: per-user statistics touch one partition per subscriber;
    distinct-subscriber statistics count each subscriber at most once per partition; value clamps resolved."""
    l0 = 1 if query.statistic in PER_USER_STATISTICS else bounds.max_partitions
    linf = 1 if query.statistic in DISTINCT_STATISTICS else bounds.max_per_partition
    lower, upper = bounds.lower, bounds.upper
    if query.statistic == "dwell_mean":
        lower, upper = dwell_range(query, bounds)
    elif query.statistic == "segment_mean":
        lower, upper = clamp_range(query, bounds)
    elif query.statistic == "dwell_times":
        lower, upper = None, None
    return Bounds(max_partitions=l0, max_per_partition=linf, lower=lower, upper=upper)


def resolution(lower: float, upper: float) -> float:
    """Public grid on which clamped values are summed: a power of ten giving >= 1000 steps up to max(|lower|, |upper|)."""
    m = max(abs(lower), abs(upper))
    return 10.0 ** math.floor(math.log10(m / 1000.0))


@dataclass(frozen=True)
class Plan:
    """Calibrated mechanisms and the loss a release will spend."""

    count: NoiseMechanism | ThresholdMechanism
    total: NoiseMechanism | None  # the sum of a mean statistic
    loss: Loss
    unit: float  # resolution of sums (1 for counts)
    notes: tuple[str, ...]


def plan(query: Query, eff: Bounds, *, epsilon: float | None, rho: float | None, delta: float, public: bool) -> Plan:
    """Calibrate the noise for ``query`` under bounds ``eff`` and compute its loss."""
    is_mean = query.statistic in MEAN_STATISTICS
    share = 0.5 if is_mean else 1.0
    l0, linf = eff.max_partitions, eff.max_per_partition
    notes: list[str] = []
    unit = 1.0
    total: NoiseMechanism | None = None
    if is_mean:
        assert eff.lower is not None and eff.upper is not None
        unit = resolution(eff.lower, eff.upper)
        per_user = math.ceil(linf * max(abs(eff.lower), abs(eff.upper)) / unit - 1e-9)
        notes.append(
            "Budget split: half of the loss for the noisy count, half for the noisy clamped sum; "
            f"values clamped to [{eff.lower:g}, {eff.upper:g}] and summed in units of {unit:g}."
        )
    if epsilon is not None:
        eps = epsilon * share
        if public:
            count: NoiseMechanism | ThresholdMechanism = laplace(eps, l0 * linf)
            loss = Loss(epsilon=epsilon)
        else:
            count = calibrate("laplace", eps, delta, l0, linf)
            loss = Loss(epsilon=epsilon, delta=delta, selection_delta=delta)
        if is_mean:
            total = laplace(eps, l0 * per_user)
    else:
        assert rho is not None
        r = rho * share
        selection_delta = 0.0 if public else delta / 2
        if public:
            count = gaussian(r, math.sqrt(l0) * linf)
        else:
            count = calibrate("gaussian", r, selection_delta, l0, linf)
        if is_mean:
            total = gaussian(r, math.sqrt(l0) * per_user)
        conversion_delta = delta - selection_delta
        eps_at = zcdp_epsilon(rho, conversion_delta) if conversion_delta > 0 else math.inf
        loss = Loss(epsilon=eps_at, delta=delta, rho=rho, selection_delta=selection_delta)
        if not public:
            notes.append(
                f"delta={delta:g}: half ({selection_delta:g}) for partition selection, half for reporting rho as epsilon."
            )
    return Plan(count, total, loss, unit, tuple(notes))


def _data_kinds(query: Query, inputs: Inputs, columns: list[str]) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for c in columns:
        if c in LEVELS.values() or c.startswith("origin_") or c.startswith("destination_"):
            kinds[c] = "int"
        elif c == TIME_COLUMN:
            kinds[c] = "datetime"
        elif c == "dwell_min":
            kinds[c] = "int" if all(float(e).is_integer() for e in query.dwell_edges) else "float"
        elif c in inputs.users.columns:
            kinds[c] = _kind(inputs.users[c].dtype)
    return kinds


def _check_ci_level(ci_level: Any) -> float:
    if isinstance(ci_level, bool) or not isinstance(ci_level, (int, float)) or not 0 < float(ci_level) < 1:
        raise PrivaggInputError(f"ci_level={ci_level!r} must be in (0, 1). Fix: pass e.g. ci_level=0.95.")
    return float(ci_level)


def _fmt_time(ts: pd.Timestamp) -> str:
    return ts.isoformat(timespec="minutes") if ts.year > 1700 and ts.year < 2200 else "all time"


def privacy_unit(inputs: Inputs) -> str:
    if inputs.start.year < 1700:
        return "one subscriber (user_id) and all their attributes"
    return PrivacyUnit().describe(inputs.start, inputs.end)


def release_query(
    data: Any,
    query: Query,
    *,
    epsilon: float | None = None,
    rho: float | None = None,
    delta: float | None = None,
    bounds: Bounds | dict[str, Any] | None = None,
    budget: Budget | None = None,
    users: pd.DataFrame | None = None,
    cells: pd.DataFrame | None = None,
    ci_level: float = 0.95,
    engine: Engine | None = None,
) -> Release:
    """Release ``query`` on ``data`` with user-level differential privacy (see the module docstring).

    ``query.keys`` is the public key domain; ``None`` selects keys privately
    (needs ``delta > 0``). Returns a :class:`~privagg.release.Release`.
    """
    # 1. Parameters, before anything else.
    if epsilon is not None and rho is not None:
        raise PrivaggInputError(
            "pass exactly one of epsilon= (pure DP, discrete Laplace) or rho= (zCDP, discrete Gaussian), not both. "
            "Fix: drop one of them."
        )
    if epsilon is None and rho is None:
        raise PrivaggInputError(
            "no privacy loss given. Fix: pass epsilon= (pure DP, discrete Laplace) or rho= (zCDP, discrete Gaussian), e.g. epsilon=1.0."
        )
    epsilon = None if epsilon is None else check_loss("epsilon", epsilon)
    rho = None if rho is None else check_loss("rho", rho)
    keys = query.keys
    public = keys is not None
    delta = check_delta(
        delta, required=not public,
        why="when keys=None: keys are then selected privately, which has a small chance (delta) of revealing a rare key; "
            "alternatively pass public keys=KeySet... (e.g. KeySet.areas_by_time(cells, ...))",
    )
    bounds = as_bounds(bounds, default_bounds(query))
    ci_level = _check_ci_level(ci_level)
    if budget is not None and not isinstance(budget, Budget):
        raise PrivaggInputError(f"budget={budget!r} is not a privagg Budget. Fix: pass privagg.Budget(epsilon=...) or None.")
    engine = engine or default_engine()

    # 2. Inputs: schema, consent, window; keys against the data's types.
    inputs = resolve(data, query, users=users, cells=cells, keys=keys)
    columns = list(key_columns(query, inputs.users))
    if keys is not None:
        keys.check_columns(columns, _data_kinds(query, inputs, columns))
        check_domain_size(keys, query)
    eff = effective_bounds(query, bounds)

    # 3. Mechanisms and loss; refuse now if the budget cannot pay.
    p = plan(query, eff, epsilon=epsilon, rho=rho, delta=delta, public=public)
    parameters = _parameters(query, inputs, keys, p, ci_level, engine)
    if budget is not None:
        budget.check(p.loss, query.statistic)

    # 4. Bounded aggregate (no noise yet).
    contrib = contributions(query, inputs, keys, eff)
    domain, n_partitions = contrib.domain, contrib.n_partitions
    totals = engine.bounded_totals(contrib, eff, dense=public, sum_unit=p.unit)
    del contrib

    # 5. Charge the budget: from here on noise may exist.
    if budget is not None:
        budget.charge(p.loss, statistic=query.statistic, parameters=parameters)

    # 6. Noise, intervals, release.
    is_mean = query.statistic in MEAN_STATISTICS
    alpha = 1 - ci_level
    count_level = 1 - alpha / 2 if is_mean else ci_level
    if public:
        codes = np.arange(n_partitions, dtype=np.int64)
        assert isinstance(p.count, NoiseMechanism)
        noisy_counts = p.count.sample(totals.counts)
        true_sums = totals.sums
    else:
        assert isinstance(p.count, ThresholdMechanism)
        codes, noisy_counts = p.count.release(totals.codes, totals.counts)
        true_sums = None
        if totals.sums is not None:
            true_sums = totals.sums[np.searchsorted(totals.codes, codes)] if len(codes) else np.zeros(0)
    t_count = noise_half_width(p.count.kind, p.count.scale, count_level)
    table = domain.decode(codes)[columns]
    if not is_mean:
        table["value"] = noisy_counts
        table["ci_low"] = (noisy_counts - t_count).astype(float)
        table["ci_high"] = (noisy_counts + t_count).astype(float)
    else:
        assert p.total is not None and true_sums is not None and eff.lower is not None and eff.upper is not None
        noisy_sums = p.total.sample(np.asarray(true_sums, dtype=np.int64)).astype(float)
        t_sum = noise_half_width(p.total.kind, p.total.scale, 1 - alpha / 2)
        value, lo, hi = mean_with_interval(noisy_sums, noisy_counts, t_sum, t_count, p.unit, eff.lower, eff.upper)
        table["value"], table["ci_low"], table["ci_high"] = value, lo, hi
    record = _record(query, inputs, keys, p, eff, parameters)
    return Release(table.reset_index(drop=True), columns, record)


def mean_with_interval(noisy_sums: np.ndarray, noisy_counts: np.ndarray, t_sum: float, t_count: float, unit: float,
                       lower: float, upper: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``clip(sum / max(count, 1))`` and a conservative interval: the extremes of sum/count over the
    box of the two noise intervals (each at level 1 - alpha/2, so joint coverage >= 1 - alpha)."""
    s = noisy_sums * unit
    ts = t_sum * unit
    c = noisy_counts.astype(float)
    value = np.clip(s / np.maximum(c, 1.0), lower, upper)
    c_lo = np.maximum(c - t_count, 1.0)
    c_hi = np.maximum(c + t_count, 1.0)
    lo = np.minimum((s - ts) / c_lo, (s - ts) / c_hi)
    hi = np.maximum((s + ts) / c_lo, (s + ts) / c_hi)
    return value, np.clip(lo, lower, upper), np.clip(hi, lower, upper)


def _parameters(query: Query, inputs: Inputs, keys: KeySet | None, p: Plan, ci_level: float, engine: Engine) -> dict[str, Any]:
    out: dict[str, Any] = {
        "statistic": query.statistic,
        "level": query.level,
        "time_bin": query.time_bin,
        "start": _fmt_time(inputs.start),
        "end": _fmt_time(inputs.end),
        "ci_level": ci_level,
        "keys": f"public ({len(keys):,} keys)" if keys is not None else "private partition selection",
        "engine": engine.name,
    }
    if query.by:
        out["by"] = list(query.by)
    if query.statistic in ("footfall", "segment_counts"):
        out["source"] = query.source
    if query.statistic == "dwell_times":
        out["dwell_edges"] = list(query.dwell_edges)
    if query.statistic == "segment_mean":
        out["column"] = query.column
    if isinstance(p.count, ThresholdMechanism):
        out["threshold"] = p.count.threshold
    if p.total is not None:
        out["sum_noise_scale"] = p.total.scale
        out["sum_unit"] = p.unit
        out["budget_split"] = "count 1/2, sum 1/2"
    return out


def _record(query: Query, inputs: Inputs, keys: KeySet | None, p: Plan, eff: Bounds, parameters: dict[str, Any]) -> PrivacyRecord:
    notes = [BOUNDS_NOTE, *p.notes]
    if keys is None:
        notes.append(
            f"Keys were selected privately: only keys whose noisy count reached {parameters['threshold']} are released, "
            "so released counts are biased upward and absent keys may have subscribers."
        )
    if p.loss.rho is not None:
        notes.append("zCDP release: epsilon is the (epsilon, delta)-DP guarantee implied by rho at delta (Canonne, Kamath, Steinke 2020).")
    bounds = {k: v for k, v in eff.to_dict().items() if v is not None}
    return PrivacyRecord(
        statistic=query.statistic,
        method="dp",
        privacy_unit=privacy_unit(inputs),
        unit=PrivacyUnit().to_dict(inputs.start, inputs.end),
        epsilon=None if math.isinf(p.loss.epsilon) else p.loss.epsilon,
        delta=p.loss.delta,
        rho=p.loss.rho,
        formally_private=True,
        bounds=bounds,
        mechanism=p.count.name,
        noise_scale=float(p.count.scale),
        parameters=parameters,
        notes=tuple(notes),
    )
