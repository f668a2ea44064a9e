"""The Spark engine: same bounded aggregates as the local engine, same privacy properties.

One ``local[2]`` session for the whole run (the ``spark`` fixture in conftest.py). The
exact comparisons use one bounding secret for both engines (seeded test generators);
releases themselves never seed anything.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest

import privagg as pa
from privagg.dp.bounds import Bounds
from privagg.engines.local import LocalEngine
from privagg.errors import PrivaggInputError
from privagg.keysets import KeySet
from privagg.queries import Query
from privagg.releases import core
from privagg.releases.build import contributions
from privagg.releases.inputs import resolve

pytest.importorskip("pyspark")

SEED = 20260105


@pytest.fixture(scope="module")
def engine(spark):
    from privagg.engines.spark import SparkEngine

    return SparkEngine(spark, partitions=2)


@pytest.fixture(scope="module")
def city(tiny_city):
    return tiny_city


@pytest.fixture(scope="module")
def tables(spark, city, engine):
    """The tiny city's tables as Spark DataFrames (cached: every test reads them)."""
    return {name: engine.to_spark(getattr(city, name)).cache() for name in ("events", "stays", "trips", "users")}


def _table(query: Query, world, spark_tables=None):
    from privagg.releases.inputs import table_name

    name = table_name(query)
    if spark_tables is None:
        return world if name == "users" else getattr(world, name)
    return spark_tables["users"] if name == "users" else spark_tables[name]


def local_totals(world, query: Query, bounds: Bounds | None, *, users=None, unit=None):
    """Bounded, noise-free totals of the local engine under the test secret."""
    users = world.users if users is None else users
    data = world if query.statistic in ("segment_mean", "micro_segments") else getattr(world, core.table_name(query))
    inputs = resolve(data, query, users=users, cells=world.cells, keys=query.keys)
    contrib = contributions(query, inputs, query.keys, bounds)
    totals = LocalEngine(np.random.default_rng(SEED)).bounded_totals(contrib, bounds, dense=query.keys is not None,
                                                                     sum_unit=unit)
    return contrib.domain, totals


def spark_totals(engine, world, spark_tables, query: Query, bounds: Bounds | None, *, users=None, unit=None):
    """The same on the Spark engine (the release's native path, minus the noise)."""
    engine._rng = np.random.default_rng(SEED)
    users = spark_tables["users"] if users is None else users
    data = spark_tables["users"] if query.statistic in ("segment_mean", "micro_segments") else spark_tables[core.table_name(query)]
    inputs = core._native_inputs(engine, data, query, users=users, cells=world.cells, keys=query.keys)
    define = functools.partial(core.batch_contributions, query, bounds, inputs.cells, inputs.start, inputs.end)
    contrib = engine.contributions(inputs, query.keys, define, has_values=query.statistic in core.MEAN_STATISTICS)
    totals = engine.bounded_totals(contrib, bounds, dense=query.keys is not None, sum_unit=unit).to_numpy()
    engine._rng = None
    return contrib.domain, totals


def _keys(city, query: Query) -> KeySet:
    from privagg.queries import public_keys

    return public_keys(query, city.cells, start=city.meta["start"], end=city.meta["end"],
                       users_columns=list(city.users.columns))


CASES = [
    ("footfall-stays", dict(statistic="footfall", level="cell", time_bin="1h", source="stays"), Bounds(max_partitions=3)),
    ("footfall-events", dict(statistic="footfall", level="zone", time_bin="3h", source="events"), Bounds(max_partitions=2)),
    ("visits-total", dict(statistic="visits", level="cell", time_bin="6h"),
     Bounds(max_partitions=3, max_per_partition=2, max_total=3)),
    ("dwell-times", dict(statistic="dwell_times", level="zone", time_bin="1D"), Bounds(max_partitions=2, max_per_partition=2)),
    ("dwell-mean", dict(statistic="dwell_mean", level="zone", time_bin="1D"), Bounds(max_partitions=2, max_per_partition=2)),
    ("od-private", dict(statistic="od_flows", level="zone", time_bin="6h"), Bounds(max_partitions=2, max_per_partition=1)),
    ("segment-counts", dict(statistic="segment_counts", level="zone", time_bin="1D", by=("age_band",), source="events"),
     Bounds(max_partitions=2)),
    ("segment-mean", dict(statistic="segment_mean", level=None, time_bin=None, by=("age_band", "gender"), column="arpu"),
     Bounds(max_partitions=1, max_per_partition=1)),
    ("micro-segments", dict(statistic="micro_segments", level=None, time_bin=None, by=("gender", "tag_sports")),
     Bounds(max_partitions=1, max_per_partition=1)),
]


@pytest.mark.parametrize("name,spec,bounds", CASES, ids=[c[0] for c in CASES])
def test_local_and_spark_engines_keep_the_same_contributions(engine, city, tables, name, spec, bounds):
    """Under one bounding secret both engines give identical bounded totals for every statistic."""
    query = Query(**spec)
    if name == "od-private":
        query = Query(**spec, start=city.meta["start"], end=city.meta["end"])
    else:
        query = Query(**spec, keys=_keys(city, query))
    eff = core.effective_bounds(query, bounds)
    unit = None
    if query.statistic in core.MEAN_STATISTICS:
        unit = core.resolution(eff.lower, eff.upper)
    domain_l, local = local_totals(city, query, eff, unit=unit)
    domain_s, spark = spark_totals(engine, city, tables, query, eff, unit=unit)
    assert domain_l == domain_s
    if local.codes is not None:
        assert np.array_equal(local.codes, spark.codes)
    assert np.array_equal(local.counts, spark.counts)
    assert local.counts.sum() > 0
    if local.sums is not None:
        assert np.array_equal(np.asarray(local.sums), np.asarray(spark.sums))
    # The bounds bind on this city, so the secret matters: unbounded totals are larger.
    if name.startswith("footfall") or name == "visits-total":
        _, raw = local_totals(city, query, None)
        assert raw.counts.sum() > local.counts.sum()


def test_removing_one_subscriber_moves_spark_totals_by_at_most_the_sensitivity(engine, city, tables):
    """Removing one subscriber (the heaviest) changes the bounded footfall by at most L0 * Linf in l1,
    under one secret (deterministic given the secret). The companion: the unbounded totals move by
    more, so the check can fail."""
    bounds = Bounds(max_partitions=3)
    query = Query("footfall", level="cell", time_bin="1h", source="stays")
    query = Query("footfall", level="cell", time_bin="1h", source="stays", keys=_keys(city, query))
    opted = city.users[city.users["opt_in"]]
    stays = city.stays[city.stays["user_id"].isin(opted["user_id"])]
    heaviest = int(stays.groupby("user_id").size().idxmax())
    users = city.users.copy()
    users.loc[users["user_id"] == heaviest, "opt_in"] = False
    _, full = spark_totals(engine, city, tables, query, bounds)
    _, without = spark_totals(engine, city, tables, query, bounds, users=engine.to_spark(users))
    change = np.abs(full.counts - without.counts).sum()
    assert 0 < change <= bounds.max_partitions * bounds.max_per_partition
    _, raw_full = local_totals(city, query, None)
    _, raw_without = local_totals(city, query, None, users=users)
    assert np.abs(raw_full.counts - raw_without.counts).sum() > bounds.max_partitions


@pytest.mark.statistical
def test_spark_l0_bounding_keeps_a_uniformly_random_subset(engine, spark):
    """R = 3000 subscribers in the same 10 partitions, L0 = 3: each partition is kept by
    Binomial(3000, 0.3) of them (the ranks are a pseudo-random function of (subscriber, partition)).
    |count - 900| > 5.3 sd (sd = 25.1) has probability < 1e-7 per partition: false failure < 1e-6.
    The companion: keeping each subscriber's first three partitions fails the same check."""
    from privagg.engines.spark import SparkContributions

    r = 3000
    frame = pd.DataFrame({"user_id": np.repeat(np.arange(r), 10), "code": np.tile(np.arange(10), r), "value": 0.0})
    domain = KeySet.from_values(cell_id=range(10))
    contrib = SparkContributions(spark.createDataFrame(frame), domain, True, True, False)
    counts = engine.bounded_totals(contrib, Bounds(max_partitions=3), dense=True).to_numpy().counts
    sd = math.sqrt(r * 0.3 * 0.7)
    assert counts.sum() == 3 * r
    assert np.all(np.abs(counts - 0.3 * r) < 5.3 * sd), counts
    first_three = np.array([r] * 3 + [0] * 7)
    assert not np.all(np.abs(first_three - 0.3 * r) < 5.3 * sd)


def test_noise_is_drawn_once_and_after_the_budget_is_charged(engine, city, tables):
    """The release is collected data: two actions on its Spark frame see the same values; the budget is
    charged before any executor task draws noise (the engine counts noised batches)."""
    seen: list[int] = []

    class Spy(pa.Budget):
        def charge(self, *args, **kwargs):
            seen.append(engine.noise_batches.value)
            return super().charge(*args, **kwargs)

    budget = Spy(epsilon=5.0)
    query = Query("footfall", level="zone", time_bin="1D", source="events")
    keys = _keys(city, query)
    before = engine.noise_batches.value
    release = pa.footfall(tables["events"], users=tables["users"], cells=city.cells, source="events", level="zone",
                          time_bin="1D", keys=keys, epsilon=1.0, bounds="default", budget=budget, engine=engine)
    assert seen == [before]  # nothing noised when the charge was made
    assert engine.noise_batches.value > before
    frame = engine.release_frame(release)
    first = frame.orderBy("zone_id", "time").toPandas()
    second = frame.orderBy("zone_id", "time").toPandas()
    pd.testing.assert_frame_equal(first, second)
    assert len(release) == len(keys)
    assert release.privacy.parameters["engine"] == "spark"


def test_a_refused_release_spends_nothing_and_draws_nothing(engine, city, tables):
    budget = pa.Budget(epsilon=0.5)
    before = engine.noise_batches.value
    query = Query("footfall", level="zone", time_bin="1D", source="events")
    with pytest.raises(Exception, match="budget"):
        pa.footfall(tables["events"], users=tables["users"], cells=city.cells, source="events", level="zone",
                    time_bin="1D", keys=_keys(city, query), epsilon=1.0, bounds="default", budget=budget, engine=engine)
    assert budget.remaining["epsilon"] == pytest.approx(0.5)
    assert engine.noise_batches.value == before


def test_chosen_bounds_run_on_spark(engine, city):
    """bounds=None chooses bounds from per-subscriber histograms computed in Spark."""
    release = pa.visits(city, epsilon=1.0, level="zone", time_bin="1D",
                        keys=_keys(city, Query("visits", level="zone", time_bin="1D")), engine=engine)
    assert release.privacy.parameters["bounds_rule"].startswith("chosen privately")
    assert release.privacy.parameters["engine"] == "spark" and len(release) > 0


def test_a_segment_mean_reads_the_users_spark_frame_as_its_data(engine, city, tables):
    """As on the local engine, the users table (with its opt_in column) is the data of a per-subscriber
    statistic: no users= needed."""
    keys = KeySet.from_values(age_band=sorted(city.users["age_band"].unique()), gender=sorted(city.users["gender"].unique()))
    rel = pa.segment_stats(tables["users"], by=["age_band", "gender"], measure="mean", column="arpu", epsilon=1.0,
                           keys=keys, bounds=pa.Bounds(lower=0, upper=100), engine=engine)
    assert len(rel.to_pandas()) == len(keys) and rel.privacy.statistic == "segment_mean"


def test_spark_inputs_missing_a_column_fail_with_the_fix(engine, city, tables):
    with pytest.raises(PrivaggInputError, match=r"table 'events': missing column\(s\) 'ts'.*Fix: pass the events table"):
        pa.footfall(tables["events"].drop("ts"), users=tables["users"], source="events", epsilon=1.0,
                    level="cell", time_bin="1D", keys=_keys(city, Query("footfall", level="cell", time_bin="1D")),
                    bounds="default", engine=engine)


SPEC = """\
name = "on-spark"
engine = "spark"
spark_master = "local[2]"
metrics = ["mae"]

[world]
n_users = 80
n_cells = 20
days = 1
seed = 3

[[statistics]]
statistic = "footfall"
level = "zone"
time_bin = "1D"

[[anonymisers]]
family = "dp"
epsilon = 1.0
max_partitions = 4
"""


def test_an_experiment_spec_runs_its_releases_on_spark(spark, tmp_path, monkeypatch):
    """``engine = "spark"`` routes every DP release of the spec through the Spark engine."""
    from privagg.engines.spark import SparkEngine
    from privagg.harness.runner import run_experiment
    from privagg.harness.spec import parse_spec

    seen = []
    original = SparkEngine.draw_noise

    def spy(self, *args, **kwargs):
        seen.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SparkEngine, "draw_noise", spy)
    spec = parse_spec(SPEC, tmp_path / "spark.toml")
    assert spec.engine == "spark" and "engine" in spec.to_dict()
    summary = run_experiment(spec, tmp_path / "out", max_workers=2, progress=False)
    assert seen == ["spark"]
    assert not summary.failed


def test_a_spec_with_an_unknown_engine_names_the_key_and_the_fix(tmp_path):
    from privagg.harness.spec import parse_spec

    with pytest.raises(PrivaggInputError, match=r"engine = 'sprak' is not known.*Fix: .*spark"):
        parse_spec(SPEC.replace('engine = "spark"', 'engine = "sprak"'), tmp_path / "bad.toml")


def test_the_command_line_releases_on_spark(spark, city, tmp_path, capsys):
    """``privagg release footfall --engine spark`` reads the World's Parquet files into Spark and writes the
    release; the same options on the local engine give a table with the same keys."""
    from privagg.cli import main

    folder = city.save(tmp_path / "city")
    common = ["--data", str(folder), "--epsilon", "1", "--source", "events", "--level", "zone", "--time-bin", "3h",
              "--max-partitions", "4"]
    assert main(["release", "footfall", "--engine", "spark", "--out", str(tmp_path / "s.parquet"), *common]) == 0
    line = capsys.readouterr().out
    assert "on Spark (local[2])" in line
    assert main(["release", "footfall", "--out", str(tmp_path / "l.parquet"), *common]) == 0
    on_spark, local = pd.read_parquet(tmp_path / "s.parquet"), pd.read_parquet(tmp_path / "l.parquet")
    pd.testing.assert_frame_equal(on_spark[["zone_id", "time"]], local[["zone_id", "time"]])


def test_spark_master_without_the_spark_engine_is_refused(tmp_path, capsys):
    from privagg.cli import main

    code = main(["release", "footfall", "--data", str(tmp_path), "--out", str(tmp_path / "o.parquet"), "--epsilon", "1",
                 "--spark-master", "local[2]"])
    assert code != 0
    assert "--spark-master applies to --engine spark. Fix: add --engine spark" in capsys.readouterr().err
