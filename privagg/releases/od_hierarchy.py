"""OD flows released at several levels (total, district pairs, zone pairs[, cell pairs]) for a top-down consistent estimate.

Two releases, both the only steps that read subscribers' data:

* :func:`release_od_levels`: every level over its public key domain (areas are public, so their pairs
  are). It bounds every subscriber's trips, charges the budget once for all levels, then adds OpenDP
  noise to each level's vector over its public key domain.
* :func:`release_od_selected`: the coarse levels over public keys, and the finest level (cell pairs by
  default) **without public keys**: its keys are selected privately, top-down as in InfTDA
  (Boninsegna & Silvestri, arXiv 2412.09256): only children of pairs that survive the consistent
  estimate of the level above are candidates, and a candidate is released only when its noisy count
  reaches the threshold of OpenDP's threshold mechanism (:mod:`privagg.dp.partition_selection`).

:func:`consistent_od` is post-processing of the noisy values alone
(:func:`privagg.postprocess.od_hierarchy.top_down`, :func:`~privagg.postprocess.od_hierarchy.fit_selected`).

Privacy (both releases)
-----------------------
Unit: one subscriber over the window. The levels compose sequentially (basic composition, adaptive:
a later level may depend on earlier *released* values): level ``l`` gets ``shares[l]`` of epsilon and
an equal share ``delta / n_levels`` of delta, and the release's loss is ``(sum epsilon_l, sum delta_l) =
(epsilon, delta)`` per subscriber over the window, charged to the ledger once, before any noise.

* Public-key levels: a dense noisy vector over the level's public key domain, the lower-variance of the
  discrete Laplace (pure ``epsilon_l``, sensitivity the bound's l1) and the discrete Gaussian (the
  largest rho whose conversion fits ``(epsilon_l, delta_l)``, sensitivity the bound's l2). The total's
  sensitivity is the bound's l1 (all of a subscriber's trips in one number); every pair level is
  bounded on its own keys, so it has its own bound's l1 / l2.
* The selected level: OpenDP's threshold mechanism (``make_laplace_threshold`` over the
  ``(l0, l1, linf)`` distance of the level's bounds, ``(epsilon_l, delta_l)``-DP; or
  ``make_gaussian_threshold``, rho at half of ``delta_l`` for the conversion and half for selection,
  whichever has the lower threshold). Its guarantee holds for any fixed candidate set. The candidate
  set is a function of the public ``cells`` table and of the levels above's *released* noisy values
  only (post-processing of them: the children of pairs whose consistent estimate is positive), so given
  those outputs it is fixed and adaptive composition applies. Restricting the trips to candidates is a
  per-trip filter, and the bounding comes after it, so no subscriber's contribution can exceed the
  level's bounds. A key that no subscriber has is not in the mechanism's input and is never released;
  one a single subscriber has (at most ``linf`` trips) is released with probability at most
  ``delta_l``'s selection part (certified by OpenDP's privacy map).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

import numpy as np
import pandas as pd

from privagg.dp.bound_choice import Budgets, choose_mechanism, rho_for_epsilon
from privagg.dp.bounds import Bounds
from privagg.dp.budget import Budget
from privagg.dp.mechanisms import NoiseMechanism, check_loss
from privagg.dp.partition_selection import ThresholdMechanism, calibrate
from privagg.dp.units import Loss
from privagg.engines import default_engine
from privagg.engines.base import Contributions
from privagg.errors import PrivaggInputError
from privagg.postprocess.od_hierarchy import fit_selected, top_down
from privagg.queries import Query, public_keys
from privagg.releases.build import contributions
from privagg.releases.core import default_bounds, effective_bounds
from privagg.releases.inputs import resolve

AREA_COLUMN = {"district": "district_id", "zone": "zone_id", "cell": "cell_id"}
_ORDER = ("district", "zone", "cell")  # coarsest first


@dataclass(frozen=True)
class LevelRecord:
    """One level of a hierarchy as charged: its share, its loss, and whether its keys were public or selected.

    Everything here is public (fixed before any data is read); ``to_dict`` is what the ledger records.
    """

    level: str
    share: float
    epsilon: float
    delta: float
    keys: str        # "public" (every key of the level released) or "selected" (private partition selection)
    mechanism: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SelectedLevel:
    """The privately selected finest level: released keys and their noisy counts.

    ``values`` are the threshold mechanism's noisy counts (each at least ``mechanism.threshold``);
    ``parents`` index the last public level's keys; ``n_candidates`` is the number of keys that could
    have been released (children of the surviving pairs; public, from released values and ``cells``).
    """

    level: str
    keys: pd.DataFrame
    values: np.ndarray
    parents: np.ndarray
    mechanism: ThresholdMechanism
    n_candidates: int
    bounds: Bounds


@dataclass(frozen=True)
class NoisyODLevels:
    """Noisy OD vectors, coarsest first (the total, then pair levels), with their public metadata.

    ``selected`` holds a privately selected finest level (:func:`release_od_selected`), else ``None``;
    ``record`` says, per level, its share, loss and whether its keys were public or selected.
    """

    levels: tuple[str, ...]
    keys: tuple[pd.DataFrame, ...]          # per pair level: origin_<level>, destination_<level>
    values: tuple[np.ndarray, ...]          # [total] + one vector per pair level (noisy int64)
    mechanisms: tuple[NoiseMechanism, ...]
    parents: tuple[np.ndarray, ...]         # per vector: index of its parent in the vector above
    loss: Loss
    bounds: tuple[Bounds, ...]
    selected: SelectedLevel | None = None
    record: tuple[LevelRecord, ...] = ()

    @property
    def variances(self) -> list[float]:
        return [m.variance() for m in self.mechanisms]


def _parents(cells: pd.DataFrame, coarse: str | None, fine_keys: pd.DataFrame, fine: str,
             coarse_keys: pd.DataFrame | None) -> np.ndarray:
    """Index of each fine pair's coarse pair (from the public cells table)."""
    if coarse is None:
        return np.zeros(len(fine_keys), dtype=np.int64)
    up = cells.drop_duplicates(AREA_COLUMN[fine]).set_index(AREA_COLUMN[fine])[AREA_COLUMN[coarse]]
    o = up.reindex(fine_keys[f"origin_{fine}"].to_numpy()).to_numpy()
    d = up.reindex(fine_keys[f"destination_{fine}"].to_numpy()).to_numpy()
    pos = pd.MultiIndex.from_frame(coarse_keys[[f"origin_{coarse}", f"destination_{coarse}"]])
    return np.asarray(pos.get_indexer(pd.MultiIndex.from_arrays([o, d])), dtype=np.int64)


def _check_common(epsilon: float, delta: float | None, levels: Sequence[str], shares: Sequence[float],
                  n_shares: int, example: str) -> tuple[float, float, tuple[str, ...]]:
    epsilon = check_loss("epsilon", epsilon)
    if not delta or delta <= 0:
        raise PrivaggInputError("delta must be > 0 for the OD hierarchy. Fix: pass e.g. delta=1e-9.")
    levels = tuple(levels)
    if not levels or any(lvl not in _ORDER for lvl in levels) or list(levels) != sorted(levels, key=_ORDER.index) \
            or len(set(levels)) != len(levels):
        raise PrivaggInputError(f"levels={levels!r} must be distinct areas among {_ORDER!r}, coarsest first. "
                                "Fix: pass e.g. levels=('district', 'zone').")
    if len(shares) != n_shares or min(shares) <= 0:
        raise PrivaggInputError(f"shares={tuple(shares)!r} needs {n_shares} positive numbers (the total, then each "
                                f"level). Fix: pass e.g. shares={example}.")
    return epsilon, float(delta), levels


def _per_level(bounds: Bounds | Sequence[Bounds], levels: tuple[str, ...]) -> list[Bounds]:
    per_level = [bounds] * len(levels) if isinstance(bounds, Bounds) else list(bounds)
    if len(per_level) != len(levels) or not all(isinstance(b, Bounds) for b in per_level):
        raise PrivaggInputError(f"bounds gives {len(per_level)} bounds for {len(levels)} levels. "
                                "Fix: pass one Bounds, or one per level.")
    return per_level


def _public_levels(world: Any, levels: tuple[str, ...], per_level: list[Bounds]
                   ) -> tuple[list[pd.DataFrame], list[np.ndarray], list[Bounds]]:
    """Keys, exact bounded counts and effective bounds of each public-key level (no noise)."""
    engine = default_engine()
    start, end = world.meta["start"], world.meta["end"]
    keys_out, exact, effs = [], [], []
    for lvl, lvl_bounds in zip(levels, per_level):
        query = Query("od_flows", level=lvl, time_bin=None, start=start, end=end)
        keys = public_keys(query, world.cells, start=start, end=end)
        query = replace(query, keys=keys)
        eff = effective_bounds(query, lvl_bounds)
        effs.append(eff)
        inputs = resolve(world, query, users=None, cells=None, keys=keys)
        totals = engine.bounded_totals(contributions(query, inputs, keys, eff), eff, dense=True)
        keys_out.append(keys.to_pandas())
        exact.append(np.asarray(totals.counts, dtype=np.int64))
    return keys_out, exact, effs


def _public_mechanisms(eps_levels: Sequence[float], delta_level: float, effs: list[Bounds]) -> list[NoiseMechanism]:
    """The total's and every public level's noise: the lower-variance of Laplace and Gaussian at its share."""
    total_bounds = Bounds(max_partitions=1, max_per_partition=int(effs[0].l1_sensitivity))  # all trips in one number
    return [choose_mechanism(Budgets(epsilon=e, rho=rho_for_epsilon(e, delta_level)), b, "auto")
            for e, b in zip(eps_levels, [total_bounds] + effs)]


def _mechanism_name(mech: NoiseMechanism) -> str:
    return "discrete Laplace" if mech.kind == "laplace" else "discrete Gaussian"


def _all_parents(cells: pd.DataFrame, levels: tuple[str, ...], keys_out: list[pd.DataFrame]) -> list[np.ndarray]:
    parents = [np.zeros(1, dtype=np.int64)]
    for i, lvl in enumerate(levels):
        parents.append(_parents(cells, levels[i - 1] if i else None, keys_out[i], lvl, keys_out[i - 1] if i else None))
    return parents


def release_od_levels(world: Any, *, epsilon: float, delta: float, bounds: Bounds | Sequence[Bounds],
                      levels: Sequence[str] = ("district", "zone"), shares: Sequence[float] = (0.02, 0.08, 0.9),
                      budget: Budget | None = None) -> NoisyODLevels:
    """Noisy OD flows over the window at the total and at each of ``levels`` (coarsest first), all keys public.

    Parameters
    ----------
    world
        A :class:`~privagg.world.World` (its trips, cells and users).
    epsilon, delta
        The release's loss per subscriber over the window (see the module docstring for its split).
    bounds
        Contribution bounds (trips per subscriber): one for every level, or one per level (coarse levels
        can afford generous bounds, so that the top-down totals are nearly unbiased, while fine levels
        give the shape). Chosen without looking at the data (or privately, e.g. with ``release_query``'s
        choice, whose cost the caller accounts). The total uses the first level's.
    shares
        Share of epsilon for the total and each level (normalised).
    budget
        Charged ``Loss(epsilon, delta)`` once, before any noise.

    Examples
    --------
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=300, n_cells=30, days=2, seed=1)
    >>> noisy = release_od_levels(world, epsilon=2.0, delta=1e-9, bounds=Bounds(max_partitions=8))
    >>> flows = consistent_od(noisy)
    >>> int(flows["zone"]["value"].sum()) == int(flows["total"]["value"][0])
    True
    """
    epsilon, delta, levels = _check_common(epsilon, delta, levels, shares, len(tuple(levels)) + 1,
                                           "(0.02, 0.08, 0.9)")
    eps_levels = [epsilon * s / sum(shares) for s in shares]
    delta_level = delta / len(shares)
    loss = Loss(epsilon=epsilon, delta=delta)
    if budget is not None:
        budget.check(loss, "od hierarchy")
    per_level = _per_level(bounds, levels)
    keys_out, exact, effs = _public_levels(world, levels, per_level)  # bounded aggregates: nothing noisy yet
    mechs = _public_mechanisms(eps_levels, delta_level, effs)
    record = tuple(LevelRecord(lvl, s / sum(shares), e, delta_level, "public", _mechanism_name(m))
                   for lvl, s, e, m in zip(("total",) + levels, shares, eps_levels, mechs))
    if budget is not None:
        budget.charge(loss, statistic="od hierarchy", parameters={
            "levels": [r.to_dict() for r in record], "bounds": [b.to_dict() for b in effs]})
    # the total is bounded with the coarsest level's bounding (the same subscribers' same trips)
    values = [mechs[0].sample(np.array([exact[0].sum()]))] + [m.sample(x) for m, x in zip(mechs[1:], exact)]
    parents = _all_parents(world.cells, levels, keys_out)
    return NoisyODLevels(levels, tuple(keys_out), tuple(values), tuple(mechs), tuple(parents), loss, tuple(effs),
                         record=record)


def selection_mechanism(epsilon: float, delta: float, bounds: Bounds) -> ThresholdMechanism:
    """OpenDP's threshold mechanism for a selected level at ``(epsilon, delta)`` and (effective) ``bounds``.

    The Laplace threshold spends ``(epsilon, delta)``; the Gaussian threshold the largest rho whose
    conversion fits ``(epsilon, delta / 2)``, with the other half of delta for selection. The one with
    the lower threshold is used (more keys released); both are calibrated from public numbers only.
    """
    l0, linf, total = bounds.max_partitions, bounds.max_per_partition, bounds.max_total
    lap = calibrate("laplace", epsilon, delta, l0, linf, total)
    gauss = calibrate("gaussian", rho_for_epsilon(epsilon, delta / 2), delta / 2, l0, linf, total)
    return gauss if gauss.threshold < lap.threshold else lap


def _candidate_contributions(world: Any, level: str, parent_level: str, parent_keys: pd.DataFrame,
                             survive: np.ndarray, eff: Bounds) -> tuple[Contributions, Any, int]:
    """Trips of ``level`` pairs whose parent pair survives (unbounded), the domain their codes refer to,
    and the number of candidate pairs (public: from the cells table and the surviving parents)."""
    start, end = world.meta["start"], world.meta["end"]
    query = Query("od_flows", level=level, time_bin=None, start=start, end=end)
    inputs = resolve(world, query, users=None, cells=None, keys=None)
    contrib = contributions(query, inputs, None, eff)
    assert isinstance(contrib, Contributions)  # without public keys contributions are never chunked
    codes, inverse = np.unique(contrib.partitions, return_inverse=True)
    pairs = contrib.domain.decode(codes)
    ok = np.zeros(len(codes), dtype=bool)
    par = _parents(world.cells, parent_level, pairs, level, parent_keys)
    ok[par >= 0] = survive[par[par >= 0]]
    keep = ok[inverse]
    filtered = Contributions(contrib.privacy_ids[keep], contrib.partitions[keep], contrib.domain, False,
                             contrib.distinct)
    size = world.cells.groupby(AREA_COLUMN[parent_level])[AREA_COLUMN[level]].nunique()
    o = size.reindex(parent_keys[f"origin_{parent_level}"].to_numpy()).fillna(0).to_numpy()
    d = size.reindex(parent_keys[f"destination_{parent_level}"].to_numpy()).fillna(0).to_numpy()
    return filtered, contrib.domain, int(np.sum((o * d)[survive]))


def release_od_selected(world: Any, *, epsilon: float, delta: float, bounds: Bounds | Sequence[Bounds],
                        levels: Sequence[str] = ("district", "zone"), selected: str = "cell",
                        selection_bounds: Bounds | None = None,
                        shares: Sequence[float] = (0.02, 0.08, 0.3, 0.6),
                        budget: Budget | None = None) -> NoisyODLevels:
    """OD flows with public keys at ``levels`` and privately selected keys at ``selected`` (top-down, InfTDA).

    The total and ``levels`` are released as in :func:`release_od_levels`; their consistent estimate
    (post-processing) gives the surviving pairs of the last level (estimate > 0). The ``selected`` pairs
    nested in surviving pairs are the candidates; each is released, with its noisy count, only if that
    count reaches the threshold of OpenDP's threshold mechanism (see the module docstring for the
    privacy argument). :func:`consistent_od` then fits the released children under their parents.

    Parameters
    ----------
    world
        A :class:`~privagg.world.World`.
    epsilon, delta
        The whole hierarchy's loss per subscriber over the window, charged once before any noise;
        each level gets ``shares[l]`` of epsilon and ``delta / (len(levels) + 2)``.
    bounds
        Trips per subscriber for the public levels: one, or one per level.
    selected
        The level whose keys are not public (finer than the last of ``levels``).
    selection_bounds
        Bounds of the selected level (``None``: the public OD default, 8 pairs x 1 trip, as
        ``release_query`` without keys). Smaller bounds lower the threshold.
    shares
        Share of epsilon for the total, each of ``levels``, then ``selected`` (normalised).
    budget
        Charged ``Loss(epsilon, delta, selection_delta=...)`` once, before any noise.

    Examples
    --------
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=300, n_cells=30, days=2, seed=1)
    >>> noisy = release_od_selected(world, epsilon=5.0, delta=1e-9, bounds=Bounds(max_partitions=8))
    >>> [(r.level, r.keys) for r in noisy.record]
    [('total', 'public'), ('district', 'public'), ('zone', 'public'), ('cell', 'selected')]
    >>> flows = consistent_od(noisy)
    >>> bool(flows["cell"]["value"].sum() + flows["cell_unselected"]["value"].sum() == flows["zone"]["value"].sum())
    True
    """
    epsilon, delta, levels = _check_common(epsilon, delta, levels, shares, len(tuple(levels)) + 2,
                                           "(0.02, 0.08, 0.3, 0.6)")
    if selected not in _ORDER or _ORDER.index(selected) <= _ORDER.index(levels[-1]):
        raise PrivaggInputError(f"selected={selected!r} must be a level finer than {levels[-1]!r}. "
                                "Fix: pass e.g. levels=('district', 'zone'), selected='cell'.")
    if selection_bounds is not None and not isinstance(selection_bounds, Bounds):
        raise PrivaggInputError(f"selection_bounds={selection_bounds!r} is not a Bounds. "
                                "Fix: pass e.g. Bounds(max_partitions=8, max_per_partition=1) or None.")
    start, end = world.meta["start"], world.meta["end"]
    sel_query = Query("od_flows", level=selected, time_bin=None, start=start, end=end)
    sel_eff = effective_bounds(sel_query, selection_bounds or default_bounds(sel_query))
    eps_levels = [epsilon * s / sum(shares) for s in shares]
    delta_level = delta / len(shares)
    # every mechanism is calibrated from public numbers before any data is read
    threshold = selection_mechanism(eps_levels[-1], delta_level, sel_eff)
    selection_delta = threshold.delta if threshold.kind == "laplace" else delta_level / 2
    loss = Loss(epsilon=epsilon, delta=delta, selection_delta=selection_delta)
    if budget is not None:
        budget.check(loss, "od hierarchy")
    per_level = _per_level(bounds, levels)
    keys_out, exact, effs = _public_levels(world, levels, per_level)  # bounded aggregates: nothing noisy yet
    mechs = _public_mechanisms(eps_levels[:-1], delta_level, effs)
    record = tuple(LevelRecord(lvl, s / sum(shares), e, delta_level, "public", _mechanism_name(m))
                   for lvl, s, e, m in zip(("total",) + levels, shares, eps_levels, mechs))
    record += (LevelRecord(selected, shares[-1] / sum(shares), eps_levels[-1], delta_level, "selected", threshold.name),)
    if budget is not None:  # the whole hierarchy, once, before the first noisy value
        budget.charge(loss, statistic="od hierarchy", parameters={
            "levels": [r.to_dict() for r in record], "bounds": [b.to_dict() for b in effs],
            "selection_bounds": sel_eff.to_dict(), "threshold": int(threshold.threshold)})
    values = [mechs[0].sample(np.array([exact[0].sum()]))] + [m.sample(x) for m, x in zip(mechs[1:], exact)]
    parents = _all_parents(world.cells, levels, keys_out)
    variances = [m.variance() for m in mechs]
    # candidates from released values only: children of the last public level's surviving pairs
    survive = top_down(values, variances, parents)[-1] > 0
    contrib, domain, n_candidates = _candidate_contributions(world, selected, levels[-1], keys_out[-1], survive,
                                                             sel_eff)
    totals = default_engine().bounded_totals(contrib, sel_eff, dense=False)
    codes, noisy = threshold.release(np.asarray(totals.codes, dtype=np.int64), np.asarray(totals.counts))
    sel_keys = domain.decode(codes).reset_index(drop=True)
    sel_keys = sel_keys[[f"origin_{selected}", f"destination_{selected}"]].astype("int64")
    sel = SelectedLevel(selected, sel_keys, np.asarray(noisy, dtype=np.int64),
                        _parents(world.cells, levels[-1], sel_keys, selected, keys_out[-1]), threshold,
                        n_candidates, sel_eff)
    return NoisyODLevels(levels, tuple(keys_out), tuple(values), tuple(mechs), tuple(parents), loss, tuple(effs),
                         selected=sel, record=record)


def consistent_od(noisy: NoisyODLevels, *, kept_share: float = 1.0) -> dict[str, pd.DataFrame]:
    """Top-down consistent, non-negative, integer flows per level, from the noisy release only.

    Returns ``{"total": ..., level: DataFrame(origin_<level>, destination_<level>, value)}``; every level
    sums, within each pair of the level above, to that pair's value. With a selected level, its
    released pairs come as ``noisy.selected.level`` and, per pair of the last public level, the flows
    in pairs not released as ``"<level>_unselected"``: the two together add up to that level exactly.

    ``kept_share`` is a privately estimated share of the trips that the public levels' bounds keep (e.g.
    ``release_query(...).privacy.parameters["kept_share"]`` of the bound choice whose bounds the hierarchy
    uses); the public levels' noisy values are divided by it (and their noise variance by its square)
    before the fit, which corrects the bias of bounding on average. Post-processing of released numbers:
    it costs nothing more. The selected level keeps its own bounds' counts.

    Examples
    --------
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=300, n_cells=30, days=2, seed=1)
    >>> flows = consistent_od(release_od_levels(world, epsilon=2.0, delta=1e-9, bounds=Bounds(max_partitions=8)))
    >>> bool((flows["district"]["value"] >= 0).all())
    True
    """
    if isinstance(kept_share, bool) or not isinstance(kept_share, (int, float)) or not 0 < kept_share <= 1:
        raise PrivaggInputError(f"kept_share={kept_share!r} must be in (0, 1]. Fix: pass the bound choice's "
                                "privacy.parameters['kept_share'], or 1.0 for no correction.")
    values = [np.asarray(v, dtype=float) / kept_share for v in noisy.values]
    est = top_down(values, [v / kept_share ** 2 for v in noisy.variances], list(noisy.parents))
    out = {"total": pd.DataFrame({"value": est[0]})}
    for lvl, keys, values in zip(noisy.levels, noisy.keys, est[1:]):
        out[lvl] = keys.assign(value=values)
    if noisy.selected is not None:
        sel = noisy.selected
        values, rest = fit_selected(sel.values, sel.parents, est[-1])
        out[sel.level] = sel.keys.assign(value=values)
        out[f"{sel.level}_unselected"] = noisy.keys[-1].assign(value=rest)
    return out
