"""Footfall (distinct subscribers per area and time bin) and visit counts."""

from __future__ import annotations

from typing import Any

import pandas as pd

from privagg.dp.bounds import Bounds
from privagg.dp.budget import Budget
from privagg.engines.base import Engine
from privagg.errors import PrivaggInputError
from privagg.queries import KeySet, Query
from privagg.release import Release
from privagg.releases._doc import COMMON
from privagg.releases.core import release_query
from privagg.releases.inputs import table_columns
from privagg.world import World


def infer_source(data: Any, source: str | None) -> str:
    """``"events"`` or ``"stays"``: given, else from the table's columns (a World: stays)."""
    if source is not None:
        return source
    columns = None if isinstance(data, World) else table_columns(data)
    if columns is None:
        return "stays"
    if "ts" in columns:
        return "events"
    if "start" in columns and "end" in columns:
        return "stays"
    raise PrivaggInputError(
        "footfall: cannot tell whether the table holds events (user_id, cell_id, ts) or stays (user_id, cell_id, start, end). "
        "Fix: pass world.events or world.stays, or source='events'/'stays'."
    )


def footfall(
    data: Any,
    *,
    epsilon: float | None = None,
    rho: float | None = None,
    delta: float | None = None,
    level: str = "cell",
    time_bin: str | None = "1h",
    keys: KeySet | None = None,
    bounds: Bounds | str | None = None,
    budget: Budget | None = None,
    users: pd.DataFrame | None = None,
    cells: pd.DataFrame | None = None,
    start: Any = None,
    end: Any = None,
    source: str | None = None,
    ci_level: float = 0.95,
    engine: Engine | None = None,
    mechanism: str = "auto",
) -> Release:
    """Distinct subscribers present per (area, time bin), with user-level DP.

    Parameters
    ----------
    data
        A World (uses its stays unless ``source='events'``), or its ``stays``
        or ``events`` table (then ``users=`` is required).
    level
        ``"cell"``, ``"zone"`` or ``"district"``.
    time_bin
        ``"15min"`` .. ``"1D"`` (divides a day), or ``None`` for the whole window.
    source
        ``"stays"`` (a stay counts in every bin it overlaps) or ``"events"``;
        inferred from the table by default.

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> keys = pa.KeySet.areas_by_time(world.cells, level="zone", start=world.start, end=world.end, time_bin="6h")
    >>> rel = pa.footfall(world, epsilon=1.0, level="zone", time_bin="6h", keys=keys)   # bounds chosen privately
    >>> list(rel.to_pandas().columns)
    ['zone_id', 'time', 'value', 'ci_low', 'ci_high']
    >>> len(rel.to_pandas()) == len(keys)        # every public key is released, empty ones included
    True
    >>> rel.privacy.describe()
    'epsilon=1 for one subscriber (user_id) over 2026-01-05T00:00 to 2026-01-06T00:00'
    """
    query = Query("footfall", level=level, time_bin=time_bin, start=start, end=end,
                  source=infer_source(data, source), keys=keys)
    return release_query(data, query, epsilon=epsilon, rho=rho, delta=delta, bounds=bounds, budget=budget,
                         users=users, cells=cells, ci_level=ci_level, engine=engine, mechanism=mechanism)


def visits(
    data: Any,
    *,
    epsilon: float | None = None,
    rho: float | None = None,
    delta: float | None = None,
    level: str = "cell",
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
    """Number of stays starting per (area, time bin), with user-level DP.

    Each subscriber adds at most ``bounds.max_per_partition`` visits to a key
    and reaches at most ``bounds.max_partitions`` keys.

    Parameters
    ----------
    data
        A World or its ``stays`` table (then ``users=`` is required).

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> keys = pa.KeySet.areas_by_time(world.cells, level="district", start=world.start, end=world.end, time_bin="1D")
    >>> rel = pa.visits(world, epsilon=1.0, level="district", time_bin="1D", keys=keys)
    >>> list(rel.to_pandas().columns)
    ['district_id', 'time', 'value', 'ci_low', 'ci_high']
    >>> sorted(rel.privacy.bounds)                # chosen privately, then recorded
    ['max_partitions', 'max_per_partition', 'max_total']
    """
    query = Query("visits", level=level, time_bin=time_bin, start=start, end=end, keys=keys)
    return release_query(data, query, epsilon=epsilon, rho=rho, delta=delta, bounds=bounds, budget=budget,
                         users=users, cells=cells, ci_level=ci_level, engine=engine, mechanism=mechanism)


footfall.__doc__ = ((footfall.__doc__ or "").rstrip() + "\n") + COMMON
visits.__doc__ = ((visits.__doc__ or "").rstrip() + "\n") + COMMON
