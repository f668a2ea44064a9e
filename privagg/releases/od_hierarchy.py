"""OD flows released at several levels (total, district pairs, zone pairs) for a top-down consistent estimate.

:func:`release_od_levels` is the only step that reads subscribers' data: it bounds every subscriber's
trips (the same :class:`~privagg.dp.bounds.Bounds` at every level), charges the budget once for all
levels, then adds OpenDP discrete Gaussian noise to each level's vector over its public key domain.
:func:`consistent_od` is post-processing of those noisy vectors alone
(:func:`privagg.postprocess.od_hierarchy.top_down`).

Privacy: the levels compose sequentially; level ``l`` gets ``shares[l]`` of epsilon and an equal share of
delta, and the lower-variance of the discrete Laplace (pure) and the discrete Gaussian (the largest rho
whose conversion fits the level's (epsilon, delta)). The total's sensitivity is the bound's l1 (all of a
subscriber's trips in one number); every pair level has the bound's l1 / l2 sensitivity (each level is
bounded on its own keys). The release's loss is ``(epsilon, delta)`` per subscriber over the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import pandas as pd

from privagg.dp.bound_choice import Budgets, choose_mechanism, rho_for_epsilon
from privagg.dp.bounds import Bounds
from privagg.dp.budget import Budget
from privagg.dp.mechanisms import NoiseMechanism, check_loss
from privagg.dp.units import Loss
from privagg.engines import default_engine
from privagg.errors import PrivaggInputError
from privagg.postprocess.od_hierarchy import top_down
from privagg.queries import Query, public_keys
from privagg.releases.build import contributions
from privagg.releases.core import effective_bounds
from privagg.releases.inputs import resolve

AREA_COLUMN = {"district": "district_id", "zone": "zone_id", "cell": "cell_id"}


@dataclass(frozen=True)
class NoisyODLevels:
    """Noisy OD vectors, coarsest first (the total, then pair levels), with their public metadata."""

    levels: tuple[str, ...]
    keys: tuple[pd.DataFrame, ...]          # per pair level: origin_<level>, destination_<level>
    values: tuple[np.ndarray, ...]          # [total] + one vector per pair level (noisy int64)
    mechanisms: tuple[NoiseMechanism, ...]
    parents: tuple[np.ndarray, ...]         # per vector: index of its parent in the vector above
    loss: Loss
    bounds: tuple[Bounds, ...]

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


def release_od_levels(world: Any, *, epsilon: float, delta: float, bounds: Bounds | Sequence[Bounds],
                      levels: Sequence[str] = ("district", "zone"), shares: Sequence[float] = (0.02, 0.08, 0.9),
                      budget: Budget | None = None) -> NoisyODLevels:
    """Noisy OD flows over the window at the total and at each of ``levels`` (coarsest first).

    Parameters
    ----------
    world
        A :class:`~privagg.world.World` (its trips, cells and users).
    epsilon, delta
        The release's loss per subscriber over the window (the noise is the discrete Gaussian of the
        largest rho whose conversion is at most ``(epsilon, delta)``).
    bounds
        Contribution bounds (trips per subscriber): one for every level, or one per level (coarse levels
        can afford generous bounds, so that the top-down totals are nearly unbiased, while fine levels
        give the shape). Chosen without looking at the data (or privately, e.g. with ``release_query``'s
        choice, whose cost the caller accounts). The total uses the first level's.
    shares
        Share of rho for the total and each level (normalised).
    budget
        Charged ``Loss(epsilon, delta)`` once, before any noise.
    """
    epsilon = check_loss("epsilon", epsilon)
    if not delta or delta <= 0:
        raise PrivaggInputError("delta must be > 0 for the Gaussian OD hierarchy. Fix: pass e.g. delta=1e-9.")
    levels = tuple(levels)
    if len(shares) != len(levels) + 1 or min(shares) <= 0:
        raise PrivaggInputError(f"shares={tuple(shares)!r} needs {len(levels) + 1} positive numbers (the total, then "
                                f"{', '.join(levels)}). Fix: pass e.g. shares=(0.02, 0.08, 0.9).")
    # each level: its share of epsilon and of delta, noised by the lower-variance of the discrete Laplace
    # (pure) and the discrete Gaussian (the largest rho within the level's (epsilon, delta))
    eps_levels = [epsilon * s / sum(shares) for s in shares]
    delta_level = delta / len(shares)
    loss = Loss(epsilon=epsilon, delta=delta)
    if budget is not None:
        budget.check(loss, "od hierarchy")
    engine = default_engine()
    start, end = world.meta["start"], world.meta["end"]
    per_level = [bounds] * len(levels) if isinstance(bounds, Bounds) else list(bounds)
    if len(per_level) != len(levels):
        raise PrivaggInputError(f"bounds gives {len(per_level)} bounds for {len(levels)} levels. "
                                "Fix: pass one Bounds, or one per level.")
    keys_out, exact, effs = [], [], []
    for lvl, lvl_bounds in zip(levels, per_level):  # bounded aggregates first: nothing noisy exists yet
        query = Query("od_flows", level=lvl, time_bin=None, start=start, end=end)
        keys = public_keys(query, world.cells, start=start, end=end)
        query = replace(query, keys=keys)
        eff = effective_bounds(query, lvl_bounds)
        effs.append(eff)
        inputs = resolve(world, query, users=None, cells=None, keys=keys)
        totals = engine.bounded_totals(contributions(query, inputs, keys, eff), eff, dense=True)
        keys_out.append(keys.to_pandas())
        exact.append(np.asarray(totals.counts, dtype=np.int64))
    total_bounds = Bounds(max_partitions=1, max_per_partition=int(effs[0].l1_sensitivity))  # all trips in one number
    mechs = [choose_mechanism(Budgets(epsilon=e, rho=rho_for_epsilon(e, delta_level)), b, "auto")
             for e, b in zip(eps_levels, [total_bounds] + effs)]
    if budget is not None:
        budget.charge(loss, statistic="od hierarchy", parameters={"levels": list(levels), "shares": list(shares),
                                                                  "bounds": [b.to_dict() for b in effs]})
    # the total is bounded with the coarsest level's bounding (the same subscribers' same trips)
    values = [mechs[0].sample(np.array([exact[0].sum()]))] + [m.sample(x) for m, x in zip(mechs[1:], exact)]
    parents = [np.zeros(1, dtype=np.int64)]
    for i, lvl in enumerate(levels):
        parents.append(_parents(world.cells, levels[i - 1] if i else None, keys_out[i], lvl,
                                keys_out[i - 1] if i else None))
    return NoisyODLevels(levels, tuple(keys_out), tuple(values), tuple(mechs), tuple(parents), loss, tuple(effs))


def consistent_od(noisy: NoisyODLevels) -> dict[str, pd.DataFrame]:
    """Top-down consistent, non-negative, integer flows per level, from the noisy release only.

    Returns ``{"total": ..., level: DataFrame(origin_<level>, destination_<level>, value)}``; every level
    sums, within each pair of the level above, to that pair's value.
    """
    est = top_down(list(noisy.values), noisy.variances, list(noisy.parents))
    out = {"total": pd.DataFrame({"value": est[0]})}
    for lvl, keys, values in zip(noisy.levels, noisy.keys, est[1:]):
        out[lvl] = keys.assign(value=values)
    return out


