"""Dwell times: histogram of clamped stay durations per area, and the DP mean dwell."""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from privagg.dp.bounds import Bounds
from privagg.dp.budget import Budget
from privagg.engines.base import Engine
from privagg.errors import PrivaggInputError
from privagg.queries import KeySet, Query
from privagg.release import Release
from privagg.releases._doc import COMMON
from privagg.releases.core import release_query

DEFAULT_EDGES = (0, 15, 30, 60, 120, 240, 480)


def check_edges(edges: Sequence[float]) -> tuple[float, ...]:
    try:
        values = tuple(float(e) for e in edges)
    except (TypeError, ValueError):
        values = ()
    if len(values) < 2 or values[0] != 0 or any(b <= a for a, b in zip(values, values[1:])):
        raise PrivaggInputError(
            f"edges={edges!r} are not increasing dwell-bin edges starting at 0. Fix: pass e.g. edges=(0, 15, 30, 60, 120)."
        )
    return tuple(int(e) if e.is_integer() else e for e in values)


def dwell_times(
    data: Any,
    *,
    epsilon: float | None = None,
    rho: float | None = None,
    delta: float | None = None,
    level: str = "cell",
    time_bin: str | None = None,
    edges: Sequence[float] = DEFAULT_EDGES,
    keys: KeySet | None = None,
    bounds: Bounds | str | None = None,
    budget: Budget | None = None,
    users: pd.DataFrame | None = None,
    cells: pd.DataFrame | None = None,
    start: Any = None,
    end: Any = None,
    ci_level: float = 0.95,
    engine: Engine | None = None,
    mechanism: str = "auto",
) -> Release:
    """Histogram of stay durations per area (key column ``dwell_min``: the bin's lower edge, minutes).

    Durations are clipped to the window and fall in ``[edge_i, edge_i+1)``;
    those beyond the last edge are counted in the last bin. A stay belongs to
    the area (and bin) where it starts.

    Parameters
    ----------
    data
        A World or its ``stays`` table (then ``users=`` is required).
    edges
        Public bin edges in minutes, increasing, starting at 0.

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> edges = (0, 30, 120)                      # public bins: 0-30, 30-120, 120+ minutes
    >>> keys = pa.KeySet.areas(world.cells, "district") * pa.KeySet.from_values(dwell_min=list(edges))
    >>> rel = pa.dwell_times(world, epsilon=1.0, level="district", edges=edges, keys=keys)
    >>> rel.to_pandas()[["district_id", "dwell_min"]].to_dict("list")
    {'district_id': [0, 0, 0], 'dwell_min': [0, 30, 120]}
    """
    query = Query("dwell_times", level=level, time_bin=time_bin, start=start, end=end,
                  dwell_edges=check_edges(edges), keys=keys)
    return release_query(data, query, epsilon=epsilon, rho=rho, delta=delta, bounds=bounds, budget=budget,
                         users=users, cells=cells, ci_level=ci_level, engine=engine, mechanism=mechanism)


def dwell_mean(
    data: Any,
    *,
    epsilon: float | None = None,
    rho: float | None = None,
    delta: float | None = None,
    level: str = "cell",
    time_bin: str | None = None,
    keys: KeySet | None = None,
    bounds: Bounds | str | None = None,
    budget: Budget | None = None,
    users: pd.DataFrame | None = None,
    cells: pd.DataFrame | None = None,
    start: Any = None,
    end: Any = None,
    ci_level: float = 0.95,
    engine: Engine | None = None,
    mechanism: str = "auto",
) -> Release:
    """Mean stay duration (minutes) per area: noisy clamped sum / noisy count of stays.

    Half the loss goes to each. Durations are clamped to
    ``[bounds.lower, bounds.upper]`` (default ``[0, 480]``) and rounded to a
    fixed binary grid (:class:`~privagg.engines.base.ValueGrid`: steps of
    ``2**-11`` minute up to 480, far below the sums' public unit), so every
    engine sums them exactly, in any order; a subscriber
    contributes at most ``max_per_partition`` stays per area (more are
    down-weighted, keeping their mean) in at most ``max_partitions`` areas.
    The value is ``clip(sum / max(count, 1), lower, upper)``; the interval is
    conservative (covers the bounded mean with probability >= ``ci_level``
    whenever the key has stays).

    Parameters
    ----------
    data
        A World or its ``stays`` table (then ``users=`` is required).

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> keys = pa.KeySet.areas(world.cells, "district")
    >>> rel = pa.dwell_mean(world, epsilon=1.0, level="district", keys=keys,
    ...                     bounds=pa.Bounds(max_partitions=2, max_per_partition=4, lower=0, upper=480))
    >>> list(rel.to_pandas().columns)
    ['district_id', 'value', 'ci_low', 'ci_high']
    >>> rel.privacy.epsilon                       # half for the noisy sum, half for the noisy count
    1.0
    """
    query = Query("dwell_mean", level=level, time_bin=time_bin, start=start, end=end, keys=keys)
    return release_query(data, query, epsilon=epsilon, rho=rho, delta=delta, bounds=bounds, budget=budget,
                         users=users, cells=cells, ci_level=ci_level, engine=engine, mechanism=mechanism)


dwell_times.__doc__ = ((dwell_times.__doc__ or "").rstrip() + "\n") + COMMON
dwell_mean.__doc__ = ((dwell_mean.__doc__ or "").rstrip() + "\n") + COMMON
