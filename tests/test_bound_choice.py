"""Bounds chosen privately, total-contribution bounds, and the automatic mechanism."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import privagg as pa
from tests.dp_fixtures import random_world
from privagg.dp import bound_choice
from privagg.dp.bound_choice import Budgets, choose_mechanism, rho_for_epsilon
from privagg.dp.bounds import Bounds, BoundsWarning
from privagg.dp.mechanisms import NoiseMechanism, zcdp_epsilon
from privagg.engines.base import UserPartitions
from privagg.engines.local import LocalEngine
from privagg.releases.core import DEFAULT_SHARE

DAY = dict(start="2026-01-05", end="2026-01-06")


@pytest.fixture(scope="module")
def world():
    return random_world(n_users=400, stays_per_user=10)


def zone_hour_keys(world):
    return pa.KeySet.areas_by_time(world.cells, "zone", time_bin="1h", **DAY)


# ---------------------------------------------------------------------- the choice spends what it says
def test_bound_choice_spends_its_stated_share_and_the_release_stays_within_epsilon(world, monkeypatch):
    spent = []
    real = bound_choice.laplace

    def spy(epsilon, sensitivity):
        spent.append((epsilon, sensitivity))
        return real(epsilon, sensitivity)

    monkeypatch.setattr(bound_choice, "laplace", spy)
    budget = pa.Budget(epsilon=5.0)
    rel = pa.visits(world, epsilon=2.0, level="zone", keys=zone_hour_keys(world), budget=budget)
    rec = rel.privacy
    choice_eps = DEFAULT_SHARE * 2.0
    # One histogram draw per profile (l1 sensitivity 1: each subscriber in one bin of each), their epsilons
    # summing to the share: most to the records histogram, the rest to the capped ones.
    hists = 1 + len(bound_choice.LINF_GRID)
    assert all(sens == 1 for _, sens in spent[:hists])
    assert sum(e for e, _ in spent[:hists]) == pytest.approx(choice_eps)
    assert spent[0][0] == pytest.approx(bound_choice.RECORDS_WEIGHT * choice_eps)
    # Every other calibration (candidates' noise) uses the rest of the budget.
    assert {round(e, 12) for e, _ in spent[hists:]} == {round(2.0 - choice_eps, 12)}
    assert rec.parameters["bounds_epsilon"] == pytest.approx(choice_eps)
    assert rec.parameters["bounds_share"] == DEFAULT_SHARE
    # The release noise, at the chosen bounds' sensitivity, certifies at most the rest.
    chosen = Bounds(**rec.bounds)
    noise = NoiseMechanism("laplace", rec.noise_scale, chosen.l1_sensitivity, 0.0)
    assert rec.mechanism == "discrete Laplace (OpenDP)"
    assert noise.privacy_map() <= 2.0 - choice_eps + 1e-12
    assert rec.epsilon == 2.0 and budget.spent["epsilon"] == pytest.approx(2.0)


def test_chosen_bounds_are_valid_and_respected_by_the_aggregate(world, monkeypatch):
    monkeypatch.setattr(NoiseMechanism, "sample", lambda self, values, threads=None: np.asarray(values, dtype=np.int64).copy())
    for stat in (pa.footfall, pa.visits):
        rel = stat(world, epsilon=50.0, level="zone", keys=zone_hour_keys(world))
        b = Bounds(**rel.privacy.bounds)  # validates: whole numbers >= 1
        assert rel.privacy.parameters["bounds_rule"].startswith("chosen privately")
        total = rel.to_pandas()["value"].sum() * rel.privacy.parameters["kept_share"]
        people = world.users["opt_in"].sum()
        assert total <= people * b.l1_sensitivity + len(rel.to_pandas())  # + rounding of rescaled values


def test_record_counts_are_divided_by_the_estimated_kept_share(monkeypatch):
    """Noise-free (the histograms too): a visits release with chosen bounds is divided by the kept share the
    histograms estimate, which brings its total closer to the truth than the bounded counts; footfall
    (distinct) is never rescaled."""
    from privagg.postprocess.noise import noise_model
    from privagg.synth import generate_world

    monkeypatch.setattr(NoiseMechanism, "sample", lambda self, values, threads=None: np.asarray(values, dtype=np.int64).copy())
    city = generate_world(n_users=1000, n_cells=30, days=2, seed=1)
    keys = pa.KeySet.areas_by_time(city.cells, "zone", time_bin="1D", start=city.start, end=city.end)
    rel = pa.visits(city, epsilon=2.0, level="zone", time_bin="1D", keys=keys)
    share = rel.privacy.parameters["kept_share"]
    truth = pa.exact_aggregate(city, pa.Query("visits", level="zone", time_bin="1D", keys=keys))["value"].sum()
    released = rel.to_pandas()["value"].sum()
    assert 0.5 < share < 1.0  # a bound that truncates (the noise makes one worth it)
    assert released * share < truth  # the bounded counts fall short of the truth ...
    assert abs(released - truth) < abs(released * share - truth)  # ... and rescaling brings the total closer
    assert "divided by" in rel.privacy.notes[-1] or any("divided by" in n for n in rel.privacy.notes)
    assert noise_model(rel).factor == pytest.approx(1 / share) and not noise_model(rel).discrete
    ff = pa.footfall(city, epsilon=2.0, level="zone", time_bin="1D", keys=keys)
    assert ff.privacy.parameters["kept_share"] == 1.0 and noise_model(ff).factor == 1.0


# ---------------------------------------------------------------------- sensitivity of every shape
SHAPES = [
    Bounds(max_partitions=3, max_per_partition=2),  # box
    Bounds(max_partitions=20, max_per_partition=20, max_total=5),  # total only
    Bounds(max_partitions=20, max_per_partition=2, max_total=5),  # total with a per-key cap
    Bounds(max_partitions=2, max_per_partition=2, max_total=3),  # all three bind
]


def _pairs(rng: np.random.Generator, n_users: int, n_parts: int) -> UserPartitions:
    ids, parts, counts = [], [], []
    for u in range(n_users):
        touched = rng.choice(n_parts, size=rng.integers(1, n_parts), replace=False)
        for p in sorted(touched):
            ids.append(u)
            parts.append(p)
            counts.append(int(rng.integers(1, 6)))
    return UserPartitions(np.array(ids, dtype=np.int64), np.array(parts, dtype=np.int64), np.array(counts, dtype=np.int64))


def _without(pairs: UserPartitions, user: int) -> UserPartitions:
    keep = pairs.privacy_ids != user
    return UserPartitions(pairs.privacy_ids[keep], pairs.partitions[keep], pairs.counts[keep])


@pytest.mark.parametrize("bounds", SHAPES, ids=["box", "total", "total+cap", "all"])
def test_sensitivity_holds_for_every_shape(bounds):
    """Removing one subscriber changes the bounded aggregate by a vector within the l1 and l2 sensitivity
    (same bounding secret: every other subscriber keeps exactly what they kept)."""
    rng = np.random.default_rng(3)  # test data only
    pairs = _pairs(rng, 40, 8)
    for user in range(0, 40, 3):
        full = LocalEngine(rng=np.random.default_rng(11))
        less = LocalEngine(rng=np.random.default_rng(11))
        a = full.aggregate(full.bound_contributions(pairs, bounds), 8, dense=True).counts
        b = less.aggregate(less.bound_contributions(_without(pairs, user), bounds), 8, dense=True).counts
        diff = a - b
        assert np.all(diff >= 0)
        assert np.abs(diff).sum() <= bounds.l1_sensitivity
        assert math.sqrt((diff.astype(float) ** 2).sum()) <= bounds.l2_sensitivity + 1e-12
        assert np.count_nonzero(diff) <= bounds.max_partitions and diff.max() <= bounds.max_per_partition


def test_sensitivity_formulas():
    assert Bounds(max_partitions=10, max_per_partition=4, max_total=10).l2_sensitivity == pytest.approx(6.0)
    assert Bounds(max_partitions=5, max_per_partition=3, max_total=7).l1_sensitivity == 7
    assert Bounds(max_partitions=24).l2_sensitivity == pytest.approx(math.sqrt(24))
    assert Bounds(max_partitions=2, max_per_partition=2, max_total=3).l2_sensitivity == pytest.approx(math.sqrt(5))


# ---------------------------------------------------------------------- uniform total sampling
PATTERN = {0: 6, 1: 3, 2: 1}  # one subscriber's records per key
C = 4
ALPHA = 1e-4


def _engine_sample(n_subscribers: int) -> np.ndarray:
    """Records kept in key 0 by total bounding (C = 4, no per-key cap) for many subscribers with the same records."""
    ids = np.repeat(np.arange(n_subscribers, dtype=np.int64), len(PATTERN))
    parts = np.tile(np.array(list(PATTERN), dtype=np.int64), n_subscribers)
    counts = np.tile(np.array(list(PATTERN.values()), dtype=np.int64), n_subscribers)
    out = LocalEngine().bound_contributions(UserPartitions(ids, parts, counts), Bounds(max_partitions=10, max_per_partition=10, max_total=C))
    kept0 = np.zeros(n_subscribers, dtype=np.int64)
    sel = out.partitions == 0
    kept0[out.privacy_ids[sel]] = out.counts[sel]
    assert np.all(np.bincount(out.privacy_ids, weights=out.counts, minlength=n_subscribers) == C)
    return kept0


def _biased_sample(n_subscribers: int) -> np.ndarray:
    """A biased sampler (test only): records of key 0 weighted twice as likely to be kept."""
    rng = np.random.default_rng(5)
    records = np.repeat(list(PATTERN), list(PATTERN.values()))
    weights = np.where(records == 0, 2.0, 1.0)
    return np.array([(records[rng.choice(len(records), C, replace=False, p=weights / weights.sum())] == 0).sum()
                     for _ in range(n_subscribers)])


def _uniformity_pvalue(kept0: np.ndarray) -> float:
    """Chi-square goodness of fit of key 0's kept records to the hypergeometric law of a uniform C-subset."""
    n, k = sum(PATTERN.values()), PATTERN[0]
    support = np.arange(0, C + 1)
    expected = stats.hypergeom(n, k, C).pmf(support) * len(kept0)
    observed = np.bincount(kept0, minlength=C + 1)[: C + 1]
    live = expected > 0
    return float(stats.chisquare(observed[live], expected[live] * observed[live].sum() / expected[live].sum()).pvalue)


def test_total_sampling_is_uniform():
    """Kept records are a uniformly random C-subset of a subscriber's records: key 0's share follows the
    hypergeometric law. False-failure probability: ALPHA = 1e-4 (chi-square test at that level)."""
    assert _uniformity_pvalue(_engine_sample(4000)) > ALPHA


def test_uniformity_test_rejects_a_biased_sampler():
    """Companion: the same test rejects a sampler favouring key 0 (weight 2) on as many draws."""
    assert _uniformity_pvalue(_biased_sample(4000)) < ALPHA


# ---------------------------------------------------------------------- the mechanism
@pytest.mark.parametrize("bounds", [Bounds(max_partitions=1), Bounds(max_partitions=8), Bounds(max_partitions=200),
                                    Bounds(max_partitions=30, max_per_partition=4, max_total=30)])
@pytest.mark.parametrize("epsilon", [0.5, 2.0])
def test_auto_picks_the_lower_variance_mechanism(bounds, epsilon):
    budgets = Budgets(epsilon=epsilon, rho=rho_for_epsilon(epsilon, 1e-9))
    lap = choose_mechanism(budgets, bounds, "laplace")
    gau = choose_mechanism(budgets, bounds, "gaussian")
    auto = choose_mechanism(budgets, bounds, "auto")
    assert auto.variance() == min(lap.variance(), gau.variance())
    assert auto.kind == ("laplace" if lap.variance() <= gau.variance() else "gaussian")


def test_pure_epsilon_never_uses_the_gaussian(world):
    rel = pa.footfall(world, epsilon=1.0, level="zone", keys=zone_hour_keys(world), bounds=Bounds(max_partitions=200))
    assert rel.privacy.mechanism == "discrete Laplace (OpenDP)" and rel.privacy.delta == 0
    with pytest.raises(pa.PrivaggInputError, match="needs delta > 0"):
        pa.footfall(world, epsilon=1.0, level="zone", keys=zone_hour_keys(world), mechanism="gaussian")


def test_epsilon_delta_gaussian_is_recorded_honestly(world):
    rel = pa.footfall(world, epsilon=1.0, delta=1e-9, level="zone", keys=zone_hour_keys(world),
                      bounds=Bounds(max_partitions=200))
    rec = rel.privacy
    assert rec.mechanism == "discrete Gaussian (OpenDP)"
    assert rec.epsilon == 1.0 and rec.delta == 1e-9 and rec.rho is None
    # The Gaussian's certified rho at the bounds converts to at most epsilon at delta.
    certified = NoiseMechanism("gaussian", rec.noise_scale, math.sqrt(200), 0.0).privacy_map()
    assert zcdp_epsilon(certified, 1e-9) <= 1.0 + 1e-9
    assert any("largest rho" in n for n in rec.notes)


def test_rho_for_epsilon_is_the_largest_fitting_rho():
    rho = rho_for_epsilon(2.0, 1e-9)
    assert zcdp_epsilon(rho, 1e-9) <= 2.0 < zcdp_epsilon(rho * 1.001, 1e-9)


# ---------------------------------------------------------------------- hand-set bounds
def test_hand_set_bounds_that_drop_much_warn_on_screen_only(world):
    with pytest.warns(BoundsWarning, match="drop"):
        rel = pa.footfall(world, epsilon=1.0, level="zone", keys=zone_hour_keys(world), bounds=Bounds(max_partitions=1))
    record = json.dumps(rel.privacy.to_dict() if hasattr(rel.privacy, "to_dict") else rel.privacy.__dict__, default=str)
    assert "drop" not in record.replace("dropped or clamped", "")
    assert rel.privacy.parameters["bounds_rule"] == "hand-set"
    assert any("do not cover the bias" in n for n in rel.privacy.notes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", BoundsWarning)
        pa.footfall(world, epsilon=1.0, level="zone", keys=zone_hour_keys(world), bounds=Bounds(max_partitions=500))


def test_default_bounds_stay_available(world):
    rel = pa.footfall(world, epsilon=1.0, level="zone", keys=zone_hour_keys(world), bounds="default")
    assert rel.privacy.bounds["max_partitions"] == 24 and rel.privacy.parameters["bounds_rule"].startswith("public defaults")


def test_too_little_budget_to_choose_falls_back_to_the_structural_bounds(world):
    from privagg.releases.core import structural_bounds

    rel = pa.footfall(world, epsilon=1e-3, level="zone", keys=zone_hour_keys(world))
    days = (pd.Timestamp(world.meta["end"]) - pd.Timestamp(world.meta["start"])) / pd.Timedelta(days=1)
    assert rel.privacy.bounds["max_partitions"] == round(4 * days)
    assert "too little above their noise" in rel.privacy.parameters["bounds_rule"]
    start, end = pd.Timestamp("2026-01-05"), pd.Timestamp("2026-01-12")
    week = structural_bounds(pa.Query("visits", level="cell", time_bin=None), start, end)
    assert (week.max_total, week.max_per_partition) == (16, 16)  # keys span the week: no per-key cap
    daily = structural_bounds(pa.Query("od_flows", level="district", time_bin="1D"), start, end)
    assert (daily.max_total, daily.max_per_partition) == (16, 4)
    assert structural_bounds(pa.Query("footfall", level="zone", time_bin="1h"), start, end).max_partitions == 28


def test_effective_bounds_keep_the_total_bound_where_it_binds():
    from privagg.releases.core import effective_bounds

    visits = effective_bounds(pa.Query("visits"), Bounds(max_partitions=30, max_per_partition=4, max_total=30))
    assert visits.max_total == 30 and visits.shape == "total"
    footfall = effective_bounds(pa.Query("footfall"), Bounds(max_partitions=30, max_per_partition=4, max_total=10))
    assert footfall.max_partitions == 10 and footfall.max_total is None and footfall.max_per_partition == 1


def test_expected_error_counts_the_release_clipped_at_zero():
    """Noise far above the counts: clipping at 0 bounds the error by about the key's size, far below E|Z|;
    noise far below the counts: clipping changes nothing."""
    loud = bound_choice.expected_error(0.0, "laplace", 100.0, mean_size=2.0)
    assert loud < 0.6 * bound_choice.expected_error(0.0, "laplace", 100.0)  # negative draws cost 2, not |Z|
    quiet = bound_choice.expected_error(5.0, "laplace", 1.0, mean_size=1000.0)
    assert quiet == pytest.approx(bound_choice.expected_error(5.0, "laplace", 1.0), rel=0.05)


def test_a_per_key_cap_never_looks_better_than_no_cap():
    """Subscribers with 20 records on one key each: any cap drops most of them. With little noise the choice
    keeps them all with a total bound and no cap (its estimated bias is zero), whatever the capped histograms drew."""
    ids = np.repeat(np.arange(3000), 1)
    counts = np.full(3000, 20)
    profile = bound_choice.profiles(ids, counts, distinct=False)
    choice = bound_choice.choose_bounds(profile, distinct=False, n_keys=50, choice_epsilon=50.0,
                                        budgets=Budgets(epsilon=50.0, rho=None))
    assert choice.bounds.max_per_partition >= 20 and choice.bounds.max_total >= 20


def test_prior_choice_shrinks_the_total_bound_where_noise_dwarfs_the_keys():
    """The fallback for record counts is data-independent apart from the (DP) number of subscribers: under
    the same prior, many keys and little budget give a smaller total bound than few keys and much budget,
    and the fallback's per-key cap is kept."""
    fallback = Bounds(max_partitions=16, max_per_partition=4, max_total=16)
    small = bound_choice.prior_choice(fallback, 18000, 3600, Budgets(epsilon=0.1, rho=None))
    large = bound_choice.prior_choice(fallback, 18000, 400, Budgets(epsilon=5.0, rho=None))
    assert small.max_total < 16 < large.max_total
    assert small.max_per_partition == min(4, small.max_total) and large.max_per_partition == 4
