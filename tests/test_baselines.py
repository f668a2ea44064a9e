"""Baseline anonymisers: raw, suppression, coarsening, pseudonymised microdata, naive Laplace."""

import numpy as np
import pandas as pd
import pytest

from privagg.anonymisers.base import Anonymiser
from privagg.anonymisers.coarsening import Coarsening
from privagg.anonymisers.naive_laplace import NaiveLaplace
from privagg.anonymisers.pseudonymised import Pseudonymised, PseudonymisedMicrodata
from privagg.anonymisers.raw import Raw
from privagg.anonymisers.suppression import Suppression
from privagg.dp.bounds import Bounds
from privagg.errors import PrivaggInputError
from privagg.exact import exact_aggregate
from privagg.queries import KeySet, Query
from privagg.release import Release
from privagg.synth import generate_world


@pytest.fixture(scope="module")
def world():
    return generate_world(n_users=300, n_cells=40, days=1, seed=2)


FOOTFALL = Query("footfall", level="cell", time_bin="1h")


@pytest.mark.parametrize("anonymiser", [Raw(), Suppression(k=5), Coarsening("zone", "3h"), NaiveLaplace(1.0, seed=0)])
def test_every_baseline_is_an_anonymiser_with_no_formal_guarantee(world, anonymiser):
    assert isinstance(anonymiser, Anonymiser)
    release = anonymiser.release(world, FOOTFALL)
    assert isinstance(release, Release)
    assert release.privacy.method == anonymiser.method
    assert release.privacy.formally_private is False
    assert release.privacy.epsilon is None
    assert "no formal privacy guarantee" in release.privacy.describe()
    assert "one subscriber (user_id) over 2026-01-05T00:00 to 2026-01-06T00:00" == release.privacy.privacy_unit


def test_raw_is_the_exact_aggregate(world):
    release = Raw().release(world, FOOTFALL)
    exact = exact_aggregate(world, FOOTFALL)
    pd.testing.assert_frame_equal(release.to_pandas()[["cell_id", "time", "value"]], exact, check_dtype=False)
    assert release.key_columns == ("cell_id", "time")


def test_suppression_hides_small_counts_keeps_their_keys_and_rounds(world):
    exact = exact_aggregate(world, FOOTFALL)["value"].to_numpy()
    release = Suppression(k=10, rounding=5).release(world, FOOTFALL)
    values = release.values
    assert len(values) == len(exact)
    assert np.array_equal(np.isnan(values), exact < 10)
    shown = values[~np.isnan(values)]
    assert np.all(shown % 5 == 0)
    assert np.all(np.abs(shown - exact[exact >= 10]) <= 2.5)
    assert any("k=10" in note for note in release.privacy.notes)
    assert release.privacy.parameters["k"] == 10


def test_suppression_rejects_bad_parameters_and_means():
    with pytest.raises(PrivaggInputError, match=r"k=0 is not a whole number >= 1\. Fix: pass e\.g\. k=10\."):
        Suppression(k=0)
    with pytest.raises(PrivaggInputError, match="rounding=2.5"):
        Suppression(k=5, rounding=2.5)


def test_suppression_refuses_mean_statistics(world):
    with pytest.raises(PrivaggInputError, match="suppression applies to counts, not to statistic='dwell_mean'"):
        Suppression(k=5).release(world, Query("dwell_mean", level="zone"))


def test_coarsening_answers_the_coarser_query(world):
    release = Coarsening(level="district", time_bin="3h").release(world, FOOTFALL)
    expected = exact_aggregate(world, Query("footfall", level="district", time_bin="3h"))
    assert release.key_columns == ("district_id", "time")
    assert release.values.tolist() == expected["value"].astype(float).tolist()
    assert (release.to_pandas()["time"].dt.hour % 3 == 0).all()


def test_coarsening_with_public_keys_keeps_the_window(world):
    keys = KeySet.areas_by_time(world.cells, "cell", start="2026-01-05 06:00", end="2026-01-05 12:00", time_bin="1h")
    query = Query("footfall", level="cell", time_bin="1h", keys=keys)
    times = Coarsening("zone", "3h").release(world, query).to_pandas()["time"]
    assert times.min() >= pd.Timestamp("2026-01-05 06:00") and times.max() < pd.Timestamp("2026-01-05 12:00")


def test_coarsening_refuses_finer_levels_and_incompatible_bins(world):
    with pytest.raises(PrivaggInputError, match="finer than the query's level 'zone'"):
        Coarsening(level="cell", time_bin=None).release(world, Query("footfall", level="zone", time_bin="1h"))
    with pytest.raises(PrivaggInputError, match="is not a multiple of the query's time bin '2h'"):
        Coarsening(level="zone", time_bin="3h").release(world, Query("footfall", level="cell", time_bin="2h"))


def test_pseudonymised_microdata_replaces_ids_one_to_one(world):
    micro = Pseudonymised(seed=1).release(world)
    assert isinstance(micro, PseudonymisedMicrodata)
    table = micro.table
    assert "user_id" not in table.columns and list(table.columns) == ["pseudonym", "cell_id", "ts"]
    consenting = world.opted_in().events
    assert len(table) == len(consenting)
    assert table["pseudonym"].nunique() == consenting["user_id"].nunique()
    # the pseudonym -> user mapping is a bijection that preserves each trace
    joined = consenting.sort_values(["user_id", "ts"]).groupby("user_id")["cell_id"].apply(tuple)
    traces = table.groupby("pseudonym")["cell_id"].apply(tuple)
    assert sorted(joined.tolist()) == sorted(traces.tolist())
    assert micro.privacy.formally_private is False and micro.privacy.method == "pseudonymised"
    assert Pseudonymised(seed=1).release(world).table.equals(table)
    assert not Pseudonymised(seed=2).release(world).table["pseudonym"].equals(table["pseudonym"])


def test_pseudonymised_microdata_can_be_coarsened(world):
    micro = Pseudonymised(source="stays", level="zone", time_bin="3h", attributes=("age_band",), seed=0).release(world)
    table = micro.table
    assert list(table.columns) == ["pseudonym", "zone_id", "start", "end", "age_band"]
    assert (table["start"].dt.hour % 3 == 0).all() and (table["start"].dt.minute == 0).all()
    assert set(table["zone_id"]) <= set(world.cells["zone_id"])
    trips = Pseudonymised(source="trips", level="district").release(world).table
    assert {"origin_district", "destination_district"} <= set(trips.columns)
    with pytest.raises(PrivaggInputError, match="source='calls' is unknown"):
        Pseudonymised(source="calls")


def test_naive_laplace_is_labelled_insecure_and_publishes_floats(world):
    release = NaiveLaplace(epsilon=0.5, bounds=Bounds(max_partitions=12), seed=0).release(world, FOOTFALL)
    record = release.privacy
    assert record.method == "naive_laplace" and record.formally_private is False
    assert record.noise_scale == pytest.approx(12 / 0.5)
    assert record.parameters["epsilon"] == 0.5
    assert "INSECURE" in record.notes[0] and "Mironov" in record.notes[0]
    assert release.values.dtype == np.float64 and not np.all(release.values == np.round(release.values))
    with pytest.raises(PrivaggInputError, match="epsilon=0 is not a positive number"):
        NaiveLaplace(epsilon=0)


@pytest.mark.statistical
def test_naive_laplace_noise_has_the_stated_scale(world):
    """Residuals against exact counts (L0 large enough to keep every partition) are Laplace(b).

    E|X| = b and sd|X| = b for Laplace(b); over n >= 900 keys the mean absolute
    residual lies within 6 standard errors (6 b / sqrt(n) <= 0.2 b) of b except with
    probability < 1e-8. Half the claimed noise (mean 0.5 b) fails the check.
    """
    keys = KeySet.areas_by_time(world.cells, "cell", start=world.start, end=world.end, time_bin="1h")
    query = Query("footfall", level="cell", time_bin="1h", keys=keys)
    anonymiser = NaiveLaplace(epsilon=1.0, bounds=Bounds(max_partitions=1000), seed=3)
    release = anonymiser.release(world, query).to_pandas()
    exact = exact_aggregate(world, query, include_empty=True)
    residual = release["value"].to_numpy() - exact["value"].to_numpy()
    n = len(residual)
    assert n == len(keys) and n >= 900
    b = anonymiser.scale
    tolerance = 6 * b / np.sqrt(n)
    assert abs(np.abs(residual).mean() - b) < tolerance
    assert abs(np.abs(residual / 2).mean() - b) > tolerance  # the check catches half the noise
