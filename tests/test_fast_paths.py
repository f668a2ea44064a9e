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
        if chunked and query.statistic in CHUNKED:
            assert isinstance(contrib, ContributionChunks), query
        _same(generic, fast)
        assert generic.counts.sum() > 0, query


CHUNKED = ("footfall", "visits", "dwell_times", "od_flows", "dwell_mean")  # statistics of a table read in chunks


@pytest.mark.parametrize("query", [
    Query("od_flows", level="zone", time_bin="6h"),
    Query("od_flows", level="cell", time_bin=None),
    Query("footfall", level="zone", time_bin="1h"),
    Query("dwell_mean", level="zone", time_bin="6h"),
], ids=lambda q: f"{q.statistic}-{q.level}-{q.time_bin}")
def test_chunks_without_public_keys_code_the_whole_tables_observed_domain(world, monkeypatch, query):
    """Without public keys, chunks built on their own and translated into the observed domain carry the
    domain, codes, ids and values of the whole table's contributions, in order; so bounding under one
    secret keeps the same contributions as on the whole table (and as on Spark, which codes the same way)."""
    inputs = resolve(world, query, users=None, cells=None, keys=None)
    eff = effective_bounds(query, BOUNDS["binding"])
    whole = build.contributions(query, inputs, None, eff)
    assert not isinstance(whole, ContributionChunks)
    monkeypatch.setattr(build, "CHUNK_ROWS", 53)
    chunks = build.contributions(query, inputs, None, eff)
    assert isinstance(chunks, ContributionChunks) and chunks.n_chunks > 2 and not chunks.public
    assert chunks.domain == whole.domain and chunks.domain.dtypes() == whole.domain.dtypes()
    # Chunks see only some of the domain's values, so the translation into it is not the identity.
    own = [len(build._contributions(query, inputs.slice(53 * i, 53 * (i + 1)), None, eff).domain)
           for i in range(chunks.n_chunks)]
    assert min(own) < len(whole.domain)
    joined = chunks.materialize()
    assert np.array_equal(joined.partitions, whole.partitions)
    assert np.array_equal(joined.privacy_ids, whole.privacy_ids)
    if whole.values is not None:
        assert np.array_equal(joined.values, whole.values)
    unit = resolution(eff.lower, eff.upper) if query.statistic == "dwell_mean" else None
    for threads in (1, 2):
        a = LocalEngine(rng=np.random.default_rng(9), threads=threads).bounded_totals(whole, eff, dense=False, sum_unit=unit)
        b = LocalEngine(rng=np.random.default_rng(9), threads=threads).bounded_totals(chunks, eff, dense=False, sum_unit=unit)
        _same(a, b)


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


def _segment_users(n: int, seed: int, opt_out: float):
    """Users with categorical and boolean segment columns, missing categories, a category outside the
    keys, NaN and out-of-range values: everything the binned one-row-per-subscriber path maps per bin."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    age = pd.Categorical(rng.choice(["18-24", "25-34", "35-44", "65+"], n), categories=["18-24", "25-34", "35-44", "65+"])
    age[rng.random(n) < 0.05] = np.nan
    arpu = rng.gamma(2.0, 15.0, n) - 5.0
    arpu[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame({
        "user_id": rng.permutation(n).astype(np.int64) + 7,
        "age_band": age,
        "gender": pd.Categorical(rng.choice(["female", "male"], n)),
        "arpu": arpu,
        "opt_in": rng.random(n) >= opt_out,
        "tag_student": rng.random(n) < 0.3,
    })


@pytest.mark.parametrize("opt_out", [0.2, 0.0], ids=["opt-outs", "all-consent"])
def test_binned_segment_mean_equals_the_generic_steps(monkeypatch, opt_out):
    """Segment means over categorical and boolean columns take the binned path (consent, keys and
    clamping per block of the users table's own columns, several blocks per thread); their totals equal
    the generic steps' bit for bit, and the counts those of a direct pandas count of consenting rows."""
    from privagg.engines.extract import BinnedChunks

    monkeypatch.setattr(build, "CHUNK_ROWS", 64)
    monkeypatch.setattr(local, "BINNED_BLOCK", 37)
    users = _segment_users(1000, seed=11, opt_out=opt_out)
    cases = [
        (("age_band", "gender"), KeySet.from_values(age_band=["18-24", "25-34", "35-44"], gender=["female", "male"]),
         Bounds(lower=0, upper=60)),
        (("age_band", "tag_student"), KeySet.from_values(age_band=["35-44", "18-24"], tag_student=[True, False]),
         Bounds(lower=-10, upper=40)),
        (("gender",), KeySet.from_values(gender=["male", "female", "other"]), Bounds(lower=5, upper=500)),
    ]
    for by, keys, bounds in cases:
        query = Query("segment_mean", level=None, by=by, column="arpu", keys=keys)
        inputs = resolve(users, query, users=users, cells=None, keys=keys)
        eff = effective_bounds(query, bounds)
        contrib = build.contributions(query, inputs, keys, eff)
        assert isinstance(contrib, BinnedChunks) and contrib.binned is not None, by
        for unit in (resolution(eff.lower, eff.upper), 1e-9):  # packed counts and sums; two bincounts
            fast = LocalEngine(threads=2).bounded_totals(contrib, eff, dense=True, sum_unit=unit)
            generic = Engine.bounded_totals(LocalEngine(threads=1), contrib, eff, dense=True, sum_unit=unit)
            _same(generic, fast)
        kept = users[users["opt_in"]]
        direct = kept.groupby(list(by), observed=True).size()
        expected = [int(direct.get(tuple(k) if len(by) > 1 else k[0], 0)) for k in keys.to_pandas().itertuples(index=False)]
        assert fast.counts.tolist() == expected, by
        if opt_out:
            assert fast.counts.sum() <= users["opt_in"].sum() < len(users)  # consent drops rows


def test_binned_path_honours_consent(monkeypatch):
    """The comparison above is not vacuous: with consent ignored (every bin kept), the totals differ."""
    from privagg.engines.extract import BinnedRows

    monkeypatch.setattr(build, "CHUNK_ROWS", 64)
    users = _segment_users(500, seed=12, opt_out=0.2)
    keys = KeySet.from_values(age_band=["18-24", "25-34"], gender=["female", "male"])
    query = Query("segment_mean", level=None, by=("age_band", "gender"), column="arpu", keys=keys)
    eff = effective_bounds(query, Bounds(lower=0, upper=60))
    contrib = build.contributions(query, resolve(users, query, users=users, cells=None, keys=keys), keys, eff)
    unit = resolution(0, 60)
    right = LocalEngine().bounded_totals(contrib, eff, dense=True, sum_unit=unit)
    rows = contrib.binned
    half = rows.n_bins // 2  # bins of consenting rows are the upper half
    leaky = rows.bin_partition[np.arange(rows.n_bins) % half + half]
    contrib.binned = BinnedRows(rows.n_rows, rows.n_bins, rows.bin_dtype, leaky, rows.bins, rows.values, rows.clamp)
    wrong = LocalEngine().bounded_totals(contrib, eff, dense=True, sum_unit=unit)
    assert wrong.counts.sum() > right.counts.sum()
