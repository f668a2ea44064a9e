"""OD hierarchy with privately selected cell pairs: the threshold's guarantee, the candidates, the spend, post-processing."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

import privagg.releases.od_hierarchy as odh
from privagg.dp.bound_choice import rho_for_epsilon
from privagg.dp.bounds import Bounds
from privagg.dp.budget import Budget
from privagg.dp.partition_selection import ThresholdMechanism
from privagg.errors import BudgetExceededError, PrivaggInputError
from privagg.postprocess.od_hierarchy import fit_selected

EPS, DELTA = 40.0, 1e-9
SEL = Bounds(max_partitions=4, max_per_partition=4, max_total=4)


@pytest.fixture(scope="module")
def selected(small_city):
    """A release generous enough (epsilon 40 on a 300-subscriber city) that some cell pairs pass the threshold."""
    budget = Budget(epsilon=EPS, delta=DELTA)
    noisy = odh.release_od_selected(small_city, epsilon=EPS, delta=DELTA, bounds=Bounds(max_partitions=8),
                                    selection_bounds=SEL, budget=budget)
    return noisy, budget


def _one_subscriber_keys(mech: ThresholdMechanism, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` keys, each holding the most one subscriber can add to a key (``linf``)."""
    return np.arange(n, dtype=np.int64), np.full(n, mech.max_per_partition, dtype=np.int64)


def test_a_key_of_one_subscriber_is_never_released(selected):
    """5,000 keys each holding one subscriber's largest contribution (linf trips) go through the hierarchy's
    threshold mechanism: none is released. OpenDP certifies that such a key passes with probability at most the
    level's selection delta (<= 2e-10 here), so the false-failure probability is at most 5,000 x 2e-10 = 1e-6.
    Companion: the same noise with the threshold lowered to linf (a rule "release what one subscriber could
    hold") releases each such key with probability at least 1/2, so it fails this check (the chance it
    releases none is below 2**-5000): the check can fail."""
    noisy, _ = selected
    mech = noisy.selected.mechanism
    level = noisy.record[-1]
    assert mech.delta <= level.delta  # its certified selection delta fits the level's share
    codes, counts = _one_subscriber_keys(mech, 5000)
    released, _ = mech.release(codes, counts)
    assert len(released) == 0
    weak = ThresholdMechanism(mech.kind, mech.scale, mech.max_per_partition, mech.max_partitions,
                              mech.max_per_partition, mech.loss, mech.delta, mech.max_total)
    weak_released, _ = weak.release(codes, counts)
    assert len(weak_released) > 0
    # a key far above the threshold (20 noise scales) is released: missed with probability below 1e-8
    heavy, _ = mech.release(np.array([7]), np.array([mech.threshold + int(20 * mech.scale) + 1]))
    assert heavy.tolist() == [7]


def test_the_threshold_is_certified_for_the_levels_share(selected):
    """OpenDP's privacy map, at the selected level's bounds, certifies its share: (epsilon_l, delta_l) for the
    Laplace threshold, (rho, delta_l / 2) with rho converting to epsilon_l at delta_l / 2 for the Gaussian."""
    noisy, _ = selected
    mech, level = noisy.selected.mechanism, noisy.record[-1]
    eps, dlt = (float(x) for x in mech.measurement().map(mech.d_in()))
    assert level.keys == "selected" and level.epsilon == pytest.approx(EPS * 0.6)
    if mech.kind == "laplace":
        assert eps <= level.epsilon * (1 + 1e-12) and dlt <= level.delta
    else:
        assert eps <= rho_for_epsilon(level.epsilon, level.delta / 2) * (1 + 1e-12) and dlt <= level.delta / 2
    # the total bound C tightens the distance the threshold is calibrated for (l1 = C, not L0 x Linf)
    assert mech.d_in()[1] <= SEL.max_total


def test_the_spend_is_the_sum_of_the_levels_charged_once(selected, small_city):
    """One ledger entry for the whole hierarchy, equal to the sum of the levels' losses, recording each level's
    share and whether its keys were public or selected; a budget that cannot pay refuses before any noise."""
    noisy, budget = selected
    assert len(budget.entries) == 1
    entry = budget.entries[0]
    assert budget.spent["epsilon"] == pytest.approx(EPS) and budget.spent["delta"] == pytest.approx(DELTA)
    assert sum(r.epsilon for r in noisy.record) == pytest.approx(EPS)
    assert sum(r.delta for r in noisy.record) == pytest.approx(DELTA)
    assert sum(r.share for r in noisy.record) == pytest.approx(1.0)
    levels = entry["parameters"]["levels"]
    assert [(lv["level"], lv["keys"]) for lv in levels] == [
        ("total", "public"), ("district", "public"), ("zone", "public"), ("cell", "selected")]
    for mech, rec in zip(noisy.mechanisms, noisy.record):  # each public level within its share
        allowed = rec.epsilon if mech.kind == "laplace" else rho_for_epsilon(rec.epsilon, rec.delta)
        assert mech.privacy_map() <= allowed * (1 + 1e-12)
    small = Budget(epsilon=EPS / 2, delta=DELTA)
    with pytest.raises(BudgetExceededError):
        odh.release_od_selected(small_city, epsilon=EPS, delta=DELTA, bounds=Bounds(max_partitions=8), budget=small)
    assert small.entries == []


def test_candidates_are_children_of_surviving_released_pairs(selected, small_city):
    """The candidate set is a function of the released parents (which survive) and the public cells table:
    with no surviving parent no trip reaches the threshold mechanism; with one, only its children do. Every
    released cell pair sits under a zone pair the consistent estimate keeps."""
    noisy, _ = selected
    zone_keys = noisy.keys[-1]
    eff = noisy.selected.bounds
    none, _, n_none = odh._candidate_contributions(small_city, "cell", "zone", zone_keys,
                                                   np.zeros(len(zone_keys), dtype=bool), eff)
    assert len(none) == 0 and n_none == 0
    one = np.zeros(len(zone_keys), dtype=bool)
    one[3] = True
    kept, domain, n_one = odh._candidate_contributions(small_city, "cell", "zone", zone_keys, one, eff)
    pairs = domain.decode(np.unique(kept.partitions))
    parents = odh._parents(small_city.cells, "zone", pairs, "cell", zone_keys)
    assert len(pairs) > 0 and set(parents.tolist()) == {3}
    sizes = small_city.cells.groupby("zone_id")["cell_id"].nunique()
    o, d = zone_keys.iloc[3]
    assert n_one == sizes[o] * sizes[d]
    flows = odh.consistent_od(noisy)
    assert len(flows["cell"]) > 0
    zone_value = flows["zone"]["value"].to_numpy()
    assert (zone_value[noisy.selected.parents] > 0).all()


def test_post_processing_reads_released_values_only(selected, small_city, monkeypatch):
    """The consistent flows are the same after the raw trips are altered and the subscribers' tables are gone
    (any read of them, or a merge, would fail); released cells plus the unselected remainder add up exactly
    to every zone pair, and released values are whole and non-negative."""
    noisy, _ = selected
    before = odh.consistent_od(noisy)
    world = copy.copy(small_city)
    monkeypatch.setattr(world, "trips", world.trips.assign(origin_cell=world.trips["destination_cell"]),
                        raising=False)
    for table in ("trips", "events", "users", "stays"):
        monkeypatch.setattr(world, table, None, raising=False)
    monkeypatch.setattr(pd.DataFrame, "merge", lambda *a, **k: (_ for _ in ()).throw(AssertionError("data read")))
    after = odh.consistent_od(noisy)
    for level in before:
        pd.testing.assert_frame_equal(before[level], after[level])
    cell, rest, zone = after["cell"], after["cell_unselected"], after["zone"]
    per_zone = np.bincount(noisy.selected.parents, weights=cell["value"], minlength=len(zone)) + rest["value"]
    np.testing.assert_array_equal(per_zone, zone["value"].to_numpy())
    assert cell["value"].min() >= 0 and rest["value"].min() >= 0 and cell["value"].dtype == np.int64


def test_fit_selected_keeps_children_that_fit_and_projects_the_others():
    """Children that fit under their parent keep their noisy values; those that exceed it are the closest
    non-negative whole numbers summing to it (a wrong fit, e.g. scaling, is caught by the closest-point check)."""
    kids, rest = fit_selected(np.array([30, 12, 50, 20]), np.array([0, 0, 1, 1]), np.array([60, 40, 5]))
    assert kids[:2].tolist() == [30, 12] and rest.tolist() == [18, 0, 5]
    assert kids[2:].tolist() == [35, 5]  # project (50, 20) on sum 40: subtract 15 from each
    with pytest.raises(PrivaggInputError, match="parents"):
        fit_selected(np.array([1, 2]), np.array([0, 3]), np.array([5]))


def test_selected_parameters_are_checked(small_city):
    with pytest.raises(PrivaggInputError, match="selected='zone' must be a level finer"):
        odh.release_od_selected(small_city, epsilon=1.0, delta=DELTA, bounds=Bounds(), selected="zone")
    with pytest.raises(PrivaggInputError, match="shares"):
        odh.release_od_selected(small_city, epsilon=1.0, delta=DELTA, bounds=Bounds(), shares=(1, 1, 1))
    with pytest.raises(PrivaggInputError, match="delta must be > 0"):
        odh.release_od_selected(small_city, epsilon=1.0, delta=0.0, bounds=Bounds())


def test_docstring_examples_run():
    """The runnable examples of the OD hierarchy's public functions give what they show."""
    import doctest

    import privagg.postprocess.od_hierarchy as post

    for module in (odh, post):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.attempted > 0 and result.failed == 0


def _with_trips(world, origin: int, destination: int, users: list[int], trips_each: int):
    """A copy of ``world`` with ``trips_each`` more trips origin -> destination for each of ``users``."""
    start = pd.Timestamp(world.meta["start"])
    rows = [{"user_id": u, "origin_cell": origin, "destination_cell": destination,
             "depart": start + pd.Timedelta(minutes=10 * i + j), "arrive": start + pd.Timedelta(minutes=10 * i + j + 5)}
            for j, u in enumerate(users) for i in range(trips_each)]
    out = copy.copy(world)
    out.trips = pd.concat([world.trips, pd.DataFrame(rows)], ignore_index=True)
    return out


def test_one_subscribers_pair_is_never_released_end_to_end(small_city):
    """One consenting subscriber makes 60 trips on a cell pair nobody else uses: bounded to linf = 4 trips, below
    the threshold, it is never released (3 releases; false-failure probability at most 3 x the selection delta,
    below 1e-9). Companion: the same 60 trips made by 15 subscribers (4 each) pass the threshold (their bounded
    count was 29-39 in 20 noiseless draws against a threshold of about 6 at noise scale 0.17; the chance the pair
    is missed is below 1e-6), so a release that did not bound per subscriber would fail the first check."""
    trips = small_city.trips.groupby(["origin_cell", "destination_cell"]).size()
    cells = small_city.cells["cell_id"].tolist()
    origin, destination = next((a, b) for a in cells for b in cells if a != b and (a, b) not in trips.index)
    consenting = small_city.users.loc[small_city.users["opt_in"], "user_id"].tolist()

    def released(world) -> bool:
        noisy = odh.release_od_selected(world, epsilon=EPS, delta=DELTA, bounds=Bounds(max_partitions=8),
                                        selection_bounds=SEL)
        keys = noisy.selected.keys
        return bool(((keys["origin_cell"] == origin) & (keys["destination_cell"] == destination)).any())

    lone = _with_trips(small_city, origin, destination, consenting[:1], 60)
    assert not any(released(lone) for _ in range(3))
    crowd = _with_trips(small_city, origin, destination, consenting[:15], 4)
    assert released(crowd)


def test_kept_share_scales_the_public_levels_only(selected):
    """Dividing by a kept share of 1/2 doubles the public levels' consistent total (to rounding) and leaves the
    selected pairs' counts alone; a share outside (0, 1] is refused with the fix."""
    noisy, _ = selected
    plain, scaled = odh.consistent_od(noisy), odh.consistent_od(noisy, kept_share=0.5)
    # the fit is scale-equivariant before its rounding: round(2c) is within 1 of 2 round(c)
    assert abs(int(scaled["total"]["value"][0]) - 2 * int(plain["total"]["value"][0])) <= 1
    assert int(scaled["zone"]["value"].sum()) == int(scaled["total"]["value"][0])
    kids = noisy.selected
    assert (scaled["cell"]["value"].to_numpy() <= np.maximum(kids.values, 0)).all()
    with pytest.raises(PrivaggInputError, match=r"kept_share=1.5 must be in \(0, 1\]"):
        odh.consistent_od(noisy, kept_share=1.5)
