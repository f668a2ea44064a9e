"""Accuracy of a release, and the DP release of the same accuracy.

A regulator's question is not only "how risky is the claimed release" but
"what would differential privacy give at the same accuracy". This module
measures accuracy against the exact aggregate and searches the epsilon grid
for the DP release (per subscriber-day) that is at least as accurate.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import pandas as pd

from privagg.anonymisers.factory import make_anonymiser
from privagg.dp.units import PrivacyUnit
from privagg.queries import Query
from privagg.release import Release

Progress = Callable[[str], None]
UTILITY_METRICS = ("mean_relative_error", "mae", "share_within_10pct")
#: The unit of the DP releases the search compares with (a claim's DP epsilons are per this unit).
SEARCH_UNIT = PrivacyUnit("day")


def truth_of(world: Any, query: Query) -> pd.DataFrame:
    """Exact aggregate of ``query`` over its public key domain (empty keys included, value 0)."""
    from privagg.exact import exact_aggregate
    from privagg.queries import public_keys
    from privagg.releases.inputs import window

    start, end = window(query, None, world.meta.get("start"), world.meta.get("end"))
    keys = public_keys(query, world.cells, start=start, end=end, users_columns=list(world.users.columns))
    q = replace(query, keys=keys, start=start if query.time_bin else query.start, end=end if query.time_bin else query.end)
    return exact_aggregate(world, q, include_empty=True)


def utility_of(truth: pd.DataFrame, release: Any, floor: float) -> dict[str, float]:
    """Mean relative error (with ``floor``), MAE and share within 10% of ``release`` against ``truth``."""
    from privagg.metrics import compute_metrics

    table = release.to_pandas() if hasattr(release, "to_pandas") else release
    keys = [c for c in truth.columns if c != "value"]
    table = table[[*keys, "value"]]
    return compute_metrics(truth, table, list(UTILITY_METRICS), keys,
                           {"mean_relative_error": {"floor": floor}, "share_within_10pct": {"floor": floor}})


def dp_per_day(epsilon: float) -> Any:
    """The DP anonymiser the search uses: ``epsilon`` per subscriber-day, default bounds, public keys."""
    return make_anonymiser("dp", {"epsilon": epsilon, "unit": SEARCH_UNIT.label})


@dataclass
class Equivalent:
    """The DP release of the same utility, and the search that found it."""

    epsilon: float
    release: Release
    metrics: dict[str, float]
    matched: bool
    searched: list[tuple[float, float]] = field(default_factory=list)

    @property
    def anonymiser(self) -> Any:
        return dp_per_day(self.epsilon)


def find_dp_equivalent(world: Any, query: Query, truth: pd.DataFrame, target_error: float,
                       epsilons: tuple[float, ...], floor: float, progress: Progress = print) -> Equivalent:
    """Smallest epsilon per subscriber-day on ``epsilons`` whose mean relative error is <= ``target_error``.

    The error falls as epsilon grows, so the grid is bisected: about
    ``log2(len(epsilons)) + 1`` DP releases. When even the largest epsilon is
    less accurate, it is returned with ``matched=False``.
    """
    grid = sorted(epsilons)
    cache: dict[int, tuple[Release, dict[str, float]]] = {}

    def evaluate(i: int) -> float:
        if i not in cache:
            rel = dp_per_day(grid[i]).release(world, query)
            cache[i] = (rel, utility_of(truth, rel, floor))
            progress(f"  DP at epsilon {grid[i]:g} {SEARCH_UNIT.per}: mean relative error "
                     f"{cache[i][1]['mean_relative_error']:.3f} (target {target_error:.3f})")
        return cache[i][1]["mean_relative_error"]

    hi = len(grid) - 1
    if evaluate(hi) > target_error:
        best, matched = hi, False
    else:
        lo, best = 0, hi
        while lo < best:
            mid = (lo + best) // 2
            if evaluate(mid) <= target_error:
                best = mid
            else:
                lo = mid + 1
        matched = True
    rel, metrics = cache[best]
    searched = sorted((grid[i], m["mean_relative_error"]) for i, (_, m) in cache.items())
    return Equivalent(grid[best], rel, metrics, matched, searched)


__all__ = ["Equivalent", "SEARCH_UNIT", "UTILITY_METRICS", "dp_per_day", "find_dp_equivalent", "truth_of", "utility_of"]
