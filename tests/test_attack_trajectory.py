"""Trajectory recovery from footfall (Xu et al. 2017) on hand-made worlds."""

import numpy as np
import pandas as pd
import pytest

from privagg.attacks.trajectory_recovery import (
    footfall_grid,
    information_gain,
    location_coordinates,
    recover_trajectories,
    trajectory_recovery,
    true_locations,
)
from privagg.errors import PrivaggInputError

START = pd.Timestamp("2026-01-05")


def grid_cells(side: int = 20) -> pd.DataFrame:
    xs, ys = np.meshgrid(np.arange(side) * 500.0, np.arange(side) * 500.0)
    n = side * side
    return pd.DataFrame({
        "cell_id": np.arange(n) + 100, "zone_id": np.arange(n) // 4, "district_id": np.arange(n) // 40,
        "x": xs.ravel(), "y": ys.ravel(), "land_use": "residential",
    })


def commuters(n_users: int, n_days: int, side: int = 20, seed: int = 0) -> np.ndarray:
    """Hourly cell ids: home at night, work 9-17 on weekdays, sometimes out 18-21."""
    rng = np.random.default_rng(seed)
    n_cells = side * side
    home = rng.integers(0, n_cells, n_users)
    work = rng.integers(0, n_cells, n_users)
    hours = np.arange(n_days * 24)
    at_work = ((hours % 24 >= 9) & (hours % 24 < 17) & (hours // 24 < 5))[None, :]
    loc = np.where(at_work, work[:, None], home[:, None])
    out = (rng.random(loc.shape) < 0.2) & ((hours % 24 >= 18) & (hours % 24 < 21))[None, :]
    loc = np.where(out, rng.integers(0, n_cells, loc.shape), loc)
    return loc + 100


def walkers(side: int = 12, n_days: int = 3) -> np.ndarray:
    """User i lives at (0, i) on a grid, walks east one cell an hour from 7h to 17h and back by 23h."""
    hours = np.arange(n_days * 24) % 24
    offset = np.clip(hours - 6, 0, 10) - np.clip(hours - 17, 0, 6) * 10 / 6
    col = np.rint(offset).astype(int)
    return (np.arange(side)[:, None] * side + col[None, :]) + 100


def footfall(loc: np.ndarray) -> pd.DataFrame:
    n, t = loc.shape
    df = pd.DataFrame({"cell_id": loc.ravel(), "slot": np.tile(np.arange(t), n)})
    df = df.value_counts().rename("value").reset_index()
    df["time"] = START + pd.to_timedelta(df["slot"], unit="h")
    return df.drop(columns="slot")


def suppress(df: pd.DataFrame, k: int) -> pd.DataFrame:
    return df.assign(value=df["value"].where(df["value"] >= k))


def test_smooth_distinct_walkers_are_recovered_exactly():
    cells = grid_cells(12)
    loc = walkers(12, 3)
    result = trajectory_recovery(footfall(loc), location_coordinates(cells), loc, seed=0)
    assert result.risk == pytest.approx(1.0)
    assert result.metrics["reidentified_top2"] == pytest.approx(1.0)
    assert result.baseline < 0.5
    # Walkers move every hour: staying where the night put them is right only at night.
    assert result.metrics["stay_put_accuracy"] < 0.5


def test_commuters_raw_footfall_recovery_far_above_random():
    cells = grid_cells()
    loc = commuters(600, 7)
    result = trajectory_recovery(footfall(loc), location_coordinates(cells), loc, seed=0)
    # nights are recovered exactly, daytime moves are ambiguous: about 60% of hours right
    assert result.risk >= 0.5 and result.ci_low >= 0.5
    assert result.baseline <= 0.05
    assert result.metrics["unique_top2"] >= 0.5
    # Commuters are home most of the week: keeping everyone at their night cell is right 74% of the
    # time, above the attack's linking (56%), which mixes up who goes where by day.
    assert result.metrics["stay_put_accuracy"] >= 0.6
    # half the subscribers choose the strongest adversary, the other half measure it
    assert result.n_trials == 300 and result.metrics["n_slots"] == 168 and result.metrics["n_training"] == 300
    assert result.risk >= result.metrics["stay_put_accuracy"] and result.variant in result.variants


def test_suppression_reduces_but_does_not_stop_recovery():
    cells = grid_cells(10)
    loc = commuters(1500, 2, side=10, seed=1)  # 15 people per cell: most counts pass k = 10
    raw = trajectory_recovery(footfall(loc), location_coordinates(cells), loc)
    k10 = trajectory_recovery(suppress(footfall(loc), 10), location_coordinates(cells), loc)
    assert k10.risk <= raw.risk + 1e-9
    assert k10.risk >= 0.3 and k10.risk > 5 * k10.baseline


def test_noisy_counts_are_rounded_clipped_and_mismatched_totals_tolerated():
    cells = grid_cells(10)
    loc = commuters(300, 2, side=10, seed=2)
    ff = footfall(loc)
    rng = np.random.default_rng(0)
    noisy = ff.assign(value=ff["value"] + rng.normal(0, 2.0, len(ff)))  # test input, not a release
    grid = footfall_grid(noisy, locations=location_coordinates(cells)["cell_id"].to_numpy())
    assert grid.counts.min() >= 0 and grid.counts.dtype.kind == "i"
    result = trajectory_recovery(noisy, location_coordinates(cells), loc)
    assert 0.0 <= result.risk <= 1.0 and np.isfinite(result.ci_low)


def test_deterministic_given_seed():
    cells = grid_cells(10)
    loc = commuters(200, 2, side=10, seed=3)
    ff = footfall(loc)
    a = trajectory_recovery(ff, location_coordinates(cells), loc, seed=4)
    b = trajectory_recovery(ff, location_coordinates(cells), loc, seed=4)
    assert a.risk == b.risk and a.ci_low == b.ci_low and a.baseline == b.baseline
    ra = recover_trajectories(ff, location_coordinates(cells))
    rb = recover_trajectories(ff, location_coordinates(cells))
    assert np.array_equal(ra.trajectories, rb.trajectories)


def test_information_gain_is_zero_for_same_distribution_and_weight_entropy_for_disjoint():
    import scipy.sparse as sp

    a = sp.csc_matrix(np.array([[2.0, 2.0, 0.0], [0.0, 0.0, 5.0]]))
    b = sp.csc_matrix(np.array([[1.0, 1.0, 0.0]]))
    gain = information_gain(a, b)
    assert gain[0, 0] == pytest.approx(0.0, abs=1e-12)
    # disjoint supports: the gain is the entropy of the mixing weights (5/7, 2/7)
    w = np.array([5 / 7, 2 / 7])
    assert gain[1, 0] == pytest.approx(-(w * np.log(w)).sum(), rel=1e-12)


def test_true_locations_take_the_longest_stay_and_fill_gaps():
    stays = pd.DataFrame({
        "user_id": [1, 1, 1],
        "cell_id": [10, 11, 12],
        "start": [START, START + pd.Timedelta("50min"), START + pd.Timedelta("3h")],
        "end": [START + pd.Timedelta("50min"), START + pd.Timedelta("1h10min"), START + pd.Timedelta("4h")],
    })
    slots = pd.date_range(START, periods=5, freq="1h")
    users, loc = true_locations(stays, slots)
    assert users.tolist() == [1]
    assert loc.tolist() == [[10, 11, 11, 12, 12]]


def test_truth_shape_is_checked():
    cells = grid_cells(4)
    loc = walkers(4, 1)
    with pytest.raises(PrivaggInputError, match="truth has shape"):
        trajectory_recovery(footfall(loc), location_coordinates(cells), loc[:, :5])


@pytest.fixture(scope="module")
def synthetic():
    """400 subscribers, 40 cells, 2 days of the synthetic city, with their true hourly cells."""
    from privagg.synth import generate_world

    world = generate_world(n_users=400, n_cells=40, days=2, seed=3)
    slots = pd.date_range(world.start, world.end, freq="1h", inclusive="left")
    _, truth = true_locations(world.opted_in().stays, slots)
    return world, truth, location_coordinates(world.cells)


def daily_footfall(world, anonymiser):
    """Hourly cell footfall released one day at a time (epsilon is then per subscriber-day)."""
    from privagg.queries import Query

    parts = []
    for day in pd.date_range(world.start, world.end, freq="1D", inclusive="left"):
        query = Query("footfall", level="cell", time_bin="1h", start=day, end=day + pd.Timedelta("1D"))
        parts.append(anonymiser.release(world, query).to_pandas())
    return pd.concat(parts, ignore_index=True)


def test_synthetic_city_raw_and_suppressed_footfall_are_recovered(synthetic):
    from privagg.anonymisers.raw import Raw
    from privagg.anonymisers.suppression import Suppression

    world, truth, coords = synthetic
    raw = trajectory_recovery(daily_footfall(world, Raw()), coords, truth)
    k5 = trajectory_recovery(daily_footfall(world, Suppression(k=5)), coords, truth)
    # measured 0.74 (raw) and 0.69 (k=5), both by the home/work adversary, against a random-assignment
    # baseline of 0.15 and 0.65 / 0.63 for the adversary who keeps everyone at their night cell
    assert raw.risk >= 0.5 and raw.ci_low > 3 * raw.baseline
    assert 0.4 <= raw.metrics["stay_put_accuracy"] <= raw.risk
    assert k5.risk >= 0.4 and k5.risk <= raw.risk + 1e-9


def test_synthetic_city_dp_footfall_defeats_recovery(synthetic):
    from privagg.anonymisers import DPAnonymiser

    world, truth, coords = synthetic
    dp = trajectory_recovery(daily_footfall(world, DPAnonymiser(epsilon=0.1)), coords, truth)
    # epsilon = 0.1 per subscriber-day: Xu et al. measured 0.13-0.14 against a baseline of 0.10 (raw: 0.72)
    assert dp.variants["Xu et al."] <= 0.25
    assert dp.target.startswith("footfall") or dp.target == "footfall counts"


@pytest.mark.parametrize("k", [None, 5, 10, 20])
def test_reported_risk_is_at_least_every_simple_adversary_on_raw_and_suppressed_footfall(synthetic, k):
    """The reported risk (the strongest adversary, chosen on half the subscribers and measured on the
    others) is at least the stay-put and random-assignment adversaries' held-out figures, up to the
    sampling noise of choosing on one half and measuring on the other (slack 0.05: at k=20 the figures
    swing by 0.04 between the halves), and the chosen adversary is the strongest on the training half.

    Raw and suppressed releases and the seeded split are deterministic: false-failure probability 0.
    Measured (risk / stay put / random): raw 0.74/0.65/0.15, k=5 0.69/0.63/0.16, k=10 0.56/0.57/0.14,
    k=20 0.17/0.19/0.08.
    """
    from privagg.anonymisers.raw import Raw
    from privagg.anonymisers.suppression import Suppression

    world, truth, coords = synthetic
    release = daily_footfall(world, Raw() if k is None else Suppression(k=k))
    result = trajectory_recovery(release, coords, truth)
    assert result.risk >= result.metrics["stay_put_accuracy"] - 0.05
    assert result.risk >= result.baseline
    training = {name: result.metrics[f"training_{key}"] for name, key in (
        ("Xu et al.", "xu_accuracy"), ("stay put (night cell)", "stay_put_accuracy"),
        ("home/work prior", "home_work_accuracy"), ("stay put (denoised night counts)", "denoised_stay_put_accuracy"))}
    assert training[result.variant] == max(training.values())
    assert set(result.variants) == {"Xu et al.", "stay put (night cell)", "home/work prior",
                                    "stay put (denoised night counts)"}
    assert result.risk == result.variants[result.variant]


def test_xu_alone_is_weaker_than_staying_put_under_k10_so_the_check_above_can_fail(synthetic):
    """Companion: the attack privagg used to report (Xu et al. alone) is below the independent stay-put
    adversary on k=10 suppressed footfall by more than the slack (measured 0.50 against 0.57), so
    reporting it would fail the test above. Deterministic (seeded split, no noise): false-failure
    probability 0."""
    from privagg.anonymisers.suppression import Suppression

    world, truth, coords = synthetic
    result = trajectory_recovery(daily_footfall(world, Suppression(k=10)), coords, truth)
    assert result.variants["Xu et al."] < result.metrics["stay_put_accuracy"] - 0.05
    assert result.variant != "Xu et al."


def test_starting_at_the_first_usable_slot_keeps_people_suppressed_at_midnight():
    """Two commuter towns: at 00:00 every count is below k = 3 (suppressed), from 01:00 they pass. Starting
    at 00:00 would recover no one; the first usable slot recovers them all."""
    cells = grid_cells(4)
    loc = commuters(40, 1, side=4, seed=5)
    ff = footfall(loc)
    hour = (ff["time"] - START) // pd.Timedelta("1h")
    ff.loc[hour == 0, "value"] = np.nan  # everyone suppressed at midnight
    rec = recover_trajectories(ff, location_coordinates(cells))
    assert len(rec.trajectories) == 40
    old = recover_trajectories(ff, location_coordinates(cells), usable_share=0.0)  # start at 00:00
    assert len(old.trajectories) == 0


def test_stay_put_baseline_links_days_by_the_night_cell_not_by_the_attack():
    """People who never move: the stay-put adversary recovers them exactly over several days."""
    from privagg.attacks.trajectory_recovery import baseline_trajectories

    cells = grid_cells(6)
    rng = np.random.default_rng(0)
    home = rng.integers(0, 36, 50) + 100
    loc = np.repeat(home[:, None], 72, axis=1)
    rec = baseline_trajectories(footfall(loc), location_coordinates(cells), kind="stay_put")
    assert sorted(rec.location_ids()[:, 0].tolist()) == sorted(home.tolist())
    assert (rec.location_ids() == rec.location_ids()[:, :1]).all()
    with pytest.raises(PrivaggInputError, match="kind='x'"):
        baseline_trajectories(footfall(loc), location_coordinates(cells), kind="x")


@pytest.mark.statistical
def test_under_dp_no_adversary_beats_one_that_never_saw_the_release(synthetic):
    """At epsilon 0.02 per subscriber-day the strongest adversary is within e^(0.02 x 2 days) of the
    release-free one (everyone kept at one location, spread evenly), the factor DP allows.

    No formal DP bound applies to the pairing-scored accuracy (the evaluation pairs with the truth), so
    this is the yardstick. The adversary knows how many subscribers there are (as the harness assumes).
    Measured over 8 releases at epsilon 0.02 and 0.1: the strongest is the noise-aware stay-put adversary
    at 0.608 every time against 0.610 (its shrinkage weight is 0: it spreads people evenly), bound 0.635.
    Failing needs the noise estimate to let noise back in by chance, which its two-standard-error guard
    makes rare: false-failure probability below 1e-3 (none in the 8 releases and 16 at other epsilons).
    The companion below shows the check fails without DP.
    """
    from privagg.anonymisers import DPAnonymiser

    world, truth, coords = synthetic
    n = len(world.opted_in().users)
    dp = trajectory_recovery(daily_footfall(world, DPAnonymiser(epsilon=0.02)), coords, truth, n_trajectories=n)
    assert dp.risk <= np.exp(0.02 * 2) * dp.metrics["release_free_accuracy"]
    assert dp.variants["Xu et al."] <= dp.metrics["release_free_accuracy"]


def test_raw_footfall_beats_the_release_free_adversary(synthetic):
    """Companion: on raw footfall the strongest adversary is above the DP allowance over the release-free
    one (measured 0.74 against 1.04 x 0.61 = 0.63), so the DP check above can fail. Deterministic:
    false-failure probability 0."""
    from privagg.anonymisers.raw import Raw

    world, truth, coords = synthetic
    n = len(world.opted_in().users)
    raw = trajectory_recovery(daily_footfall(world, Raw()), coords, truth, n_trajectories=n)
    assert raw.risk > np.exp(0.02 * 2) * raw.metrics["release_free_accuracy"]


def test_days_are_linked_by_identical_anchors_first_then_by_distance():
    from privagg.attacks.trajectory_recovery import _link_by

    coords = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [9.0, 0.0], [9.5, 0.0]])
    prev = np.array([1, 1, 2, 3, 0])
    new = np.array([3, 1, 2, 1, 4])
    rows, cols = _link_by(prev, new, coords)
    pairs = dict(zip(rows.tolist(), cols.tolist()))
    assert sorted(pairs) == [0, 1, 2, 3, 4] and sorted(pairs.values()) == [0, 1, 2, 3, 4]
    assert all(prev[r] == new[c] for r, c in pairs.items() if r != 4)  # the four with a twin anchor
    assert pairs[4] == 4  # the one left over, by distance
    rows, _ = _link_by(prev, new[:3], coords)  # fewer individuals than chains: some chains stay unlinked
    assert len(rows) == 3
    # two-column anchors (home, work): only identical pairs match at zero cost; the rest by distance
    rows, cols = _link_by(np.array([[1, 2], [1, 3]]), np.array([[1, 3], [1, 4]]), coords)
    assert dict(zip(rows.tolist(), cols.tolist())) == {1: 0, 0: 1}
