"""Differencing attack: two releases whose populations differ by one subscriber."""

import math

import numpy as np
import pytest

from privagg.anonymisers.naive_laplace import NaiveLaplace
from privagg.anonymisers.raw import Raw
from privagg.anonymisers.suppression import Suppression
from privagg.attacks.differencing import differencing, without_user
from privagg.queries import Query

FOOTFALL = Query("footfall", level="zone", time_bin="3h")


@pytest.fixture(scope="module")
def world(tiny_city):
    # 150 subscribers, 20 cells in a handful of zones: most zone x 3h counts are well above 5
    return tiny_city


def test_without_user_removes_every_row_of_the_subscriber(world):
    user = int(world.stays["user_id"].iloc[0])
    rest = without_user(world, user)
    for name in ("users", "events", "stays", "trips"):
        assert user not in set(getattr(rest, name)["user_id"])
    assert len(rest.users) == len(world.users) - 1


def test_raw_releases_reveal_the_target_every_time(world):
    result = differencing(world, FOOTFALL, Raw(), n_trials=20, seed=0)
    assert result.attack == "differencing" and result.baseline == 0.5
    assert result.risk == 1.0 and result.ci_low > 0.83
    assert result.metrics["tpr"] == 1.0 and result.metrics["fpr"] == 0.0


def test_suppression_only_helps_below_the_threshold(world):
    k5 = differencing(world, FOOTFALL, Suppression(k=5), n_trials=20, seed=0)
    # counts above k are exact: the attack succeeds whenever the target's key is published
    assert k5.risk >= 0.9
    hidden = differencing(world, FOOTFALL, Suppression(k=10_000), n_trials=20, seed=0)
    # everything suppressed: the adversary can only flip a coin
    assert hidden.metrics["share_coin_flips"] == 1.0
    assert hidden.ci_low <= 0.5 <= hidden.ci_high


def test_coarsened_release_is_attacked_at_its_own_level(world):
    from privagg.anonymisers.coarsening import Coarsening

    fine = Query("footfall", level="cell", time_bin="1h")
    result = differencing(world, fine, Coarsening("zone", "3h"), n_trials=10, seed=1)
    assert result.risk == 1.0  # coarse counts are still exact


def test_same_seed_same_result(world):
    a = differencing(world, FOOTFALL, Suppression(k=5), n_trials=10, seed=7)
    b = differencing(world, FOOTFALL, Suppression(k=5), n_trials=10, seed=7)
    assert a == b


def test_noisy_release_falls_towards_the_nominal_bound(world):
    """Fresh float Laplace noise at epsilon = 0.2 with L0 = 8: a single key's difference of 1
    drowns in noise of scale 40; the success rate stays near one half."""
    rng = np.random.default_rng(11)

    def release(w, q):
        return NaiveLaplace(epsilon=0.2, bounds={"max_partitions": 8}, seed=int(rng.integers(2**32))).release(w, q)

    result = differencing(world, FOOTFALL, release, n_trials=20, seed=0)
    nominal = math.exp(0.2) / (1 + math.exp(0.2))
    assert result.ci_low <= nominal
    assert result.risk <= 0.75


def test_bad_anonymiser_is_named(world):
    from privagg.errors import PrivaggInputError

    with pytest.raises(PrivaggInputError, match="expected an Anonymiser"):
        differencing(world, FOOTFALL, 42, n_trials=1)


@pytest.mark.statistical
def test_dp_release_stays_within_the_dp_bound(world):
    """DP at epsilon = 0.5 per subscriber-day: no test beats e^0.5 / (1 + e^0.5) = 0.62.

    The 99.9% Wilson interval's lower end exceeds a true rate at the bound with
    probability < 0.05%. A release with a tenth of the noise would be caught
    (see test_raw_releases_reveal_the_target_every_time for the attack's power).
    """
    from privagg.anonymisers import DPAnonymiser

    result = differencing(world, FOOTFALL, DPAnonymiser(epsilon=0.5), n_trials=20, seed=0, level=0.999)
    bound = math.exp(0.5) / (1 + math.exp(0.5))
    assert result.metrics["dp_bound"] == pytest.approx(bound)
    assert result.metrics["epsilon"] == 0.5
    assert result.ci_low <= bound
    assert "DP bound" in result.interpretation


def test_wilson_interval_contains_the_rate_even_at_the_extremes():
    from privagg.attacks.result import wilson_interval

    for n in (1, 3, 7, 20, 100, 1000):
        for successes in (0, n):
            low, high = wilson_interval(successes, n)
            assert low <= successes / n <= high


# ---------------------------------------------------------------- the likelihood-ratio adversary


def test_likelihood_ratio_reads_exact_and_suppressed_values_as_the_optimal_test():
    """Deterministic: the likelihood ratio under the anonymiser's own model decides as subtraction does
    where values are shown, and two hidden values favour 'absent' (a present target could only have made
    the count visible)."""
    from privagg.anonymisers.models import Exact, Noisy, Suppressed
    from privagg.attacks.differencing import likelihood_ratio

    assert likelihood_ratio(Exact(), 12.0, 13.0, 1.0) > 0 > likelihood_ratio(Exact(), 12.0, 12.0, 1.0)
    k5 = Suppressed(k=5)
    assert likelihood_ratio(k5, math.nan, math.nan, 1.0) == pytest.approx(math.log(4 / 5))
    assert likelihood_ratio(k5, math.nan, 5.0, 1.0) > 0  # the target pushed the count over k
    assert likelihood_ratio(k5, 12.0, 12.0, 1.0) < 0 < likelihood_ratio(k5, 12.0, 13.0, 1.0)
    # with symmetric noise the test is the difference rule: present when test - reference > contribution / 2
    noisy = Noisy(mechanism="laplace", scale=3.0)
    assert likelihood_ratio(noisy, 10.0, 12.0, 2.0) > 0 > likelihood_ratio(noisy, 10.0, 10.0, 2.0)


class _MisreadSuppression(Suppression):
    """A deliberately weakened adversary: it believes published counts are rounded to tens."""

    def publication_model(self, **kw):
        from privagg.anonymisers.models import Suppressed

        return Suppressed(k=self.k, rounding=10)


CELL_HOUR = Query("footfall", level="cell", time_bin="1h")


@pytest.mark.parametrize("anonymiser", [Raw(), Suppression(k=5)], ids=["raw", "k5"])
def test_likelihood_ratio_is_at_least_as_strong_as_subtraction(world, anonymiser):
    """On raw and k=5 releases (cell x hour, where about 7% of games show two hidden values) both adversaries
    play the same 60 held-out games. They decide alike except where both values are hidden: there the rule
    flips a coin and the likelihood ratio says 'absent', which is right with probability >= 1/2. The LR's
    deficit is at most the number of hidden games where the coin is right and the LR wrong, each game being
    one with probability <= 0.07 x 1/2 x 1/2; a deficit of 7 games (> 0.10) then has probability
    P(Bin(60, 0.0175) >= 7) < 2e-4 (over seeds; for a given seed the game is deterministic).
    Companion: test_a_misspecified_likelihood_ratio_fails_that_check."""
    r = differencing(world, CELL_HOUR, anonymiser, n_trials=60, seed=3)
    assert set(r.variants) == {"likelihood ratio", "difference rule"}
    assert r.variant in r.variants and r.risk == r.variants[r.variant]
    assert r.variants["likelihood ratio"] >= r.variants["difference rule"] - 0.10
    assert r.metrics["n_training_games"] == 30


def test_a_misspecified_likelihood_ratio_fails_that_check(world):
    """Companion: an adversary with the wrong model (counts rounded to tens) cannot tell a difference of one
    and falls far below subtraction on the same release. Deterministic (suppression is; coins seeded)."""
    rule = differencing(world, CELL_HOUR, Suppression(k=5), n_trials=60, seed=3, variants=("difference rule",))
    weak = differencing(world, CELL_HOUR, _MisreadSuppression(k=5), n_trials=60, seed=3, variants=("likelihood ratio",))
    assert weak.variant == "likelihood ratio"
    assert not weak.risk >= rule.risk - 0.10


@pytest.mark.statistical
def test_both_adversaries_stay_within_the_dp_bound_per_subscriber_day(world):
    """DP at epsilon 1 per subscriber-day (one day: epsilon 1 over the window): neither adversary beats
    e / (1 + e) = 0.73 beyond the 99.9% Wilson interval, which for a true rate at the bound happens with
    probability < 0.05% per figure (< 0.1% for both). Companion below: a release labelled epsilon 0.01 that
    adds almost no noise is caught by the same check."""
    from privagg.anonymisers import DPAnonymiser
    from privagg.attacks.result import wilson_interval

    result = differencing(world, FOOTFALL, DPAnonymiser(epsilon=1.0, unit="subscriber-day"), n_trials=40,
                          seed=0, level=0.999)
    bound = math.exp(1.0) / (1 + math.exp(1.0))
    assert result.metrics["dp_bound"] == pytest.approx(bound)
    for rate in result.variants.values():
        assert wilson_interval(round(rate * result.n_trials), result.n_trials, 0.999)[0] <= bound


def test_the_dp_bound_check_catches_a_mislabelled_release(world):
    """Companion of the test above: noise for epsilon 100 (the largest the mechanisms honour; discrete Laplace
    of scale 24/100, zero with probability 0.97 per value) labelled epsilon 0.01 (bound 0.5025) is caught: the
    attack wins nearly every game, and the 99.9% interval's lower end over 40 games stays above the bound
    unless 10 or more games are lost; a game can be lost only when one of its two values is noised
    (probability about 0.06), so the false-failure probability is below 1e-4 (binomial tail)."""
    from dataclasses import replace

    from privagg.anonymisers import DPAnonymiser
    from privagg.release import Release

    loud = DPAnonymiser(epsilon=100.0)

    def mislabelled(w, q):
        r = loud.release(w, q)
        return Release(r.to_pandas(), r.key_columns, replace(r.privacy, epsilon=0.01))

    result = differencing(world, FOOTFALL, mislabelled, n_trials=40, seed=0, level=0.999)
    assert result.metrics["dp_bound"] == pytest.approx(math.exp(0.01) / (1 + math.exp(0.01)))
    assert not result.ci_low <= result.metrics["dp_bound"]
