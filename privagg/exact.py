"""Exact (non-private) aggregates: the ground truth every release is measured against.

:func:`exact_aggregate` answers a :class:`~privagg.queries.Query` on the
consenting subscribers' data with no bounding and no noise, using the same
statistic definitions as the private releases
(:mod:`privagg.releases.build`). Never publish its output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from privagg.engines import LocalEngine
from privagg.engines.base import Engine
from privagg.queries import KeySet, Query
from privagg.releases.build import contributions, key_columns
from privagg.releases.inputs import resolve

MEAN_STATISTICS = ("dwell_mean", "segment_mean")


def exact_aggregate(
    world: Any,
    query: Query,
    *,
    include_empty: bool = False,
    users: pd.DataFrame | None = None,
    cells: pd.DataFrame | None = None,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """True aggregate of ``query`` over the opted-in subscribers of ``world``.

    Parameters
    ----------
    world
        A :class:`~privagg.world.World`, or the statistic's table with ``users=``
        (and ``cells=`` for zone/district levels).
    query
        What to compute. ``query.keys``, when set, restricts the output to
        those keys (data outside them is ignored, as in a release).
    include_empty
        With ``query.keys`` set, also return the keys whose value is 0 (NaN for means).

    Returns
    -------
    pandas.DataFrame
        Key columns (``query.key_columns()``), then ``value``: counts as int64,
        means as float64. Without ``include_empty``, only non-empty keys,
        sorted by key.

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> query = pa.Query("footfall", level="zone", time_bin="6h", start=world.start, end=world.end)
    >>> truth = pa.exact_aggregate(world, query)  # the truth: never publish it
    >>> list(truth.columns), str(truth["value"].dtype)
    (['zone_id', 'time', 'value'], 'int64')
    """
    engine = engine or LocalEngine()
    keys = query.keys
    inputs = resolve(world, query, users=users, cells=cells, keys=keys)
    columns = list(key_columns(query, inputs.users))
    if keys is not None:
        keys.check_columns(columns)
    contrib = contributions(query, inputs, keys, None)
    domain, n_partitions = contrib.domain, contrib.n_partitions
    dense = include_empty and keys is not None
    totals = engine.bounded_totals(contrib, None, dense=dense)
    codes = np.arange(n_partitions) if dense else totals.codes
    if query.statistic in MEAN_STATISTICS:
        with np.errstate(invalid="ignore", divide="ignore"):
            value = totals.sums / np.where(totals.counts > 0, totals.counts, np.nan)
    else:
        value = totals.counts.astype(np.int64)
    table = domain.decode(codes)[columns] if len(codes) else _empty_keys(domain, columns)
    table["value"] = value
    return table.sort_values(columns, kind="stable").reset_index(drop=True)


def _empty_keys(domain: KeySet, columns: list[str]) -> pd.DataFrame:
    return domain.decode(np.zeros(0, dtype=np.int64))[columns]
