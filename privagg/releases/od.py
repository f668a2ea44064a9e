"""Origin-destination flows: trips between areas per time bin."""

from __future__ import annotations

from typing import Any

import pandas as pd

from privagg.dp.bounds import Bounds
from privagg.dp.budget import Budget
from privagg.engines.base import Engine
from privagg.queries import KeySet, Query
from privagg.release import Release
from privagg.releases._doc import COMMON
from privagg.releases.core import release_query


def od_flows(
    data: Any,
    *,
    epsilon: float | None = None,
    rho: float | None = None,
    delta: float | None = None,
    level: str = "zone",
    time_bin: str | None = "1h",
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
    """Trips per (origin area, destination area, time bin of departure), with user-level DP.

    Key columns ``origin_<level>``, ``destination_<level>`` and ``time``. A
    subscriber adds at most ``bounds.max_per_partition`` trips to one OD pair
    and bin, over at most ``bounds.max_partitions`` of them (default 8 x 1).
    Public keys: ``KeySet.od_pairs(cells, level, start=..., end=..., time_bin=...)``.

    Parameters
    ----------
    data
        A World or its ``trips`` table (then ``users=`` is required).

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> keys = pa.KeySet.od_pairs(world.cells, "zone")   # every (origin zone, destination zone) pair
    >>> rel = pa.od_flows(world, epsilon=1.0, level="zone", time_bin=None, keys=keys)
    >>> list(rel.to_pandas().columns)
    ['origin_zone', 'destination_zone', 'value', 'ci_low', 'ci_high']
    >>> len(rel.to_pandas()), len(keys)
    (4, 4)
    """
    query = Query("od_flows", level=level, time_bin=time_bin, start=start, end=end, keys=keys)
    return release_query(data, query, epsilon=epsilon, rho=rho, delta=delta, bounds=bounds, budget=budget,
                         users=users, cells=cells, ci_level=ci_level, engine=engine, mechanism=mechanism)


od_flows.__doc__ = ((od_flows.__doc__ or "").rstrip() + "\n") + COMMON
