"""Knock-Knock membership inference (Pyrgelis et al., NDSS 2018) on a hand-made population.

Levels asserted (toy population: home at night, work by day, 15% random visits):
raw footfall of groups of 10 over 30 cells, strongest variant: AUC >= 0.75 (it
reaches 1.0; the paper's statistical features alone 0.85);
k=5 suppressed footfall of groups of 60 over 10 cells, raw features: AUC >= 0.8;
DP at 0.1 per subscriber-day: the ROC stays under the DP bound (false-failure
probability <= 0.1%, the uniform margins of ``bound_alpha=0.001``; the AUC
assertion fails with probability < 1e-3). The attacks' strength against their
baselines and the DP bound are tested in ``test_attack_membership_strength.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests._mobility_toy import toy_events

from privagg.anonymisers.models import Exact, Noisy, Suppressed
from privagg.attacks.membership import (
    VARIANTS,
    dp_auc_bound,
    dp_tpr_bound,
    hourly_presence,
    membership_inference,
    roc_curve,
    time_series_features,
)
from privagg.dp.units import Loss
from privagg.errors import PrivaggInputError


@pytest.fixture(scope="module")
def city30():
    return hourly_presence(toy_events(400, 30, 2), start="2026-01-05", n_hours=48, locations=range(30))


@pytest.fixture(scope="module")
def city10():
    return hourly_presence(toy_events(300, 10, 2), start="2026-01-05", n_hours=48, locations=range(10))


def test_hourly_presence_keeps_one_location_per_subscriber_hour():
    ts = pd.to_datetime(["2026-01-05 00:10", "2026-01-05 00:20", "2026-01-05 00:30", "2026-01-05 01:00",
                         "2026-01-04 23:00"])
    events = pd.DataFrame({"user_id": [7, 7, 7, 7, 7], "cell_id": [2, 1, 1, 2, 2], "ts": ts})
    p = hourly_presence(events, start="2026-01-05", n_hours=2, locations=[1, 2, 3])
    dense = p.matrix.toarray().reshape(3, 2)
    assert dense.tolist() == [[1, 0], [0, 1], [0, 0]]  # hour 0 -> cell 1 (2 events), hour 1 -> cell 2
    assert p.aggregate(np.ones((1, 1))).shape == (1, 3, 2)


def test_features_are_the_papers_statistics():
    x = np.arange(6, dtype=float).reshape(1, 1, 6)
    f = time_series_features(x)
    assert f.tolist() == [[2.5, np.std(np.arange(6)), 0.0, 5.0, 2.5]]
    assert time_series_features(np.full((1, 1, 3), np.nan)).tolist() == [[0, 0, 0, 0, 0]]


def test_dp_tpr_bound_and_auc_bound():
    assert dp_tpr_bound(0.01, 1.0) == pytest.approx(np.e * 0.01)
    assert dp_tpr_bound(0.5, 0.0) == pytest.approx(0.5)
    assert dp_tpr_bound(0.9, 5.0) == pytest.approx(1 - np.exp(-5) * 0.1)
    assert dp_auc_bound(0.0) == pytest.approx(0.5)
    assert 0.5 < dp_auc_bound(1.0) < dp_auc_bound(2.0) < 1


def test_roc_curve_of_a_perfect_score():
    fpr, tpr = roc_curve(np.array([3.0, 2.0, 1.0, 0.0]), np.array([1, 1, 0, 0]))
    assert fpr.tolist() == [0, 0, 0, 0.5, 1] and tpr.tolist() == [0, 0.5, 1, 1, 1]


def test_membership_succeeds_against_raw_footfall(city30):
    r = membership_inference(city30, group_size=10, anonymiser=Exact(), targets=4, n_train=200,
                             n_test=100, n_bootstrap=100, seed=0)
    assert r.attack == "membership_inference" and r.baseline == 0.5
    assert r.risk >= 0.75 and r.ci_low > 0.7
    assert r.metrics["tpr_at_0.01_fpr"] > 0.05
    # The strongest variant is named, measured like every other one, and every variant ran.
    assert r.variant in r.variants and r.risk == pytest.approx(r.variants[r.variant])
    assert set(r.variants) == {v for v in VARIANTS if "k/2" not in v and "mean counts" not in v}
    low, high = r.metrics["tpr_at_0.001_fpr_ci_low"], r.metrics["tpr_at_0.001_fpr_ci_high"]
    assert low <= r.metrics["tpr_at_0.001_fpr"] <= high
    assert "full hourly trace" in r.background_knowledge


def test_membership_is_deterministic_given_a_seed(city30):
    kwargs = dict(group_size=10, targets=2, n_train=100, n_test=60, n_bootstrap=50, seed=3)
    assert membership_inference(city30, **kwargs) == membership_inference(city30, **kwargs)


def test_membership_succeeds_against_k_suppressed_footfall(city10):
    r = membership_inference(city10, group_size=60, anonymiser=Suppressed(k=5), targets=3, n_train=200,
                             n_test=100, n_bootstrap=100, features="raw", seed=0)
    assert r.variant == "raw/logistic" and list(r.variants) == ["raw/logistic"]  # the former interface: one variant
    assert r.risk >= 0.8 and r.ci_low > 0.7


@pytest.mark.statistical
def test_membership_against_dp_stays_under_the_dp_bound(city10):
    dp = Noisy(mechanism="laplace", scale=24 / 0.1, loss=Loss(epsilon=0.2), label="dp(epsilon=0.1/subscriber-day)")
    r = membership_inference(city10, group_size=30, anonymiser=dp, targets=2, n_train=200,
                             n_test=60, n_bootstrap=100, variants=["likelihood ratio", "raw/logistic"],
                             bound_alpha=0.001, seed=0)
    assert r.metrics["dp_epsilon"] == pytest.approx(0.2)  # 2 days at 0.1, from the model's loss
    assert r.metrics["bound_epsilon"] == pytest.approx(0.4)  # substitution game: 2 x epsilon
    assert r.metrics["within_dp_bound"]
    assert r.ci_low <= r.metrics["dp_auc_bound"]


def test_membership_rejects_groups_larger_than_population(city10):
    with pytest.raises(PrivaggInputError, match="group_size=500 needs a population of more than 500"):
        membership_inference(city10, group_size=500)


def test_auc_interval_carries_the_spread_between_targets():
    """One target separated perfectly (AUC 1), one inverted (AUC 0): the mean is 0.5 either way, but
    resampling targets shows how little two targets say (the interval spans 0 to 1), where resampling
    only their test groups would give 0.5 exactly. Two alike targets keep a narrow interval."""
    from privagg.attacks.membership import auc_interval

    labels = np.r_[np.ones(50, dtype=bool), np.zeros(50, dtype=bool)]
    perfect = labels.astype(float)
    inverted = 1.0 - perfect
    low, high = auc_interval([(perfect, labels), (inverted, labels)], np.random.default_rng(0))
    assert low == 0.0 and high == 1.0
    low, high = auc_interval([(perfect, labels), (perfect, labels)], np.random.default_rng(0))
    assert low == high == 1.0


def test_membership_needs_a_publication_model(city10):
    with pytest.raises(PrivaggInputError, match="is not a publication model"):
        membership_inference(city10, group_size=5, anonymiser=lambda x: x)
    with pytest.raises(PrivaggInputError, match="prior='oracle' is unknown"):
        membership_inference(city10, group_size=5, prior="oracle")
    with pytest.raises(PrivaggInputError, match="does not apply to prior='past_membership'"):
        membership_inference(city10, group_size=5, prior="past_membership", variants=["own keys"])


def test_tpr_at_fpr_agrees_with_the_roc_curve():
    """The fast TPR at a false-positive rate is the ROC curve's point, ties included."""
    from privagg.attacks.membership import _tpr_at, _tpr_at_fpr

    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = rng.integers(0, 6, 40).astype(float)
        labels = rng.random(40) < 0.5
        labels[:2] = [True, False]
        fpr, tpr = roc_curve(scores, labels)
        for f in (0.0, 0.01, 0.1, 0.3):
            assert _tpr_at_fpr(scores[labels], scores[~labels], f) == pytest.approx(_tpr_at(f, fpr, tpr))


def test_the_adversary_can_be_told_a_wrong_model(city10):
    """``attacker_model`` is what the adversary believes: told "suppressed below 5" about a raw release,
    it runs the suppression variants, and its simulations (never published) follow that belief."""
    r = membership_inference(city10, group_size=20, anonymiser=Exact(), attacker_model=Suppressed(k=5), targets=1,
                             n_train=40, n_test=20, n_bootstrap=20, variants=["own keys (suppressed as k/2)"], seed=0)
    assert r.variant == "own keys (suppressed as k/2)" and r.target.startswith("raw")
    with pytest.raises(PrivaggInputError, match="does not apply"):
        membership_inference(city10, group_size=20, anonymiser=Exact(), variants=["own keys (suppressed as k/2)"])
