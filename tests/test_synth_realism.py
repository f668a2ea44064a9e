"""Realism of the synthetic world: the regularities of real operator data (issue 2, section 3).

One 20,000-subscriber, 7-day world (seed 0, 600 cells, a stadium event on
Saturday evening) is shared by the tests. The thresholds are the issue's; each
metric is also shown able to fail (on a world or table built to lack the
property), so a pass means something.
"""

import numpy as np
import pandas as pd
import pytest

from privagg.synth import StadiumEvent, generate_world
from privagg.synth import realism as R

N_USERS, N_CELLS, DAYS, SEED = 20_000, 600, 7, 0


@pytest.fixture(scope="module")
def world():
    event = StadiumEvent(day=5, start_hour=18, end_hour=21, attendance=0.15)
    return generate_world(N_USERS, N_CELLS, DAYS, SEED, stadium_event=event)


# -- unicity (de Montjoye et al. 2013) -------------------------------------------------------

def test_four_points_single_out_most_subscribers(world):
    u = R.unicity(world.events, n_points=4, start=world.start, seed=0)
    print(u)
    assert u.n_users > 0.95 * N_USERS
    assert u.share >= 0.85
    assert u.ci_low <= u.share <= u.ci_high


def test_fewer_points_single_out_fewer(world):
    two = R.unicity(world.events, n_points=2, start=world.start, seed=0, sample=4_000)
    four = R.unicity(world.events, n_points=4, start=world.start, seed=0, sample=4_000)
    assert two.share < four.share


def _events(rows):
    return pd.DataFrame(rows, columns=["user_id", "cell_id", "ts"]).astype({"ts": "datetime64[ns]"})


def test_unicity_counts_exactly_on_a_small_table():
    t = pd.Timestamp("2026-01-05")
    h = pd.Timedelta(hours=1)
    rows = []
    # Users 0 and 1 have identical traces; user 2 shares three of four points; user 3 is alone.
    for user in (0, 1):
        rows += [(user, c, t + i * h) for i, c in enumerate([1, 2, 3, 4])]
    rows += [(2, c, t + i * h) for i, c in enumerate([1, 2, 3, 9])]
    rows += [(3, c, t + i * h) for i, c in enumerate([5, 6, 7, 8])]
    rows += [(4, 1, t)]  # too few points: not counted
    u = R.unicity(_events(rows), n_points=4)
    assert u.n_users == 4
    assert u.share == pytest.approx(0.5)  # users 2 and 3


def test_unicity_is_zero_when_every_trace_has_a_twin(world):
    ev = world.events[world.events["user_id"] < 2_000]
    twin = ev.assign(user_id=ev["user_id"] + 1_000_000)
    u = R.unicity(pd.concat([ev, twin]), n_points=4, start=world.start)
    assert u.share == 0.0


# -- visitation frequency (Song et al. 2010) -------------------------------------------------

def test_visitation_frequency_falls_as_a_power_law(world):
    freq = R.rank_frequency(world.stays, max_rank=20, min_locations=10)
    zeta = R.zipf_exponent(freq, (1, 10))
    print(f"zipf exponent {zeta:.2f}, f_k = {np.round(freq[:10], 3)}")
    assert 0.8 <= zeta <= 1.8
    assert (np.diff(freq[:10]) <= 0).all()
    # A log-log line fits: residuals small against the range covered.
    k = np.arange(1, 11)
    slope, intercept = np.polyfit(np.log(k), np.log(freq[:10]), 1)
    residual = np.log(freq[:10]) - (slope * np.log(k) + intercept)
    assert np.abs(residual).max() < 0.35


def test_zipf_fit_recovers_a_known_exponent_and_rejects_uniform_visits():
    k = np.arange(1, 21)
    assert R.zipf_exponent(k**-1.2 / (k**-1.2).sum(), (1, 10)) == pytest.approx(1.2)
    rng = np.random.default_rng(0)
    uniform = pd.DataFrame({"user_id": np.repeat(np.arange(500), 200), "cell_id": rng.integers(0, 15, 100_000)})
    assert R.zipf_exponent(R.rank_frequency(uniform, 20, min_locations=10), (1, 10)) < 0.3


# -- radius of gyration (Gonzalez et al. 2008) -----------------------------------------------

def test_radius_of_gyration_is_heavy_tailed(world):
    rg = R.radius_of_gyration(world.events, world.cells)
    median, p90 = rg.median(), rg.quantile(0.9)
    print(f"radius of gyration: median {median:.0f} m, p90 {p90:.0f} m, ratio {p90 / median:.2f}")
    assert len(rg) > 0.99 * N_USERS
    assert p90 >= 5 * median
    assert 500 < median < 10_000


def test_a_single_compact_city_without_trips_has_no_heavy_tail():
    w = generate_world(3_000, 200, 7, 0, region_size_m=17_000, far_share=0.0)
    rg = R.radius_of_gyration(w.events, w.cells)
    assert rg.quantile(0.9) < 5 * rg.median()


def test_radius_of_gyration_by_hand():
    cells = pd.DataFrame({"cell_id": [0, 1, 2], "x": [0.0, 2.0, 0.0], "y": [0.0, 0.0, 10.0]})
    pts = pd.DataFrame({"user_id": [7, 7, 8, 8], "cell_id": [0, 1, 2, 2]})
    rg = R.radius_of_gyration(pts, cells)
    assert rg.loc[7] == pytest.approx(1.0)
    assert rg.loc[8] == pytest.approx(0.0)


# -- rhythms of land use, and the stadium scenario --------------------------------------------

def test_offices_peak_on_weekday_daytime_and_homes_at_night(world):
    pres = R.presence_by_land_use(world)
    weekday = pres[pres.index.day_of_week < 5]
    by_hour = weekday.groupby(weekday.index.hour).mean()
    assert 9 <= by_hour["office"].idxmax() <= 16
    assert by_hour["residential"].idxmax() in (0, 1, 2, 3, 4, 5, 22, 23)
    peaks = R.land_use_peaks(world)
    print(peaks)
    assert peaks["office_day_night_ratio"] > 3
    assert peaks["residential_day_night_ratio"] < 0.8
    # Offices are quieter at weekends.
    weekend = pres[pres.index.day_of_week >= 5]
    noon = lambda frame: frame[frame.index.hour == 11]["office"].mean()  # noqa: E731
    assert noon(weekend) < 0.5 * noon(weekday)


def test_stadium_event_shows_its_surge(world):
    surge = R.stadium_surge(world)
    print(surge)
    assert surge["present_during_event"] >= 0.1 * N_USERS
    assert surge["ratio"] > 20
    pres = R.presence(world.stays, world.start, 24 * DAYS, N_CELLS)[world.meta["stadium_cell"]]
    assert pres.argmax() // 24 == 5 and 18 <= pres.argmax() % 24 < 21


def test_realism_report_collects_the_figures(world):
    report = R.realism_report(world, seed=0)
    for key in ("unicity", "zipf_exponent", "rg_p90_over_median", "office_peak_hour", "residential_peak_hour", "stadium"):
        assert key in report
    assert report["rg_p90_over_median"] >= 5


def test_realism_command_prints_the_figures(capsys):
    assert R.main(["--users", "1500", "--cells", "100", "--days", "7", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    for phrase in ("unicity", "zeta =", "p90/median", "office cells", "stadium event"):
        assert phrase in out
