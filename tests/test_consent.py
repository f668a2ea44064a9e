"""Consent before everything: an opted-out subscriber's rows change nothing that is published.

The noise sampler is replaced by the identity here, so that two releases can
be compared byte for byte: whatever reaches the mechanism is then visible in
the output. (With the real sampler the two releases are draws from the same
distribution, since the mechanism is given the same input.)
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from privagg.cli import main
from privagg.dp.budget import Budget
from privagg.dp.mechanisms import NoiseMechanism
from privagg.releases.inputs import consent_lookup
from privagg.world import TABLES, World
from tests.test_cli_release import DAY, tiny_world

GHOST = 999  # the subscriber added in these tests


@pytest.fixture(autouse=True)
def no_noise(monkeypatch):
    monkeypatch.setattr(NoiseMechanism, "sample", lambda self, values, threads=None: np.asarray(values, dtype=np.int64).copy())


def _own_tables(world: World, directory, *, ghost_times=(), ghost_opt_in=False, ghost_in_users=True):
    """Write the World's tables as a user's own folder (no world.json), with a subscriber GHOST added
    whose stays, events and trips happen at ``ghost_times`` (listed in users with ``ghost_opt_in``, or
    absent from users, which counts as not consenting)."""
    directory.mkdir()
    users = world.users.copy()
    stays, events, trips = world.stays, world.events, world.trips
    if ghost_times:
        row = users.iloc[[0]].copy()
        row["user_id"], row["opt_in"] = GHOST, ghost_opt_in
        if ghost_in_users:
            users = pd.concat([users, row], ignore_index=True)
        t = pd.to_datetime(pd.Series(list(ghost_times)))
        stays = pd.concat([stays, pd.DataFrame({"user_id": GHOST, "cell_id": 1, "start": t, "end": t + pd.Timedelta(hours=2)})],
                          ignore_index=True)
        events = pd.concat([events, pd.DataFrame({"user_id": GHOST, "cell_id": 2, "ts": t})], ignore_index=True)
        trips = pd.concat([trips, pd.DataFrame({"user_id": GHOST, "origin_cell": 1, "destination_cell": 3, "depart": t,
                                                "arrive": t + pd.Timedelta(minutes=20)})], ignore_index=True)
    tables = {"cells": world.cells, "users": users, "events": events, "stays": stays, "trips": trips}
    for name in TABLES:
        tables[name].to_parquet(directory / f"{name}.parquet", index=False)
    return directory


def _release(capsys, data, out, *extra):
    """Release through the command line, charged to a new ledger; return the printed line, the table's and
    the record's bytes, and the ledger's entry without its time of writing."""
    ledger = out.with_suffix(".sqlite")
    code = main(["release", *extra[:1], "--data", str(data), "--epsilon", "1", "--max-partitions", "1000",
                 "--budget", str(ledger), "--budget-epsilon", "1", "--out", str(out), *extra[1:]])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    (entry,) = Budget.load(ledger).entries
    entry.pop("time")
    stdout = stdout.replace(str(ledger), "LEDGER")
    return stdout, out.read_bytes(), out.with_name(out.name + ".privacy.json").read_bytes(), entry


# Times: inside the window, before it, two months after it, and at its edges.
GHOST_TIMES = [
    ("2026-01-05 12:00",),
    ("2025-12-01 08:00",),
    ("2026-03-02 09:00",),
    ("2026-01-05 00:00", "2026-01-05 23:00", "2026-03-02 09:00", "2024-06-01 10:00"),
]


@pytest.mark.parametrize("statistic", [["footfall"], ["od"], ["dwell"], ["segments", "--by", "age_band,gender"]])
@pytest.mark.parametrize("times", GHOST_TIMES)
def test_an_opted_out_subscriber_changes_nothing_published(capsys, tmp_path, statistic, times):
    world = tiny_world()
    clean = _own_tables(world, tmp_path / "clean")
    ghost = _own_tables(world, tmp_path / "ghost", ghost_times=times)
    line_a, table_a, record_a, entry_a = _release(capsys, clean, tmp_path / "a.parquet", *statistic)
    line_b, table_b, record_b, entry_b = _release(capsys, ghost, tmp_path / "b.parquet", *statistic)
    assert table_a == table_b
    assert record_a == record_b
    assert entry_a == entry_b  # what the ledger records, its time of writing aside
    assert line_a.replace("a.parquet", "b.parquet") == line_b
    assert "window derived from consenting subscribers' rows" in line_a
    assert "2026-01-05T00:00 to 2026-01-06T00:00" in json.loads(record_a)["privacy_unit"]


def test_a_subscriber_absent_from_users_counts_as_not_consenting(capsys, tmp_path):
    world = tiny_world()
    clean = _own_tables(world, tmp_path / "clean")
    ghost = _own_tables(world, tmp_path / "ghost", ghost_times=GHOST_TIMES[-1][0:3], ghost_in_users=False)
    assert _release(capsys, clean, tmp_path / "a.parquet", "od")[1:3] == _release(capsys, ghost, tmp_path / "b.parquet", "od")[1:3]


def test_companion_the_same_rows_with_consent_do_change_the_release(capsys, tmp_path):
    """The test above can fail: the same subscriber with opt_in=True moves the window and the key count."""
    world = tiny_world()
    clean = _own_tables(world, tmp_path / "clean")
    ghost = _own_tables(world, tmp_path / "ghost", ghost_times=("2026-03-02 09:00",), ghost_opt_in=True)
    _, table_a, record_a, _ = _release(capsys, clean, tmp_path / "a.parquet", "footfall")
    _, table_b, record_b, _ = _release(capsys, ghost, tmp_path / "b.parquet", "footfall")
    assert table_a != table_b and record_a != record_b
    assert len(pd.read_parquet(tmp_path / "b.parquet")) > 20 * len(pd.read_parquet(tmp_path / "a.parquet"))


def test_a_world_from_tables_takes_its_window_from_consenting_rows():
    world = tiny_world()
    users = pd.concat([world.users, world.users.iloc[[0]].assign(user_id=GHOST, opt_in=False)], ignore_index=True)
    late = pd.DataFrame({"user_id": [GHOST], "cell_id": [1], "ts": [pd.Timestamp("2026-03-02 09:00")]})
    mixed = World.from_tables(world.cells, users, pd.concat([world.events, late], ignore_index=True), world.stays, world.trips)
    assert (mixed.start, mixed.end) == (DAY, DAY + pd.Timedelta(days=1))
    assert mixed.meta["window_source"].startswith("observed")


def test_the_users_table_needs_only_the_columns_the_statistic_reads(capsys, tmp_path):
    world = tiny_world()
    world.users = world.users[["user_id", "opt_in"]]
    data = _own_tables(world, tmp_path / "thin")
    _release(capsys, data, tmp_path / "f.parquet", "footfall")
    code = main(["release", "segments", "--data", str(data), "--epsilon", "1", "--by", "age_band",
                 "--out", str(tmp_path / "s.parquet")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "by='age_band' is not a user column" in err


@pytest.mark.parametrize("consenting", [
    np.arange(1000, 1500),                                  # every id of a range: a range test
    np.setdiff1d(np.arange(1000, 1500), [1001, 1200]),      # a range with holes: a lookup table
    np.array([5, 1 << 40, (1 << 40) + 3]),                  # sparse ids: a hash index
], ids=["full-range", "holes", "sparse"])
def test_consent_lookup_matches_membership_on_every_path(consenting):
    asked = np.concatenate([np.arange(990, 1510), [5, 6, 1 << 40, (1 << 40) + 3, -7]]).astype(np.int64)
    mask = consent_lookup(consenting)(asked)
    assert mask.dtype == bool
    assert np.array_equal(mask, np.isin(asked, consenting))
