"""Segment statistics: crossbreaks by demographic columns and tags."""

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
from privagg.releases.footfall import infer_source
from privagg.releases.inputs import table_columns
from privagg.world import World

MEASURES = ("count", "mean", "micro")


def segment_stats(
    data: Any,
    users: pd.DataFrame | None = None,
    *,
    by: Sequence[str] = (),
    measure: str = "count",
    column: str | None = None,
    epsilon: float | None = None,
    rho: float | None = None,
    delta: float | None = None,
    level: str | None = "auto",
    time_bin: str | None = "auto",
    keys: KeySet | None = None,
    bounds: Bounds | str | None = None,
    budget: Budget | None = None,
    cells: pd.DataFrame | None = None,
    start: Any = None,
    end: Any = None,
    source: str | None = None,
    ci_level: float = 0.95,
    engine: Engine | None = None,
    mechanism: str = "auto",
) -> Release:
    """Segment statistics with user-level DP.

    ``measure="count"``
        Distinct subscribers per (``by`` columns, area, time bin): footfall
        crossbroken by segment (defaults: zone, 1 day). ``level=None`` and
        ``time_bin=None`` give subscribers per segment present in the window.
    ``measure="mean"``
        Mean of the clamped numeric user column ``column`` (e.g. ``"arpu"``)
        per segment; needs ``bounds=Bounds(lower=..., upper=...)``. With a
        ``level``, segments are also split by home area. Half the loss for the
        count, half for the sum.
    ``measure="micro"``
        Subscribers per combination of boolean tag columns (``by``, default
        all ``tag_*`` columns), optionally per home area (``level``).

    Parameters
    ----------
    data
        A World, or the ``stays``/``events`` table for counts (``None`` is
        fine for ``mean`` and ``micro``, which read ``users`` only).
    users
        The users table (segment columns and consent); taken from the World if omitted.
    by
        User columns to crossbreak by, e.g. ``["age_band", "gender"]``.

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> from privagg.schema import AGE_BANDS, GENDERS
    >>> keys = pa.KeySet.from_values(age_band=list(AGE_BANDS), gender=list(GENDERS))
    >>> arpu = pa.segment_stats(world, by=["age_band", "gender"], measure="mean", column="arpu", keys=keys,
    ...                         epsilon=1.0, bounds=pa.Bounds(max_partitions=1, lower=0, upper=100))
    >>> list(arpu.to_pandas().columns)
    ['age_band', 'gender', 'value', 'ci_low', 'ci_high']
    >>> len(arpu.to_pandas()) == len(AGE_BANDS) * len(GENDERS)
    True
    """
    if measure not in MEASURES:
        raise PrivaggInputError(f"measure={measure!r} is unknown. Fix: use one of {', '.join(map(repr, MEASURES))}.")
    statistic = {"count": "segment_counts", "mean": "segment_mean", "micro": "micro_segments"}[measure]
    if measure == "count" and not by:
        raise PrivaggInputError("segment_stats(measure='count') needs by=[...]. Fix: e.g. by=['age_band', 'gender'].")
    if measure != "count":
        if data is not None and not isinstance(data, World) and users is None and "opt_in" in (table_columns(data) or ()):
            users = data
        if time_bin not in ("auto", None):
            raise PrivaggInputError(
                f"time_bin={time_bin!r}: measure={measure!r} describes subscribers, not times. Fix: pass time_bin=None."
            )
        time_bin = None
        if level == "auto":
            level = None
    src = infer_source(data, source) if measure == "count" else "stays"
    query = Query(statistic, level=level, time_bin=time_bin, start=start, end=end, by=tuple(by), source=src,
                  column=column, keys=keys)
    if not isinstance(data, World) and measure != "count":
        data = users if users is not None else data
    return release_query(data, query, epsilon=epsilon, rho=rho, delta=delta, bounds=bounds, budget=budget,
                         users=users, cells=cells, ci_level=ci_level, engine=engine, mechanism=mechanism)


segment_stats.__doc__ = ((segment_stats.__doc__ or "").rstrip() + "\n") + COMMON
