"""Hierarchical consistency across cell -> zone -> district (Hay et al. 2010).

Releasing the same statistic at several spatial levels gives noisy counts
whose sums disagree: the cells of a zone do not add up to the zone. The
least-squares estimate that makes them agree, weighting each level by the
inverse of its noise variance, is both consistent and more accurate than
any single level (Hay, Rastogi, Miklau and Suciu, "Boosting the accuracy of
differentially private histograms through consistency", VLDB 2010).

Method
------
For every combination of the non-spatial keys (time bin, segment ...) the
areas form a tree given by the public ``cells`` table. Each node ``v`` has a
noisy observation ``y_v`` of the sum ``S_v`` of the leaves below it, with
noise variance ``s_v`` (the variance of its level's noise). The weighted
least-squares estimate minimises ``sum_v (y_v - S_v)^2 / s_v`` over leaf
values, and on a tree it has an exact two-pass form (Hay et al.'s algorithm
generalised to arbitrary fan-out and per-level variances):

1. bottom-up, the best estimate of ``S_v`` from the observations inside the
   subtree of ``v`` and its variance::

       zc_v = sum_children z_c,  Vc_v = sum_children V_c
       z_v  = (y_v Vc_v + zc_v s_v) / (s_v + Vc_v),  V_v = s_v Vc_v / (s_v + Vc_v)

   (leaves: ``z = y``, ``V = s``);
2. top-down, from the root's ``u = z``, each child gets its share of the
   parent's correction in proportion to its variance::

       u_c = z_c + V_c / Vc_v * (u_v - zc_v)

Both passes are sparse matrix products over all time bins at once. The
tests check the result against a dense least-squares solve.

Intervals of the consistent values are the exact quantiles' Monte Carlo
estimate: the estimator is linear and unbiased, so its error is the same
linear map applied to the noise, whose distribution is public; it is
simulated with ``draws`` draws per area (numpy, fixed seed - this simulates
the known noise distribution and never produces a released value).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from privagg.errors import PrivaggInputError
from privagg.postprocess.noise import noise_model
from privagg.release import PrivacyRecord, Release

LEVELS = ("cell", "zone", "district")
LEVEL_COLUMNS = {"cell": "cell_id", "zone": "zone_id", "district": "district_id"}
_GENERIC_AREA_COLUMNS = ("area_id", "area")


def area_column(rel: Release) -> tuple[str, str]:
    """``(level, column)`` of the spatial key of a release.

    The key column is ``cell_id``, ``zone_id`` or ``district_id``; a release
    whose area key is named ``area_id`` or ``area`` states its level in
    ``privacy.parameters["level"]``.
    """
    found = [(lvl, col) for lvl, col in LEVEL_COLUMNS.items() if col in rel.key_columns]
    if len(found) == 1:
        return found[0]
    level = rel.privacy.parameters.get("level")
    generic = [c for c in _GENERIC_AREA_COLUMNS if c in rel.key_columns]
    if not found and level in LEVEL_COLUMNS and len(generic) == 1:
        return level, generic[0]
    raise PrivaggInputError(
        f"release of '{rel.privacy.statistic}' with keys {list(rel.key_columns)} has "
        f"{'several' if found else 'no'} area key. Fix: pass releases keyed by exactly one of "
        "cell_id, zone_id or district_id."
    )


def _hierarchy(cells: pd.DataFrame, levels: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Sorted area ids per level, and for each non-top level the index of each area's parent."""
    missing = [LEVEL_COLUMNS[lvl] for lvl in levels if LEVEL_COLUMNS[lvl] not in cells.columns]
    if missing:
        raise PrivaggInputError(
            f"cells table lacks column(s) {missing}. Fix: pass the World's cells table (world.cells)."
        )
    areas = {lvl: np.unique(cells[LEVEL_COLUMNS[lvl]].to_numpy()) for lvl in levels}
    parents: dict[str, np.ndarray] = {}
    for child, parent in zip(levels[:-1], levels[1:]):
        pairs = cells[[LEVEL_COLUMNS[child], LEVEL_COLUMNS[parent]]].drop_duplicates()
        dup = pairs[LEVEL_COLUMNS[child]].duplicated()
        if dup.any():
            example = _py(pairs.loc[dup, LEVEL_COLUMNS[child]].iloc[0])
            raise PrivaggInputError(
                f"cells table: {LEVEL_COLUMNS[child]}={example!r} lies in several "
                f"{LEVEL_COLUMNS[parent]} values, so the areas are not nested. Fix: give every "
                f"{child} exactly one {parent}."
            )
        pairs = pairs.set_index(LEVEL_COLUMNS[child])[LEVEL_COLUMNS[parent]]
        parents[child] = np.searchsorted(areas[parent], pairs.loc[areas[child]].to_numpy())
    return areas, parents


def _py(value):
    """A numpy scalar as the Python value it holds (for readable messages)."""
    if isinstance(value, pd.Timestamp):
        return str(value)
    return value.item() if hasattr(value, "item") else value


def _aggregation(parent_index: np.ndarray, n_parent: int) -> sp.csr_matrix:
    n = len(parent_index)
    return sp.csr_matrix((np.ones(n), (parent_index, np.arange(n))), shape=(n_parent, n))


def consistent_estimates(
    observations: Sequence[np.ndarray],
    variances: Sequence[float | np.ndarray],
    parents: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """The weighted least-squares consistent estimates on a tree, for many columns at once.

    Parameters
    ----------
    observations
        One array per level, finest first, of shape ``(n_areas_level, n_columns)``;
        column ``j`` of every level belongs to the same tree (e.g. one time bin).
    variances
        Noise variance of each level's observations (a scalar or one per area);
        0 makes a level exact.
    parents
        For each level but the last, the row index of each area's parent in the
        next level.

    Returns
    -------
    list of numpy.ndarray
        The consistent estimates, level by level, same shapes as ``observations``.
    """
    levels = len(observations)
    if levels != len(variances) or len(parents) != levels - 1:
        raise ValueError("one variance per level and one parent index per non-top level are needed")
    ys = [np.asarray(y, dtype=float) for y in observations]
    ss = [np.broadcast_to(np.asarray(s, dtype=float), (len(y),)) for s, y in zip(variances, ys)]
    aggs = [_aggregation(np.asarray(p), len(ys[i + 1])) for i, p in enumerate(parents)]
    z = [ys[0]]
    v = [ss[0].astype(float)]
    zc: list[np.ndarray] = [np.empty(0)]
    vc: list[np.ndarray] = [np.empty(0)]
    for i in range(1, levels):
        zc_i = aggs[i - 1] @ z[i - 1]
        vc_i = aggs[i - 1] @ v[i - 1]
        s = ss[i]
        denom = s + vc_i
        safe = np.where(denom > 0, denom, 1.0)
        z_i = np.where((denom > 0)[:, None], (ys[i] * vc_i[:, None] + zc_i * s[:, None]) / safe[:, None], ys[i])
        v_i = np.where(denom > 0, s * vc_i / safe, 0.0)
        z.append(z_i)
        v.append(v_i)
        zc.append(zc_i)
        vc.append(vc_i)
    u: list[np.ndarray] = [np.empty(0)] * levels
    u[-1] = z[-1]
    for i in range(levels - 1, 0, -1):
        p = np.asarray(parents[i - 1])
        total = vc[i][p]
        weight = np.divide(v[i - 1], total, out=np.zeros_like(total), where=total > 0)
        u[i - 1] = z[i - 1] + weight[:, None] * (u[i] - zc[i])[p]
    return u


def make_consistent(
    releases: Mapping[str, Release] | Sequence[Release],
    cells: pd.DataFrame,
    *,
    ci_level: float | None = None,
    draws: int = 4000,
    seed: int = 0,
) -> dict[str, Release]:
    """Make releases of one statistic at several spatial levels add up, and more accurate.

    Parameters
    ----------
    releases
        Releases of the same statistic at two or three of the levels
        ``cell``, ``zone``, ``district``: a dict keyed by level or a list
        (levels read from the area key column). Each must hold every area of
        its level in ``cells`` for the same set of other keys (time bins,
        segments), as a release with a public KeySet does, with no missing
        value.
    cells
        The public cells table (``world.cells``), which gives the hierarchy.
    ci_level
        Confidence level of the recomputed intervals; default: the level
        stated in the finest release's parameters (``ci_level``), else 0.95.
    draws
        Monte Carlo draws of the known noise used for the intervals.
    seed
        Seed of those draws (the intervals are reproducible).

    Returns
    -------
    dict
        Level -> consistent :class:`Release`, same keys and order as the input,
        value replaced by the least-squares estimate, intervals recomputed.
        Each keeps its privacy record and gains a note.

    Raises
    ------
    PrivaggInputError
        If fewer than two levels, mixed statistics or key columns, missing
        keys or values, or areas not nested in ``cells``.

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> def daily(level):
    ...     keys = pa.KeySet.areas_by_time(world.cells, level=level, start=world.start, end=world.end, time_bin="1D")
    ...     return pa.footfall(world, epsilon=1 / 3, level=level, time_bin="1D", keys=keys,
    ...                        bounds=pa.Bounds(max_partitions=4))
    >>> fixed = make_consistent({level: daily(level) for level in ("cell", "zone", "district")}, world.cells)
    >>> zones = fixed["zone"].to_pandas().set_index("zone_id")["value"]
    >>> cells = fixed["cell"].to_pandas().merge(world.cells[["cell_id", "zone_id"]]).groupby("zone_id")["value"].sum()
    >>> bool(((zones - cells).abs() < 1e-6).all())   # the zones are now the sums of their cells
    True
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 100:
        raise PrivaggInputError(f"draws={draws!r} must be a whole number >= 100. Fix: keep the default draws=4000.")
    by_level: dict[str, Release] = {}
    items = releases.items() if isinstance(releases, Mapping) else [(None, r) for r in releases]
    columns: dict[str, str] = {}
    for given, rel in items:
        if not isinstance(rel, Release):
            raise PrivaggInputError(
                f"make_consistent got a {type(rel).__name__}. Fix: pass privagg Release objects."
            )
        lvl, col = area_column(rel)
        if given is not None and given != lvl:
            raise PrivaggInputError(
                f"releases[{given!r}] is keyed by {col} (level '{lvl}'). Fix: key the dict by the release's level."
            )
        if lvl in by_level:
            raise PrivaggInputError(f"two releases at level '{lvl}'. Fix: pass one release per level.")
        by_level[lvl] = rel
        columns[lvl] = col
    levels = [lvl for lvl in LEVELS if lvl in by_level]
    if len(levels) < 2:
        raise PrivaggInputError(
            f"make_consistent needs releases at two or more of {', '.join(LEVELS)}; got {levels}. "
            "Fix: release the statistic at each level you want to reconcile."
        )
    statistics = {by_level[lvl].privacy.statistic for lvl in levels}
    if len(statistics) > 1:
        raise PrivaggInputError(
            f"releases of different statistics {sorted(statistics)} cannot be made consistent. "
            "Fix: pass releases of one statistic."
        )
    finest = by_level[levels[0]]
    other = [c for c in finest.key_columns if c != columns[levels[0]]]
    for lvl in levels[1:]:
        mine = [c for c in by_level[lvl].key_columns if c != columns[lvl]]
        if sorted(mine) != sorted(other):
            raise PrivaggInputError(
                f"release at level '{lvl}' has non-area keys {mine}, the one at '{levels[0]}' has "
                f"{other}. Fix: release every level with the same time bins and segments."
            )
    areas, parents = _hierarchy(cells, levels)

    tables = {lvl: by_level[lvl].to_pandas() for lvl in levels}
    if other:
        bins = pd.MultiIndex.from_frame(tables[levels[0]][other].drop_duplicates()).sort_values()
    else:
        bins = pd.MultiIndex.from_tuples([()])
    observations, variances, row_index = [], [], {}
    for lvl in levels:
        table, col, rel = tables[lvl], columns[lvl], by_level[lvl]
        n_areas, n_bins = len(areas[lvl]), len(bins)
        a = pd.Index(areas[lvl]).get_indexer(table[col])
        b = bins.get_indexer(pd.MultiIndex.from_frame(table[other])) if other else np.zeros(len(table), dtype=int)
        unknown = (a < 0) | (b < 0)
        if unknown.any():
            row = table.loc[unknown].iloc[0]
            raise PrivaggInputError(
                f"release at level '{lvl}' has {int(unknown.sum())} key(s) absent from the "
                f"{'cells table' if (a < 0).any() else levels[0] + ' release'}, e.g. "
                f"{ {k: _py(row[k]) for k in rel.key_columns} }. Fix: release every level over the same keys (a public KeySet)."
            )
        flat = a * n_bins + b
        if len(np.unique(flat)) != len(flat):
            raise PrivaggInputError(
                f"release at level '{lvl}' has duplicate keys. Fix: pass releases with one row per key."
            )
        if len(flat) != n_areas * n_bins:
            raise PrivaggInputError(
                f"release at level '{lvl}' has {len(flat):,} keys but the hierarchy needs "
                f"{n_areas:,} areas x {n_bins:,} other keys = {n_areas * n_bins:,}. Fix: release every "
                "level with a public KeySet so that no key is missing."
            )
        y = np.full(n_areas * n_bins, np.nan)
        y[flat] = table["value"].to_numpy(dtype=float)
        if np.isnan(y).any():
            raise PrivaggInputError(
                f"release at level '{lvl}' has {int(np.isnan(y).sum()):,} missing (NaN) values. "
                "Fix: make_consistent needs a value for every key; use DP releases without suppression."
            )
        observations.append(y.reshape(n_areas, n_bins))
        model = noise_model(rel)
        variances.append(0.0 if model is None else model.variance)
        row_index[lvl] = (a, b)
    if all(s == 0 for s in variances):
        raise PrivaggInputError(
            "none of the releases carries noise, so there is nothing to reconcile. "
            "Fix: pass differentially private releases."
        )
    parent_list = [parents[lvl] for lvl in levels[:-1]]
    estimates = consistent_estimates(observations, variances, parent_list)

    # Error distribution per area: the same linear map applied to simulated noise.
    rng = np.random.default_rng(seed)
    noise = []
    for lvl, s in zip(levels, variances):
        model = noise_model(by_level[lvl])
        shape = (len(areas[lvl]), draws)
        noise.append(np.zeros(shape) if model is None else model.sample(shape, rng))
    errors = consistent_estimates(noise, variances, parent_list)
    if ci_level is None:
        ci_level = float(finest.privacy.parameters.get("ci_level", 0.95))
    if isinstance(ci_level, bool) or not isinstance(ci_level, (int, float)) or not 0 < ci_level < 1:
        raise PrivaggInputError(f"ci_level={ci_level!r} must be strictly between 0 and 1. Fix: e.g. ci_level=0.95.")
    alpha = (1 - ci_level) / 2

    out: dict[str, Release] = {}
    names = ", ".join(levels)
    total = _total_loss([by_level[lvl].privacy for lvl in levels])
    for lvl, est, err in zip(levels, estimates, errors):
        rel = by_level[lvl]
        a, b = row_index[lvl]
        table = tables[lvl]
        table["value"] = est[a, b]
        q_lo = np.quantile(err, alpha, axis=1)
        q_hi = np.quantile(err, 1 - alpha, axis=1)
        table["ci_low"] = table["value"].to_numpy() - q_hi[a]
        table["ci_high"] = table["value"].to_numpy() - q_lo[a]
        parameters = dict(rel.privacy.parameters)
        parameters["postprocessing"] = [*parameters.get("postprocessing", []), f"make_consistent({names})"]
        parameters["ci_level"] = ci_level
        note = (
            f"post-processed: made consistent across {names} by weighted least squares (Hay et al. 2010); "
            f"these values combine the releases at {names}, whose joint loss is {total} (already spent, "
            f"nothing new drawn); intervals at {ci_level:g} are Monte Carlo ({draws} draws) quantiles of the "
            "known noise through the estimator and do not cover bounding bias."
        )
        privacy = dataclasses.replace(rel.privacy, parameters=parameters, notes=(*rel.privacy.notes, note))
        out[lvl] = Release(table, rel.key_columns, privacy)
    return out


def _total_loss(records: Sequence[PrivacyRecord]) -> str:
    """The basic composition of the records' losses, as text."""
    if not all(r.formally_private for r in records):
        return "not formally bounded (a release has no formal guarantee)"
    parts = []
    if all(r.rho is not None for r in records):
        parts.append(f"rho={sum(r.rho for r in records):g} (zCDP)")
    if all(r.epsilon is not None for r in records):
        parts.append(f"epsilon={sum(r.epsilon for r in records):g}")
        delta = sum(r.delta or 0.0 for r in records)
        if delta:
            parts.append(f"delta={delta:g}")
    return ", ".join(parts) or "unknown"
