"""Trajectory recovery from aggregated footfall (Xu et al., WWW 2017).

"Trajectory Recovery From Ash: User Privacy Is NOT Preserved in Aggregated
Mobility Data" (Xu, Tu, Li, Zhang, Fu, Jin) showed that from counts of
people per location and time slot alone an adversary recovers individual
trajectories with 73-91% accuracy, and that the recovered trajectories are
unique enough to be linked to people by their top locations.

The attack, as in the paper:

1. **Within a day**, the counts of each slot are expanded into individual
   "location slots" (a count of 3 at cell c is three slots at c). The
   trajectories of the day start at the first slot's locations and are
   extended slot by slot by a minimum-cost assignment (Hungarian algorithm,
   :func:`scipy.optimize.linear_sum_assignment`) between trajectories and the
   next slot's location slots. At night people stay put: the cost is the
   distance from the trajectory's last location. By day people keep moving:
   the cost is the distance from the location predicted by the trajectory's
   velocity (last location plus last displacement).
2. **Across days**, the day-trajectories are linked to the trajectories
   recovered so far by a second assignment whose cost is the information
   gain of the link: the increase in entropy of the merged location
   histogram over the entropies of its parts (a weighted Jensen-Shannon
   divergence), so that a person's days are joined by the regularity of the
   places they visit.

One exact speed-up, not in the paper: a trajectory whose predicted location
is exactly a location with unassigned slots is given one of them at zero
cost before the Hungarian step. With a metric cost such a zero-cost pair is
part of some optimal assignment, so the result is an optimum of the same
problem; only movers enter the Hungarian step, which makes 2,000
subscribers x 7 days take seconds.

Noisy inputs (DP releases) are rounded and clipped to non-negative
integers first. Totals then differ between slots: the assignment is
rectangular (a trajectory left without a slot stays where it was; a slot
left without a trajectory is dropped), and a slot whose total exceeds
``max_total_ratio`` times the number of trajectories is scaled down by
largest-remainder apportionment, as an adversary who knows roughly how
many subscribers there are would do.

Success is measured as in the paper: recovered trajectories are paired
with true ones by the assignment maximising the number of slots at which
they agree, and the *recovery accuracy* is the mean, over true
subscribers, of the share of their slots at which the paired recovered
trajectory is at the true location. Re-identification: a subscriber is
re-identified by their top-``k`` locations (known to the adversary) when
exactly one recovered trajectory has the same top-``k`` set and it is the
one paired with them; ``unique_top{k}`` is the share of recovered
trajectories whose top-``k`` set no other recovered trajectory shares (the
uniqueness figure of the paper).

Each day starts at its first *usable* slot (whose total is close to the
day's largest), not necessarily 00:00, and the trajectories are extended
forwards and backwards from there: under small-count suppression the
midnight counts can miss everyone in a quiet cell.

**Risk = the strongest adversary.** :func:`trajectory_recovery` runs three
adversaries on the same counts and reports the strongest:

* ``"Xu et al."``: the attack above;
* ``"stay put (night cell)"``: everyone counted in each day's first usable
  (night) slot stays there all day, days linked by the night cell (same
  cell first, then the nearest) -- independent of Xu's linking;
* ``"home/work prior"``: each person has a home (night counts) and a
  workplace (the daytime peak), paired by least commuting distance; each
  slot's counts are filled preferring workplaces by day and homes
  otherwise; days linked by the (home, work) pair;
* ``"stay put (denoised night counts)"``: the stay-put adversary on the
  night counts averaged over the night slots and shrunk towards the even
  spread by their estimated noise (estimated from the night-to-night
  changes, so the mechanism need not be known): the adversary who knows
  the counts may be noisy.

The stay-put and home/work adversaries spread the people the night counts
miss (suppressed, or fewer than the believed population) evenly over the
locations counted as empty. The strongest is chosen on a random half of the subscribers and its
accuracy reported on the other half (so the choice does not inflate it);
``variants`` hold every adversary's held-out figure and
``stay_put_accuracy`` the stay-put one. The random-guess ``baseline`` runs
Xu's pipeline with random instead of optimal assignments (same counts).
``release_free_accuracy`` is the accuracy of an adversary who never saw the
release (the believed population spread evenly over the locations, staying
put): the pairing rewards trajectories at many places, so this is what the
metric grants without any counts, and the yardstick for DP releases (no
formal DP bound applies to a pairing-scored accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from privagg.attacks.result import AttackResult, wilson_interval
from privagg.errors import PrivaggInputError

TIME_COLUMNS = ("time", "hour", "time_bin", "ts", "start", "slot")
DEFAULT_NIGHT_HOURS = (0, 1, 2, 3, 4, 5)
DEFAULT_WORK_HOURS = (9, 10, 11, 12, 13, 14, 15, 16)
XU, STAY_PUT, HOME_WORK = "Xu et al.", "stay put (night cell)", "home/work prior"
DENOISED = "stay put (denoised night counts)"


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


def _expand(counts: np.ndarray) -> np.ndarray:
    """Location indices repeated by their counts."""
    return np.repeat(np.arange(len(counts)), counts)


def _apportion(counts: np.ndarray, total: int) -> np.ndarray:
    """Scale ``counts`` down to sum to ``total`` by largest remainders."""
    share = counts * (total / counts.sum())
    out = np.floor(share).astype(np.int64)
    short = total - out.sum()
    if short > 0:
        out[np.argsort(-(share - out), kind="stable")[:short]] += 1
    return out


def _assign_step(
    estimate: np.ndarray,
    estimate_loc: np.ndarray,
    counts: np.ndarray,
    coords: np.ndarray,
    previous: np.ndarray,
    rng: np.random.Generator | None,
) -> np.ndarray:
    """Next location of each trajectory: zero-cost pairs first, then the Hungarian step on the rest.

    ``estimate`` are predicted coordinates; ``estimate_loc`` the location
    index they coincide with, or -1. With ``rng`` the assignment is random
    (the baseline adversary).
    """
    n = len(estimate)
    nxt = previous.copy()
    remaining = counts.copy()
    if rng is not None:
        slots = _expand(remaining)
        rng.shuffle(slots)
        m = min(n, len(slots))
        who = rng.permutation(n)[:m]
        nxt[who] = slots[:m]
        return nxt
    free = np.ones(n, dtype=bool)
    on_loc = np.flatnonzero(estimate_loc >= 0)
    if len(on_loc):
        order = on_loc[np.argsort(estimate_loc[on_loc], kind="stable")]
        locs = estimate_loc[order]
        rank = np.arange(len(order)) - np.searchsorted(locs, locs)
        take = rank < remaining[locs]
        nxt[order[take]] = locs[take]
        free[order[take]] = False
        np.subtract.at(remaining, locs[take], 1)
    rows = np.flatnonzero(free)
    slots = _expand(remaining)
    if len(rows) and len(slots):
        diff = estimate[rows][:, None, :] - coords[slots][None, :, :]
        cost = np.sqrt((diff * diff).sum(axis=2))
        r, c = linear_sum_assignment(cost)
        nxt[rows[r]] = slots[c]
    return nxt


def _start_slot(counts: np.ndarray, n_trajectories: int | None, max_total_ratio: float,
                usable_share: float, among: np.ndarray | None = None) -> int:
    """The first slot of a day whose counts are usable: its total is within ``usable_share`` of the most
    people counted in any slot of the day (capped at the believed population).

    Under small-count suppression the 00:00 counts can miss everyone in a sparsely populated cell; starting
    there would lose them for the whole day. ``among`` restricts the choice to some slots (e.g. the night
    ones) when any of them is in the day.
    """
    totals = counts.sum(axis=1).astype(float)
    if not len(totals):
        return 0
    if among is not None and np.any(among):
        totals = np.where(among, totals, -1.0)
    most = totals.max()
    if n_trajectories is not None:
        most = min(most, n_trajectories * max_total_ratio)
    usable = np.flatnonzero(totals >= usable_share * most)
    return int(usable[0]) if len(usable) else int(np.argmax(totals))


def _people(counts: np.ndarray, n_trajectories: int | None, max_total_ratio: float) -> np.ndarray:
    """Individuals (location indices) in one slot's counts, scaled down if implausibly many."""
    if n_trajectories is not None and counts.sum() > n_trajectories * max_total_ratio:
        counts = _apportion(counts, n_trajectories)
    return _expand(counts)


def _recover_day(
    counts: np.ndarray,
    coords: np.ndarray,
    coord_index: dict[tuple[float, float], int],
    night: np.ndarray,
    n_trajectories: int | None,
    max_total_ratio: float,
    rng: np.random.Generator | None,
    usable_share: float = 0.9,
) -> np.ndarray:
    """Trajectories of one day (location indices, shape ``(n, n_slots)``).

    They start at the first usable slot (:func:`_start_slot`) and are
    extended forwards to the end of the day and backwards to its start.
    """
    start = _start_slot(counts, n_trajectories, max_total_ratio, usable_share)
    people = _people(counts[start], n_trajectories, max_total_ratio)
    n = len(people)
    out = np.empty((n, len(counts)), dtype=np.int64)
    out[:, start] = people
    cap = max(1, int(np.ceil(n * max_total_ratio)))
    order = [(t, t - 1, t - 2 if t - 2 >= start else None) for t in range(start + 1, len(counts))]
    order += [(t, t + 1, t + 2 if t + 2 < len(counts) else None) for t in range(start - 1, -1, -1)]
    for t, prev, before in order:
        step_counts = counts[t]
        if step_counts.sum() > cap:
            step_counts = _apportion(step_counts, n)
        last = out[:, prev]
        if night[t] or before is None:
            estimate = coords[last]
            estimate_loc = last
        else:
            estimate = 2 * coords[last] - coords[out[:, before]]
            moved = out[:, before] != last
            estimate_loc = last.copy()
            if moved.any():
                estimate_loc[moved] = [coord_index.get((x, y), -1) for x, y in estimate[moved]]
        out[:, t] = _assign_step(estimate, estimate_loc, step_counts, coords, last, rng)
    return out


def _link_by(anchors_prev: np.ndarray, anchors_new: np.ndarray, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair chains with a new day's individuals by their anchor cells (one or more columns of location
    indices): identical anchors first, then the least total distance between the anchors' coordinates.

    Returns ``(rows, cols)``: chain ``rows[i]`` continues with individual ``cols[i]``.
    """
    if anchors_prev.ndim == 1:
        anchors_prev, anchors_new = anchors_prev[:, None], anchors_new[:, None]
    # identical anchors: the i-th chain with a given anchor meets the i-th individual with it
    _, code = np.unique(np.concatenate([anchors_prev, anchors_new]), axis=0, return_inverse=True)
    code = code.ravel()
    code_prev, code_new = code[: len(anchors_prev)], code[len(anchors_prev):]

    def ranked(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        rank = np.arange(len(codes)) - np.searchsorted(sorted_codes, sorted_codes)
        return order, sorted_codes * (len(code) + 1) + rank

    order_prev, key_prev = ranked(code_prev)
    order_new, key_new = ranked(code_new)
    _, at_prev, at_new = np.intersect1d(key_prev, key_new, assume_unique=True, return_indices=True)
    rows = [order_prev[at_prev]]
    cols = [order_new[at_new]]
    free_prev = np.setdiff1d(np.arange(len(anchors_prev)), rows[0])
    free_new = np.setdiff1d(np.arange(len(anchors_new)), cols[0])
    if len(free_prev) and len(free_new):
        a = np.concatenate([coords[anchors_prev[free_prev, j]] for j in range(anchors_prev.shape[1])], axis=1)
        b = np.concatenate([coords[anchors_new[free_new, j]] for j in range(anchors_new.shape[1])], axis=1)
        cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))
        r, c = linear_sum_assignment(cost)
        rows.append(free_prev[r])
        cols.append(free_new[c])
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def _chain_days(day_trajectories: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_slots: int,
                coords: np.ndarray) -> np.ndarray:
    """Join days' trajectories into chains by their anchors (``(slot indices, trajectories, anchors)`` per day).

    A chain a day leaves unlinked keeps -1 on that day; the chains are
    those of the first day with anyone counted.
    """
    chains: np.ndarray | None = None
    anchors: np.ndarray | None = None
    for sel, traj, day_anchors in day_trajectories:
        if chains is None or len(chains) == 0:
            chains = np.full((len(traj), n_slots), -1, dtype=np.int64)
            chains[:, sel] = traj
            anchors = day_anchors.copy()
            continue
        if len(traj) == 0:
            continue
        r, c = _link_by(anchors, day_anchors, coords)
        chains[r[:, None], sel[None, :]] = traj[c]
        anchors[r] = day_anchors[c]
    if chains is None:
        chains = np.zeros((0, n_slots), dtype=np.int64)
    return chains


def _night_people(counts: np.ndarray, night: np.ndarray, n_trajectories: int | None, max_total_ratio: float,
                  usable_share: float) -> np.ndarray:
    """The individuals of the day's first usable night slot; people the counts miss (suppressed, or
    below the believed population) are spread evenly over the locations counted as empty."""
    start = _start_slot(counts, n_trajectories, max_total_ratio, usable_share, among=night)
    people = _people(counts[start], n_trajectories, max_total_ratio)
    if n_trajectories is not None and len(people) < n_trajectories:
        empty = np.flatnonzero(counts[start] == 0)
        if len(empty) == 0:
            empty = np.arange(counts.shape[1])
        people = np.concatenate([people, np.resize(empty, n_trajectories - len(people))])
    return people


def _denoised_night_people(signed: np.ndarray, night: np.ndarray, n_trajectories: int | None) -> np.ndarray:
    """Individuals from the night counts of a day, averaged over the night slots and shrunk towards the
    mean over locations by the share of their variance that is not noise.

    People stay put at night, so the change of a location's count from one night slot to the next is
    (mostly) noise: half its mean square estimates the noise variance of one count, without knowing the
    mechanism. The shrinkage weight is signal variance / (signal + noise variance of the night mean), as
    for an empirical-Bayes adversary; with exact counts it is 1, with overwhelming noise 0 (people spread
    evenly, which is what the scoring grants an adversary who never saw the release).
    """
    rows = signed[night] if np.any(night) else signed[:1]
    mean = rows.mean(axis=0)
    if len(rows) > 1:
        noise = float((np.diff(rows, axis=0) ** 2).mean()) / 2.0 / len(rows)
    else:
        noise = 0.0
    # the spread of the night means across locations, less the noise and two standard errors of that
    # spread (a variance over L locations has relative standard error sqrt(2 / (L - 1))): under heavy noise
    # an unguarded estimate of the signal is itself mostly noise and lets the noise back in
    spread = float(mean.var())
    guard = 2.0 * spread * np.sqrt(2.0 / max(1, len(mean) - 1)) if noise > 0 else 0.0
    signal = max(0.0, spread - noise - guard)
    weight = signal / (signal + noise) if signal + noise > 0 else 1.0
    estimate = np.clip(weight * mean + (1.0 - weight) * mean.mean(), 0.0, None)
    total = int(n_trajectories) if n_trajectories is not None else max(1, int(round(mean.sum())))
    if estimate.sum() <= 0:
        estimate = np.ones_like(estimate)
    return _expand(_apportion(estimate, total))


def _stay_put_day(counts: np.ndarray, night: np.ndarray, n_trajectories: int | None, max_total_ratio: float,
                  usable_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Everyone counted in the day's first usable night slot, kept there all day; anchors: that cell."""
    people = _night_people(counts, night, n_trajectories, max_total_ratio, usable_share)
    return np.repeat(people[:, None], len(counts), axis=1), people


def _home_work_day(counts: np.ndarray, night: np.ndarray, coords: np.ndarray, hours: np.ndarray,
                   work_hours: set[int], n_trajectories: int | None, max_total_ratio: float,
                   usable_share: float) -> tuple[np.ndarray, np.ndarray]:
    """The home/work adversary: each person has a home (the night counts) and a workplace (the daytime
    peak, the mean counts over ``work_hours``), paired by the least total commuting distance; in each slot
    people are placed in that slot's counts preferring their workplace in working hours and their home
    otherwise, then the other anchor, then the nearest free location. Anchors: (home, work).
    """
    home = _night_people(counts, night, n_trajectories, max_total_ratio, usable_share)
    n = len(home)
    day = np.array([h in work_hours for h in hours])
    if not day.any() or n == 0:
        traj = np.repeat(home[:, None], len(counts), axis=1)
        return traj, np.stack([home, home], axis=1)
    profile = counts[day].mean(axis=0)
    work_counts = _apportion(profile, n) if profile.sum() > 0 else np.bincount(home, minlength=counts.shape[1])
    work = _assign_step(coords[home], home, work_counts, coords, home, None)
    traj = np.empty((n, len(counts)), dtype=np.int64)
    cap = max(1, int(np.ceil(n * max_total_ratio)))
    for t in range(len(counts)):
        first, second = (work, home) if day[t] else (home, work)
        slot_counts = counts[t] if counts[t].sum() <= cap else _apportion(counts[t], n)
        remaining = slot_counts.copy()
        placed = np.full(n, -1, dtype=np.int64)
        for anchor in (first, second):
            free = np.flatnonzero(placed < 0)
            order = free[np.argsort(anchor[free], kind="stable")]
            locs = anchor[order]
            rank = np.arange(len(order)) - np.searchsorted(locs, locs)
            take = rank < remaining[locs]
            placed[order[take]] = locs[take]
            np.subtract.at(remaining, locs[take], 1)
        rows = np.flatnonzero(placed < 0)
        slots = _expand(remaining)
        if len(rows) and len(slots) and len(rows) * len(slots) <= 4_000_000:
            cost = np.minimum(
                np.sqrt(((coords[first[rows]][:, None, :] - coords[slots][None, :, :]) ** 2).sum(axis=2)),
                np.sqrt(((coords[second[rows]][:, None, :] - coords[slots][None, :, :]) ** 2).sum(axis=2)),
            )
            r, c = linear_sum_assignment(cost)
            placed[rows[r]] = slots[c]
        traj[:, t] = np.where(placed >= 0, placed, first)  # no one counted for them: at their anchor
    return traj, np.stack([home, work], axis=1)


def _histograms(traj: np.ndarray, n_locations: int) -> sp.csc_matrix:
    """Location histograms of trajectories (rows), ignoring -1 entries, as a sparse matrix."""
    rows = np.repeat(np.arange(len(traj)), traj.shape[1])
    cols = traj.ravel()
    ok = cols >= 0
    return sp.csc_matrix(
        (np.ones(ok.sum()), (rows[ok], cols[ok])), shape=(len(traj), n_locations)
    )


def _xlogx(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def information_gain(a: sp.csc_matrix, b: sp.csc_matrix) -> np.ndarray:
    """Entropy increase of merging each histogram of ``a`` with each of ``b``.

    ``H(a+b) - (n_a H(a) + n_b H(b)) / (n_a + n_b)``, a weighted
    Jensen-Shannon divergence: 0 for identical distributions, ``log 2`` at
    most. Shape ``(a.shape[0], b.shape[0])``.
    """
    na = np.asarray(a.sum(axis=1)).ravel()
    nb = np.asarray(b.sum(axis=1)).ravel()
    common = np.zeros((a.shape[0], b.shape[0]))
    for loc in range(a.shape[1]):
        ra = a.indices[a.indptr[loc]: a.indptr[loc + 1]]
        rb = b.indices[b.indptr[loc]: b.indptr[loc + 1]]
        if len(ra) == 0 or len(rb) == 0:
            continue
        va = a.data[a.indptr[loc]: a.indptr[loc + 1]][:, None]
        vb = b.data[b.indptr[loc]: b.indptr[loc + 1]][None, :]
        common[np.ix_(ra, rb)] += _xlogx(va + vb) - _xlogx(va) - _xlogx(vb)
    total = na[:, None] + nb[None, :]
    gain = (_xlogx(total) - _xlogx(na)[:, None] - _xlogx(nb)[None, :] - common)
    return np.divide(gain, total, out=np.zeros_like(gain), where=total > 0)


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


def recover_trajectories(
    footfall: Any,
    coordinates: pd.DataFrame,
    *,
    location_col: str = "cell_id",
    time_col: str | None = None,
    value_col: str = "value",
    night_hours: Iterable[int] = DEFAULT_NIGHT_HOURS,
    n_trajectories: int | None = None,
    max_total_ratio: float = 1.25,
    day_start_hour: int = 0,
    random_assignment: bool = False,
    seed: int = 0,
    usable_share: float = 0.9,
) -> Recovery:
    """Recover individual trajectories from footfall counts (Xu et al. 2017).

    Parameters
    ----------
    footfall
        Release or DataFrame of counts by location and time slot, or a
        :class:`Footfall` grid over the coordinates' locations.
    coordinates
        Location id (``location_col``) with ``x`` and ``y`` (metres); see
        :func:`location_coordinates`.
    night_hours
        Hours of the day whose slots use the night cost (people stay put).
    n_trajectories
        How many subscribers the adversary believes there are; used only to
        scale down slots with implausibly large totals. Default: the median
        over slots of the total of the rounded, *unclipped* values (noise
        clipped at 0 would inflate it).
    max_total_ratio
        A slot total above this multiple of the number of trajectories is
        scaled down to it.
    day_start_hour
        Hour at which a "day" (the unit of the cross-day linking) begins.
    random_assignment
        Replace every optimal assignment by a random one (the baseline
        adversary). Uses ``seed``; the optimal attack is deterministic.
    usable_share
        Each day's trajectories start at its first slot whose total is at
        least this share of the day's largest (capped) total, and are
        extended forwards and backwards from there, so that people missing
        from a suppressed 00:00 count are not lost for the day.
    """
    grid, coords, coord_index, n_trajectories, night, days = _prepare(
        footfall, coordinates, location_col, time_col, value_col, night_hours, n_trajectories, day_start_hour
    )
    rng = np.random.default_rng(seed) if random_assignment else None
    chains: np.ndarray | None = None
    for day in days.unique():
        sel = np.flatnonzero(days == day)
        day_traj = _recover_day(
            grid.counts[sel], coords, coord_index, night[sel], n_trajectories, max_total_ratio, rng, usable_share
        )
        if chains is None or len(chains) == 0:  # first day with anyone counted starts the chains
            chains = np.full((len(day_traj), len(grid.slots)), -1, dtype=np.int64)
            chains[:, sel] = day_traj
            continue
        if rng is not None:
            m = min(len(chains), len(day_traj))
            r, c = rng.permutation(len(chains))[:m], rng.permutation(len(day_traj))[:m]
        else:
            cost = information_gain(
                _histograms(chains, len(grid.locations)), _histograms(day_traj, len(grid.locations))
            )
            r, c = linear_sum_assignment(cost)
        chains[r[:, None], sel[None, :]] = day_traj[c]
    if chains is None:
        chains = np.zeros((0, len(grid.slots)), dtype=np.int64)
    return Recovery(locations=grid.locations, slots=grid.slots, trajectories=chains)


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


def baseline_trajectories(
    footfall: Any,
    coordinates: pd.DataFrame,
    *,
    kind: str = "stay_put",
    location_col: str = "cell_id",
    time_col: str | None = None,
    value_col: str = "value",
    night_hours: Iterable[int] = DEFAULT_NIGHT_HOURS,
    work_hours: Iterable[int] = DEFAULT_WORK_HOURS,
    n_trajectories: int | None = None,
    max_total_ratio: float = 1.25,
    day_start_hour: int = 0,
    usable_share: float = 0.9,
) -> Recovery:
    """The simple adversaries Xu et al.'s attack must beat, independent of its linking.

    ``kind="stay_put"``: everyone counted in each day's first usable slot
    (a night slot) stays there all day; days are linked by that night cell
    (same cell first, then the nearest). ``kind="home_work"``: each person
    has a home (night counts) and a workplace (mean counts over
    ``work_hours``), paired by least commuting distance; each slot's counts
    are filled preferring people's workplace by day and home otherwise;
    days are linked by the (home, work) pair. ``kind="denoised_stay_put"``:
    the stay-put adversary on the night counts averaged over the night
    slots and shrunk by their estimated noise (:func:`_denoised_night_people`),
    the adversary who knows counts can be noisy.
    """
    if kind not in ("stay_put", "home_work", "denoised_stay_put"):
        raise PrivaggInputError(f"kind={kind!r} is unknown. Fix: use 'stay_put', 'home_work' or 'denoised_stay_put'.")
    grid, coords, _, n_trajectories, night, days = _prepare(
        footfall, coordinates, location_col, time_col, value_col, night_hours, n_trajectories, day_start_hour
    )
    work_set = set(int(h) for h in work_hours)
    parts = []
    for day in days.unique():
        sel = np.flatnonzero(days == day)
        counts = grid.counts[sel]
        if kind == "stay_put":
            traj, anchors = _stay_put_day(counts, night[sel], n_trajectories, max_total_ratio, usable_share)
        elif kind == "denoised_stay_put":
            signed = grid.signed[sel] if grid.signed is not None else counts.astype(float)
            people = _denoised_night_people(signed, night[sel], n_trajectories)
            traj, anchors = np.repeat(people[:, None], len(sel), axis=1), people
        else:
            hours = np.array([ts.hour for ts in grid.slots[sel]])
            traj, anchors = _home_work_day(counts, night[sel], coords, hours, work_set, n_trajectories,
                                           max_total_ratio, usable_share)
        parts.append((sel, traj, anchors))
    return Recovery(locations=grid.locations, slots=grid.slots,
                    trajectories=_chain_days(parts, len(grid.slots), coords))


def _pair(recovered: np.ndarray, truth: np.ndarray, n_locations: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair recovered with true trajectories maximising agreements; returns (pair_of_true, agreements)."""
    n_slots = truth.shape[1]

    def onehot(traj: np.ndarray) -> sp.csr_matrix:
        rows = np.repeat(np.arange(len(traj)), n_slots)
        cols = np.tile(np.arange(n_slots), len(traj)) * n_locations + traj.ravel()
        ok = traj.ravel() >= 0
        return sp.csr_matrix(
            (np.ones(ok.sum(), dtype=np.int32), (rows[ok], cols[ok])), shape=(len(traj), n_slots * n_locations)
        )

    overlap = (onehot(truth) @ onehot(recovered).T).toarray()
    r, c = linear_sum_assignment(overlap, maximize=True)
    pair = np.full(len(truth), -1, dtype=np.int64)
    agree = np.zeros(len(truth))
    pair[r] = c
    agree[r] = overlap[r, c]
    return pair, agree


def _top_sets(traj: np.ndarray, k: int, n_locations: int) -> np.ndarray:
    """Each row's ``k`` most frequent locations (ties to the lower index), as a sorted (n, k) array, -1 padded."""
    hist = _histograms(traj, n_locations).toarray()
    order = np.argsort(-hist, axis=1, kind="stable")[:, :k]
    counts = np.take_along_axis(hist, order, axis=1)
    order = np.where(counts > 0, order, -1)
    return np.sort(order, axis=1)


def _reidentified(recovered: np.ndarray, truth: np.ndarray, pair: np.ndarray, k: int, n_locations: int) -> np.ndarray:
    """Whether each true subscriber's top-k set picks out exactly their paired recovered trajectory."""
    rec_sets = _top_sets(recovered, k, n_locations)
    true_sets = _top_sets(truth, k, n_locations)
    keys, inverse, counts = np.unique(rec_sets, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    lookup = {tuple(key): i for i, key in enumerate(keys)}
    hit = np.zeros(len(truth), dtype=bool)
    for u, key in enumerate(map(tuple, true_sets)):
        i = lookup.get(key)
        if i is None or counts[i] != 1 or pair[u] < 0:
            continue
        hit[u] = inverse[pair[u]] == i
    return hit


def _day_start_slots(slots: pd.DatetimeIndex) -> np.ndarray:
    """For every slot, the index of the first slot of its day."""
    days = np.asarray(slots.normalize().asi8)
    first = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    return first[np.searchsorted(first, np.arange(len(slots)), side="right") - 1]


def trajectory_recovery(
    footfall: Any,
    coordinates: pd.DataFrame,
    truth: np.ndarray,
    *,
    location_col: str = "cell_id",
    time_col: str | None = None,
    value_col: str = "value",
    night_hours: Iterable[int] = DEFAULT_NIGHT_HOURS,
    n_trajectories: int | None = None,
    top_k: Sequence[int] = (2, 3),
    seed: int = 0,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    target: str | None = None,
    work_hours: Iterable[int] = DEFAULT_WORK_HOURS,
    training_share: float = 0.5,
) -> AttackResult:
    """Run Xu et al.'s attack and the simple adversaries on a footfall release; report the strongest.

    Three adversaries rebuild trajectories from the counts: Xu et al.'s
    attack (``"Xu et al."``), the stay-put adversary linking days by the
    night cell (``"stay put (night cell)"``) and the home/work adversary
    (``"home/work prior"``); see :func:`recover_trajectories` and
    :func:`baseline_trajectories`. Each is scored against the true
    trajectories; the strongest is chosen on a random ``training_share`` of
    the subscribers and its accuracy measured on the others, so the choice
    does not inflate the figure.

    Parameters
    ----------
    footfall
        Release or DataFrame of counts by location and time slot.
    coordinates
        Location id with ``x``, ``y``; see :func:`location_coordinates`.
    truth
        ``(n_users, n_slots)`` true location ids on the release's slot grid
        (see :func:`true_locations`); used only to score the attack.
    top_k
        Numbers of top locations used for the re-identification figures.
    seed
        Seed of the baseline's random assignments, of the training split and of the bootstrap.
    n_bootstrap
        Bootstrap resamples (over held-out subscribers) for the accuracy interval.
    work_hours
        Hours of the day in which the home/work adversary expects people at work.
    training_share
        Share of the subscribers on which the strongest adversary is chosen.

    Returns
    -------
    AttackResult
        ``risk`` is the held-out recovery accuracy of the strongest
        adversary, named in ``variant``; ``variants`` hold every adversary's
        held-out accuracy; ``baseline`` is random assignment of the same
        counts. ``metrics`` hold ``stay_put_accuracy`` (the independent
        stay-put yardstick), ``xu_accuracy``, ``home_work_accuracy``, each
        adversary's training figure, the release-free yardstick
        (``release_free_accuracy``), the shares re-identified by their top-k
        locations (``reidentified_top{k}``: the adversary that re-identifies
        most; ``xu_reidentified_top{k}``: Xu et al.'s) with Wilson bounds,
        and the running time.
    """
    import time

    from privagg.attacks.result import strongest_variant

    if not 0.0 < training_share < 1.0:
        raise PrivaggInputError(f"training_share={training_share!r} is not strictly between 0 and 1. Fix: pass e.g. training_share=0.5.")
    started = time.perf_counter()
    grid = footfall_grid(
        footfall, locations=np.sort(coordinates[location_col].to_numpy()), location_col=location_col,
        time_col=time_col, value_col=value_col,
    )
    common = dict(location_col=location_col, night_hours=night_hours, n_trajectories=n_trajectories)
    recovered = {
        XU: recover_trajectories(grid, coordinates, seed=seed, **common),
        STAY_PUT: baseline_trajectories(grid, coordinates, kind="stay_put", **common),
        HOME_WORK: baseline_trajectories(grid, coordinates, kind="home_work", work_hours=work_hours, **common),
        DENOISED: baseline_trajectories(grid, coordinates, kind="denoised_stay_put", **common),
    }
    elapsed = time.perf_counter() - started
    random_recovery = recover_trajectories(grid, coordinates, random_assignment=True, seed=seed, **common)
    truth = np.asarray(truth)
    slots = recovered[XU].slots
    if truth.ndim != 2 or truth.shape[1] != len(slots):
        raise PrivaggInputError(
            f"truth has shape {truth.shape}; the footfall has {len(slots)} slots. "
            "Fix: pass true locations on the release's slot grid (true_locations(stays, slots))."
        )
    locations = recovered[XU].locations
    idx = np.searchsorted(locations, truth)
    idx = np.where((idx < len(locations)) & (locations[np.minimum(idx, len(locations) - 1)] == truth), idx, -1)
    valid = (idx >= 0).sum(axis=1)

    def score(rec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pair, agree = _pair(rec, idx, len(locations))
        return pair, np.divide(agree, valid, out=np.zeros(len(agree)), where=valid > 0)

    scored = {name: score(r.trajectories) for name, r in recovered.items()}
    _, random_scores = score(random_recovery.trajectories)
    # What holds for everyone, without the release: the believed population spread evenly over the
    # locations, each person staying put. The pairing that scores every adversary rewards trajectories at
    # many places, so this release-free adversary is the yardstick for DP releases (what DP allows).
    believed = int(n_trajectories) if n_trajectories is not None else max(1, int(np.median(grid.signed_totals)))
    even = np.resize(np.arange(len(grid.locations)), believed)
    _, release_free = score(np.repeat(even[:, None], len(grid.slots), axis=1))
    # the old yardstick: the attack's own chains kept all day at each day's first location
    _, own_stay = score(recovered[XU].trajectories[:, _day_start_slots(slots)])

    n_users = len(truth)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_users)
    n_train = min(max(1, int(round(training_share * n_users))), n_users - 1) if n_users > 1 else 0
    train, held = np.sort(order[:n_train]), np.sort(order[n_train:])
    if len(held) == 0:
        held = train
    training = {name: float(per_user[train].mean()) if len(train) else 0.0 for name, (_, per_user) in scored.items()}
    held_out = {name: float(per_user[held].mean()) for name, (_, per_user) in scored.items()}
    chosen = strongest_variant(training)
    per_user = scored[chosen][1][held]
    accuracy = held_out[chosen]
    boot = per_user[rng.integers(0, len(per_user), (n_bootstrap, len(per_user)))].mean(axis=1)
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    baseline = float(random_scores[held].mean())

    metrics: dict[str, float] = {}
    random_pair, _ = _pair(random_recovery.trajectories, idx, len(locations))
    reid_by = {}
    for k in top_k:
        # re-identification by top-k locations: the adversary whose trajectories re-identify most
        hits = {name: _reidentified(recovered[name].trajectories, idx, scored[name][0], k, len(locations))
                for name in recovered}
        best = max(hits, key=lambda name: hits[name].mean())
        reid_by[k] = best
        hit = hits[best]
        rec = recovered[best].trajectories
        metrics[f"reidentified_top{k}"] = float(hit.mean())
        metrics[f"xu_reidentified_top{k}"] = float(hits[XU].mean())
        _, counts = np.unique(_top_sets(rec, k, len(locations)), axis=0, return_counts=True)
        metrics[f"unique_top{k}"] = float((counts == 1).sum() / len(rec)) if len(rec) else float("nan")
        lo, hi = wilson_interval(int(hit.sum()), len(hit), level)
        metrics[f"reidentified_top{k}_ci_low"], metrics[f"reidentified_top{k}_ci_high"] = lo, hi
        metrics[f"baseline_reidentified_top{k}"] = float(
            _reidentified(random_recovery.trajectories, idx, random_pair, k, len(locations)).mean())
    grid_totals = grid.counts.sum(axis=1)
    metrics.update(
        stay_put_accuracy=held_out[STAY_PUT],
        xu_accuracy=held_out[XU],
        home_work_accuracy=held_out[HOME_WORK],
        denoised_stay_put_accuracy=held_out[DENOISED],
        stay_put_attack_linking_accuracy=float(own_stay[held].mean()),
        release_free_accuracy=float(release_free[held].mean()),
        **{f"training_{key}": training[name] for key, name in
           (("xu_accuracy", XU), ("stay_put_accuracy", STAY_PUT), ("home_work_accuracy", HOME_WORK),
            ("denoised_stay_put_accuracy", DENOISED))},
        n_users=float(n_users),
        n_training=float(len(train)),
        n_held_out=float(len(held)),
        n_recovered=float(len(recovered[chosen].trajectories)),
        n_slots=float(len(slots)),
        mean_slot_total=float(grid_totals.mean()),
        seconds=float(elapsed),
    )
    if target is None:
        privacy = getattr(footfall, "privacy", None)
        target = privacy.describe() if privacy is not None else "footfall counts"
    top = ", ".join(f"top-{k}: {metrics[f'reidentified_top{k}']:.0%} ({reid_by[k]})" for k in top_k)
    others = "; ".join(f"{name}: {value:.0%}" for name, value in held_out.items() if name != chosen)
    return AttackResult(
        attack="trajectory_recovery",
        target=target,
        risk=accuracy,
        ci_low=float(low),
        ci_high=float(high),
        baseline=baseline,
        n_trials=len(held),
        background_knowledge=(
            "the released counts per location and slot, the locations' coordinates, that people sleep at home "
            "and work by day, and (for re-identification) each target's top locations, e.g. home and work"
        ),
        metrics=metrics,
        interpretation=(
            f"From counts alone the strongest adversary ({chosen}) rebuilt individual trajectories that are at "
            f"the right place {accuracy:.0%} of the time (random assignment: {baseline:.0%}; {others}; "
            f"an adversary who never saw the release, spreading people evenly: "
            f"{metrics['release_free_accuracy']:.0%}); subscribers re-identified by their top locations: {top}."
        ),
        confidence_level=level,
        variant=chosen,
        variants=held_out,
    )
