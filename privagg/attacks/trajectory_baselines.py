"""The simple adversaries Xu et al.'s attack must beat: staying put, home/work, and no release at all.

Each rebuilds trajectories from the same footfall counts as
:func:`~privagg.attacks.trajectory_xu.recover_trajectories`, without its
information-gain linking (:func:`baseline_trajectories`):

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
locations counted as empty.

:func:`release_free_trajectories` is the adversary who never saw the
release: the believed population spread evenly over the locations,
staying put. The pairing that scores every adversary rewards trajectories
at many places, so this is what the metric grants without any counts, and
the yardstick for DP releases (no formal DP bound applies to a
pairing-scored accuracy).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from privagg.attacks.trajectory_data import (
    DEFAULT_NIGHT_HOURS,
    DEFAULT_WORK_HOURS,
    Footfall,
    Recovery,
    _prepare,
)
from privagg.attacks.trajectory_xu import _apportion, _assign_step, _expand, _people, _start_slot
from privagg.errors import PrivaggInputError

__all__ = ["baseline_trajectories", "release_free_trajectories"]


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


def release_free_trajectories(grid: Footfall, n_trajectories: int | None = None) -> Recovery:
    """The adversary who never saw the release's counts: everyone spread evenly over the locations, staying put.

    Parameters
    ----------
    grid
        The footfall grid; only its locations and slots are used, and,
        when ``n_trajectories`` is not given, its per-slot totals.
    n_trajectories
        How many subscribers the adversary believes there are. Default: the
        median over slots of the rounded, unclipped totals, as in
        :func:`~privagg.attacks.trajectory_xu.recover_trajectories`.

    Returns
    -------
    Recovery
        ``n_trajectories`` trajectories, the i-th at location ``i`` modulo
        the number of locations in every slot.
    """
    believed = int(n_trajectories) if n_trajectories is not None else max(1, int(np.median(grid.signed_totals)))
    even = np.resize(np.arange(len(grid.locations)), believed)
    return Recovery(locations=grid.locations, slots=grid.slots,
                    trajectories=np.repeat(even[:, None], len(grid.slots), axis=1))
