"""Differencing attack: two releases whose populations differ by one subscriber."""

import math

import numpy as np
import pytest

from privagg.anonymisers.naive_laplace import NaiveLaplace
from privagg.anonymisers.raw import Raw
from privagg.anonymisers.suppression import Suppression
from privagg.attacks.differencing import differencing, without_user
from privagg.queries import Query
from privagg.synth import generate_world

FOOTFALL = Query("footfall", level="zone", time_bin="3h")


@pytest.fixture(scope="module")
def world():
    # 150 subscribers, 20 cells in a handful of zones: most zone x 3h counts are well above 5
    return generate_world(n_users=150, n_cells=20, days=1, seed=4)


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
