"""What the trajectory adversaries read and return: the footfall grid, the true locations, the recovery.

:func:`footfall_grid` turns a footfall release (or its table) into the
dense, non-negative integer :class:`Footfall` grid every adversary of
:mod:`privagg.attacks.trajectory_recovery` consumes: noisy (DP) values are
rounded and clipped to non-negative integers, suppressed ones count 0, and
the unclipped per-slot totals are kept as an estimate of how many people
were counted. :func:`true_locations` gives each subscriber's location per
slot, against which the recovered trajectories are scored;
:func:`location_coordinates` the locations' coordinates. Each adversary
returns a :class:`Recovery`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from privagg.errors import PrivaggInputError

__all__ = [
    "DEFAULT_NIGHT_HOURS",
    "DEFAULT_WORK_HOURS",
    "Footfall",
    "Recovery",
    "TIME_COLUMNS",
    "footfall_grid",
    "location_coordinates",
    "true_locations",
]

TIME_COLUMNS = ("time", "hour", "time_bin", "ts", "start", "slot")
DEFAULT_NIGHT_HOURS = (0, 1, 2, 3, 4, 5)
DEFAULT_WORK_HOURS = (9, 10, 11, 12, 13, 14, 15, 16)


@dataclass(frozen=True)
class Footfall:
    """Counts per (location, slot) on a full grid, as the attack consumes them.

    Attributes
    ----------
    locations
        Location ids (e.g. cell ids), in the order of ``counts``' columns.
    slots
        Start of each time slot, in order.
    counts
        Non-negative integer counts, shape ``(len(slots), len(locations))``.
    signed_totals
        Per-slot sums of the rounded values *before* clipping at 0: with
        zero-mean noise, an unbiased estimate of the number of people counted.
    signed
        The rounded values before clipping, on the same grid (None if not kept).
    """

    locations: np.ndarray
    slots: pd.DatetimeIndex
    counts: np.ndarray
    signed_totals: np.ndarray
    signed: np.ndarray | None = None


def footfall_grid(
    footfall: Any,
    *,
    locations: Sequence[int] | None = None,
    location_col: str = "cell_id",
    time_col: str | None = None,
    value_col: str = "value",
    slot: str | None = None,
) -> Footfall:
    """Turn a footfall release (or DataFrame) into a dense, non-negative integer grid.

    Other key columns (segments) are summed over; missing keys count 0;
    values are rounded to the nearest integer and clipped at 0; NaN
    (suppressed) values count 0.
    """
    table = footfall.to_pandas() if hasattr(footfall, "to_pandas") else footfall
    if not isinstance(table, pd.DataFrame):
        raise PrivaggInputError(
            f"footfall of type {type(footfall).__name__} is neither a Release nor a DataFrame. Fix: pass a footfall release or its table."
        )
    if time_col is None:
        time_col = next((c for c in TIME_COLUMNS if c in table.columns), None)
    missing = [c for c in (location_col, time_col, value_col) if c is None or c not in table.columns]
    if missing:
        raise PrivaggInputError(
            f"footfall lacks column(s) {missing} (columns: {list(table.columns)}). "
            "Fix: pass location_col=, time_col= and value_col= naming them."
        )
    times = pd.to_datetime(table[time_col])
    signed = np.rint(np.nan_to_num(table[value_col].to_numpy(dtype=float), nan=0.0))
    values = np.clip(signed, 0, None)
    if locations is None:
        locations = np.unique(table[location_col].to_numpy())
    locations = np.asarray(locations)
    unique_times = np.unique(times.to_numpy("datetime64[ns]"))
    if len(unique_times) == 0:
        raise PrivaggInputError("footfall has no rows. Fix: attack a non-empty release.")
    if slot is None:
        step = pd.Timedelta(np.diff(unique_times).min()) if len(unique_times) > 1 else pd.Timedelta("1h")
    else:
        step = pd.Timedelta(slot)
    slots = pd.date_range(unique_times[0], unique_times[-1], freq=step)
    t_index = ((times.to_numpy("datetime64[ns]") - unique_times[0]) // step.to_timedelta64()).astype(np.int64)
    l_index = np.searchsorted(locations, table[location_col].to_numpy())
    known = (l_index < len(locations)) & (locations[np.minimum(l_index, len(locations) - 1)] == table[location_col].to_numpy())
    counts = np.zeros((len(slots), len(locations)), dtype=np.int64)
    np.add.at(counts, (t_index[known], l_index[known]), values[known].astype(np.int64))
    signed_totals = np.zeros(len(slots))
    np.add.at(signed_totals, t_index[known], signed[known])
    signed_grid = np.zeros((len(slots), len(locations)))
    np.add.at(signed_grid, (t_index[known], l_index[known]), signed[known])
    return Footfall(locations=locations, slots=slots, counts=counts, signed_totals=signed_totals,
                    signed=signed_grid)


def location_coordinates(cells: pd.DataFrame, level: str = "cell_id") -> pd.DataFrame:
    """Coordinates (``x``, ``y``) of each location at ``level``: the cell's, or the mean of an area's cells."""
    if level not in cells.columns:
        raise PrivaggInputError(f"level={level!r} is not a column of cells. Fix: use cell_id, zone_id or district_id.")
    return cells.groupby(level, as_index=False)[["x", "y"]].mean().sort_values(level).reset_index(drop=True)


def true_locations(
    stays: pd.DataFrame,
    slots: pd.DatetimeIndex,
    *,
    location_col: str = "cell_id",
    user_col: str = "user_id",
) -> tuple[np.ndarray, np.ndarray]:
    """Each subscriber's location in each slot: where they spent most of it.

    A slot in which a subscriber has no stay takes their last known
    location (or, before the first stay, the first one).

    Returns
    -------
    user_ids, locations
        Sorted user ids and an ``(n_users, len(slots))`` array of location ids.
    """
    step = slots[1] - slots[0] if len(slots) > 1 else pd.Timedelta("1h")
    step_ns = step.value
    origin = slots[0].to_datetime64().astype("datetime64[ns]")
    start = (pd.to_datetime(stays["start"]).to_numpy("datetime64[ns]") - origin).astype(np.int64)
    end = (pd.to_datetime(stays["end"]).to_numpy("datetime64[ns]") - origin).astype(np.int64)
    n_slots = len(slots)
    start = np.clip(start, 0, n_slots * step_ns)
    end = np.clip(end, 0, n_slots * step_ns)
    keep = end > start
    start, end = start[keep], end[keep]
    users_raw = stays[user_col].to_numpy()[keep]
    locs = stays[location_col].to_numpy()[keep]
    first = start // step_ns
    last = (end - 1) // step_ns
    n = last - first + 1
    row = np.repeat(np.arange(len(n)), n)
    bins = first[row] + np.arange(len(row)) - np.repeat(np.cumsum(n) - n, n)
    overlap = np.minimum(end[row], (bins + 1) * step_ns) - np.maximum(start[row], bins * step_ns)
    user_ids, user_index = np.unique(users_raw, return_inverse=True)
    u = user_index[row]
    # keep, per (user, slot), the row with the longest overlap
    order = np.lexsort((-overlap, bins, u))
    u, bins, loc = u[order], bins[order], locs[row][order]
    first_of_group = np.ones(len(u), dtype=bool)
    first_of_group[1:] = (u[1:] != u[:-1]) | (bins[1:] != bins[:-1])
    out = np.full((len(user_ids), n_slots), -1, dtype=np.int64)
    out[u[first_of_group], bins[first_of_group]] = loc[first_of_group]
    return user_ids, _fill(out)


def _fill(grid: np.ndarray) -> np.ndarray:
    """Forward-fill -1 entries along rows, then back-fill the leading ones."""
    valid = grid >= 0
    idx = np.where(valid, np.arange(grid.shape[1]), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    filled = np.take_along_axis(grid, idx, axis=1)
    first_valid = np.argmax(valid, axis=1)
    lead = np.arange(grid.shape[1])[None, :] < first_valid[:, None]
    filled = np.where(lead, grid[np.arange(len(grid)), first_valid][:, None], filled)
    return filled


@dataclass(frozen=True)
class Recovery:
    """Trajectories recovered from footfall.

    Attributes
    ----------
    locations
        Location ids; ``trajectories`` hold indices into this array.
    slots
        Start of each time slot.
    trajectories
        ``(n_trajectories, len(slots))`` location indices, -1 where a
        trajectory was not linked on that day.
    """

    locations: np.ndarray
    slots: pd.DatetimeIndex
    trajectories: np.ndarray

    def location_ids(self) -> np.ndarray:
        """The trajectories as location ids (-1 kept)."""
        return np.where(self.trajectories >= 0, self.locations[np.maximum(self.trajectories, 0)], -1)


def _prepare(footfall, coordinates, location_col, time_col, value_col, night_hours, n_trajectories,
             day_start_hour):
    """The grid, coordinates, believed population, night flags and day labels shared by every variant."""
    coords_table = coordinates.sort_values(location_col).reset_index(drop=True)
    if isinstance(footfall, Footfall):
        grid = footfall
        if not np.array_equal(grid.locations, coords_table[location_col].to_numpy()):
            raise PrivaggInputError(
                "the Footfall grid's locations differ from the coordinates'. "
                "Fix: build it with footfall_grid(..., locations=coordinates[location_col])."
            )
    else:
        grid = footfall_grid(
            footfall, locations=coords_table[location_col].to_numpy(), location_col=location_col,
            time_col=time_col, value_col=value_col,
        )
    coords = coords_table[["x", "y"]].to_numpy(dtype=float)
    coord_index = {(float(x), float(y)): i for i, (x, y) in enumerate(coords)}
    if n_trajectories is None:
        n_trajectories = max(1, int(np.median(grid.signed_totals)))
    night_set = set(int(h) for h in night_hours)
    night = np.array([ts.hour in night_set for ts in grid.slots])
    days = (grid.slots - pd.Timedelta(hours=day_start_hour)).normalize()
    return grid, coords, coord_index, n_trajectories, night, days
