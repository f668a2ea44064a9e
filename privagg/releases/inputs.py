"""Resolving a release's inputs: World or tables, consent, window.

Consent is applied here, before anything else: only subscribers whose
``opt_in`` is True in the users table reach a statistic. Given raw tables,
a release *requires* ``users=`` so that consent cannot be forgotten; rows of
subscribers absent from ``users`` are treated as not consenting. Nothing
here is derived from the rows: the window comes from the query, the public
keys or the World's metadata (a World built from a user's own tables derives
it from consenting subscribers' rows only, see :class:`privagg.world.World`),
and raw tables without any of them need an explicit ``start=`` and ``end=``.
The users table needs only ``user_id``, ``opt_in`` and the columns the
statistic reads.
"""

from __future__ import annotations

from typing import Any, Callable

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


def consent_lookup(consenting: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function telling, for an array of user ids, which are in ``consenting``.

    Built once per release (a lookup table indexed by id when ids are compact,
    else a hash index) and applied to each chunk of rows.
    """
    consenting = np.asarray(consenting, dtype=np.int64)
    if len(consenting) == 0:
        return lambda user_ids: np.zeros(len(user_ids), dtype=bool)
    lo, hi = int(consenting.min()), int(consenting.max())
    if hi - lo >= max(4 * len(consenting), 1 << 20):
        index = pd.Index(consenting)
        return lambda user_ids: index.get_indexer(np.asarray(user_ids, dtype=np.int64)) >= 0
    base = 0 if 0 <= lo <= 4 * (hi - lo + 1) else lo  # index by the id itself when the table stays small
    lut = np.zeros(hi - base + 1, dtype=bool)
    lut[consenting - base] = True

    def mask(user_ids: np.ndarray) -> np.ndarray:
        # intp indices: numpy gathers several times faster with them than with int32.
        off = np.array(user_ids, dtype=np.intp)
        if len(off) == 0:
            return np.zeros(0, dtype=bool)
        if base:
            off -= base
        if int(off.min()) >= 0 and int(off.max()) <= hi - base:
            return lut[off]
        ok = (off >= 0) & (off <= hi - base)
        out = np.zeros(len(off), dtype=bool)
        out[ok] = lut[off[ok]]
        return out

    return mask


def check_user_columns(query: Query, users: pd.DataFrame) -> None:
    """The users table needs ``user_id`` and ``opt_in`` (checked by the schema) and only the columns the
    statistic reads: its ``by`` columns, its averaged ``column``, and ``home_cell`` for per-subscriber
    statistics by area."""
    needed: dict[str, str] = {}
    for column in query.by:
        needed[column] = f"by={column!r}"
    if query.statistic == "segment_mean" and query.column:
        needed[query.column] = f"column={query.column!r}"
    if query.statistic in ("segment_mean", "micro_segments") and query.level is not None:
        needed["home_cell"] = f"level={query.level!r} (a subscriber's area is their home cell's)"
    for column, why in needed.items():
        if column not in users.columns:
            raise PrivaggInputError(
                f"table 'users', column {column!r}: missing, and {query.statistic} with {why} reads it. "
                f"Fix: add the column {column!r} to the users table, or release without it."
            )


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
    check_user_columns(query, users)
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
    start, end = window(query, keys, world_start, world_end)
    # A row mask rather than a filtered copy: the statistic applies it with its window, in one pass.
    return Inputs(table, consenting_users, cells, start, end, consent_lookup(consenting_users["user_id"].to_numpy()))


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
