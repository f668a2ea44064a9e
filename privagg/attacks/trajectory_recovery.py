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

The random-guess baseline runs the same pipeline with random instead of
optimal assignments (same counts), evaluated the same way. A second,
stronger yardstick, ``stay_put_accuracy``, keeps every recovered
trajectory all day at its first (night) location: an adversary who only
reads the night counts. An attack that does not beat it has learned
nothing about movement, only that people sleep at home.
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
    """

    locations: np.ndarray
    slots: pd.DatetimeIndex
    counts: np.ndarray
    signed_totals: np.ndarray


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
            f"footfall of type {type(footfall).__name__}: expected a Release or a DataFrame."
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
    return Footfall(locations=locations, slots=slots, counts=counts, signed_totals=signed_totals)


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


def _recover_day(
    counts: np.ndarray,
    coords: np.ndarray,
    coord_index: dict[tuple[float, float], int],
    night: np.ndarray,
    n_trajectories: int | None,
    max_total_ratio: float,
    rng: np.random.Generator | None,
) -> np.ndarray:
    """Trajectories of one day (location indices, shape ``(n, n_slots)``)."""
    first = counts[0]
    if n_trajectories is not None and first.sum() > n_trajectories * max_total_ratio:
        first = _apportion(first, n_trajectories)
    start = _expand(first)
    n = len(start)
    out = np.empty((n, len(counts)), dtype=np.int64)
    out[:, 0] = start
    cap = max(1, int(np.ceil(n * max_total_ratio)))
    for t in range(1, len(counts)):
        step_counts = counts[t]
        if step_counts.sum() > cap:
            step_counts = _apportion(step_counts, n)
        last = out[:, t - 1]
        if night[t] or t == 1:
            estimate = coords[last]
            estimate_loc = last
        else:
            estimate = 2 * coords[last] - coords[out[:, t - 2]]
            moved = out[:, t - 2] != last
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
    """
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
    rng = np.random.default_rng(seed) if random_assignment else None
    chains: np.ndarray | None = None
    for day in days.unique():
        sel = np.flatnonzero(days == day)
        day_traj = _recover_day(
            grid.counts[sel], coords, coord_index, night[sel], n_trajectories, max_total_ratio, rng
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
) -> AttackResult:
    """Run the Xu et al. attack on a footfall release and score it against the true trajectories.

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
        Seed of the baseline's random assignments and of the bootstrap.
    n_bootstrap
        Bootstrap resamples (over subscribers) for the accuracy interval.

    Returns
    -------
    AttackResult
        ``risk`` is the recovery accuracy; ``metrics`` hold the shares
        re-identified by top-k locations (``reidentified_top{k}``) with
        their Wilson bounds, the baseline's, the stay-put accuracy and the
        running time.
    """
    import time

    started = time.perf_counter()
    grid = footfall_grid(
        footfall, locations=np.sort(coordinates[location_col].to_numpy()), location_col=location_col,
        time_col=time_col, value_col=value_col,
    )
    common = dict(location_col=location_col, night_hours=night_hours, n_trajectories=n_trajectories, seed=seed)
    recovery = recover_trajectories(grid, coordinates, **common)
    elapsed = time.perf_counter() - started
    baseline_recovery = recover_trajectories(grid, coordinates, random_assignment=True, **common)
    truth = np.asarray(truth)
    if truth.ndim != 2 or truth.shape[1] != len(recovery.slots):
        raise PrivaggInputError(
            f"truth has shape {truth.shape}; the footfall has {len(recovery.slots)} slots. "
            "Fix: pass true locations on the release's slot grid (true_locations(stays, slots))."
        )
    locations = recovery.locations
    idx = np.searchsorted(locations, truth)
    idx = np.where((idx < len(locations)) & (locations[np.minimum(idx, len(locations) - 1)] == truth), idx, -1)
    valid = (idx >= 0).sum(axis=1)
    metrics: dict[str, float] = {}
    scores = {}
    stay_put = recovery.trajectories[:, _day_start_slots(recovery.slots)]
    for name, rec in (("attack", recovery.trajectories), ("baseline", baseline_recovery.trajectories),
                      ("stay_put", stay_put)):
        pair, agree = _pair(rec, idx, len(locations))
        per_user = np.divide(agree, valid, out=np.zeros(len(agree)), where=valid > 0)
        scores[name] = per_user
        if name == "stay_put":
            break
        for k in top_k:
            hit = _reidentified(rec, idx, pair, k, len(locations))
            key = f"reidentified_top{k}" if name == "attack" else f"baseline_reidentified_top{k}"
            metrics[key] = float(hit.mean())
            if name == "attack":
                _, counts = np.unique(_top_sets(rec, k, len(locations)), axis=0, return_counts=True)
                metrics[f"unique_top{k}"] = float((counts == 1).sum() / len(rec)) if len(rec) else float("nan")
                lo, hi = wilson_interval(int(hit.sum()), len(hit), level)
                metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"] = lo, hi
    accuracy = float(scores["attack"].mean())
    rng = np.random.default_rng(seed)
    boot = scores["attack"][rng.integers(0, len(truth), (n_bootstrap, len(truth)))].mean(axis=1)
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    grid_totals = grid.counts.sum(axis=1)
    metrics.update(
        stay_put_accuracy=float(scores["stay_put"].mean()),
        n_users=float(len(truth)),
        n_recovered=float(len(recovery.trajectories)),
        n_slots=float(len(recovery.slots)),
        mean_slot_total=float(grid_totals.mean()),
        seconds=float(elapsed),
    )
    if target is None:
        privacy = getattr(footfall, "privacy", None)
        target = privacy.describe() if privacy is not None else "footfall counts"
    top = ", ".join(f"top-{k}: {metrics[f'reidentified_top{k}']:.0%}" for k in top_k)
    return AttackResult(
        attack="trajectory_recovery",
        target=target,
        risk=accuracy,
        ci_low=float(low),
        ci_high=float(high),
        baseline=float(scores["baseline"].mean()),
        n_trials=len(truth),
        background_knowledge=(
            "the released counts per location and slot, the locations' coordinates, and (for "
            "re-identification) each target's top locations, e.g. home and work"
        ),
        metrics=metrics,
        interpretation=(
            f"From counts alone the adversary rebuilt individual trajectories that are at the right place "
            f"{accuracy:.0%} of the time (random assignment: {scores['baseline'].mean():.0%}; keeping each "
            f"recovered subscriber all day where the night counts put them: {scores['stay_put'].mean():.0%}); "
            f"subscribers re-identified by their top locations: {top}."
        ),
        confidence_level=level,
    )
