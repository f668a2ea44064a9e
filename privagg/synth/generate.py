"""``generate_world``: a synthetic operator's view of a city, as a :class:`~privagg.world.World`."""

from __future__ import annotations

import os

from dataclasses import asdict, replace
from typing import Any

import numpy as np
import pandas as pd

from privagg.errors import PrivaggInputError
from privagg.synth.city import build_city
from privagg.synth.mobility import MobilityParams, StadiumEvent, simulate_mobility
from privagg.synth.population import generate_population
from privagg.world import World

DEFAULT_START = "2026-01-05"  # a Monday


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise PrivaggInputError(f"{name}={value!r}: expected an integer >= {minimum}. Fix: pass e.g. {name}={max(minimum, 1)}.")
    return int(value)


def _timestamps(start: pd.Timestamp, seconds: np.ndarray) -> np.ndarray:
    base = np.datetime64(start.to_datetime64(), "ns")
    return base + (seconds.astype(np.int64) * 1_000_000_000).astype("timedelta64[ns]")


#: Bytes of the tables per subscriber (users row) and per subscriber-day (events, stays, trips),
#: measured on default worlds, and the peak of generation over the finished tables (measured 3.3).
BYTES_PER_USER = 120
BYTES_PER_USER_DAY = 820
PEAK_FACTOR = 4.0
#: The city is built with cell-by-cell matrices: peak bytes per pair of cells (measured 36 at 20,000 cells).
BYTES_PER_CELL_PAIR = 40


def estimate_world_bytes(n_users: int, days: int, n_cells: int = 0) -> int:
    """Peak memory (bytes) that generating a World of ``n_users`` over ``days`` on ``n_cells`` needs, roughly."""
    return int(PEAK_FACTOR * n_users * (BYTES_PER_USER + BYTES_PER_USER_DAY * days) + BYTES_PER_CELL_PAIR * n_cells ** 2)


def available_memory_bytes() -> int | None:
    """Memory this machine can still give (``MemAvailable`` on Linux, else physical memory), if known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(n_users: int, days: int, n_cells: int = 0, *, what: str = "generate_world") -> int:
    """Refuse, before allocating anything, a World that would not fit in this machine's memory; return the estimate."""
    need = estimate_world_bytes(n_users, days, n_cells)
    have = available_memory_bytes()
    if have is not None and need > have:
        city = BYTES_PER_CELL_PAIR * n_cells ** 2
        if city > have / 2:
            fix = f"lower n_cells (at most about {int((have / 2 / BYTES_PER_CELL_PAIR) ** 0.5):,} cells here)"
        else:
            per_user = PEAK_FACTOR * (BYTES_PER_USER + BYTES_PER_USER_DAY * days)
            fix = f"lower n_users or days (at most about {int((have - city) / per_user):,} subscribers over {days} days here)"
        raise PrivaggInputError(
            f"{what}: n_users={n_users:,} over days={days} on n_cells={n_cells:,} needs about {need / 2**30:,.1f} GiB "
            f"of memory, and this machine has {have / 2**30:,.1f} GiB available. Fix: {fix}."
        )
    return need


def generate_world(
    n_users: int = 20_000,
    n_cells: int = 600,
    days: int = 7,
    seed: int = 0,
    *,
    start: str = DEFAULT_START,
    opt_in_share: float = 0.9,
    stadium_event: StadiumEvent | None = None,
    city_size_m: float = 16_000.0,
    region_size_m: float = 120_000.0,
    mobility: MobilityParams | None = None,
    **mobility_options: Any,
) -> World:
    """Generate a synthetic city, its subscribers and their movements.

    Parameters
    ----------
    n_users
        Number of subscribers.
    n_cells
        Number of cells (cell towers), at least 20.
    days
        Number of days observed; the window starts at midnight of ``start``.
    seed
        Random seed. The same arguments and seed give identical tables; the
        city depends only on ``seed``, ``n_cells`` and the city sizes, so
        worlds with different ``n_users`` or ``days`` share their city.
    start
        First day of the window (default Monday 2026-01-05; day 0 is treated as a Monday).
    opt_in_share
        Share of subscribers with ``opt_in == True``.
    stadium_event
        Optional scenario: a :class:`StadiumEvent` drawing a crowd to the stadium.
    city_size_m, region_size_m
        Diameters of the dense core and of the whole region (core, satellite towns, rural ring).
    mobility
        A :class:`MobilityParams`; keyword options (e.g. ``events_per_day=10``)
        override its fields.

    Returns
    -------
    World
        Tables ``cells``, ``users``, ``events``, ``stays``, ``trips``, the cell
        graph, and ``meta`` with the parameters, the window and the stadium cell.

    Examples
    --------
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=500, n_cells=60, days=1, seed=1)
    >>> world.summary()["users"]
    500
    """
    n_users = _check_int("n_users", n_users, 1)
    n_cells = _check_int("n_cells", n_cells, 20)
    days = _check_int("days", days, 1)
    seed = _check_int("seed", seed, 0)
    check_fits_in_memory(n_users, days, n_cells)
    params = mobility or MobilityParams()
    if mobility_options:
        unknown = sorted(set(mobility_options) - set(asdict(params)))
        if unknown:
            raise PrivaggInputError(
                f"generate_world got unknown option(s) {unknown}. Fix: use one of the arguments of "
                f"generate_world or a MobilityParams field ({', '.join(asdict(params))})."
            )
        params = replace(params, **mobility_options)
    params.validate()
    if stadium_event is not None:
        if not isinstance(stadium_event, StadiumEvent):
            raise PrivaggInputError(
                f"stadium_event={stadium_event!r} is not a StadiumEvent. "
                "Fix: pass e.g. stadium_event=StadiumEvent(day=5, start_hour=18, end_hour=21)."
            )
        stadium_event.validate(days)
    try:
        t0 = pd.Timestamp(start).normalize()
    except (ValueError, TypeError):
        raise PrivaggInputError(f"start={start!r} is not a date. Fix: pass e.g. start='2026-01-05'.") from None

    city_seq, pop_seq, mob_seq = np.random.SeedSequence([seed, 0x5EED]).spawn(3)
    city = build_city(
        n_cells, city_size_m=city_size_m, region_size_m=region_size_m, seed=np.random.default_rng(city_seq)
    )
    pop = generate_population(city, n_users, opt_in_share=opt_in_share, rng=np.random.default_rng(pop_seq))
    mob = simulate_mobility(
        city, pop, days, params=params, stadium_event=stadium_event, rng=np.random.default_rng(mob_seq)
    )

    events = pd.DataFrame({
        "user_id": mob.event_user.astype(np.int64),
        "cell_id": mob.event_cell.astype(np.int64),
        "ts": _timestamps(t0, mob.event_t),
    })
    stays = pd.DataFrame({
        "user_id": mob.stay_user.astype(np.int64),
        "cell_id": mob.stay_cell.astype(np.int64),
        "start": _timestamps(t0, mob.stay_start),
        "end": _timestamps(t0, mob.stay_end),
    })
    trips = pd.DataFrame({
        "user_id": mob.trip_user.astype(np.int64),
        "origin_cell": mob.trip_origin.astype(np.int64),
        "destination_cell": mob.trip_destination.astype(np.int64),
        "depart": _timestamps(t0, mob.trip_depart),
        "arrive": _timestamps(t0, mob.trip_arrive),
    })
    meta = {
        "generator": "privagg.synth.generate_world",
        "seed": seed,
        "n_users": n_users,
        "n_cells": n_cells,
        "days": days,
        "start": t0.isoformat(),
        "end": (t0 + pd.Timedelta(days=days)).isoformat(),
        "opt_in_share": opt_in_share,
        "city_size_m": city_size_m,
        "region_size_m": region_size_m,
        "mobility": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(params).items()},
        "stadium_cell": int(city.stadium_cell),
        "stadium_event": stadium_event.to_dict() if stadium_event is not None else None,
        "stadium_attendees": int(len(mob.attendees)),
    }
    return World(city.graph, city.cells, pop.users, events, stays, trips, meta)
