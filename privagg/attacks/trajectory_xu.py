"""Xu et al.'s trajectory recovery from aggregated footfall (WWW 2017).

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

Each day starts at its first *usable* slot (whose total is close to the
day's largest), not necessarily 00:00, and the trajectories are extended
forwards and backwards from there: under small-count suppression the
midnight counts can miss everyone in a quiet cell.

The simple adversaries this attack must beat are in
:mod:`privagg.attacks.trajectory_baselines`; the scoring, and the choice
of the strongest, in :mod:`privagg.attacks.trajectory_recovery`.
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from privagg.attacks.trajectory_data import DEFAULT_NIGHT_HOURS, Recovery, _prepare

__all__ = ["information_gain", "recover_trajectories"]


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
