"""Release inputs as users hold them: pandas, Arrow, Polars (eager and lazy) and Parquet paths.

Each form must give exactly the same bounded aggregates as pandas under one
bounding secret (recorded inside the engine, before any noise), and a
Release converts back to pandas, Polars and Arrow.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import privagg as pa_
from privagg.dp.bounds import Bounds
from privagg.engines import LocalEngine
from privagg.errors import PrivaggInputError
from privagg.releases.inputs import as_pandas, table_columns
from tests.dp_fixtures import random_world

pl = pytest.importorskip("polars")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


class Recording(LocalEngine):
    """A local engine with a fixed bounding secret that keeps every aggregate it returns."""

    def __init__(self) -> None:
        super().__init__(rng=np.random.default_rng(7), threads=1)
        self.totals: list = []

    def aggregate(self, pairs, n_partitions, *, dense):
        out = super().aggregate(pairs, n_partitions, dense=dense)
        self.totals.append(out)
        return out

    def bounded_totals(self, contributions, bounds, *, dense, sum_unit=None):
        out = super().bounded_totals(contributions, bounds, dense=dense, sum_unit=sum_unit)
        self.totals.append(out)
        return out


@pytest.fixture(scope="module")
def world():
    return random_world(n_users=120, stays_per_user=5, seed=3)


def _forms(frame: pd.DataFrame, tmp_path, name: str) -> dict:
    path = tmp_path / f"{name}.parquet"
    frame.to_parquet(path, index=False)
    return {
        "pandas": frame,
        "arrow": pa.Table.from_pandas(frame, preserve_index=False),
        "polars": pl.from_pandas(frame),
        "lazy": pl.from_pandas(frame).lazy(),
        "parquet": path,
        "parquet_str": str(path),
    }


WINDOW = {"start": "2026-01-05", "end": "2026-01-06"}


def _bounded(release_fn, data, users, cells, **kw):
    engine = Recording()
    release_fn(data, users=users, cells=cells, engine=engine, **WINDOW, **kw)
    assert engine.totals
    t = engine.totals[-1]
    return t.counts.copy(), None if t.sums is None else t.sums.copy(), None if t.codes is None else t.codes.copy()


CASES = [
    ("footfall", "events", lambda d, **kw: pa_.footfall(d, epsilon=1.0, keys=None, delta=1e-6,
                                                        bounds=Bounds(max_partitions=3), **kw)),
    ("od_flows", "trips", lambda d, **kw: pa_.od_flows(d, epsilon=1.0, delta=1e-6, bounds="default", **kw)),
    ("dwell_mean", "stays", lambda d, **kw: pa_.dwell_mean(d, epsilon=1.0, delta=1e-6, bounds=Bounds(max_partitions=2, max_per_partition=2), **kw)),
    ("visits", "stays", lambda d, **kw: pa_.visits(d, epsilon=1.0, delta=1e-6, bounds="default", **kw)),
]


@pytest.mark.parametrize("statistic,table,fn", CASES, ids=[c[0] for c in CASES])
def test_every_input_form_gives_the_same_bounded_aggregates(world, tmp_path, statistic, table, fn):
    """pandas, Arrow, Polars eager/lazy and Parquet paths (data, users and cells alike) give identical
    bounded aggregates under one bounding secret."""
    frames = _forms(getattr(world, table), tmp_path, table)
    users = _forms(world.users, tmp_path, "users")
    cells = _forms(world.cells, tmp_path, "cells")
    reference = _bounded(fn, frames["pandas"], world.users, world.cells)
    assert reference[0].sum() > 0
    for form in frames:
        got = _bounded(fn, frames[form], users[form], cells[form])
        for a, b in zip(reference, got):
            assert (a is None and b is None) or np.array_equal(a, b), (statistic, form)


def test_segment_mean_from_polars_users(world):
    """segment_stats(measure='mean') reads the users table in any form (the first argument or users=)."""
    def run(users):
        engine = Recording()
        pa_.segment_stats(users, by=["age_band", "gender"], measure="mean", column="arpu", epsilon=1.0,
                          delta=1e-6, bounds=Bounds(lower=0, upper=100), engine=engine)
        return engine.totals[-1]

    ref = run(world.users)
    got = run(pl.from_pandas(world.users))
    assert np.array_equal(ref.counts, got.counts) and np.array_equal(ref.sums, got.sums)
    assert ref.counts.sum() == int(world.users["opt_in"].sum())


def test_footfall_infers_events_from_a_polars_table(world):
    """The source (events or stays) is read from a Polars table's columns, as from pandas."""
    rel = pa_.footfall(pl.from_pandas(world.events), users=pl.from_pandas(world.users), epsilon=1.0,
                       bounds=Bounds(max_partitions=24), keys=pa_.KeySet.areas_by_time(
                           world.cells, start="2026-01-05", end="2026-01-06", time_bin="1h"))
    assert rel.privacy.parameters["source"] == "events"


def test_arrow_numeric_columns_are_not_copied():
    """Arrow (and so Polars) integer columns without nulls become pandas columns sharing their buffers."""
    ids = np.arange(1000, dtype=np.int64)
    table = pa.table({"user_id": ids})
    frame = as_pandas(table, "data")
    buffer = table.column("user_id").chunk(0).buffers()[1]
    assert frame["user_id"].to_numpy().ctypes.data == buffer.address


def test_lazy_and_parquet_read_only_the_columns_needed(world, tmp_path):
    """A LazyFrame or a Parquet file with extra columns: only the schema's columns are loaded."""
    stays = world.stays.assign(extra=1.5)
    path = tmp_path / "stays.parquet"
    stays.to_parquet(path, index=False)
    wanted = ["user_id", "cell_id", "start", "end"]
    assert list(as_pandas(path, "data", columns=wanted).columns) == wanted
    assert list(as_pandas(pl.from_pandas(stays).lazy(), "data", columns=wanted).columns) == wanted
    assert table_columns(path) == [*wanted, "extra"]


@pytest.mark.parametrize("bad,parameter", [([1, 2, 3], "data"), ({"user_id": [1]}, "users"), (42, "cells")])
def test_unsupported_types_are_refused_naming_the_parameter(world, bad, parameter):
    kw = {"users": world.users, "cells": world.cells}
    data = world.stays
    if parameter == "data":
        data = bad
    else:
        kw[parameter] = bad
    with pytest.raises(PrivaggInputError) as err:
        pa_.visits(data, epsilon=1.0, level="zone", bounds="default", delta=1e-6, **kw)
    message = str(err.value)
    assert message.startswith(f"{parameter}: expected ") and "Fix:" in message
    assert "Polars" in message and "Parquet" in message


def test_missing_parquet_path_is_refused(world, tmp_path):
    with pytest.raises(PrivaggInputError, match=r"data=.*does not exist\. Fix:"):
        pa_.visits(tmp_path / "nope.parquet", users=world.users, epsilon=1.0, bounds="default", delta=1e-6)


def test_release_converts_to_pandas_polars_and_arrow(world):
    keys = pa_.KeySet.areas_by_time(world.cells, level="zone", start="2026-01-05", end="2026-01-06", time_bin="1h")
    rel = pa_.visits(world, epsilon=1.0, level="zone", bounds="default", keys=keys)
    frame = rel.to_pandas()
    arrow = rel.to_arrow()
    polars = rel.to_polars()
    assert isinstance(arrow, pa.Table) and isinstance(polars, pl.DataFrame)
    assert arrow.column_names == list(frame.columns) == polars.columns
    assert np.array_equal(polars["value"].to_numpy(), frame["value"].to_numpy())
    assert np.array_equal(arrow.column("value").to_numpy(), frame["value"].to_numpy())
    assert polars.height == len(frame) > 0
