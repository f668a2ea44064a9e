"""World: bundling, consent filtering, and atomic Parquet round trips."""

from __future__ import annotations

import pandas as pd
import pytest

from privagg import PrivaggInputError, World
from tests import fixture_tables as tables


def make_world() -> World:
    edges = pd.DataFrame({"u": [0, 1, 2], "v": [1, 2, 3], "travel_time_s": [60.0, 60.0, 90.0],
                          "distance_m": [500.0, 500.0, 500.0]})
    return World.from_tables(**tables.all_tables(), edges=edges)


def test_from_tables_builds_graph_and_window():
    world = make_world()
    assert world.graph.number_of_nodes() == 4 and world.graph.number_of_edges() == 3
    assert world.graph.nodes[3]["land_use"] == "stadium"
    assert world.start == pd.Timestamp("2026-01-05") and world.end == pd.Timestamp("2026-01-06")


def test_from_tables_validates_cross_references():
    bad = tables.all_tables()
    bad["stays"].loc[0, "cell_id"] = 42
    with pytest.raises(PrivaggInputError, match="table 'stays', column 'cell_id': refers to cells absent"):
        World.from_tables(**bad)


def test_opted_in_removes_non_consenting_subscribers_everywhere():
    world = make_world().opted_in()
    for name in ("users", "events", "stays", "trips"):
        assert 12 not in set(getattr(world, name)["user_id"]), name
    assert len(world.users) == 2 and len(world.stays) == 3


def test_save_load_round_trip(tmp_path):
    world = make_world()
    world.save(tmp_path / "w")
    loaded = World.load(tmp_path / "w")
    for name in ("cells", "users", "events", "stays", "trips"):
        pd.testing.assert_frame_equal(getattr(loaded, name), getattr(world, name), check_dtype=False)
    assert sorted(loaded.graph.edges()) == sorted(world.graph.edges())
    assert loaded.meta == world.meta


def test_save_replaces_existing_world_without_leaving_temporaries(tmp_path):
    world = make_world()
    world.save(tmp_path / "w")
    world.save(tmp_path / "w")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]


def test_failed_save_leaves_previous_world_intact(tmp_path, monkeypatch):
    world = make_world()
    world.save(tmp_path / "w")
    before = (tmp_path / "w" / "stays.parquet").read_bytes()

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError):
        world.save(tmp_path / "w")
    assert (tmp_path / "w" / "stays.parquet").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]


def test_load_reports_missing_directory_and_table(tmp_path):
    with pytest.raises(PrivaggInputError, match="does not exist. Fix: pass a directory written by `privagg synth`"):
        World.load(tmp_path / "absent")
    (tmp_path / "partial").mkdir()
    tables.cells().to_parquet(tmp_path / "partial" / "cells.parquet")
    with pytest.raises(PrivaggInputError, match=r"has no table 'users'. Fix: add users.parquet or users.csv."):
        World.load(tmp_path / "partial")


def test_load_from_csv_directory(tmp_path):
    for name, df in tables.all_tables().items():
        df.to_csv(tmp_path / f"{name}.csv", index=False)
    world = World.load(tmp_path)
    assert len(world.trips) == 2 and world.graph.number_of_edges() == 0


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    import os
    import stat

    from privagg.atomic import atomic_write_text

    path = atomic_write_text(tmp_path / "x.json", "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
