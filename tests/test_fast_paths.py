"""The local engine's fast paths give exactly the bounded aggregates of the engine's three generic steps.

For every statistic, with binding and loose bounds and without bounds, over
public and private keys, whole and in chunks on two threads: the totals of
``LocalEngine.bounded_totals`` (packed counts, packed sums, one row per
subscriber) equal bit for bit those of ``Engine.bounded_totals`` (reduce,
bound, aggregate) under one bounding secret.
"""

from __future__ import annotations

import numpy as np
import pytest

from privagg.dp.bounds import Bounds
from privagg.engines import LocalEngine, local
from privagg.engines.base import ContributionChunks, Engine
from privagg.queries import KeySet, Query
from privagg.releases import build
from privagg.releases.core import effective_bounds, resolution
from privagg.releases.inputs import resolve
from tests.dp_fixtures import random_world

DAY = {"start": "2026-01-05", "end": "2026-01-06"}


@pytest.fixture(scope="module")
def world():
    return random_world(n_users=160, stays_per_user=9, seed=5)


def _queries(world):
    cells = world.cells
    areas_1h = KeySet.areas_by_time(cells, level="cell", time_bin="1h", **DAY)
    zones = KeySet.areas(cells, "zone")
    return [
        Query("footfall", level="cell", time_bin="1h", keys=areas_1h),
        Query("visits", level="cell", time_bin="1h", keys=areas_1h),
        Query("dwell_times", level="zone", time_bin=None,
              keys=zones * KeySet.from_values(dwell_min=[0, 15, 30, 60, 120, 240, 480])),
        Query("od_flows", level="zone", time_bin="6h", keys=KeySet.od_pairs(cells, "zone", time_bin="6h", **DAY)),
        Query("od_flows", level="zone", time_bin="6h"),  # keys chosen privately
        Query("dwell_mean", level="cell", time_bin=None, keys=KeySet.areas(cells, "cell")),
        Query("dwell_mean", level="zone", time_bin="6h"),
        Query("segment_mean", level=None, by=("age_band", "gender"), column="arpu",
              keys=KeySet.from_values(age_band=["18-24", "25-34", "35-44"], gender=["female", "male"])),
        Query("segment_mean", level="zone", by=("gender",), column="arpu"),
        Query("segment_counts", level="zone", time_bin="1D", by=("age_band",),
              keys=KeySet.from_values(age_band=["18-24", "25-34", "35-44"]) * zones
              * KeySet.time_bins(time_bin="1D", **DAY)),
    ]


BOUNDS = {
    "binding": Bounds(max_partitions=2, max_per_partition=1, lower=0, upper=60),
    "loose": Bounds(max_partitions=400, max_per_partition=50, lower=0, upper=600),
}


def _totals(engine, query, inputs, bounds, fast: bool):
    eff = None if bounds is None else effective_bounds(query, bounds)
    unit = None
    if eff is not None and eff.lower is not None and eff.upper is not None and query.statistic.endswith("_mean"):
        unit = resolution(eff.lower, eff.upper)
    contrib = build.contributions(query, inputs, query.keys, eff)
    dense = query.keys is not None
    if fast:
        return engine.bounded_totals(contrib, eff, dense=dense, sum_unit=unit), contrib
    return Engine.bounded_totals(engine, contrib, eff, dense=dense, sum_unit=unit), contrib


def _same(a, b) -> None:
    assert np.array_equal(a.counts, b.counts)
    assert (a.sums is None) == (b.sums is None)
    if a.sums is not None:
        assert np.array_equal(a.sums, b.sums)
    if a.codes is not None or b.codes is not None:
        assert np.array_equal(a.codes, b.codes)


@pytest.mark.parametrize("bounds_name", ["binding", "loose", "none"])
@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
def test_fast_paths_equal_the_generic_steps(world, monkeypatch, bounds_name, chunked):
    bounds = BOUNDS.get(bounds_name)
    if chunked:
        monkeypatch.setattr(build, "CHUNK_ROWS", 53)
    else:  # whole inputs split into shards of subscribers, one per thread
        monkeypatch.setattr(local, "SHARD_MIN_ROWS", 1)
    for query in _queries(world):
        inputs = resolve(world, query, users=None, cells=None, keys=query.keys)
        generic, _ = _totals(LocalEngine(rng=np.random.default_rng(3), threads=1), query, inputs, bounds, fast=False)
        fast, contrib = _totals(LocalEngine(rng=np.random.default_rng(3), threads=2), query, inputs, bounds, fast=True)
        if chunked and query.keys is not None and query.statistic != "segment_counts":
            assert isinstance(contrib, ContributionChunks), query
        _same(generic, fast)
        assert generic.counts.sum() > 0, query


def test_binding_bounds_drop_contributions(world):
    """The comparison above is not vacuous: binding bounds change the totals of every statistic that has
    subscribers over them (so a fast path that skipped bounding would fail it)."""
    for query in _queries(world):
        if query.statistic == "segment_mean":
            continue  # one row per subscriber: nothing to drop
        inputs = resolve(world, query, users=None, cells=None, keys=query.keys)
        tight, _ = _totals(LocalEngine(rng=np.random.default_rng(3)), query, inputs, BOUNDS["binding"], fast=True)
        loose, _ = _totals(LocalEngine(rng=np.random.default_rng(3)), query, inputs, BOUNDS["loose"], fast=True)
        assert tight.counts.sum() < loose.counts.sum(), query


def test_a_different_secret_keeps_different_partitions(world):
    """The fast sum path really ranks by the bounding secret: another secret keeps other partitions."""
    query = _queries(world)[5]  # dwell_mean over public cells
    inputs = resolve(world, query, users=None, cells=None, keys=query.keys)
    a, _ = _totals(LocalEngine(rng=np.random.default_rng(3), threads=2), query, inputs, BOUNDS["binding"], fast=True)
    b, _ = _totals(LocalEngine(rng=np.random.default_rng(4), threads=2), query, inputs, BOUNDS["binding"], fast=True)
    assert a.counts.sum() == b.counts.sum()  # every subscriber keeps the same number of partitions
    assert not np.array_equal(a.counts, b.counts)
