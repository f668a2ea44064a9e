import numpy as np
import pandas as pd
import pytest

from tests.dp_fixtures import T, tiny_world
from privagg.errors import PrivaggInputError
from privagg.exact import exact_aggregate
from privagg.queries import KeySet, Query


def test_footfall_counts_distinct_subscribers_in_every_overlapped_bin():
    out = exact_aggregate(tiny_world(), Query("footfall", level="cell", time_bin="1h"))
    assert out.columns.tolist() == ["cell_id", "time", "value"]
    # user 1: cell 1 08:30-09:30 (bins 8, 9), cell 2 10:00-10:10; user 2: cell 1 08:00-08:59; user 3 opted out.
    assert out.to_dict("list") == {
        "cell_id": [1, 1, 2],
        "time": [T("2026-01-05 08:00"), T("2026-01-05 09:00"), T("2026-01-05 10:00")],
        "value": [2, 1, 1],
    }


def test_opted_out_subscriber_never_counted():
    w = tiny_world()
    for q in [Query("footfall"), Query("footfall", source="events"), Query("visits"), Query("od_flows"),
              Query("micro_segments")]:
        total = exact_aggregate(w, q)["value"].sum()
        w2 = tiny_world()
        w2.users.loc[w2.users.user_id == 3, "opt_in"] = True
        assert exact_aggregate(w2, q)["value"].sum() > total, q


def test_visits_dwell_od_and_segments():
    w = tiny_world()
    visits = exact_aggregate(w, Query("visits", time_bin="1D"))
    assert visits.to_dict("list")["value"] == [2, 1]
    dwell = exact_aggregate(w, Query("dwell_times"))
    assert dwell.to_dict("list") == {"cell_id": [1, 1, 2], "dwell_min": [30, 60, 0], "value": [1, 1, 1]}
    mean = exact_aggregate(w, Query("dwell_mean"))
    assert mean["value"].tolist() == pytest.approx([59.5, 10.0])
    od = exact_aggregate(w, Query("od_flows", level="zone", time_bin=None))
    assert od.to_dict("list") == {"origin_zone": [10], "destination_zone": [20], "value": [1]}
    seg = exact_aggregate(w, Query("segment_mean", column="arpu", by=("age_band",)))
    assert seg["value"].tolist() == pytest.approx([10.0, 20.0])
    micro = exact_aggregate(w, Query("micro_segments"))
    assert micro.to_dict("list") == {"tag_commuter": [False, True], "value": [1, 1]}


def test_public_keys_include_empty():
    w = tiny_world()
    ks = KeySet.areas_by_time(w.cells, "zone", start="2026-01-05", end="2026-01-06", time_bin="6h")
    out = exact_aggregate(w, Query("footfall", level="zone", time_bin="6h", keys=ks), include_empty=True)
    assert len(out) == len(ks) == 8
    assert out["value"].sum() == 2


def test_raw_tables_require_users():
    w = tiny_world()
    with pytest.raises(PrivaggInputError, match=r"users= is required"):
        exact_aggregate(w.stays, Query("footfall", start="2026-01-05", end="2026-01-06"))
    out = exact_aggregate(w.stays, Query("footfall", start="2026-01-05", end="2026-01-06"), users=w.users)
    assert out["value"].sum() == 4


def chunked_queries(w):
    """Count statistics over public keys: the ones whose contributions come in chunks from large tables."""
    from dataclasses import replace

    day = {"start": "2026-01-05", "end": "2026-01-06"}
    return [
        replace(query, keys=keys) for query, keys in [
            (Query("footfall", level="zone", time_bin="1h"), KeySet.areas_by_time(w.cells, "zone", time_bin="1h", **day)),
            (Query("footfall", source="events", time_bin="6h"), KeySet.areas_by_time(w.cells, "cell", time_bin="6h", **day)),
            (Query("visits", level="district", time_bin="1D"), KeySet.areas_by_time(w.cells, "district", time_bin="1D", **day)),
            (Query("od_flows", level="zone", time_bin=None), KeySet.od_pairs(w.cells, "zone")),
        ]
    ]


def test_chunked_extraction_matches_one_pass(monkeypatch):
    """Large tables are read in chunks over public keys; the result must not depend on it."""
    from tests.dp_fixtures import random_world
    from privagg.releases import build

    w = random_world(n_users=200, stays_per_user=6)
    whole = build.CHUNK_ROWS
    for q in chunked_queries(w):
        one_pass = exact_aggregate(w, q, include_empty=True)
        monkeypatch.setattr(build, "CHUNK_ROWS", 97)
        chunked = exact_aggregate(w, q, include_empty=True)
        monkeypatch.setattr(build, "CHUNK_ROWS", whole)
        pd.testing.assert_frame_equal(one_pass, chunked)
        assert one_pass["value"].sum() > 0


def test_chunked_bounding_in_parallel_matches_one_pass(monkeypatch):
    """A large release's contributions come in chunks, built and bounded on two threads in shards of
    subscribers; under the same bounding secret the bounded totals equal the one-pass ones, and
    opted-out subscribers are dropped in every chunk."""
    from tests.dp_fixtures import random_world
    from privagg.dp.bounds import Bounds
    from privagg.engines import LocalEngine
    from privagg.engines.base import ContributionChunks
    from privagg.releases import build
    from privagg.releases.inputs import resolve

    w = random_world(n_users=200, stays_per_user=6)
    assert not w.users["opt_in"].all()
    bounds = Bounds(max_partitions=3, max_per_partition=2)
    whole = build.CHUNK_ROWS
    for q in chunked_queries(w):
        keys = q.keys
        inputs = resolve(w, q, users=None, cells=None, keys=keys)

        def totals(engine):
            return engine.bounded_totals(build.contributions(q, inputs, keys, bounds), bounds, dense=True).counts

        one_pass = totals(LocalEngine(rng=np.random.default_rng(5), threads=1))
        monkeypatch.setattr(build, "CHUNK_ROWS", 97)
        assert isinstance(build.contributions(q, inputs, keys, bounds), ContributionChunks)
        parallel = totals(LocalEngine(rng=np.random.default_rng(5), threads=2))
        monkeypatch.setattr(build, "CHUNK_ROWS", whole)
        assert np.array_equal(one_pass, parallel)
        unbounded = exact_aggregate(w, q, include_empty=True)["value"].to_numpy()
        assert 0 < one_pass.sum() < unbounded.sum()
        assert np.all(one_pass <= unbounded)
