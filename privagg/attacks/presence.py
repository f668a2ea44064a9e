"""Who was where, hour by hour: the subscriber x (location, hour) presence matrix.

:func:`hourly_presence` turns an ``events`` table into a sparse
subscriber x (location, hour) matrix holding 1 where the subscriber was
there, at most one location per subscriber and hour (the one with most
events). That bounds each subscriber to 24 partitions per day and 1 per
partition: a DP footfall release with those bounds has noise scale
``24 / epsilon`` per subscriber-day. :class:`Presence` aggregates it into
the footfall of groups, the releases of the membership game
(:mod:`privagg.attacks.membership`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from privagg.errors import PrivaggInputError

__all__ = ["Presence", "hourly_presence"]


@dataclass(frozen=True)
class Presence:
    """Who was where, hour by hour.

    Attributes
    ----------
    matrix
        Sparse ``(n_users, n_locations * n_hours)`` 0/1 matrix; column
        ``loc * n_hours + hour``.
    user_ids
        ``user_id`` of each row.
    locations
        Location id (cell or zone) of each location index.
    n_hours
        Length of the time series.
    """

    matrix: sparse.csr_matrix
    user_ids: np.ndarray
    locations: np.ndarray
    n_hours: int

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_locations(self) -> int:
        return len(self.locations)

    def aggregate(self, groups: sparse.spmatrix | np.ndarray) -> np.ndarray:
        """Footfall of each group: ``(n_groups, n_locations, n_hours)`` counts.

        ``groups`` is an ``(n_groups, n_users)`` 0/1 membership matrix (rows index users as in ``user_ids``).
        """
        counts = sparse.csr_matrix(groups, dtype=np.float64) @ self.matrix
        return np.asarray(counts.todense()).reshape(-1, self.n_locations, self.n_hours)


def hourly_presence(
    events: pd.DataFrame,
    *,
    start: str | pd.Timestamp,
    n_hours: int,
    locations: Sequence[int] | None = None,
    location_column: str = "cell_id",
    location_map: pd.Series | None = None,
    user_ids: Sequence[int] | None = None,
) -> Presence:
    """Build the hourly presence matrix from network events.

    Parameters
    ----------
    events
        Table with ``user_id``, ``ts`` and the location column.
    start, n_hours
        The window: hours ``start`` to ``start + n_hours``; events outside are dropped.
    locations
        Public domain of locations (every one gets a time series, empty or
        not). Defaults to the locations present in ``events``.
    location_column
        Column holding the location, ``cell_id`` by default.
    location_map
        Optional mapping (e.g. cell_id -> zone_id, a Series indexed by cell)
        applied to the location column first, for coarser locations.
    user_ids
        Subscribers to include (rows), defaulting to those with events.
    """
    missing = [c for c in ("user_id", "ts", location_column) if c not in events.columns]
    if missing:
        raise PrivaggInputError(f"events lacks column(s) {missing}. Fix: pass the 'events' table of a World.")
    if int(n_hours) != n_hours or n_hours < 1:
        raise PrivaggInputError(f"n_hours={n_hours!r} is not a positive whole number. Fix: pass e.g. n_hours=24.")
    start = pd.Timestamp(start)
    hour = ((events["ts"] - start) // pd.Timedelta(hours=1)).to_numpy()
    loc = events[location_column]
    if location_map is not None:
        loc = loc.map(location_map)
    loc = loc.to_numpy()
    keep = (hour >= 0) & (hour < n_hours)
    uid = events["user_id"].to_numpy()[keep]
    hour, loc = hour[keep].astype(np.int64), loc[keep]
    locations = np.unique(loc) if locations is None else np.asarray(locations)
    user_ids = np.unique(uid) if user_ids is None else np.asarray(user_ids)
    loc_idx = pd.Index(locations).get_indexer(loc)
    row = pd.Index(user_ids).get_indexer(uid)
    ok = (loc_idx >= 0) & (row >= 0)
    frame = pd.DataFrame({"row": row[ok], "hour": hour[ok], "loc": loc_idx[ok]})
    # One location per subscriber and hour: the one with most events (ties: lowest index).
    frame = frame.groupby(["row", "hour", "loc"], sort=True).size().rename("n").reset_index()
    frame = frame.sort_values(["row", "hour", "n", "loc"], ascending=[True, True, False, True], kind="stable")
    frame = frame.drop_duplicates(["row", "hour"])
    col = frame["loc"].to_numpy() * n_hours + frame["hour"].to_numpy()
    matrix = sparse.csr_matrix(
        (np.ones(len(frame), dtype=np.float64), (frame["row"].to_numpy(), col)),
        shape=(len(user_ids), len(locations) * n_hours),
    )
    return Presence(matrix, user_ids, locations, int(n_hours))
