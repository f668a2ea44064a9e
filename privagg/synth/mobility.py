"""Mobility: daily routines, exploration and preferential return, stays, trips, events.

The model works on arrays over all subscribers at once; the only Python loops
run over days and over the few activity slots of a day.

Each day every subscriber follows a sequence of activity *slots*::

    morning -> work (am) -> lunch -> work (pm) -> other 1 .. other M -> stadium -> night

``morning`` is where the night was spent and ``night`` where the next one is
(home, except on overnight trips). Slots a subscriber does not use that day
are masked out. Work slots are used on weekdays by subscribers with a routine
(and by a few on weekends); lunch (a cell near work) by some workers. The
number of *other* visits is Poisson with a per-subscriber activity level
drawn from a heavy-tailed (log-normal) distribution, higher on weekends and
for those without a routine.

Other visits follow the exploration and preferential return model of Song et
al. (Nature Physics 2010): a subscriber who has visited ``S`` distinct places
explores a new one with probability ``rho * S^-gamma`` (``rho = 0.6``,
``gamma = 0.21``), otherwise returns to a visited place with probability
proportional to its visit count. New places are drawn by a gravity model from
home (``A_j (1 + d_ij / d0)^-alpha``).

Some subscribers leave the city's everyday range now and then (a propensity
that is zero for most and high for a few): day trips of several hours to a
place at least ``far_threshold_m`` from home, and overnight trips of one to a
few nights, likelier at weekends. Together with commuters from the satellite
towns they give the radius of gyration its heavy tail.

Travel between consecutive places takes the shortest-path travel time of the
cell graph; a trip departs when one stay ends and arrives when the next
starts, so a subscriber's stays and trips tile the whole window (nights are
stays too). Network events are drawn per stay and per trip in sessions (a
Poisson process with a per-subscriber rate, log-normal across subscribers,
modulated by a diurnal profile; a few events per session); events during a
trip are placed on the cell of the shortest path the subscriber is passing at
that moment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from privagg.errors import PrivaggInputError
from privagg.synth.city import City
from privagg.synth.population import Population, gumbel_top_k, row_sampler, sample_rows

DAY = 86_400
HOUR = 3_600
_PACK_LIMIT = 2**62  # largest packed sort key; beyond it, sorts fall back to lexsort

# Relative rate of network events by hour of day (people use phones less at night).
DIURNAL_PROFILE = np.array([
    0.15, 0.10, 0.08, 0.08, 0.10, 0.20, 0.45, 0.85, 1.10, 1.10, 1.10, 1.10,
    1.20, 1.20, 1.10, 1.10, 1.10, 1.20, 1.30, 1.30, 1.20, 1.00, 0.70, 0.35,
])

# Attractiveness of a cell for "other" activities, by land use
# (residential, office, retail, transport, leisure, stadium).
OTHER_WEIGHT = np.array([1.0, 0.6, 4.0, 1.5, 4.0, 0.5])


@dataclass(frozen=True)
class StadiumEvent:
    """A scenario: an event at the stadium that draws a crowd.

    Parameters
    ----------
    day
        Day index in the window (0 = the first day, a Monday).
    start_hour, end_hour
        Event time, hours of the day (``0 <= start_hour < end_hour <= 23``).
    attendance
        Share of all subscribers who attend. Attendance is likelier for
        subscribers tagged ``tag_sports`` or ``tag_football``, men and the young.
    """

    day: int = 5
    start_hour: float = 18.0
    end_hour: float = 21.0
    attendance: float = 0.15

    def validate(self, days: int) -> None:
        if not (0 <= int(self.day) < days):
            raise PrivaggInputError(
                f"stadium_event.day={self.day!r} is outside the {days}-day window. Fix: pass 0 <= day < days."
            )
        if not (0 <= self.start_hour < self.end_hour <= 23):
            raise PrivaggInputError(
                f"stadium_event start_hour={self.start_hour!r}, end_hour={self.end_hour!r}: invalid hours. "
                "Fix: pass 0 <= start_hour < end_hour <= 23."
            )
        if not (0 < self.attendance <= 1):
            raise PrivaggInputError(
                f"stadium_event.attendance={self.attendance!r}: not a share. Fix: pass a number in (0, 1]."
            )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class MobilityParams:
    """Parameters of the mobility model (defaults follow the literature where there is one).

    Attributes
    ----------
    rho, gamma
        Exploration probability ``rho * S^-gamma`` (Song et al. 2010).
    max_other
        Most "other" visits per day.
    max_places
        Most distinct "other" places remembered per subscriber (after that, only returns).
    other_per_day
        Mean number of other visits per day for a subscriber of average activity
        (weekday with work, weekday without, weekend day).
    activity_sigma
        Log-normal spread of activity levels across subscribers.
    explore_scale_m, explore_exponent
        ``d0`` and ``alpha`` of the exploration gravity model ``(1 + d / d0)^-alpha``
        (``alpha = 2.55`` gives jump lengths ``P(d) ~ d^-1.55`` on uniform
        density, Song et al.'s ``beta = 0.55``).
    far_share, far_threshold_m
        Mean per-day probability of a day trip to a place at least
        ``far_threshold_m`` from home (heterogeneous across subscribers:
        propensity Beta(c, c (1 / far_share - 1)) with ``c = far_concentration``,
        so that most subscribers rarely leave and a few often do; doubled on weekends).
    overnight_share
        Probability of starting an overnight trip (1-4 nights, at a far
        place) relative to the day-trip propensity; tripled on Fridays and
        Saturdays.
    lunch_share
        Probability that a worker goes out for lunch.
    weekend_work_share
        Probability that a worker works on a weekend day.
    events_per_day
        Mean number of network events per subscriber per day.
    event_rate_sigma
        Log-normal spread of event rates across subscribers.
    trip_event_factor
        Event rate on trips relative to stays (handovers, location updates).
    events_per_session, session_gap_s
        Events come in sessions (a call, a browsing session): sessions are a
        Poisson process, each holds a geometric number of events (this mean)
        separated by exponential gaps (this mean, seconds). Network events
        are bursty, which makes traces sparser in time than their count suggests.
    """

    rho: float = 0.6
    gamma: float = 0.21
    max_other: int = 5
    max_places: int = 40
    other_per_day: tuple[float, float, float] = (0.7, 1.6, 1.8)
    activity_sigma: float = 0.8
    explore_scale_m: float = 1500.0
    explore_exponent: float = 2.55
    far_share: float = 0.05
    far_threshold_m: float = 20_000.0
    far_concentration: float = 0.2
    overnight_share: float = 0.3
    lunch_share: float = 0.3
    weekend_work_share: float = 0.08
    events_per_day: float = 24.0
    event_rate_sigma: float = 0.9
    trip_event_factor: float = 1.5
    events_per_session: float = 3.0
    session_gap_s: float = 90.0


    def validate(self) -> None:
        """Raise :class:`PrivaggInputError` naming the first parameter out of range."""
        checks = [
            ("rho", 0 < self.rho <= 1, "a number in (0, 1]"),
            ("gamma", self.gamma >= 0, "a number >= 0"),
            ("max_other", int(self.max_other) == self.max_other and self.max_other >= 1, "an integer >= 1"),
            ("max_places", int(self.max_places) == self.max_places and self.max_places >= 1, "an integer >= 1"),
            ("other_per_day", len(self.other_per_day) == 3 and min(self.other_per_day) >= 0,
             "three numbers >= 0 (weekday with work, weekday without, weekend)"),
            ("activity_sigma", self.activity_sigma >= 0, "a number >= 0"),
            ("explore_scale_m", self.explore_scale_m > 0, "a number > 0"),
            ("explore_exponent", self.explore_exponent >= 0, "a number >= 0"),
            ("far_share", 0 <= self.far_share < 1, "a number in [0, 1)"),
            ("far_concentration", self.far_concentration > 0, "a number > 0"),
            ("far_threshold_m", self.far_threshold_m >= 0, "a number >= 0"),
            ("overnight_share", self.overnight_share >= 0, "a number >= 0"),
            ("lunch_share", 0 <= self.lunch_share <= 1, "a number in [0, 1]"),
            ("weekend_work_share", 0 <= self.weekend_work_share <= 1, "a number in [0, 1]"),
            ("events_per_day", self.events_per_day > 0, "a number > 0"),
            ("event_rate_sigma", self.event_rate_sigma >= 0, "a number >= 0"),
            ("trip_event_factor", self.trip_event_factor >= 0, "a number >= 0"),
            ("events_per_session", self.events_per_session >= 1, "a number >= 1"),
            ("session_gap_s", self.session_gap_s >= 0, "a number >= 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise PrivaggInputError(
                    f"{name}={getattr(self, name)!r} is out of range. Fix: pass {expected}."
                )


@dataclass
class Mobility:
    """Raw arrays of the simulated movements (seconds from the window start)."""

    stay_user: np.ndarray
    stay_cell: np.ndarray
    stay_start: np.ndarray
    stay_end: np.ndarray
    trip_user: np.ndarray
    trip_origin: np.ndarray
    trip_destination: np.ndarray
    trip_depart: np.ndarray
    trip_arrive: np.ndarray
    event_user: np.ndarray
    event_cell: np.ndarray
    event_t: np.ndarray
    attendees: np.ndarray


def _lognormal_mean_one(sigma: float, n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.lognormal(-sigma**2 / 2, sigma, n)


def _sort_by_user_time(user: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Permutation sorting by (user, t); ``t`` non-negative integers.

    Sorting one packed int64 key is several times faster than a lexsort.
    """
    if len(user) == 0:
        return np.zeros(0, dtype=np.int64)
    span = int(t.max()) + 1
    if (int(user.max()) + 1) * span < _PACK_LIMIT:
        return np.argsort(user.astype(np.int64) * span + t)
    return np.lexsort((t, user))


def _merge_contiguous(user, cell, start, end):
    """Merge consecutive stays of a subscriber in the same cell (sorted input)."""
    if len(user) == 0:
        return user, cell, start, end
    head = np.ones(len(user), dtype=bool)
    head[1:] = (user[1:] != user[:-1]) | (cell[1:] != cell[:-1]) | (start[1:] != end[:-1])
    heads = np.flatnonzero(head)
    tails = np.append(heads[1:] - 1, len(user) - 1)
    return user[heads], cell[heads], start[heads], end[tails]


class _Explorer:
    """Per-subscriber memory of visited places for exploration and preferential return."""

    def __init__(self, city: City, pop: Population, params: MobilityParams, rng: np.random.Generator):
        n = len(pop.home)
        self.params = params
        self.rng = rng
        self.home = pop.home
        self.places = np.full((n, params.max_places), -1, dtype=np.int32)
        self.counts = np.zeros((n, params.max_places), dtype=np.int32)
        self.n_places = np.zeros(n, dtype=np.int32)
        m = city.n_cells
        self.m = m
        w = OTHER_WEIGHT[city.land_use][None, :] * (1.0 + city.distance_m / params.explore_scale_m) ** -params.explore_exponent
        np.fill_diagonal(w, w.diagonal() * 0.2)
        self.explore_cdf = row_sampler(w)
        far = (city.distance_m >= params.far_threshold_m) * OTHER_WEIGHT[city.land_use][None, :]
        no_far = far.sum(axis=1) == 0
        far[no_far] = OTHER_WEIGHT[city.land_use][None, :] * city.distance_m[no_far]
        self.far_cdf = row_sampler(far)

    def visit(self, who: np.ndarray, far: np.ndarray) -> np.ndarray:
        """One "other" visit for each subscriber in ``who``; ``far`` forces a far exploration."""
        p = self.params
        rng = self.rng
        s = self.n_places[who]
        total_places = s + 2  # home and work count as known places
        explore = (rng.random(len(who)) < p.rho * total_places ** -p.gamma) | (s == 0) | far
        explore &= s < p.max_places
        out = np.empty(len(who), dtype=np.int32)

        ex = who[explore]
        far_ex = far[explore]
        new = np.empty(len(ex), dtype=np.int64)
        if far_ex.any():
            new[far_ex] = sample_rows(self.far_cdf, self.m, self.home[ex[far_ex]], rng)
        if (~far_ex).any():
            new[~far_ex] = sample_rows(self.explore_cdf, self.m, self.home[ex[~far_ex]], rng)
        slot = self.n_places[ex]
        self.places[ex, slot] = new
        self.counts[ex, slot] = 1
        self.n_places[ex] += 1
        out[explore] = new

        ret = who[~explore]
        if len(ret):
            width = int(self.n_places[ret].max())
            cum = np.cumsum(self.counts[ret, :width], axis=1)
            r = rng.random(len(ret)) * cum[:, -1]
            k = (cum <= r[:, None]).sum(axis=1)
            k = np.minimum(k, width - 1)
            self.counts[ret, k] += 1
            out[~explore] = self.places[ret, k]
        return out


def simulate_mobility(
    city: City,
    pop: Population,
    days: int,
    *,
    params: MobilityParams | None = None,
    stadium_event: StadiumEvent | None = None,
    rng: np.random.Generator,
) -> Mobility:
    """Simulate ``days`` days of movement for every subscriber of ``pop``.

    Day 0 is a Monday. Returns raw arrays; :func:`privagg.synth.generate_world`
    turns them into tables.
    """
    params = params or MobilityParams()
    params.validate()
    n = len(pop.home)
    tt = city.travel_time_s
    home = pop.home.astype(np.int64)
    work = pop.work.astype(np.int64)
    routine = pop.routine
    all_users = np.arange(n)
    explorer = _Explorer(city, pop, params, rng)
    activity = _lognormal_mean_one(params.activity_sigma, n, rng)
    far_propensity = rng.beta(params.far_concentration, params.far_concentration * (1 / params.far_share - 1), n) if params.far_share > 0 else np.zeros(n)
    lunch_cdf = explorer.explore_cdf

    attendees = np.zeros(0, dtype=np.int64)
    if stadium_event is not None:
        stadium_event.validate(days)
        sports = pop.tags.get("tag_sports", np.zeros(n, bool)) | pop.tags.get("tag_football", np.zeros(n, bool))
        logw = 1.5 * sports + 0.5 * (pop.gender == 1) - 0.25 * pop.age
        attendees = gumbel_top_k(logw, round(stadium_event.attendance * n), rng)
    is_attendee = np.zeros(n, dtype=bool)
    is_attendee[attendees] = True

    M = params.max_other
    # Slot layout: 0 morning (where the night was spent), 1 work am, 2 lunch, 3 work pm,
    # 4..4+M-1 other, 4+M stadium, 5+M night.
    n_slots = M + 6
    stays, trips = [], []
    away_cell = np.full(n, -1, dtype=np.int64)  # where a subscriber on an overnight trip sleeps
    nights_left = np.zeros(n, dtype=np.int64)
    for d in range(days):
        day0 = d * DAY
        weekday = d % 7 < 5
        # Overnight trips: start one (likelier on Fridays and Saturdays), continue or come home.
        morning = np.where(away_cell >= 0, away_cell, home)
        starting = (away_cell < 0) & (rng.random(n) < far_propensity * params.overnight_share * (3.0 if d % 7 in (4, 5) else 1.0))
        if starting.any():
            away_cell[starting] = sample_rows(explorer.far_cdf, city.n_cells, home[starting], rng)
            nights_left[starting] = 1 + rng.geometric(0.6, int(starting.sum()))
        staying = away_cell >= 0
        night = np.where(staying & (nights_left > 0), away_cell, home)
        nights_left = np.where(staying, nights_left - 1, 0)
        away_cell = np.where(night == home, -1, away_cell)
        normal = (morning == home) & (night == home)
        anchor = np.where(night != home, night, morning)  # where the day's other visits happen

        works = normal & routine & (
            (rng.random(n) < 0.96) if weekday else (rng.random(n) < params.weekend_work_share)
        )
        lunch = works & (rng.random(n) < params.lunch_share)
        base = params.other_per_day[0 if weekday else 2]
        mean_other = activity * np.where(works, base, params.other_per_day[1] if weekday else base)
        n_other = np.minimum(rng.poisson(mean_other), M)
        go_far = normal & (rng.random(n) < far_propensity * (2.0 if not weekday else 1.0))
        n_other = np.where(go_far & (n_other == 0), 1, n_other)

        cell = np.repeat(home[:, None], n_slots, axis=1)
        dur = np.zeros((n, n_slots))
        valid = np.zeros((n, n_slots), dtype=bool)
        cell[:, 0] = morning
        valid[:, 0] = True
        cell[:, 1] = work
        cell[:, 3] = work
        valid[:, 1] = works
        valid[:, 3] = works
        cell[:, 2] = sample_rows(lunch_cdf, city.n_cells, work, rng)
        valid[:, 2] = lunch
        work_hours = np.clip(rng.normal(8.5, 1.2, n), 3.0, 11.0) * HOUR
        dur[:, 1] = np.where(lunch, 0.45, 1.0) * work_hours
        dur[:, 2] = np.clip(rng.lognormal(np.log(0.75), 0.3, n), 0.3, 1.5) * HOUR
        dur[:, 3] = 0.55 * work_hours
        dur[:, 4:4 + M] = np.clip(rng.lognormal(np.log(1.2 * HOUR), 0.7, (n, M)), 0.25 * HOUR, 6 * HOUR)
        for k in range(M):
            active = n_other > k
            # At home: exploration and preferential return; away: places around where one stays.
            who = all_users[active & normal]
            if len(who):
                cell[who, 4 + k] = explorer.visit(who, go_far[who] & (k == 0))
            elsewhere = all_users[active & ~normal]
            if len(elsewhere):
                cell[elsewhere, 4 + k] = sample_rows(explorer.explore_cdf, city.n_cells, anchor[elsewhere], rng)
            valid[active, 4 + k] = True
        # Day trips far from home last longer than errands.
        dur[go_far, 4] = np.clip(rng.lognormal(np.log(5 * HOUR), 0.4, int(go_far.sum())), 2 * HOUR, 10 * HOUR)
        cell[:, 4 + M] = city.stadium_cell
        cell[:, 5 + M] = night

        # Departure from home in the morning.
        leave = np.where(works, rng.normal(7.8, 0.8, n), rng.normal(10.0, 1.5, n))
        leave = np.clip(leave, 5.0, 14.0) * HOUR

        event_today = stadium_event is not None and int(stadium_event.day) == d
        if event_today:
            valid[:, 4 + M] = is_attendee
            ev_start = stadium_event.start_hour * HOUR - rng.uniform(0, 0.75 * HOUR, n)
            ev_end = stadium_event.end_hour * HOUR + rng.uniform(0, 0.5 * HOUR, n)

        start = np.zeros((n, n_slots))
        end = np.zeros((n, n_slots))
        end[:, 0] = leave
        cur_cell = morning.copy()
        cur_end = leave.copy()
        last = np.zeros(n, dtype=np.int64)
        for s in range(1, n_slots - 1):
            c = cell[:, s]
            arrive = cur_end + tt[cur_cell, c]
            limit = DAY - 0.5 * HOUR - tt[c, night]
            if event_today:
                if s == 4 + M:
                    # The stadium: arrive for the start (waiting longer where one came early).
                    target = np.maximum(ev_start, arrive)
                    extend = valid[:, s] & (target > arrive)
                    end[extend, last[extend]] = target[extend] - tt[cur_cell[extend], c[extend]]
                    arrive = np.where(valid[:, s], target, arrive)
                    finish = np.minimum(ev_end, limit)
                else:
                    finish = arrive + dur[:, s]
                    limit = np.where(is_attendee, ev_start - tt[c, city.stadium_cell], limit)
            else:
                finish = arrive + dur[:, s]
            finish = np.minimum(finish, limit)
            ok = valid[:, s] & (finish - arrive >= 600)
            valid[:, s] = ok
            start[ok, s] = arrive[ok]
            end[ok, s] = finish[ok]
            cur_cell = np.where(ok, c, cur_cell)
            cur_end = np.where(ok, finish, cur_end)
            last = np.where(ok, s, last)
        s = n_slots - 1
        valid[:, s] = True
        start[:, s] = cur_end + tt[cur_cell, night]
        end[:, s] = DAY

        # Emit stays and the trips between consecutive stays in different cells.
        rows, cols = np.nonzero(valid)  # row-major: per subscriber in slot order
        st_cell = cell[rows, cols]
        st_start = np.rint(start[rows, cols]).astype(np.int64) + day0
        st_end = np.rint(end[rows, cols]).astype(np.int64) + day0
        same_user = rows[1:] == rows[:-1]
        moved = same_user & (st_cell[1:] != st_cell[:-1])
        # Trips take exactly the rounded shortest-path time.
        o, dd = st_cell[:-1][moved], st_cell[1:][moved]
        depart = st_end[:-1][moved]
        arrive_t = st_start[1:][moved]
        # Rounding may shift an arrival by a second; keep stays and trips contiguous.
        stays.append((rows.astype(np.int64), st_cell, st_start, st_end))
        trips.append((rows[:-1][moved].astype(np.int64), o, dd, depart, np.maximum(arrive_t, depart)))

    # Concatenate days, sort per subscriber and time, merge nights across midnight.
    su, sc, ss, se = (np.concatenate(parts) for parts in zip(*stays))
    order = _sort_by_user_time(su, ss)
    su, sc, ss, se = su[order], sc[order], ss[order], se[order]
    # Same-cell neighbours (e.g. work am/pm, home across midnight) are one stay.
    same = np.zeros(len(su), dtype=bool)
    same[1:] = (su[1:] == su[:-1]) & (sc[1:] == sc[:-1])
    # Within a subscriber, a same-cell stay follows without a trip: close the gap.
    se_fixed = se.copy()
    nxt = np.flatnonzero(same) - 1
    se_fixed[nxt] = ss[nxt + 1]
    su, sc, ss, se = _merge_contiguous(su, sc, ss, se_fixed)

    tu, to, td, tdep, tarr = (np.concatenate(parts) for parts in zip(*trips))
    order = _sort_by_user_time(tu, tdep)
    tu, to, td, tdep, tarr = tu[order], to[order], td[order], tdep[order], tarr[order]

    ev_user, ev_cell, ev_t = _sample_events(
        city, params, days, (su, sc, ss, se), (tu, to, td, tdep, tarr), rng
    )
    return Mobility(
        stay_user=su, stay_cell=sc, stay_start=ss, stay_end=se,
        trip_user=tu, trip_origin=to, trip_destination=td, trip_depart=tdep, trip_arrive=tarr,
        event_user=ev_user, event_cell=ev_cell, event_t=ev_t, attendees=attendees,
    )


def _sample_events(city, params, days, stays, trips, rng):
    """Poisson network events over stays and trips at per-subscriber, diurnally modulated rates."""
    su, sc, ss, se = stays
    tu, to, td, tdep, tarr = trips
    n_users = int(max(su.max(initial=-1), tu.max(initial=-1)) + 1)
    profile = np.tile(DIURNAL_PROFILE, days)
    knots_t = np.arange(len(profile) + 1, dtype=np.float64) * HOUR
    knots_h = np.concatenate([[0.0], np.cumsum(profile)])  # cumulative intensity in "profile hours"
    per_profile_hour = params.events_per_day / DIURNAL_PROFILE.sum()
    rate = per_profile_hour * _lognormal_mean_one(params.event_rate_sigma, n_users, rng)

    burst = max(float(params.events_per_session), 1.0)
    gap = np.float32(params.session_gap_s)
    n_cells = city.n_cells
    span = days * DAY
    # Events are sorted as one packed int64 key (user, t, cell) when it fits.
    packed = n_users * span * n_cells < _PACK_LIMIT

    def draw(user, begin, finish, factor):
        """Sessions per interval, events per session, and every event's time (sorted within a session)."""
        # Sessions (a call, a browsing session) arrive as a Poisson process...
        h0 = np.interp(begin, knots_t, knots_h)
        h1 = np.interp(finish, knots_t, knots_h)
        k = rng.poisson(rate[user] * factor * (h1 - h0) / burst)
        sess = np.repeat(np.arange(len(user)), k)
        u = h0[sess] + rng.random(len(sess)) * (h1 - h0)[sess]
        lo = begin[sess]
        hi = np.maximum(finish[sess] - 1, lo)
        t_sess = np.clip(np.floor(np.interp(u, knots_h, knots_t)).astype(np.int64), lo, hi)
        # ... and each holds a geometric number of events a minute or two apart.
        size = rng.geometric(1.0 / burst, len(sess)) if burst > 1 else np.ones(len(sess), dtype=np.int64)
        heads = np.cumsum(size) - size
        gaps = rng.standard_exponential(int(size.sum()), dtype=np.float32) * gap
        gaps[heads] = 0.0
        csum = np.cumsum(gaps, dtype=np.float64)
        t = np.repeat(t_sess, size) + (csum - np.repeat(csum[heads], size)).astype(np.int64)
        np.minimum(t, np.repeat(hi, size), out=t)
        return sess, size, t

    sess, size, t_stay = draw(su, ss, se, 1.0)
    if packed:
        # Gather per session, then repeat per event: cheaper than gathering per event.
        base = (su[sess] * span) * n_cells + sc[sess]
        parts = [np.repeat(base, size) + t_stay * n_cells]
        del base
    else:
        idx = np.repeat(sess, size)
        parts = [(su[idx], sc[idx], t_stay)]
    del sess, size, t_stay
    if len(tu):
        sess, size, t_trip = draw(tu, tdep, tarr, params.trip_event_factor)
        idx = np.repeat(sess, size)
        o, dest = to[idx], td[idx]
        duration = np.maximum(tarr[idx] - tdep[idx], 1)
        target = (t_trip - tdep[idx]) / duration * city.travel_time_s[o, dest]
        cur = dest.astype(np.int64)
        # Walk back along the shortest path until the subscriber's position at that moment.
        active = np.flatnonzero((city.travel_time_s[o, cur] > target) & (cur != o))
        while len(active):
            cur[active] = city.predecessors[o[active], cur[active]]
            keep = (city.travel_time_s[o[active], cur[active]] > target[active]) & (cur[active] != o[active])
            active = active[keep]
        if packed:
            parts.append((tu[idx] * span + t_trip) * n_cells + cur)
        else:
            parts.append((tu[idx], cur, t_trip))
    if packed:
        key = np.concatenate(parts)
        del parts
        key.sort()
        cell = key % n_cells
        key //= n_cells
        t = key % span
        key //= span
        return key, cell, t
    user, cell, t = (np.concatenate(p) for p in zip(*parts))
    order = np.lexsort((cell, t, user))  # the packed key's order
    return user[order], cell[order], t[order]


__all__ = ["StadiumEvent", "MobilityParams", "Mobility", "simulate_mobility", "DIURNAL_PROFILE"]
