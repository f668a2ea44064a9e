"""Every anonymiser's publication model publishes what its own release publishes.

Exact and suppressed values are compared for identity; DP models are
compared with the release's record (noise scale, loss) and, statistically,
with the noise the release actually drew. DPAnonymiser per subscriber-day:
record fields, one budget charge, and a refused release that spends and
draws nothing.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from privagg.anonymisers import DPAnonymiser
from privagg.anonymisers.base import PublicationModelUnavailable
from privagg.anonymisers.coarsening import Coarsening
from privagg.anonymisers.models import Exact, FloatLaplace, Noisy, Suppressed
from privagg.anonymisers.naive_laplace import NaiveLaplace
from privagg.anonymisers.pseudonymised import Pseudonymised
from privagg.anonymisers.raw import Raw
from privagg.anonymisers.suppression import Suppression
from privagg.errors import BudgetExceededError, PrivaggInputError
from privagg.exact import exact_aggregate
from privagg.queries import Query

ZONE_3H = Query("footfall", level="zone", time_bin="3h")
CELL_HOUR = Query("footfall", level="cell", time_bin="1h")


@pytest.fixture(scope="module")
def world(tiny_city_three_days):
    return tiny_city_three_days


@pytest.fixture(scope="module")
def one_day(tiny_city):
    return tiny_city


def _values(release, exact: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Released and exact values aligned on the release's keys (missing exact keys count 0)."""
    keys = list(release.key_columns)
    table = release.to_pandas().set_index(keys)["value"]
    truth = exact.set_index(keys)["value"].reindex(table.index, fill_value=0)
    return table.to_numpy(dtype=float), truth.to_numpy(dtype=float)


@pytest.mark.parametrize("anonymiser", [Raw(), Suppression(k=5), Suppression(k=10, rounding=5)],
                         ids=["raw", "k5", "k10-round5"])
def test_exact_and_suppressed_models_publish_what_the_release_does(world, anonymiser):
    release = anonymiser.release(world, ZONE_3H)
    released, exact = _values(release, exact_aggregate(world, ZONE_3H))
    model = anonymiser.publication_model(l0=8, days=3)
    assert model.loss is None and model.noise_scale == 0.0
    np.testing.assert_array_equal(model(exact), released)  # NaN where suppressed, in the same places


def test_coarsening_models_the_coarser_table(world):
    anonymiser = Coarsening(level="zone", time_bin="3h", k=4)
    release = anonymiser.release(world, CELL_HOUR)
    coarse = anonymiser.published_query(world, CELL_HOUR)
    released, exact = _values(release, exact_aggregate(world, coarse))
    model = anonymiser.publication_model(l0=8, days=3)
    assert model == Suppressed(k=4)
    np.testing.assert_array_equal(model(exact), released)
    assert Coarsening().publication_model(l0=1) == Exact()


def test_a_model_differs_from_the_release_when_its_threshold_is_wrong(world):
    """Companion: the identity check above fails for a model with another threshold."""
    release = Suppression(k=30).release(world, ZONE_3H)
    released, exact = _values(release, exact_aggregate(world, ZONE_3H))
    assert ((exact >= 20) & (exact < 30)).any()
    assert not np.array_equal(Suppressed(k=20)(exact), released, equal_nan=True)


def test_naive_laplace_and_pseudonymised(world):
    naive = NaiveLaplace(epsilon=1.0, bounds={"max_partitions": 8}, seed=1)
    model = naive.publication_model(l0=8, days=1)
    assert isinstance(model, FloatLaplace) and model.loss is None
    assert model.noise_scale == naive.release(world, ZONE_3H).privacy.noise_scale == 8.0
    with pytest.raises(PublicationModelUnavailable, match="Fix:"):
        Pseudonymised().publication_model(l0=1)
    with pytest.raises(PrivaggInputError, match="l0=0"):
        Raw().publication_model(l0=0)


@pytest.mark.parametrize("kwargs", [
    {"epsilon": 0.5},
    {"epsilon": 0.5, "unit": "subscriber-day"},
    {"epsilon": 2.0, "bounds": {"max_partitions": 4, "max_per_partition": 1}},
    {"rho": 0.3, "delta": 1e-9, "unit": "subscriber-day"},
], ids=["window", "day", "bounds", "zcdp-day"])
def test_dp_model_has_the_noise_scale_and_loss_of_the_release(world, kwargs):
    anonymiser = DPAnonymiser(**kwargs)
    record = anonymiser.release(world, ZONE_3H).privacy
    model = anonymiser.publication_model(l0=8, days=3, query=ZONE_3H)
    assert isinstance(model, Noisy) and model.label == anonymiser.name
    assert model.noise_scale == record.noise_scale
    assert model.noise_kind == ("laplace" if "epsilon" in kwargs else "gaussian")
    per_period = 8 if kwargs.get("unit") == "subscriber-day" else 24  # the game: 8 keys a day for 3 days
    fits = record.bounds["max_partitions"] >= per_period and (record.bounds.get("max_total") or per_period) >= per_period
    if "bounds" not in kwargs and fits:  # the game fits the bounds: the model's loss is the release's over the window
        assert model.loss.epsilon == pytest.approx(record.total_loss().epsilon)
        assert model.loss.rho == (None if record.rho is None else pytest.approx(record.total_loss().rho))
    else:  # beyond the bounds (e.g. bounds chosen privately below the game's 24 keys): a larger loss, stated
        assert model.loss.epsilon >= record.total_loss().epsilon


def test_dp_model_of_privately_chosen_bounds_comes_from_the_release_record(world):
    """Without bounds the release chooses them privately: before it, the model refuses (its noise is not yet
    known); after it, the model has the recorded noise, and a new release of the query updates it."""
    anonymiser = DPAnonymiser(epsilon=1.0, delta=1e-9)
    with pytest.raises(PublicationModelUnavailable, match="release the query first"):
        anonymiser.publication_model(l0=1, days=3, query=ZONE_3H)
    record = anonymiser.release(world, ZONE_3H).privacy
    assert record.parameters["bounds_rule"].startswith("chosen privately")
    model = anonymiser.publication_model(l0=1, days=3, query=ZONE_3H)
    assert (model.noise_scale, model.noise_kind) == (record.noise_scale, record.parameters["mechanism"])
    assert model.loss.epsilon == pytest.approx(record.total_loss().epsilon)  # 3 keys fit any chosen bound


def test_dp_model_of_a_game_beyond_the_bounds_keeps_the_scale_and_states_the_larger_loss():
    """L0 = 4 per window, the game touches 8 keys a day for 3 days: the release would truncate to 4 keys.
    The model publishes untruncated counts with the release's noise (scale 4 / 2), and its loss is OpenDP's
    map of that noise at sensitivity 24: epsilon 12 instead of the nominal 2."""
    model = DPAnonymiser(epsilon=2.0, bounds={"max_partitions": 4}).publication_model(l0=8, days=3)
    assert model.noise_scale == pytest.approx(2.0)
    assert model.loss.epsilon == pytest.approx(12.0)
    day = DPAnonymiser(epsilon=0.5, unit="subscriber-day").publication_model(l0=24, days=7)
    assert day.noise_scale == pytest.approx(48.0) and day.loss.epsilon == pytest.approx(3.5)


def test_private_selection_is_modelled_by_its_threshold():
    model = DPAnonymiser(epsilon=1.0, delta=1e-6, public_keys=False).publication_model(l0=24, days=1)
    assert model.k is not None and model.k > 1
    assert model.loss.delta == pytest.approx(1e-6) and model.loss.selection_delta == pytest.approx(1e-6)
    assert np.isnan(model(np.zeros(50))).mean() > 0.99  # empty keys are (almost) never published


def _noise_chi2(noise: np.ndarray, model: Noisy, n_bins: int = 12) -> float:
    """p-value of a chi-square goodness-of-fit of integer ``noise`` to the model's exact noise distribution."""
    reach = int(math.ceil(15 * model.noise_scale)) + 1
    support = np.arange(-reach, reach + 1)
    pmf = np.exp(model.noise_log_pmf(support))
    pmf /= pmf.sum()
    cdf = np.cumsum(pmf)
    # bins of about equal probability: cut the support at the model's quantiles
    cuts = np.unique(np.searchsorted(cdf, np.linspace(0, 1, n_bins + 1)[1:-1]))
    edges = np.r_[-np.inf, support[cuts] + 0.5, np.inf]
    expected = np.diff(np.r_[0.0, cdf[cuts], 1.0]) * len(noise)
    observed = np.histogram(noise, bins=edges)[0]
    return float(stats.chisquare(observed, expected).pvalue)


@pytest.fixture(scope="module")
def released_noise(one_day):
    """Noise of a DP release at epsilon 2 (scale 12): released value minus exact count, cell x hour, one day
    (each subscriber touches at most 24 keys a day, the bound given here, so nothing is truncated)."""
    anonymiser = DPAnonymiser(epsilon=2.0, bounds={"max_partitions": 24})
    exact = exact_aggregate(one_day, CELL_HOUR)
    noise = []
    for _ in range(4):
        released, truth = _values(anonymiser.release(one_day, CELL_HOUR), exact)
        noise.append(released - truth)
    return anonymiser, np.concatenate(noise)


@pytest.mark.statistical
def test_dp_model_noise_matches_the_noise_the_release_drew(released_noise):
    """Chi-square goodness of fit (12 bins) of the release's noise (~1,900 values) to the model's exact pmf,
    and of the model's own OpenDP and numpy draws: each rejects a correct fit with probability 1e-4, so the
    test fails falsely with probability < 3e-4. Companion: the same test rejects the model at half the noise."""
    anonymiser, noise = released_noise
    model = anonymiser.publication_model(l0=24, days=1, query=CELL_HOUR)
    assert model.noise_scale == 12.0
    assert _noise_chi2(noise, model) > 1e-4
    zeros = np.zeros(2000)
    assert _noise_chi2(model(zeros), model) > 1e-4
    assert _noise_chi2(model.simulate(zeros, np.random.default_rng(0)), model) > 1e-4


@pytest.mark.statistical
def test_the_noise_check_rejects_a_model_at_half_the_noise(released_noise):
    """Companion: against a model with half the scale (6) the release's noise fails the fit. With ~1,900 values
    the chi-square statistic is in the thousands; a p-value above 1e-4 has probability < 1e-9."""
    anonymiser, noise = released_noise
    model = anonymiser.publication_model(l0=24, days=1, query=CELL_HOUR)
    half = Noisy(mechanism=model.mechanism, scale=model.scale / 2)
    assert not _noise_chi2(noise, half) > 1e-4


# ---------------------------------------------------------------- DPAnonymiser per subscriber-day


def test_release_per_subscriber_day_records_its_unit(world):
    anonymiser = DPAnonymiser(epsilon=0.5, unit="subscriber-day")
    assert anonymiser.name == "dp(epsilon=0.5 per subscriber-day)"
    assert anonymiser.params()["unit"] == "subscriber-day"
    release = anonymiser.release(world, ZONE_3H)
    record = release.privacy
    assert record.unit == {"period": "day", "identifier": "user_id", "label": "subscriber-day",
                           "start": "2026-01-05T00:00", "end": "2026-01-08T00:00", "periods": 3}
    assert record.privacy_unit == "one subscriber (user_id) per day, 3 days from 2026-01-05T00:00 to 2026-01-08T00:00"
    assert record.epsilon == 0.5 and record.total_loss().epsilon == 1.5
    assert record.parameters["privacy_unit"] == "subscriber-day" and record.parameters["periods"] == 3
    table = release.to_pandas()
    assert table["time"].dt.floor("D").nunique() == 3
    first_day = Query("footfall", level="zone", time_bin="3h", start="2026-01-05", end="2026-01-06")
    assert len(table) == 3 * len(DPAnonymiser(epsilon=0.5).release(world, first_day).to_pandas())
    assert not table.duplicated(list(release.key_columns)).any()


def test_per_day_releases_choose_their_bounds_privately_each_day(world):
    """With a day unit and no bounds, every day's release chooses its own bounds from a share of that day's
    epsilon; the window is charged the per-day envelope times the days, once; the attack model takes the
    least noisy day's noise, so it is never noisier than any day's release."""
    budget = _Recorder(10.0)
    anonymiser = DPAnonymiser(epsilon=1.0, delta=1e-9, unit="subscriber-day", budget=budget)
    record = anonymiser.release(world, ZONE_3H).privacy
    assert record.parameters["bounds_rule"].startswith("chosen privately")
    assert len(budget.charges) == 1 and budget.charges[0].epsilon == pytest.approx(3.0)
    days = [DPAnonymiser(epsilon=1.0, delta=1e-9).release(
        world, Query("footfall", level="zone", time_bin="3h", start=f"2026-01-0{d}", end=f"2026-01-0{d + 1}")).privacy
        for d in (5, 6, 7)]
    assert all(r.parameters["bounds_rule"].startswith("chosen privately") for r in days)
    model = anonymiser.publication_model(l0=1, days=3, query=ZONE_3H)
    assert model.loss.epsilon == pytest.approx(3.0)
    assert anonymiser.unbudgeted().publication_model(l0=1, days=3, query=ZONE_3H).noise_scale == model.noise_scale
    assert anonymiser.unbudgeted().budget is None and anonymiser.budget is budget


class _Recorder:
    """A budget with the two calls DPAnonymiser makes (check, charge), recording them."""

    def __init__(self, epsilon: float) -> None:
        self.epsilon, self.charges = epsilon, []

    def check(self, loss, statistic="release"):
        if loss.epsilon > self.epsilon - sum(c.epsilon for c in self.charges) + 1e-12:
            raise BudgetExceededError(f"{statistic} refused. Fix: lower epsilon.")

    def charge(self, loss, *, statistic="release", parameters=None):
        self.check(loss, statistic)
        self.charges.append(loss)


def test_the_budget_is_charged_once_for_the_window(world):
    budget = _Recorder(2.0)
    DPAnonymiser(epsilon=0.5, unit="subscriber-day", budget=budget).release(world, ZONE_3H)
    assert [c.epsilon for c in budget.charges] == [1.5]


def test_a_refused_release_spends_nothing_and_draws_nothing(world, monkeypatch):
    from privagg.dp.budget import Budget
    from privagg.dp.mechanisms import NoiseMechanism

    draws = []
    monkeypatch.setattr(NoiseMechanism, "sample", lambda self, values, **kw: draws.append(1) or values)
    budget = _Recorder(1.0)
    with pytest.raises(BudgetExceededError):
        DPAnonymiser(epsilon=0.5, unit="subscriber-day", budget=budget).release(world, ZONE_3H)
    assert budget.charges == [] and draws == []
    real = Budget(epsilon=1.0)
    with pytest.raises(BudgetExceededError):
        DPAnonymiser(epsilon=0.5, unit="subscriber-day", budget=real).release(world, ZONE_3H)
    assert draws == []
    DPAnonymiser(epsilon=0.25, unit="subscriber-day", budget=real).release(world, ZONE_3H)  # 0.75 fits: nothing was spent
    assert draws  # companion: a release that fits does draw noise


def test_unit_needs_time_bins(world):
    with pytest.raises(PrivaggInputError, match="time_bin"):
        DPAnonymiser(epsilon=1.0, unit="subscriber-day").release(world, Query("dwell_times", level="zone"))
