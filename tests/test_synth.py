"""privagg.synth.generate_world: valid tables, determinism, internal consistency."""

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from privagg.errors import PrivaggInputError
from privagg.schema import LAND_USES, validate_table
from privagg.synth import StadiumEvent, World, build_city, generate_world
from privagg.world import TABLES


@pytest.fixture(scope="module")
def world():
    return generate_world(n_users=1_500, n_cells=150, days=3, seed=7)


def test_tables_follow_the_schemas(world):
    assert isinstance(world, World)
    validate_table(world.cells, "cells")
    for name in TABLES[1:]:
        validate_table(getattr(world, name), name, cells=world.cells)
    assert len(world.users) == 1_500
    assert len(world.cells) == 150
    assert all(len(getattr(world, name)) > 0 for name in TABLES)


def test_same_seed_identical_tables_different_seed_different():
    a = generate_world(n_users=300, n_cells=60, days=2, seed=3)
    b = generate_world(n_users=300, n_cells=60, days=2, seed=3)
    c = generate_world(n_users=300, n_cells=60, days=2, seed=4)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert a.meta == b.meta
    assert not a.cells.equals(c.cells)
    assert not a.events.equals(c.events)
    assert not a.users.equals(c.users)


def test_city_depends_only_on_seed_and_cells():
    a = generate_world(n_users=100, n_cells=60, days=1, seed=5)
    b = generate_world(n_users=400, n_cells=60, days=2, seed=5)
    pd.testing.assert_frame_equal(a.cells, b.cells)


def test_window_and_meta(world):
    assert world.start == pd.Timestamp("2026-01-05")  # a Monday
    assert world.start.day_of_week == 0
    assert world.end == pd.Timestamp("2026-01-08")
    assert world.meta["seed"] == 7
    for column, table in (("ts", "events"), ("start", "stays"), ("depart", "trips")):
        assert getattr(world, table)[column].min() >= world.start
    assert world.stays["end"].max() == world.end
    assert world.events["ts"].max() < world.end


def test_city_graph_hierarchy_and_land_use(world):
    g = world.graph
    assert g.number_of_nodes() == 150 and nx.is_connected(g)
    for _, _, data in g.edges(data=True):
        assert data["travel_time_s"] > 0 and data["distance_m"] > 0
    cells = world.cells
    # Each zone lies in exactly one district; zones hold a few cells each.
    assert (cells.groupby("zone_id")["district_id"].nunique() == 1).all()
    sizes = cells.groupby("zone_id").size()
    assert 5 <= sizes.median() <= 15
    assert sizes.min() >= 4 and sizes.max() <= 16
    assert cells["district_id"].nunique() >= 2
    # Zones and districts are contiguous in the road graph.
    for level in ("zone_id", "district_id"):
        for _, members in cells.groupby(level)["cell_id"]:
            assert nx.is_connected(g.subgraph(members.tolist()))
    assert set(cells["land_use"]) <= set(LAND_USES)
    assert set(cells["land_use"]) == set(LAND_USES)
    assert (cells["land_use"] == "stadium").sum() >= 1
    assert world.meta["stadium_cell"] in set(cells.loc[cells["land_use"] == "stadium", "cell_id"])


def test_density_is_higher_in_the_centre():
    city = build_city(400, seed=0)
    r = np.hypot(city.x, city.y)
    inner = (r < 2_500).sum() / (np.pi * 2_500**2)
    ring = ((r >= 5_000) & (r < 10_000)).sum() / (np.pi * (10_000**2 - 5_000**2))
    assert inner > 3 * ring
    # A surrounding region well beyond the core.
    assert r.max() > 30_000


def test_stays_tile_each_subscribers_window(world):
    stays = world.stays.sort_values(["user_id", "start"]).reset_index(drop=True)
    users = stays["user_id"].to_numpy()
    first = np.r_[True, users[1:] != users[:-1]]
    last = np.r_[users[1:] != users[:-1], True]
    assert (stays.loc[first, "start"] == world.start).all()
    assert (stays.loc[last, "end"] == world.end).all()
    assert (stays["end"] > stays["start"]).all()
    # Consecutive stays are separated by exactly one trip from one cell to the next.
    trips = world.trips.sort_values(["user_id", "depart"]).reset_index(drop=True)
    gaps = stays.loc[~last].reset_index(drop=True)
    nxt = stays.loc[~first].reset_index(drop=True)
    assert len(gaps) == len(trips)
    assert (trips["user_id"].to_numpy() == gaps["user_id"].to_numpy()).all()
    assert (trips["depart"].to_numpy() == gaps["end"].to_numpy()).all()
    assert (trips["arrive"].to_numpy() == nxt["start"].to_numpy()).all()
    assert (trips["origin_cell"].to_numpy() == gaps["cell_id"].to_numpy()).all()
    assert (trips["destination_cell"].to_numpy() == nxt["cell_id"].to_numpy()).all()
    assert (trips["origin_cell"] != trips["destination_cell"]).all()
    # Nights are spent at home.
    night = stays[(stays["start"] <= world.start + pd.Timedelta(hours=27)) & (stays["end"] > world.start + pd.Timedelta(hours=27))]
    home = world.users.set_index("user_id")["home_cell"]
    assert (night["cell_id"].to_numpy() == home.loc[night["user_id"]].to_numpy()).mean() > 0.97


def test_trips_take_shortest_path_travel_time(world):
    g = world.graph
    trips = world.trips.sample(200, random_state=0)
    for row in trips.itertuples(index=False):
        expected = nx.shortest_path_length(g, row.origin_cell, row.destination_cell, weight="travel_time_s")
        took = (row.arrive - row.depart).total_seconds()
        assert abs(took - expected) <= 1


def test_events_lie_in_stays_or_on_trips(world):
    stays = world.stays
    ev = world.events
    merged = pd.merge_asof(
        ev.sort_values("ts"), stays.sort_values("start").rename(columns={"cell_id": "stay_cell"}),
        left_on="ts", right_on="start", by="user_id",
    )
    in_stay = (merged["ts"] < merged["end"]) & (merged["stay_cell"] == merged["cell_id"])
    assert in_stay.mean() > 0.85
    # The rest happen during trips, on a cell of the fastest path.
    on_trip = pd.merge_asof(
        merged.loc[~in_stay, ["user_id", "cell_id", "ts"]].sort_values("ts"), world.trips.sort_values("depart"),
        left_on="ts", right_on="depart", by="user_id",
    )
    assert (on_trip["ts"] < on_trip["arrive"]).all()
    for row in on_trip.head(100).itertuples(index=False):
        path = nx.shortest_path(world.graph, row.origin_cell, row.destination_cell, weight="travel_time_s")
        assert row.cell_id in path
    assert len(ev) / len(world.users) / 3 > 5  # several events per subscriber-day


def test_population_columns(world):
    users = world.users
    tags = [c for c in users.columns if c.startswith("tag_")]
    assert 20 <= len(tags) <= 50
    assert 0.85 < users["opt_in"].mean() < 0.95
    assert set(users["contract"]) == {"prepaid", "postpaid"}
    assert users.groupby("contract")["arpu"].mean()["postpaid"] > users.groupby("contract")["arpu"].mean()["prepaid"]
    # Tags correlate with demographics: e.g. gaming is more common among the young.
    young = users["age_band"].isin(["18-24", "25-34"])
    assert users.loc[young, "tag_gaming"].mean() > 1.5 * users.loc[~young, "tag_gaming"].mean()
    # Homes are mostly residential; workplaces mostly offices and retail.
    lu = world.cells.set_index("cell_id")["land_use"]
    assert (lu.loc[users["home_cell"]].to_numpy() == "residential").mean() > 0.7
    workers = users[users["work_cell"] != users["home_cell"]]
    assert lu.loc[workers["work_cell"]].isin(["office", "retail"]).mean() > 0.5
    retired = users[users["age_band"] == "65+"]
    assert (retired["work_cell"] == retired["home_cell"]).mean() > 0.7


def test_opt_in_share_is_configurable():
    w = generate_world(n_users=2_000, n_cells=40, days=1, seed=1, opt_in_share=0.5)
    assert 0.45 < w.users["opt_in"].mean() < 0.55


def test_stadium_event_draws_a_crowd():
    event = StadiumEvent(day=1, start_hour=18, end_hour=21, attendance=0.2)
    w = generate_world(n_users=2_000, n_cells=100, days=2, seed=2, stadium_event=event)
    stadium = w.meta["stadium_cell"]
    t = w.start + pd.Timedelta(days=1, hours=19, minutes=30)
    there = w.stays[(w.stays["cell_id"] == stadium) & (w.stays["start"] <= t) & (w.stays["end"] > t)]
    assert there["user_id"].nunique() >= 0.15 * 2_000
    t0 = w.start + pd.Timedelta(hours=19, minutes=30)
    before = w.stays[(w.stays["cell_id"] == stadium) & (w.stays["start"] <= t0) & (w.stays["end"] > t0)]
    assert len(before) < 0.2 * len(there)
    assert w.meta["stadium_event"]["attendance"] == 0.2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_users": 0}, "n_users=0: expected an integer >= 1"),
        ({"n_cells": 5}, "n_cells=5: expected an integer >= 20"),
        ({"days": 1.5}, "days=1.5: expected an integer >= 1"),
        ({"seed": -1}, "seed=-1: expected an integer >= 0"),
        ({"opt_in_share": 1.5}, "opt_in_share=1.5: not a share"),
        ({"start": "not a date"}, "start='not a date' is not a date"),
        ({"speed": 3}, "unknown option(s) ['speed']"),
        ({"far_share": 1.0}, "far_share=1.0 is out of range. Fix: pass a number in [0, 1)"),
        ({"rho": 0}, "rho=0 is out of range"),
        ({"stadium_event": StadiumEvent(day=9)}, "stadium_event.day=9 is outside the 2-day window"),
        ({"stadium_event": StadiumEvent(day=0, start_hour=20, end_hour=19)}, "invalid hours"),
    ],
)
def test_invalid_parameters_fail_early_with_the_fix(kwargs, message):
    args = {"n_users": 50, "n_cells": 30, "days": 2, "seed": 0} | kwargs
    with pytest.raises(PrivaggInputError) as info:
        generate_world(**args)
    assert message in str(info.value)
    assert "Fix:" in str(info.value)


def test_mobility_options_override_defaults():
    few = generate_world(n_users=300, n_cells=40, days=1, seed=0, events_per_day=4)
    many = generate_world(n_users=300, n_cells=40, days=1, seed=0, events_per_day=40)
    assert len(many.events) > 5 * len(few.events)


def test_save_and_load_round_trip(tmp_path, world):
    world.save(tmp_path / "w")
    loaded = World.load(tmp_path / "w")
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(world, name), check_dtype=False)
    assert loaded.graph.number_of_edges() == world.graph.number_of_edges()
    assert loaded.meta["seed"] == 7


def test_benchmark_script_runs_at_small_size(tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_synth.py"
    spec = importlib.util.spec_from_file_location("bench_synth", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--users", "500", "--cells", "40", "--days", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["users"] == 500 and result["events"] > 0
    assert {"wall_seconds", "events_per_second", "peak_rss_gib"} <= set(result)
    assert "events per second" in capsys.readouterr().out


def test_packed_and_unpacked_sorts_give_the_same_world(monkeypatch):
    import privagg.synth.mobility as mobility

    packed = generate_world(n_users=300, n_cells=40, days=2, seed=9)
    monkeypatch.setattr(mobility, "_PACK_LIMIT", 0)
    unpacked = generate_world(n_users=300, n_cells=40, days=2, seed=9)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(packed, name), getattr(unpacked, name))
