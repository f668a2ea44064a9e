"""Resolving a release's inputs: World or tables, consent, window.

Consent is applied here, before anything else: only subscribers whose
``opt_in`` is True in the users table reach a statistic. Given raw tables,
a release *requires* ``users=`` so that consent cannot be forgotten; rows of
subscribers absent from ``users`` are treated as not consenting.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from privagg.errors import PrivaggInputError
from privagg.queries import LEVELS, TIME_COLUMN, KeySet, Query, parse_time_bin, parse_window
from privagg.releases.build import Inputs
from privagg.schema import validate_table
from privagg.world import World

# Which table each statistic reads.
TABLE_OF = {
    "footfall": None,  # stays or events, by source
    "segment_counts": None,
    "visits": "stays",
    "dwell_times": "stays",
    "dwell_mean": "stays",
    "od_flows": "trips",
    "segment_mean": "users",
    "micro_segments": "users",
}


def consent_mask(user_ids: np.ndarray, consenting: np.ndarray) -> np.ndarray:
    """True where ``user_ids`` is in ``consenting`` (vectorised; a lookup table when ids are compact)."""
    user_ids = np.asarray(user_ids, dtype=np.int64)
    consenting = np.asarray(consenting, dtype=np.int64)
    if len(consenting) == 0 or len(user_ids) == 0:
        return np.zeros(len(user_ids), dtype=bool)
    lo, hi = int(consenting.min()), int(consenting.max())
    first, last = int(user_ids.min()), int(user_ids.max())
    if min(lo, first) >= 0 and max(hi, last) < max(4 * len(consenting), 1 << 20):
        # Non-negative, compact ids: one gather from a table indexed by the id itself.
        lut = np.zeros(max(hi, last) + 1, dtype=bool)
        lut[consenting] = True
        return lut[user_ids]
    if hi - lo < max(4 * len(consenting), 1 << 20):
        lut = np.zeros(hi - lo + 1, dtype=bool)
        lut[consenting - lo] = True
        off = user_ids - lo
        ok = (off >= 0) & (off <= hi - lo)
        if ok.all():
            return lut[off]
        out = np.zeros(len(user_ids), dtype=bool)
        out[ok] = lut[off[ok]]
        return out
    return pd.Index(consenting).get_indexer(user_ids) >= 0


def table_name(query: Query) -> str:
    name = TABLE_OF[query.statistic]
    return query.source if name is None else name


def resolve(
    data: Any,
    query: Query,
    *,
    users: pd.DataFrame | None,
    cells: pd.DataFrame | None,
    keys: KeySet | None,
) -> Inputs:
    """Validate and consent-filter the inputs of ``query``; fix its window.

    ``data`` is a World or the statistic's table (stays, events or trips;
    ignored for per-user statistics, which read ``users``).
    """
    name = table_name(query)
    world_start = world_end = None
    if isinstance(data, World):
        users = data.users if users is None else users
        cells = data.cells if cells is None else cells
        table = None if name == "users" else getattr(data, name)
        world_start, world_end = data.meta.get("start"), data.meta.get("end")
    else:
        table = data if name != "users" else None
        if name != "users" and not isinstance(data, pd.DataFrame):
            raise PrivaggInputError(
                f"data: expected a World or the '{name}' table as a pandas DataFrame, got {type(data).__name__}. "
                f"Fix: pass world or world.{name}."
            )
        if users is None:
            raise PrivaggInputError(
                "users= is required with raw tables, so that subscribers who did not consent (opt_in == False) "
                "are excluded. Fix: pass users=world.users (or the World itself as the first argument)."
            )
    if not isinstance(users, pd.DataFrame):
        raise PrivaggInputError(f"users: expected the users table as a pandas DataFrame, got {type(users).__name__}. Fix: pass users=world.users.")
    validate_table(users, "users")
    if table is not None:
        validate_table(table, name)
    needs_cells = query.level in ("zone", "district") or (
        query.statistic in ("segment_mean", "micro_segments") and query.level is not None
    )
    if needs_cells:
        if cells is None:
            raise PrivaggInputError(
                f"cells= is required for level={query.level!r} (to map cells to {LEVELS[query.level]}). Fix: pass cells=world.cells."
            )
        validate_table(cells, "cells")

    consenting_users = users.loc[users["opt_in"].to_numpy(dtype=bool)].reset_index(drop=True)
    row_mask = None
    if table is not None:
        # A row mask rather than a filtered copy: the statistic applies it with its window, in one pass.
        row_mask = consent_mask(table["user_id"].to_numpy(), consenting_users["user_id"].to_numpy())
        if row_mask.all():
            row_mask = None

    start, end = window(query, keys, world_start, world_end)
    return Inputs(table, consenting_users, cells, start, end, row_mask)


def window(query: Query, keys: KeySet | None, world_start: Any, world_end: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The release window: the query's, else the public keys' time range, else the World's."""
    tb = parse_time_bin(query.time_bin) if query.time_bin is not None else None
    start, end = query.start, query.end
    if (start is None or end is None) and keys is not None and TIME_COLUMN in keys.columns and tb is not None:
        times = keys.select([TIME_COLUMN]).to_pandas()[TIME_COLUMN]
        start = times.min() if start is None else start
        end = times.max() + tb if end is None else end
    if start is None or end is None:
        start = world_start if start is None else start
        end = world_end if end is None else end
    if start is None or end is None:
        if query.statistic in ("segment_mean", "micro_segments"):
            return pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D")
        raise PrivaggInputError(
            "the release window is unknown. Fix: pass start= and end= (the privacy unit's window), "
            "public keys with a 'time' column, or a World."
        )
    return parse_window(start, end, tb)
