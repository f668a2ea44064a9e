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

Bounds and mechanism (public keys, count statistics): with ``bounds=None``
a share ``bound_share`` (3%) of the loss buys noisy histograms of
per-subscriber contributions and the bounds of least expected error are used
(:mod:`privagg.dp.bound_choice`; :func:`resolve_bounds` says which bounds a
call will use). ``mechanism="auto"`` uses the discrete Laplace or the
discrete Gaussian, whichever has the smaller variance at those bounds; an
``epsilon`` request may use the Gaussian only when ``delta > 0``, at the
largest rho whose (epsilon, delta) conversion fits the epsilon left, and the
release is then recorded as (epsilon, delta)-DP. Hand-set bounds that drop
more than 10% of the contributions are reported on screen
(:class:`~privagg.dp.bounds.BoundsWarning`), never in the record: that share
comes from the raw data.

With public keys every key is released. Without them, OpenDP's threshold
mechanism selects keys (``delta > 0``); for zCDP releases, half of ``delta``
goes to selection and half to reporting rho as epsilon.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from privagg.dp.bound_choice import DEFAULT_SHARE, MECHANISMS, BoundChoice, Budgets, choose_bounds, choose_mechanism, profiles, rho_for_epsilon
from privagg.dp.bounds import Bounds, BoundsWarning, as_bounds
from privagg.dp.budget import Budget
from privagg.dp.units import Loss, PrivacyUnit
from privagg.dp.mechanisms import NoiseMechanism, check_delta, check_loss, gaussian, laplace, noise_half_width, zcdp_epsilon
from privagg.dp.partition_selection import ThresholdMechanism, calibrate
from privagg.engines import default_engine
from privagg.engines.base import Engine
from privagg.errors import PrivaggInputError
from privagg.keysets import KeySet, _kind
from privagg.queries import LEVELS, PER_USER_STATISTICS, TIME_COLUMN, Query, check_domain_size, parse_time_bin
from privagg.release import PrivacyRecord, Release
from privagg.releases.build import Inputs, clamp_range, contributions, dwell_range, key_columns
from privagg.releases.inputs import resolve, table_name, window
from privagg.schema import TAG_PREFIX

MEAN_STATISTICS = ("dwell_mean", "segment_mean")
#: Statistics whose bounds are chosen privately when none are given (count vectors over public keys).
CHOSEN_STATISTICS = ("footfall", "visits", "dwell_times", "od_flows", "segment_counts")
#: Hand-set bounds dropping more than this share of the contributions are reported on screen.
DROP_WARNING_SHARE = 0.10
#: Inputs up to this many rows are bounded in the engine's three steps when bounds are hand-set,
#: which gives the dropped share for the on-screen warning; larger ones take the one-sort path.
WARN_ROWS = 5_000_000
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


#: Public prior of the choice's fallback: records (stays, trips) and distinct keys a subscriber
#: typically adds per day, and records per key per day of a key's time bin.
PRIOR_RECORDS_PER_DAY = 16 / 7
PRIOR_KEYS_PER_DAY = 4
PRIOR_PER_KEY_PER_DAY = 4


def structural_bounds(query: Query, start: pd.Timestamp, end: pd.Timestamp) -> Bounds:
    """Public fallback bounds of the private choice, derived from the query's structure only.

    Used when the noisy histograms show nothing above their noise (little budget): the window's
    length in days ``d`` and the time bin's length in days ``b`` (the whole window without a bin)
    give, for distinct-subscriber statistics, ``L0 = 4 d`` keys; for record counts a total bound
    ``C = round(16 d / 7)`` (16 per week) with a per-key cap ``4 b`` (none when it does not bind).
    Data-independent, so it costs nothing; the constants are a public prior (mobility records per
    subscriber-day), not fitted to any release's data.

    >>> q = Query("visits", level="zone", time_bin="1D")
    >>> structural_bounds(q, pd.Timestamp("2026-01-05"), pd.Timestamp("2026-01-12")).max_total
    16
    """
    days = max((end - start) / pd.Timedelta(days=1), 1 / 24)
    bin_days = days if query.time_bin is None else min(days, parse_time_bin(query.time_bin) / pd.Timedelta(days=1))
    if query.statistic in DISTINCT_STATISTICS:
        return Bounds(max_partitions=max(1, round(PRIOR_KEYS_PER_DAY * days)), max_per_partition=1)
    c = max(1, round(PRIOR_RECORDS_PER_DAY * days))
    cap = min(c, max(1, math.ceil(PRIOR_PER_KEY_PER_DAY * bin_days)))
    return Bounds(max_partitions=c, max_per_partition=cap, max_total=c)


def effective_bounds(query: Query, bounds: Bounds) -> Bounds:
    """The bounds that determine sensitivity: per-user statistics touch one partition per subscriber;
    distinct-subscriber statistics count each subscriber at most once per partition; value clamps resolved."""
    l0 = 1 if query.statistic in PER_USER_STATISTICS else bounds.max_partitions
    linf = 1 if query.statistic in DISTINCT_STATISTICS else bounds.max_per_partition
    total = bounds.max_total
    if query.statistic in PER_USER_STATISTICS or query.statistic in MEAN_STATISTICS:
        total = None  # one row per subscriber, or sums whose sensitivity comes from L0 x Linf only
    elif total is not None and query.statistic in DISTINCT_STATISTICS:
        l0, total = min(l0, total), None  # a record is a key: the total bound is a key bound
    elif total is not None and total >= l0 * linf:
        total = None  # does not bind
    lower, upper = bounds.lower, bounds.upper
    if query.statistic == "dwell_mean":
        lower, upper = dwell_range(query, bounds)
    elif query.statistic == "segment_mean":
        lower, upper = clamp_range(query, bounds)
    elif query.statistic == "dwell_times":
        lower, upper = None, None
    return Bounds(max_partitions=l0, max_per_partition=linf, lower=lower, upper=upper, max_total=total)


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
            count = calibrate("laplace", eps, delta, l0, linf, eff.max_total)
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
            count = calibrate("gaussian", r, selection_delta, l0, linf, eff.max_total)
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
    mechanism: str = "auto",
    bound_share: float = DEFAULT_SHARE,
) -> Release:
    """Release ``query`` on ``data`` with user-level differential privacy (see the module docstring).

    ``query.keys`` is the public key domain; ``None`` selects keys privately
    (needs ``delta > 0``). ``bounds=None`` chooses the bounds privately (public
    keys, count statistics; else the statistic's public defaults);
    ``bounds="default"`` uses the public defaults. ``mechanism`` is
    ``"auto"`` (the lower-variance noise), ``"laplace"`` or ``"gaussian"``.
    ``bound_share`` is the share of the loss spent choosing bounds.
    Returns a :class:`~privagg.release.Release`.

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> keys = pa.KeySet.areas_by_time(world.cells, level="zone", start=world.start, end=world.end, time_bin="6h")
    >>> query = pa.Query("footfall", level="zone", time_bin="6h", start=world.start, end=world.end, keys=keys)
    >>> budget = pa.Budget(epsilon=2.0)
    >>> rel = pa.release_query(world, query, epsilon=0.5, budget=budget)
    >>> budget.remaining["epsilon"]               # charged before any noise was drawn
    1.5
    >>> rel.privacy.parameters["mechanism_rule"].split(":")[0]
    'auto'
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
    if mechanism not in MECHANISMS:
        raise PrivaggInputError(f"mechanism={mechanism!r} is unknown. Fix: use one of {', '.join(map(repr, MECHANISMS))}.")
    if isinstance(bound_share, bool) or not isinstance(bound_share, (int, float)) or not 0 < float(bound_share) <= 0.5:
        raise PrivaggInputError(f"bound_share={bound_share!r} must be in (0, 0.5]. Fix: pass e.g. bound_share=0.05.")
    fixed = resolve_bounds(query, bounds)
    ci_level = _check_ci_level(ci_level)
    if budget is not None and not isinstance(budget, Budget):
        raise PrivaggInputError(f"budget={budget!r} is not a privagg Budget. Fix: pass privagg.Budget(epsilon=...) or None.")
    engine = engine or default_engine()

    # 2. Inputs: schema, consent, window; keys against the data's types. An engine with its own
    # frames (Spark) reads them itself, and runs every data-heavy step below.
    native = engine.reads(data)
    if native:
        inputs = _native_inputs(engine, data, query, users=users, cells=cells, keys=keys)
    else:
        inputs = resolve(data, query, users=users, cells=cells, keys=keys)
    columns = list(key_columns(query, inputs.users))
    if keys is not None:
        keys.check_columns(columns, _data_kinds(query, inputs, columns))
        check_domain_size(keys, query)
    counts_path = public and query.statistic not in MEAN_STATISTICS
    chosen = fixed is None and counts_path and query.statistic in CHOSEN_STATISTICS
    if fixed is None:
        fixed = default_bounds(query) if not chosen else None

    # 3. Mechanisms and loss; refuse now if the budget cannot pay. The loss is fixed before any
    # data is read: with chosen bounds or mechanism it is the request's envelope.
    choice: BoundChoice | None = None
    budgets: Budgets | None = None
    if counts_path:
        share = bound_share if chosen else 0.0
        budgets, loss, choice_epsilon = split_loss(epsilon=epsilon, rho=rho, delta=delta, share=share, mechanism=mechanism)
        eff = effective_bounds(query, fixed) if fixed is not None else None
        p = _count_plan(eff, budgets, loss, mechanism) if eff is not None else None
    else:
        _check_explicit_mechanism(mechanism, epsilon=epsilon, public=public)
        eff = effective_bounds(query, fixed)
        p = plan(query, eff, epsilon=epsilon, rho=rho, delta=delta, public=public)
        loss = p.loss
    parameters = _parameters(query, inputs, keys, p, ci_level, engine)
    if budget is not None:
        budget.check(loss, query.statistic)

    # 4. Contributions (no noise yet); with chosen bounds the charge comes first, as the choice draws noise.
    if native:
        define = functools.partial(batch_contributions, query, eff, inputs.cells, inputs.start, inputs.end)
        contrib = engine.contributions(inputs, keys, define, has_values=query.statistic in MEAN_STATISTICS)
    else:
        contrib = contributions(query, inputs, keys, eff)
    domain, n_partitions = contrib.domain, contrib.n_partitions
    dropped: float | None = None
    if chosen:
        assert budgets is not None
        if budget is not None:
            budget.charge(loss, statistic=query.statistic, parameters=parameters)
        if native:
            profile = engine.profile(contrib, distinct=query.statistic in DISTINCT_STATISTICS)
        else:
            pairs = engine.per_user_partition(_whole(contrib))
            del contrib
            profile = profiles(pairs.privacy_ids, pairs.counts, distinct=query.statistic in DISTINCT_STATISTICS)
        choice = choose_bounds(profile, distinct=query.statistic in DISTINCT_STATISTICS, n_keys=n_partitions,
                               choice_epsilon=choice_epsilon, budgets=budgets, mechanism=mechanism,
                               fallback=effective_bounds(query, structural_bounds(query, inputs.start, inputs.end)),
                               rescale=query.statistic not in DISTINCT_STATISTICS)
        del profile
        eff = effective_bounds(query, choice.bounds)
        p = Plan(choice.mechanism, None, loss, 1.0, ())
        if native:
            totals = engine.bounded_totals(contrib, eff, dense=True)
        else:
            totals = engine.aggregate(engine.bound_contributions(pairs, eff), n_partitions, dense=True)
            del pairs
    else:
        assert p is not None and eff is not None
        if native:
            totals = engine.bounded_totals(contrib, eff, dense=public, sum_unit=p.unit)
        elif counts_path and _rows(contrib) <= WARN_ROWS:
            pairs = engine.per_user_partition(_whole(contrib))
            raw = float(np.sum(pairs.counts))
            totals = engine.aggregate(engine.bound_contributions(pairs, eff), n_partitions, dense=True)
            dropped = 1.0 - float(totals.counts.sum()) / raw if raw > 0 else 0.0
            del pairs
        else:
            totals = engine.bounded_totals(contrib, eff, dense=public, sum_unit=p.unit)
        del contrib
        # 5. Charge the budget: from here on noise may exist.
        if budget is not None:
            budget.charge(loss, statistic=query.statistic, parameters=parameters)
    if dropped is not None and dropped > DROP_WARNING_SHARE:
        # From the raw data: shown to whoever runs the release, never written into the record.
        warnings.warn(
            f"{query.statistic}: the {'public default' if bounds is None or isinstance(bounds, str) else 'hand-set'} "
            f"bounds {_bounds_text(eff)} drop {dropped:.0%} of the contributions, "
            "so released values are biased low (the intervals cover noise, not this). "
            "Fix: pass bounds=None to choose bounds privately, or raise them.",
            BoundsWarning, stacklevel=2,
        )

    # 6. Noise, intervals, release.
    is_mean = query.statistic in MEAN_STATISTICS
    alpha = 1 - ci_level
    count_level = 1 - alpha / 2 if is_mean else ci_level
    native_sums = None
    if native:
        # Noise in the engine's workers, collected once (the budget is charged above).
        noisy = engine.draw_noise(totals, p.count, p.total if is_mean else None, public=public)
        codes, noisy_counts, native_sums = noisy.codes, noisy.counts, noisy.sums
        true_sums = native_sums
    elif public:
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
        # With chosen bounds, divided by the estimated kept share (post-processing of the choice's
        # histograms, see BoundChoice.kept_share) and rounded back to whole counts.
        factor = 1.0 if choice is None else 1.0 / choice.kept_share
        table["value"] = noisy_counts if factor == 1.0 else np.rint(noisy_counts * factor).astype(np.int64)
        table["ci_low"] = (noisy_counts - t_count).astype(float) * factor
        table["ci_high"] = (noisy_counts + t_count).astype(float) * factor
    else:
        assert p.total is not None and true_sums is not None and eff.lower is not None and eff.upper is not None
        noisy_sums = native_sums if native else p.total.sample(np.asarray(true_sums, dtype=np.int64)).astype(float)
        t_sum = noise_half_width(p.total.kind, p.total.scale, 1 - alpha / 2)
        value, lo, hi = mean_with_interval(noisy_sums, noisy_counts, t_sum, t_count, p.unit, eff.lower, eff.upper)
        table["value"], table["ci_low"], table["ci_high"] = value, lo, hi
    parameters = {**parameters, **_choice_parameters(chosen, fixed, bounds, choice, bound_share, mechanism, p)}
    record = _record(query, inputs, keys, p, eff, parameters, choice=choice, budgets=budgets)
    return Release(table.reset_index(drop=True), columns, record)


def _native_inputs(engine: Engine, data: Any, query: Query, *, users: Any, cells: Any, keys: KeySet | None) -> Any:
    """Inputs for an engine that reads its own frames: the table, the user columns read, the window."""
    from privagg.world import World

    world_start = world_end = None
    if isinstance(data, World):
        world_start, world_end = data.meta.get("start"), data.meta.get("end")
        users = data.users if users is None else users
        cells = data.cells if cells is None else cells
    start, end = window(query, keys, world_start, world_end)
    user_columns = list(users.columns) if users is not None else []
    needed = list(query.by)
    if query.statistic == "micro_segments" and not needed:
        needed = [c for c in user_columns if isinstance(c, str) and c.startswith(TAG_PREFIX)]
    if query.statistic == "segment_mean" and query.column:
        needed.append(query.column)
    if query.statistic in ("segment_mean", "micro_segments") and query.level is not None:
        needed.append("home_cell")
    if query.level in ("zone", "district") or (query.statistic in ("segment_mean", "micro_segments") and query.level is not None):
        if cells is None:
            raise PrivaggInputError(
                f"cells= is required for level={query.level!r} (to map cells to {LEVELS[query.level]}). Fix: pass cells=world.cells."
            )
    return engine.resolve(data, query, table=table_name(query), users=users, cells=cells, start=start, end=end,  # type: ignore[attr-defined]
                          needed_user_columns=tuple(dict.fromkeys(c for c in needed if c in user_columns)))


def _everyone(user_ids: np.ndarray) -> np.ndarray:
    return np.ones(len(user_ids), dtype=bool)


def batch_contributions(query: Query, bounds: Bounds | None, cells: pd.DataFrame | None, start: pd.Timestamp,
                        end: pd.Timestamp, table: pd.DataFrame | None, users: pd.DataFrame,
                        keys: KeySet | None) -> Any:
    """The statistic's contributions of one batch of consenting rows (the definition an engine that reads
    its own frames runs on each batch; ``users`` holds the batch's subscribers and the columns read)."""
    inputs = Inputs(table, users, cells, start, end, _everyone)
    return _whole(contributions(query, inputs, keys, bounds))


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


def _parameters(query: Query, inputs: Inputs, keys: KeySet | None, p: Plan | None, ci_level: float, engine: Engine) -> dict[str, Any]:
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
    if p is not None and isinstance(p.count, ThresholdMechanism):
        out["threshold"] = p.count.threshold
    if p is not None and p.total is not None:
        out["sum_noise_scale"] = p.total.scale
        out["sum_unit"] = p.unit
        out["budget_split"] = "count 1/2, sum 1/2"
    return out


def _record(query: Query, inputs: Inputs, keys: KeySet | None, p: Plan, eff: Bounds, parameters: dict[str, Any],
            *, choice: BoundChoice | None = None, budgets: Budgets | None = None) -> PrivacyRecord:
    notes = [BOUNDS_NOTE, *p.notes]
    if choice is not None:
        notes.append(choice.describe())
    if budgets is not None and p.loss.rho is None and isinstance(p.count, NoiseMechanism) and p.count.kind == "gaussian":
        assert budgets.rho is not None
        notes.append(
            f"Discrete Gaussian noise at rho={budgets.rho:.4g}, the largest rho whose (epsilon, delta)-DP conversion "
            f"(Canonne, Kamath, Steinke 2020) is at most epsilon={budgets.epsilon:.4g} at delta={p.loss.delta:g}; "
            f"the release is (epsilon={p.loss.epsilon:.4g}, delta={p.loss.delta:g})-DP by sequential composition."
        )
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


# ---------------------------------------------------------------------- bounds and mechanism
def resolve_bounds(query: Query, bounds: Bounds | dict[str, Any] | str | None) -> Bounds | None:
    """The bounds a release of ``query`` will use as given, or ``None`` when they are chosen privately.

    ``None`` -> chosen privately for count statistics (``None`` is returned;
    :func:`release_query` falls back to :func:`default_bounds` with private
    keys or for means). ``"default"`` -> :func:`default_bounds`. A
    :class:`Bounds` or dict -> those bounds. A publication model that must
    know the noise in advance passes explicit bounds (e.g. ``"default"``)
    and an explicit ``mechanism``.

    >>> resolve_bounds(Query("footfall"), None) is None
    True
    >>> resolve_bounds(Query("footfall"), "default").max_partitions
    24
    """
    if bounds is None:
        return None
    if isinstance(bounds, str):
        if bounds != "default":
            raise PrivaggInputError(f"bounds={bounds!r} is unknown. Fix: pass None (chosen privately), 'default' or Bounds(...).")
        return default_bounds(query)
    return as_bounds(bounds, default_bounds(query))


def split_loss(*, epsilon: float | None, rho: float | None, delta: float, share: float,
               mechanism: str = "auto") -> tuple[Budgets, Loss, float]:
    """Split a count release's loss between the bound choice (``share``) and the noise.

    Returns ``(budgets for the noise, the release's loss, pure epsilon of the choice)``.

    * ``epsilon``: the choice spends ``share * epsilon``; the discrete Laplace
      gets the rest; the discrete Gaussian (only with ``delta > 0``) gets the
      largest rho whose (epsilon, delta) conversion is at most the rest. The
      loss is (epsilon, delta) when the Gaussian may be used, else epsilon.
    * ``rho``: the choice spends ``share * rho`` (pure epsilon ``sqrt(2 share rho)``);
      the Gaussian gets the rest of rho; the Laplace the pure epsilon ``sqrt(2 rest)``
      (epsilon-DP implies epsilon^2/2-zCDP). The loss is rho, reported as epsilon at delta.
    """
    if epsilon is not None:
        choice = share * epsilon
        rest = epsilon - choice
        gaussian_ok = delta > 0 and mechanism != "laplace"
        if mechanism == "gaussian" and not gaussian_ok:
            raise PrivaggInputError(
                "mechanism='gaussian' with epsilon= needs delta > 0 (the Gaussian gives (epsilon, delta)-DP, not pure DP). "
                "Fix: pass delta= (e.g. delta=1e-9), pass rho= instead of epsilon=, or use mechanism='auto'."
            )
        budgets = Budgets(epsilon=rest, rho=rho_for_epsilon(rest, delta) if gaussian_ok else None)
        loss = Loss(epsilon=epsilon, delta=delta) if gaussian_ok else Loss(epsilon=epsilon)
        return budgets, loss, choice
    assert rho is not None
    rest = rho * (1 - share)
    choice = math.sqrt(2 * rho * share) if share > 0 else 0.0
    budgets = Budgets(epsilon=math.sqrt(2 * rest), rho=None if mechanism == "laplace" else rest)
    eps_at = zcdp_epsilon(rho, delta) if delta > 0 else math.inf
    return budgets, Loss(epsilon=eps_at, delta=delta, rho=rho), choice


def _count_plan(eff: Bounds, budgets: Budgets, loss: Loss, mechanism: str) -> Plan:
    return Plan(choose_mechanism(budgets, eff, mechanism), None, loss, 1.0, ())


def _check_explicit_mechanism(mechanism: str, *, epsilon: float | None, public: bool) -> None:
    """Private keys and means use Laplace for epsilon and Gaussian for rho; refuse a different explicit choice."""
    implied = "laplace" if epsilon is not None else "gaussian"
    if mechanism not in ("auto", implied):
        where = "private partition selection (keys=None)" if not public else "mean statistics"
        raise PrivaggInputError(
            f"mechanism={mechanism!r} is not available for {where} with {'epsilon' if epsilon is not None else 'rho'}=. "
            f"Fix: use mechanism='auto' or {implied!r}, or pass {'rho' if implied == 'laplace' else 'epsilon'}= instead."
        )


def _whole(contrib: Any) -> Any:
    from privagg.engines.base import ContributionChunks

    return contrib.materialize() if isinstance(contrib, ContributionChunks) else contrib


def _rows(contrib: Any) -> int:
    from privagg.engines.base import ContributionChunks

    return contrib.n_rows if isinstance(contrib, ContributionChunks) else len(contrib)


def _bounds_text(b: Bounds) -> str:
    text = f"max_partitions={b.max_partitions}, max_per_partition={b.max_per_partition}"
    return text + (f", max_total={b.max_total}" if b.max_total is not None else "")


def _choice_parameters(chosen: bool, fixed: Bounds | None, given: Any, choice: BoundChoice | None, share: float,
                       mechanism: str, p: Plan) -> dict[str, Any]:
    if choice is not None:
        out: dict[str, Any] = {
            "bounds_rule": ("chosen privately: least expected truncation bias + noise over noisy histograms of "
                            "per-subscriber contributions (privagg.dp.bound_choice)") if not choice.fell_back else
                           ("chosen privately: the noisy histograms showed too little above their noise, "
                            "so public fallback bounds from the query's window and time bin "
                            "(privagg.releases.core.structural_bounds; for record counts, the total bound of least "
                            "expected error under a public prior of that mean, privagg.dp.bound_choice.prior_choice)"),
            "bounds_share": share,
            "bounds_epsilon": choice.epsilon,
            "bounds_shape": choice.bounds.shape,
            "kept_share": choice.kept_share,
        }
    elif given is None or isinstance(given, str):
        out = {"bounds_rule": "public defaults of the statistic"}
    else:
        out = {"bounds_rule": "hand-set"}
    out["mechanism_rule"] = ("auto: the lower-variance of discrete Laplace and discrete Gaussian at these bounds"
                             if mechanism == "auto" else f"requested: {mechanism}")
    out["mechanism"] = p.count.kind
    return out


def release_loss(query: Query, *, epsilon: float | None = None, rho: float | None = None, delta: float | None = None,
                 bounds: Bounds | dict[str, Any] | str | None = None, mechanism: str = "auto") -> Loss:
    """The loss :func:`release_query` charges for ``query`` with these settings, computed without any data.

    With chosen bounds or mechanism it is the request's envelope (see :func:`split_loss`), so it never
    depends on what the choice finds.
    """
    epsilon = None if epsilon is None else check_loss("epsilon", epsilon)
    rho = None if rho is None else check_loss("rho", rho)
    if (epsilon is None) == (rho is None):
        raise PrivaggInputError("pass exactly one of epsilon= or rho=. Fix: drop one of them, or give one.")
    public = query.keys is not None
    delta = check_delta(delta, required=not public, why="when keys=None (private partition selection)")
    if public and query.statistic not in MEAN_STATISTICS:
        return split_loss(epsilon=epsilon, rho=rho, delta=delta, share=0.0, mechanism=mechanism)[1]
    fixed = resolve_bounds(query, bounds) or default_bounds(query)
    return plan(query, effective_bounds(query, fixed), epsilon=epsilon, rho=rho, delta=delta, public=public).loss
