"""Unicity attack (de Montjoye et al. 2013) on hand-made microdata."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from privagg.attacks.result import AttackResult
from privagg.attacks.unicity import anonymity_sets, trace_points, unicity
from privagg.errors import PrivaggInputError

START = pd.Timestamp("2026-01-05")


def commuter_events(n_users: int = 2000, n_days: int = 7, n_cells: int = 400, seed: int = 0) -> pd.DataFrame:
    """Each subscriber sleeps at a random home cell, works 9-17 on weekdays at a random work
    cell, sometimes goes out in the evening; 30% of their hours produce an event."""
    rng = np.random.default_rng(seed)
    home = rng.integers(0, n_cells, n_users)
    work = rng.integers(0, n_cells, n_users)
    hours = np.arange(n_days * 24)
    day, hour = hours // 24, hours % 24
    at_work = (hour >= 9) & (hour < 17) & (day < 5)
    loc = np.where(at_work[None, :], work[:, None], home[:, None])
    evening = (hour >= 18) & (hour < 21)
    out = (rng.random(loc.shape) < 0.2) & evening[None, :]
    loc = np.where(out, rng.integers(0, n_cells, loc.shape), loc)
    users = np.repeat(np.arange(n_users), len(hours))
    keep = rng.random(users.size) < 0.3
    ts = START + pd.to_timedelta(np.tile(hours, n_users)[keep] * 3600 + rng.integers(0, 3600, keep.sum()), unit="s")
    return pd.DataFrame({"user_id": users[keep], "cell_id": loc.ravel()[keep], "ts": ts})


def test_identical_traces_are_never_unique_and_disjoint_ones_always():
    hours = START + pd.to_timedelta(np.arange(6), unit="h")
    same = pd.DataFrame({"user_id": np.repeat([1, 2, 3], 6), "cell_id": 7, "ts": np.tile(hours, 3)})
    result = unicity(same, p=2, n_targets=None)
    assert isinstance(result, AttackResult)
    assert result.risk == 0.0 and result.n_trials == 3
    assert result.metrics["median_anonymity_set"] == 3.0
    disjoint = same.assign(cell_id=same["user_id"] * 10)
    assert unicity(disjoint, p=1, n_targets=None).risk == 1.0


def test_anonymity_sets_match_brute_force():
    rng = np.random.default_rng(3)
    users = rng.integers(0, 60, 900)
    points = rng.integers(0, 40, 900)
    incidence = sp.csr_matrix((np.ones(900), (users, points)), shape=(60, 40))
    incidence.data[:] = 1
    incidence.sum_duplicates()
    incidence.data[:] = 1
    traces = [set(incidence.indices[incidence.indptr[u]: incidence.indptr[u + 1]]) for u in range(60)]
    targets = np.array([u for u in range(60) if len(traces[u]) >= 3])
    chosen, counts = anonymity_sets(incidence, targets, 3, np.random.default_rng(0), batch_size=7)
    for t, pts, count in zip(targets, chosen, counts):
        assert len(set(pts)) == 3 and set(pts) <= traces[t]
        assert count == sum(set(pts) <= trace for trace in traces)


def test_stays_expand_to_every_hour_they_overlap():
    stays = pd.DataFrame({
        "user_id": [1, 2],
        "cell_id": [5, 5],
        "start": [START, START + pd.Timedelta("2h")],
        "end": [START + pd.Timedelta("3h"), START + pd.Timedelta("4h")],
    })
    users, points, n_users, n_points = trace_points(stays)
    assert n_users == 2 and n_points == 4  # hours 0-3 at cell 5
    assert np.bincount(users).tolist() == [3, 2]


def test_four_points_single_out_most_commuters_and_coarsening_lowers_it():
    events = commuter_events()
    fine = unicity(events, p=4, seed=1)
    # 400 cells x 168 hours, 2000 subscribers: four random points single out nearly everyone
    assert fine.variants["random k points"] >= 0.8 and fine.metrics["random_points_ci_low"] >= 0.75
    assert fine.baseline == pytest.approx(1 / 2000)
    coarse_space = events.assign(cell_id=events["cell_id"] // 40)  # 10 districts
    coarse = unicity(coarse_space, p=4, time_bin="3h", seed=1)
    assert coarse.variants["random k points"] < fine.variants["random k points"] - 0.3
    assert unicity(events, p=1, seed=1).variants["random k points"] < fine.variants["random k points"]
    # ... but coarsening does not protect against the best four points: every commuter still has them
    assert coarse.risk >= 0.95


def test_same_seed_same_result_and_seed_matters():
    events = commuter_events(500, 3)
    a = unicity(events, p=2, n_targets=300, seed=5)
    b = unicity(events, p=2, n_targets=300, seed=5)
    assert a == b
    c = unicity(events, p=2, n_targets=300, seed=6)
    assert c.metrics != a.metrics or c.risk != a.risk


def test_uses_the_release_time_bin_and_describes_the_release():
    class Micro:
        def __init__(self, table):
            self.table = table

            class Privacy:
                parameters = {"time_bin": "1D"}

                @staticmethod
                def describe():
                    return "pseudonymised events per district and day"

            self.privacy = Privacy()

    events = commuter_events(300, 3)
    result = unicity(Micro(events), p=2, seed=0)
    assert result.target == "pseudonymised events per district and day"
    assert "1D time bin" in result.background_knowledge
    assert result.variants["random k points"] <= unicity(events, p=2, seed=0).variants["random k points"]
    assert result.risk <= unicity(events, p=2, seed=0).risk


def test_bad_parameters_name_the_fix():
    events = commuter_events(50, 1)
    with pytest.raises(PrivaggInputError, match=r"p=0 is not a positive whole number of known points. Fix:"):
        unicity(events, p=0)
    with pytest.raises(PrivaggInputError, match=r"location_col='zone_id' is not a column"):
        unicity(events, location_col="zone_id")
    with pytest.raises(PrivaggInputError, match="no rows"):
        unicity(events.iloc[:0])


def test_pseudonymised_synthetic_city_is_unique_in_four_points_and_coarsening_helps():
    from privagg.anonymisers.pseudonymised import Pseudonymised
    from privagg.synth import generate_world

    world = generate_world(n_users=600, n_cells=60, days=2, seed=3)
    fine = unicity(Pseudonymised(level="cell", time_bin="1h", seed=0).release(world), p=4, seed=0)
    zone = unicity(Pseudonymised(level="zone", time_bin="1h", seed=0).release(world), p=4, seed=0)
    district = unicity(Pseudonymised(level="district", time_bin="3h", seed=0).release(world), p=4, seed=0)
    # random 4 points, measured: 0.79 (cell, hour), 0.16 (zone, hour), 0.00 (district, 3 hours)
    rand = lambda r: r.variants["random k points"]  # noqa: E731
    assert rand(fine) >= 0.7 and fine.metrics["random_points_ci_low"] > 0.6
    assert rand(zone) < rand(fine) - 0.3
    assert rand(district) <= rand(zone)
    # the worst case is at least as high at every resolution, and still falls with coarsening
    for r in (fine, zone, district):
        assert r.risk >= rand(r)
    assert fine.risk >= 0.95 and district.risk <= zone.risk <= fine.risk
    assert "pseudonymised" in fine.target


def test_time_bins_are_aligned_to_midnight_not_to_the_first_record():
    # 00:50 and 01:10 fall in different hours; 01:10 and 01:50 in the same one
    ts = pd.to_datetime(["2026-01-05 00:50", "2026-01-05 01:10", "2026-01-05 01:50"])
    events = pd.DataFrame({"user_id": [1, 1, 1], "cell_id": [4, 4, 4], "ts": ts})
    _, points, _, n_points = trace_points(events)
    assert n_points == 2


def _brute_force_worst_case(traces: list[set], k: int) -> list[bool]:
    """Independent check: for each trace with >= k points, is some k-subset contained in no other trace?"""
    from itertools import combinations

    out = []
    for u, trace in enumerate(traces):
        if len(trace) < k:
            continue
        others = [t for v, t in enumerate(traces) if v != u]
        out.append(any(not any(set(c) <= t for t in others) for c in combinations(sorted(trace), k)))
    return out


def _random_incidence(seed: int, n_users: int = 40, n_points: int = 12, per_user: int = 60):
    rng = np.random.default_rng(seed)
    # few points and many overlapping traces, so that sizes 1 to 4 all occur
    users = rng.integers(0, n_users, per_user * n_users // 10)
    points = rng.integers(0, n_points, users.size)
    incidence = sp.csr_matrix((np.ones(users.size), (users, points)), shape=(n_users, n_points))
    incidence.sum_duplicates()
    incidence.data[:] = 1
    traces = [set(incidence.indices[incidence.indptr[u]: incidence.indptr[u + 1]]) for u in range(n_users)]
    return incidence, traces


@pytest.mark.parametrize("per_target", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_worst_case_matches_brute_force_on_tiny_populations(seed, per_target, monkeypatch):
    import importlib

    from privagg.attacks.unicity import singling_out_sizes

    module = importlib.import_module("privagg.attacks.unicity")  # the module, not the function of that name

    if per_target:  # the size-2 step target by target, as for populations too large for one matrix
        monkeypatch.setattr(module, "PAIR_WORK_LIMIT", 0)

    incidence, traces = _random_incidence(seed)
    for k in (1, 2, 3, 4):
        targets = np.array([u for u, t in enumerate(traces) if len(t) >= k])
        sizes, undecided = singling_out_sizes(incidence, targets, k)
        assert not undecided.any()
        assert (sizes <= k).tolist() == _brute_force_worst_case(traces, k)
    # the population mixes sizes, so every branch of the search was exercised
    sizes, _ = singling_out_sizes(incidence, np.arange(len(traces)), 4)
    assert len(set(sizes.tolist())) >= 3


def test_a_weakened_worst_case_search_disagrees_with_brute_force():
    """Companion: a search that only tries the target's points one at a time and in pairs (no tree) misses
    the targets singled out by 3 or 4 points, so the brute-force comparison above can fail."""
    from privagg.attacks.unicity import singling_out_sizes

    incidence, traces = _random_incidence(0)
    targets = np.array([u for u, t in enumerate(traces) if len(t) >= 4])
    weak, _ = singling_out_sizes(incidence, targets, 2)
    assert (weak <= 4).tolist() != _brute_force_worst_case(traces, 4)


def test_worst_case_is_the_headline_and_never_below_random_points():
    events = commuter_events(500, 3)
    for p in (1, 2, 4):
        result = unicity(events, p=p, seed=0)
        assert result.variant == "some k points"
        assert result.risk == result.variants["some k points"] == result.metrics["worst_case_risk"]
        assert result.risk >= result.variants["random k points"] - 1e-12
        assert result.variants["random k points"] == result.metrics["random_points_risk"]
        assert result.metrics["worst_case_upper"] >= result.risk
        assert "distinct points" in result.background_knowledge
    # every subscriber with 4 points is singled out by some 4 of them (home at night, work by day, a visit)
    assert unicity(events, p=4, seed=0).risk >= 0.95


def test_repeated_points_count_once_and_short_traces_are_excluded():
    hours = START + pd.to_timedelta(np.arange(3), unit="h")
    rows = pd.DataFrame({
        "user_id": [1, 1, 1, 1, 2, 2, 2, 3],
        "cell_id": [7, 7, 8, 9, 7, 8, 5, 7],
        "ts": [hours[0], hours[0] + pd.Timedelta("10min"), hours[1], hours[2], hours[0], hours[1], hours[2],
               hours[0]],
    })
    result = unicity(rows, p=3, n_targets=None)
    # user 1's repeated (7, 0h) counts once: 3 distinct points; user 3 has 1 point and is not a target
    assert result.n_trials == 2 and result.metrics["n_excluded_fewer_than_p_points"] == 1
    assert result.risk == 1.0  # users 1 and 2 differ at 2h
