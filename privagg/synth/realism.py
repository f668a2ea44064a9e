"""Realism metrics: the regularities real operator data shows, measured on any World.

Each function works on the World's tables with array operations, so it runs
on synthetic and real data alike and on millions of rows.

- :func:`unicity` — share of subscribers singled out by ``p`` random
  (cell, hour) points of their trace (de Montjoye et al., Sci. Rep. 2013).
- :func:`rank_frequency` and :func:`zipf_exponent` — visitation frequency of
  a subscriber's k-th most visited cell, ``f_k ~ k^-zeta`` (Song et al.,
  Nature Physics 2010, report ``zeta`` about 1.2).
- :func:`radius_of_gyration` — per subscriber (Gonzalez et al., Nature 2008).
- :func:`presence_by_land_use` — people present per cell by land use and hour.
- :func:`stadium_surge` — footfall at the stadium during an event against the
  same hours on other days.
- :func:`realism_report` — all of the above in one dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from privagg.world import World

HOUR_NS = 3_600 * 1_000_000_000


@dataclass(frozen=True)
class Unicity:
    """Share of subscribers unique given ``n_points`` points, with a 95% Wilson interval."""

    share: float
    ci_low: float
    ci_high: float
    n_users: int
    n_points: int

    def __str__(self) -> str:
        return (
            f"{self.share:.1%} of {self.n_users:,} subscribers unique from {self.n_points} (cell, hour) points "
            f"(95% CI {self.ci_low:.1%}-{self.ci_high:.1%})"
        )


def _wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return float(centre - half), float(centre + half)


def hour_index(ts: pd.Series | np.ndarray, start: pd.Timestamp | str) -> np.ndarray:
    """Absolute hour of each timestamp since ``start`` (int64)."""
    t = np.asarray(ts, dtype="datetime64[ns]").astype(np.int64)
    t0 = np.datetime64(pd.Timestamp(start).to_datetime64(), "ns").astype(np.int64)
    return (t - t0) // HOUR_NS


def unicity(
    events: pd.DataFrame,
    n_points: int = 4,
    *,
    start: pd.Timestamp | str | None = None,
    time_column: str = "ts",
    sample: int | None = None,
    seed: int = 0,
) -> Unicity:
    """Share of subscribers whose trace is singled out by ``n_points`` random points of it.

    A trace is the set of distinct (cell, hour) points where a subscriber has
    an event (``hour`` is the absolute hour index since ``start``). For each
    subscriber with at least ``n_points`` points, ``n_points`` of them are
    drawn at random; the subscriber is unique if no other trace contains all
    of them. Subscribers with fewer points are not counted, as in de
    Montjoye et al.

    Parameters
    ----------
    events
        Table with ``user_id``, ``cell_id`` and a time column.
    n_points
        Points known to the adversary.
    start
        Origin of the hour index (default: midnight of the first timestamp).
    time_column
        Name of the time column (``ts`` for events, ``start`` for stays).
    sample
        Evaluate only this many randomly chosen subscribers (all by default).
    seed
        Seed of the random choices.
    """
    rng = np.random.default_rng(seed)
    ts = events[time_column]
    if start is None:
        start = pd.Timestamp(ts.min()).floor("D")
    hours = hour_index(ts, start)
    cells = events["cell_id"].to_numpy(dtype=np.int64)
    n_hours = int(hours.max()) + 1
    n_pts = int(cells.max() + 1) * n_hours
    user_code, _ = pd.factorize(events["user_id"], sort=True)
    n_users = int(user_code.max()) + 1
    # Distinct (user, point) pairs, sorted by user then point.
    pairs = np.sort(user_code.astype(np.int64) * n_pts + cells * n_hours + hours)
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]
    user = pairs // n_pts
    point = pairs % n_pts
    counts = np.bincount(user, minlength=n_users)
    eligible = np.flatnonzero(counts >= n_points)
    if sample is not None and sample < len(eligible):
        eligible = np.sort(rng.choice(eligible, size=sample, replace=False))
    if len(eligible) == 0:
        return Unicity(float("nan"), float("nan"), float("nan"), 0, n_points)
    # Draw n_points distinct points per subscriber: shuffle each trace, take the first ones.
    offsets = np.concatenate([[0], np.cumsum(counts)])
    order = np.argsort(user + rng.random(len(user)))  # shuffle within each subscriber
    shuffled_point = point[order]
    picks = offsets[eligible][:, None] + np.arange(n_points)[None, :]
    chosen = shuffled_point[picks]  # (n_eligible, n_points)
    # Who could match: the subscribers holding the rarest of the chosen points;
    # then check the other points by binary search in the sorted (user, point) keys.
    size = np.bincount(point, minlength=n_pts)
    rarest = chosen[np.arange(len(chosen)), np.argmin(size[chosen], axis=1)]
    by_point = np.argsort(point, kind="stable")
    ptr = np.concatenate([[0], np.cumsum(size)])
    keys = pairs  # user * n_pts + point, sorted
    unique = np.zeros(len(eligible), dtype=bool)
    batch = max(1, 4_000_000 // max(int(size[rarest].mean()), 1))
    for lo in range(0, len(eligible), batch):
        r = rarest[lo:lo + batch]
        counts_r = size[r]
        owner = np.repeat(np.arange(len(r)), counts_r)
        within = np.arange(len(owner)) - np.repeat(np.cumsum(counts_r) - counts_r, counts_r)
        candidate = user[by_point[ptr[r][owner] + within]]
        has_all = np.ones(len(owner), dtype=bool)
        for j in range(n_points):
            want = candidate * n_pts + chosen[lo:lo + batch][owner, j]
            pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
            has_all &= keys[pos] == want
        matches = np.bincount(owner[has_all], minlength=len(r))
        unique[lo:lo + batch] = matches == 1
    k = int(unique.sum())
    low, high = _wilson(k, len(eligible))
    return Unicity(k / len(eligible), low, high, len(eligible), n_points)


def rank_frequency(visits: pd.DataFrame, max_rank: int = 20, *, min_locations: int = 1) -> np.ndarray:
    """Mean visitation frequency of each subscriber's k-th most visited cell, k = 1..max_rank.

    ``visits`` has one row per visit (stays, or events) with ``user_id`` and
    ``cell_id``. Frequencies are per subscriber (counts divided by the
    subscriber's total), averaged over subscribers with at least
    ``min_locations`` distinct cells; ranks a subscriber does not reach count 0.
    """
    user = visits["user_id"].to_numpy(dtype=np.int64)
    cell = visits["cell_id"].to_numpy(dtype=np.int64)
    n_cells = int(cell.max()) + 1
    pair, count = np.unique(user * n_cells + cell, return_counts=True)
    u = pair // n_cells
    order = np.lexsort((-count, u))
    u, count = u[order], count[order]
    first = np.r_[0, np.flatnonzero(u[1:] != u[:-1]) + 1]
    n_loc = np.diff(np.r_[first, len(u)])
    rank = np.arange(len(u)) - np.repeat(first, n_loc)
    total = np.repeat(np.add.reduceat(count, first), n_loc)
    keep_user = np.repeat(n_loc >= min_locations, n_loc)
    freq = count / total
    m = keep_user & (rank < max_rank)
    out = np.bincount(rank[m], weights=freq[m], minlength=max_rank)[:max_rank]
    return out / max(int((n_loc >= min_locations).sum()), 1)


def zipf_exponent(freq: np.ndarray, ranks: tuple[int, int] = (1, 10)) -> float:
    """Exponent ``zeta`` of ``f_k ~ k^-zeta``, least squares in log-log over ``ranks`` (inclusive)."""
    k = np.arange(ranks[0], ranks[1] + 1)
    f = np.asarray(freq)[k - 1]
    ok = f > 0
    slope, _ = np.polyfit(np.log(k[ok]), np.log(f[ok]), 1)
    return float(-slope)


def radius_of_gyration(points: pd.DataFrame, cells: pd.DataFrame) -> pd.Series:
    """Radius of gyration (metres) of each subscriber over the rows of ``points``.

    ``points`` has ``user_id`` and ``cell_id`` (events: one point per event;
    stays: one point per stay); ``cells`` gives the positions.
    """
    xy = cells.set_index("cell_id")[["x", "y"]]
    pos = xy.reindex(np.arange(int(cells["cell_id"].max()) + 1)).to_numpy()
    cell = points["cell_id"].to_numpy(dtype=np.int64)
    uid, user = np.unique(points["user_id"].to_numpy(), return_inverse=True)
    x, y = pos[cell, 0], pos[cell, 1]
    n = np.bincount(user)
    mx = np.bincount(user, x) / n
    my = np.bincount(user, y) / n
    r2 = np.bincount(user, (x - mx[user]) ** 2 + (y - my[user]) ** 2) / n
    return pd.Series(np.sqrt(r2), index=pd.Index(uid, name="user_id"), name="radius_of_gyration_m")


def presence(stays: pd.DataFrame, start: pd.Timestamp | str, n_hours: int, n_cells: int) -> np.ndarray:
    """People present in each cell at the middle of each hour: array ``(n_cells, n_hours)``."""
    t0 = pd.Timestamp(start)
    half = HOUR_NS // 2
    start_ns = np.asarray(stays["start"], dtype="datetime64[ns]").astype(np.int64) - t0.value
    end_ns = np.asarray(stays["end"], dtype="datetime64[ns]").astype(np.int64) - t0.value
    # A stay covers hour h if start <= h*H + H/2 < end.
    first = np.ceil((start_ns - half) / HOUR_NS).astype(np.int64)
    last = np.ceil((end_ns - half) / HOUR_NS).astype(np.int64)  # exclusive
    first = np.clip(first, 0, n_hours)
    last = np.clip(last, 0, n_hours)
    cell = stays["cell_id"].to_numpy(dtype=np.int64)
    diff = np.zeros((n_cells, n_hours + 1), dtype=np.int64)
    np.add.at(diff, (cell, first), 1)
    np.add.at(diff, (cell, last), -1)
    return np.cumsum(diff, axis=1)[:, :n_hours]


def presence_by_land_use(world: World) -> pd.DataFrame:
    """Mean people present per cell, by land use (columns) and hour of the window (rows)."""
    n_hours = int((world.end - world.start) / pd.Timedelta(hours=1))
    n_cells = int(world.cells["cell_id"].max()) + 1
    p = presence(world.stays, world.start, n_hours, n_cells)
    lu = world.cells.set_index("cell_id")["land_use"].reindex(np.arange(n_cells))
    frame = pd.DataFrame(p.T, columns=lu.to_numpy())
    out = frame.T.groupby(level=0).mean().T
    out.index = pd.date_range(world.start, periods=n_hours, freq="h", name="hour")
    return out


def stadium_surge(world: World) -> dict[str, Any]:
    """Footfall at the stadium during the scenario's event against the same hours on other days."""
    event = world.meta.get("stadium_event")
    stadium = int(world.meta["stadium_cell"])
    n_hours = int((world.end - world.start) / pd.Timedelta(hours=1))
    stays = world.stays[world.stays["cell_id"] == stadium]
    p = presence(stays, world.start, n_hours, int(world.cells["cell_id"].max()) + 1)[stadium]
    by_day = p.reshape(-1, 24)
    if event is None:
        return {"stadium_cell": stadium, "event": None}
    h0, h1 = int(np.ceil(event["start_hour"])), int(np.floor(event["end_hour"]))
    during = by_day[event["day"], h0:h1].mean()
    others = np.delete(by_day, event["day"], axis=0)[:, h0:h1]
    baseline = others.mean() if others.size else float("nan")
    return {
        "stadium_cell": stadium,
        "event": event,
        "present_during_event": float(during),
        "present_same_hours_other_days": float(baseline),
        "ratio": float(during / max(baseline, 1.0)),
    }


def land_use_peaks(world: World) -> dict[str, Any]:
    """Weekday peak hours of office and residential presence, and their day/night ratios."""
    pres = presence_by_land_use(world)
    weekday = pres[pres.index.day_of_week < 5]
    by_hour = weekday.groupby(weekday.index.hour).mean()
    out: dict[str, Any] = {}
    for lu in ("office", "residential"):
        if lu in by_hour:
            out[f"{lu}_peak_hour"] = int(by_hour[lu].idxmax())
            out[f"{lu}_day_night_ratio"] = float(by_hour[lu].loc[10:16].mean() / by_hour[lu].loc[[0, 1, 2, 3, 4]].mean())
    return out


def realism_report(world: World, *, n_points: int = 4, seed: int = 0) -> dict[str, Any]:
    """All realism figures of a World, as a dict of plain numbers."""
    u = unicity(world.events, n_points, start=world.start, seed=seed)
    freq = rank_frequency(world.stays, max_rank=20, min_locations=10)
    rg = radius_of_gyration(world.events, world.cells)
    report: dict[str, Any] = {
        "unicity": u.share,
        "unicity_ci": (u.ci_low, u.ci_high),
        "unicity_users": u.n_users,
        "zipf_exponent": zipf_exponent(freq, (1, 10)),
        "rg_median_m": float(rg.median()),
        "rg_p90_m": float(rg.quantile(0.9)),
        "rg_p90_over_median": float(rg.quantile(0.9) / rg.median()),
    }
    report.update(land_use_peaks(world))
    if world.meta.get("stadium_event"):
        report["stadium"] = stadium_surge(world)
    return report


def format_report(report: dict[str, Any]) -> str:
    """The realism figures as the lines the README quotes."""
    lines = [
        f"unicity (4 random (cell, hour) points of a subscriber's events): {report['unicity']:.1%} of "
        f"{report['unicity_users']:,} subscribers unique (95% CI {report['unicity_ci'][0]:.1%}-{report['unicity_ci'][1]:.1%})",
        f"visitation frequency f_k ~ k^-zeta (subscribers with >= 10 distinct cells, ranks 1-10): zeta = {report['zipf_exponent']:.2f}",
        f"radius of gyration: median {report['rg_median_m'] / 1000:.2f} km, p90 {report['rg_p90_m'] / 1000:.2f} km, "
        f"p90/median = {report['rg_p90_over_median']:.2f}",
    ]
    if "office_peak_hour" in report:
        lines.append(
            f"office cells: weekday peak at {report['office_peak_hour']:02d}:00, day/night presence "
            f"{report['office_day_night_ratio']:.1f}x; residential cells: peak at {report['residential_peak_hour']:02d}:00, "
            f"day/night {report['residential_day_night_ratio']:.2f}x"
        )
    if report.get("stadium") and report["stadium"].get("event"):
        st = report["stadium"]
        lines.append(
            f"stadium event: {st['present_during_event']:,.0f} present during the event against "
            f"{st['present_same_hours_other_days']:,.1f} at the same hours on other days ({st['ratio']:,.0f}x)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m privagg.synth.realism``: generate a world and print its realism figures."""
    import argparse

    from privagg.synth import StadiumEvent, generate_world

    parser = argparse.ArgumentParser(prog="python -m privagg.synth.realism", description=main.__doc__)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--cells", type=int, default=600)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-stadium", action="store_true", help="no stadium event (default: Saturday 18:00-21:00)")
    args = parser.parse_args(argv)
    event = None if args.no_stadium or args.days < 6 else StadiumEvent(day=5, start_hour=18, end_hour=21, attendance=0.15)
    world = generate_world(args.users, args.cells, args.days, args.seed, stadium_event=event)
    print(f"generate_world(n_users={args.users}, n_cells={args.cells}, days={args.days}, seed={args.seed}"
          f"{', stadium_event=' + repr(event) if event else ''})")
    print(format_report(realism_report(world, seed=0)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
