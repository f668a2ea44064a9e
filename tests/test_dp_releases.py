"""Private releases end to end: keys, consent, budget refusal, selection, intervals, bad input."""

import json
import math

import numpy as np
import pandas as pd
import pytest

import privagg as pa
from tests.dp_fixtures import T, random_world
from privagg.anonymisers import DPAnonymiser
from privagg.dp.mechanisms import NoiseMechanism, noise_half_width
from privagg.dp.partition_selection import ThresholdMechanism
from privagg.errors import BudgetExceededError, PrivaggInputError

DAY = dict(start="2026-01-05", end="2026-01-06")


@pytest.fixture(scope="module")
def world():
    return random_world()


def no_noise(monkeypatch):
    """Make the noise the identity, to compare bounded aggregates (tests only)."""
    monkeypatch.setattr(NoiseMechanism, "sample", lambda self, values, threads=None: np.asarray(values, dtype=np.int64).copy())


def test_footfall_api_and_privacy_record(world):
    keys = pa.KeySet.areas_by_time(world.cells, level="zone", time_bin="1h", **DAY)
    budget = pa.Budget(epsilon=4.0, delta=1e-9)
    rel = pa.footfall(world.stays, epsilon=1.0, level="zone", time_bin="1h", keys=keys,
                      bounds=pa.Bounds(max_partitions=24), budget=budget, users=world.users, cells=world.cells)
    df = rel.to_pandas()
    assert df.columns.tolist() == ["zone_id", "time", "value", "ci_low", "ci_high"]
    pd.testing.assert_frame_equal(df[["zone_id", "time"]], keys.to_pandas())  # every key, in KeySet order
    rec = rel.privacy
    assert rec.method == "dp" and rec.formally_private
    assert rec.epsilon == 1.0 and rec.delta == 0.0 and rec.rho is None
    assert rec.privacy_unit == "one subscriber (user_id) over 2026-01-05T00:00 to 2026-01-06T00:00"
    assert rec.mechanism == "discrete Laplace (OpenDP)" and rec.noise_scale == 24.0
    assert rec.bounds == {"max_partitions": 24, "max_per_partition": 1}
    assert any("do not cover the bias of contribution bounding" in n for n in rec.notes)
    assert budget.spent["epsilon"] == 1.0
    json.dumps(rec.to_dict(), default=str)
    t = noise_half_width("laplace", 24.0, 0.95)
    assert np.all(df.ci_high - df.value == t) and np.all(df.value - df.ci_low == t)


def test_every_public_key_is_released_even_empty(world):
    keys = pa.KeySet.areas_by_time(world.cells, level="cell", start="2026-01-04", end="2026-01-07", time_bin="6h")
    rel = pa.footfall(world, epsilon=1.0, keys=keys, time_bin="6h")
    assert len(rel) == len(keys) == 12 * 12
    exact = pa.exact_aggregate(world, pa.Query("footfall", time_bin="6h", keys=keys))
    assert len(exact) < len(keys)  # the domain has empty keys (days without data)...
    assert rel.to_pandas().value.notna().all()  # ...and they are released too


def test_all_statistics_release_with_public_keys(world):
    a = DPAnonymiser(epsilon=1.0)
    queries = [pa.Query("footfall"), pa.Query("footfall", source="events", level="district"), pa.Query("visits"),
               pa.Query("dwell_times"), pa.Query("dwell_mean"), pa.Query("od_flows"),
               pa.Query("segment_counts", by=("gender", "tag_commuter")),
               pa.Query("segment_mean", column="arpu", by=("contract",)), pa.Query("micro_segments")]
    for q in queries:
        rel = a.release(world, q)
        assert rel.privacy.statistic == q.statistic and rel.privacy.epsilon == 1.0
        assert len(rel) > 0 and list(rel.to_pandas().columns[-3:]) == ["value", "ci_low", "ci_high"]


def test_rho_release_reports_epsilon_at_delta(world):
    rel = pa.visits(world, rho=0.1, delta=1e-9, level="zone", keys=pa.KeySet.areas_by_time(world.cells, "zone", time_bin="1h", **DAY),
                    bounds="default", mechanism="gaussian")
    rec = rel.privacy
    assert rec.rho == 0.1 and rec.delta == 1e-9 and rec.mechanism == "discrete Gaussian (OpenDP)"
    assert 0 < rec.epsilon < 0.1 + 2 * math.sqrt(0.1 * math.log(1e9))
    assert rec.noise_scale == pytest.approx(math.sqrt(24) * 2 / math.sqrt(0.2))


def test_consent_opted_out_subscribers_never_influence_a_release(world, monkeypatch):
    no_noise(monkeypatch)
    keys = pa.KeySet.areas_by_time(world.cells, "cell", time_bin="1h", **DAY)
    big = pa.Bounds(max_partitions=10_000, max_per_partition=1000)
    base = pa.visits(world, epsilon=1.0, keys=keys, bounds=big).to_pandas()
    out = world.users.loc[~world.users.opt_in, "user_id"].to_numpy()
    assert len(out) > 0
    flood = pd.DataFrame({"user_id": np.repeat(out, 50), "cell_id": 0,
                          "start": T("2026-01-05 12:00"), "end": T("2026-01-05 13:00")})
    stays = pd.concat([world.stays, flood], ignore_index=True)
    changed = pa.visits(stays, epsilon=1.0, keys=keys, bounds=big, users=world.users).to_pandas()
    pd.testing.assert_frame_equal(base, changed)
    # ...while the same flood from consenting subscribers does change it.
    users = world.users.copy()
    users["opt_in"] = True
    assert not pa.visits(stays, epsilon=1.0, keys=keys, bounds=big, users=users).to_pandas().equals(base)


def test_budget_refusal_draws_no_noise_and_leaves_ledger_unchanged(world, tmp_path, monkeypatch):
    ledger = tmp_path / "budget.json"
    budget = pa.Budget(epsilon=1.5, delta=1e-6, ledger=ledger)
    keys = pa.KeySet.areas_by_time(world.cells, "zone", time_bin="1h", **DAY)
    pa.footfall(world, epsilon=1.0, level="zone", keys=keys, budget=budget)
    before = ledger.read_bytes()

    def boom(*args, **kwargs):
        raise AssertionError("noise drawn for a refused release")

    monkeypatch.setattr(NoiseMechanism, "sample", boom)
    monkeypatch.setattr(ThresholdMechanism, "release", boom)
    with pytest.raises(BudgetExceededError, match=r"footfall refused: it would spend epsilon=1 \(remaining 0.5 of 1.5\)"):
        pa.footfall(world, epsilon=1.0, level="zone", keys=keys, budget=budget)
    with pytest.raises(BudgetExceededError, match=r"od_flows refused"):
        pa.od_flows(world, epsilon=0.6, delta=1e-7, budget=budget)
    assert ledger.read_bytes() == before
    assert pa.Budget.load(ledger).spent["epsilon"] == 1.0


def test_partition_selection_releases_only_keys_present_in_the_data(world):
    exact = pa.exact_aggregate(world, pa.Query("footfall", level="zone", time_bin="6h"))
    present = set(map(tuple, exact[["zone_id", "time"]].itertuples(index=False)))
    for _ in range(3):
        rel = pa.footfall(world, epsilon=5.0, delta=1e-6, level="zone", time_bin="6h", bounds=pa.Bounds(max_partitions=4))
        released = set(map(tuple, rel.to_pandas()[["zone_id", "time"]].itertuples(index=False)))
        assert released and released <= present
    rec = rel.privacy
    assert rec.delta == 1e-6 and rec.mechanism == "discrete Laplace threshold (OpenDP)"
    assert rec.parameters["keys"] == "private partition selection" and rec.parameters["threshold"] > 0


def test_partition_selection_with_rho(world):
    rel = pa.segment_stats(world, measure="micro", rho=0.5, delta=1e-6)
    assert rel.privacy.mechanism == "discrete Gaussian threshold (OpenDP)"
    assert set(rel.to_pandas().columns[:2]) == {"tag_commuter", "tag_student"}


def test_partition_selection_without_delta_is_refused(world):
    with pytest.raises(PrivaggInputError, match=r"delta must be > 0 when keys=None: keys are then selected privately.*Fix: pass e.g. delta=1e-9"):
        pa.footfall(world, epsilon=1.0)


@pytest.mark.statistical
def test_intervals_cover_the_bounded_truth(world, monkeypatch):
    """95% intervals cover the bounded aggregate.

    Bounds are loose enough that no subscriber is bounded, so the bounded
    truth is fixed. Over R releases of K keys, the N = R*K coverage events are
    independent with probability p = P(|Z| <= t) >= 0.95 (computed exactly);
    we require |coverage - p| <= 5.3 * sqrt(p (1 - p) / N), which a correct
    release fails with probability < 1.2e-7. The companion check shows the
    test rejects intervals half as wide (true coverage ~0.78).
    """
    keys = pa.KeySet.areas_by_time(world.cells, "zone", time_bin="6h", **DAY)
    bounds = pa.Bounds(max_partitions=100)
    q = pa.Query("footfall", level="zone", time_bin="6h", keys=keys)
    truth = pa.exact_aggregate(world, q, include_empty=True)["value"].to_numpy()
    r = 100
    values = np.stack([
        pa.footfall(world, epsilon=2.0, level="zone", time_bin="6h", keys=keys, bounds=bounds).to_pandas()["value"].to_numpy()
        for _ in range(r)
    ])
    scale = 100 / 2.0
    t = noise_half_width("laplace", scale, 0.95)
    a = math.exp(-1 / scale)
    p = 1 - 2 * a ** (t + 1) / (1 + a)
    n = values.size
    tol = 5.3 * math.sqrt(p * (1 - p) / n)
    covered = np.abs(values - truth) <= t
    assert abs(covered.mean() - p) <= tol, (covered.mean(), p, tol)
    narrow = np.abs(values - truth) <= t // 2
    assert abs(narrow.mean() - p) > tol


@pytest.mark.statistical
def test_mean_intervals_cover_at_least_the_level(world):
    """Conservative mean intervals: coverage >= 95% - 5.3 sd (false failure < 1e-7)."""
    keys = pa.KeySet.from_values(contract=["prepaid", "postpaid"])
    truth = pa.exact_aggregate(world, pa.Query("segment_mean", column="arpu", by=("contract",), keys=keys))
    truth = truth.set_index("contract")["value"].clip(0, 100)  # no arpu above 100 is rare; clip as bounding does
    exact_bounded = world.opted_in().users.assign(arpu=lambda d: d.arpu.clip(0, 100)).groupby("contract").arpu.mean()
    hits = []
    for _ in range(60):
        df = pa.segment_stats(world, measure="mean", column="arpu", by=["contract"], epsilon=2.0, keys=keys).to_pandas()
        for row in df.itertuples(index=False):
            hits.append(row.ci_low <= exact_bounded[row.contract] <= row.ci_high)
    n = len(hits)
    assert np.mean(hits) >= 0.95 - 5.3 * math.sqrt(0.95 * 0.05 / n)


@pytest.mark.parametrize("kwargs,message", [
    ({"epsilon": 0}, r"epsilon=0.0 must be finite and > 0. Fix: pass e.g. epsilon=1.0"),
    ({"epsilon": -1}, r"epsilon=-1.0 must be finite and > 0"),
    ({"epsilon": math.inf}, r"epsilon=inf must be finite and > 0"),
    ({"rho": math.nan}, r"rho=nan must be finite and > 0"),
    ({"epsilon": 1.0, "rho": 1.0}, r"pass exactly one of epsilon= .* or rho= .*, not both"),
    ({}, r"no privacy loss given. Fix: pass epsilon="),
    ({"epsilon": 1.0, "level": "street"}, r"level='street' is not a spatial level"),
    ({"epsilon": 1.0, "time_bin": "7min"}, r"time_bin='7min' is not a supported time bin"),
    ({"epsilon": 1.0, "delta": 1e-9, "bounds": {"max_partitions": 0}}, r"bounds.max_partitions=0 is below 1"),
    ({"epsilon": 1.0, "keys": pa.KeySet.from_values(cell_id=["1", "2"]) * pa.KeySet.time_bins("2026-01-05", "2026-01-06")},
     r"keys column 'cell_id' holds str values but the data's 'cell_id' is int. Fix: cast them with .astype\('int64'\)"),
    ({"epsilon": 1.0, "keys": pa.KeySet.from_values(cell_id=[1, 2])},
     r"keys has columns \['cell_id'\] but this release is keyed by \['cell_id', 'time'\]"),
    ({"epsilon": 1.0, "delta": 2.0, "keys": None}, r"delta=2.0 must be in \[0, 1\)"),
    ({"epsilon": 1.0, "ci_level": 1.5, "delta": 1e-9}, r"ci_level=1.5 must be in \(0, 1\)"),
])
def test_bad_input_is_refused_before_any_budget_is_spent(world, kwargs, message):
    budget = pa.Budget(epsilon=10.0, delta=1e-6)
    with pytest.raises(PrivaggInputError, match=message):
        pa.footfall(world, budget=budget, **kwargs)
    assert budget.spent == {"epsilon": 0.0, "delta": 0.0}


def test_wrong_schema_and_missing_users_or_cells(world):
    bad = world.stays.rename(columns={"cell_id": "cell"})
    with pytest.raises(PrivaggInputError, match=r"table 'stays', column 'cell_id': missing column"):
        pa.footfall(bad, epsilon=1.0, delta=1e-9, users=world.users, **DAY)
    with pytest.raises(PrivaggInputError, match=r"users= is required with raw tables"):
        pa.footfall(world.stays, epsilon=1.0, delta=1e-9, **DAY)
    with pytest.raises(PrivaggInputError, match=r"cells= is required for level='zone'"):
        pa.footfall(world.stays, epsilon=1.0, delta=1e-9, level="zone", users=world.users, **DAY)
    with pytest.raises(PrivaggInputError, match=r"the release window is unknown. Fix: pass start= and end="):
        pa.footfall(world.stays, epsilon=1.0, delta=1e-9, users=world.users)
    with pytest.raises(PrivaggInputError, match=r"segment_mean of 'tag_x'|column='tag_x' is not a numeric user column|needs a public clamping range|column 'income': missing, and segment_mean with column='income' reads it"):
        pa.segment_stats(world, measure="mean", column="income", by=["gender"], epsilon=1.0, delta=1e-9)


def test_footfall_from_events_and_raw_tables(world):
    keys = pa.KeySet.areas_by_time(world.cells, "cell", time_bin="1D", **DAY)
    rel = pa.footfall(world.events, epsilon=1.0, time_bin="1D", keys=keys, users=world.users)
    assert rel.privacy.parameters["source"] == "events"
    assert len(rel) == 12


def test_dwell_histogram_and_mean(world):
    keys = pa.KeySet.areas(world.cells, "zone") * pa.KeySet.from_values(dwell_min=[0, 30, 120])
    rel = pa.dwell_times(world, epsilon=1.0, level="zone", edges=[0, 30, 120], keys=keys)
    assert rel.to_pandas().columns.tolist()[:2] == ["zone_id", "dwell_min"] and len(rel) == 4 * 3
    with pytest.raises(PrivaggInputError, match=r"edges=\[5, 3\] are not increasing dwell-bin edges starting at 0"):
        pa.dwell_times(world, epsilon=1.0, edges=[5, 3], keys=keys)
    mean = pa.dwell_mean(world, epsilon=2.0, level="district", keys=pa.KeySet.areas(world.cells, "district"),
                         bounds=pa.Bounds(max_partitions=4, max_per_partition=2, upper=180))
    df = mean.to_pandas()
    assert df.value.between(0, 180).all() and (df.ci_low <= df.value).all() and (df.value <= df.ci_high).all()
    assert mean.privacy.parameters["budget_split"] == "count 1/2, sum 1/2"


def test_segment_stats_from_raw_tables_and_huge_domains(world):
    keys = (pa.KeySet.from_values(age_band=["18-24", "25-34", "35-44"]) * pa.KeySet.areas(world.cells, "zone")
            * pa.KeySet.time_bins("2026-01-05", "2026-01-06", "1D"))
    rel = pa.segment_stats(world.stays, world.users, by=["age_band"], epsilon=1.0, keys=keys, cells=world.cells)
    assert rel.to_pandas().columns.tolist()[:3] == ["age_band", "zone_id", "time"] and len(rel) == len(keys)
    many = pa.KeySet.from_values({f"tag_{i}": [False, True] for i in range(30)})
    with pytest.raises(PrivaggInputError, match=r"has 1,073,741,824 keys \(30 factors\), more than 50,000,000 can be released"):
        from privagg.queries import check_domain_size
        check_domain_size(many)
