"""``privagg release``: run in-process on a small World built by hand and saved to tmp_path."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from privagg.cli import build_parser, main
from privagg.world import World

DAY = pd.Timestamp("2026-01-05")


def tiny_world() -> World:
    """6 cells in 3 zones and 2 districts, 30 subscribers (5 without consent), one day."""
    rng = np.random.default_rng(7)
    cells = pd.DataFrame({
        "cell_id": np.arange(1, 7, dtype="int64"), "zone_id": np.array([1, 1, 2, 2, 3, 3], dtype="int64"),
        "district_id": np.array([1, 1, 1, 1, 2, 2], dtype="int64"),
        "x": np.arange(6, dtype=float) * 500, "y": np.zeros(6), "land_use": ["residential", "office", "retail",
                                                                              "transport", "leisure", "retail"],
    })
    n = 30
    users = pd.DataFrame({
        "user_id": np.arange(100, 100 + n, dtype="int64"),
        "age_band": np.array(["18-24", "25-34", "35-44", "45-54", "55-64", "65+"])[np.arange(n) % 6],
        "gender": np.array(["female", "male"])[np.arange(n) % 2],
        "contract": np.array(["prepaid", "postpaid"])[(np.arange(n) // 2) % 2],
        "arpu": rng.uniform(5, 60, n),
        "home_cell": rng.integers(1, 7, n).astype("int64"),
        "work_cell": rng.integers(1, 7, n).astype("int64"),
        "opt_in": np.arange(n) % 6 != 5,
        "tag_commuter": np.arange(n) % 3 == 0,
        "tag_tourist": np.arange(n) % 4 == 0,
    })
    stays, events, trips = [], [], []
    for uid in users["user_id"]:
        t = DAY + pd.Timedelta(minutes=int(rng.integers(0, 120)))
        cell = int(rng.integers(1, 7))
        while t < DAY + pd.Timedelta(hours=22):
            dur = pd.Timedelta(minutes=int(rng.integers(10, 300)))
            stays.append((uid, cell, t, t + dur))
            for k in range(int(rng.integers(1, 4))):
                events.append((uid, cell, t + dur * (k / 4)))
            nxt = int(rng.integers(1, 7))
            trips.append((uid, cell, nxt, t + dur, t + dur + pd.Timedelta(minutes=15)))
            t, cell = t + dur + pd.Timedelta(minutes=15), nxt
    stays = pd.DataFrame(stays, columns=["user_id", "cell_id", "start", "end"])
    events = pd.DataFrame(events, columns=["user_id", "cell_id", "ts"])
    trips = pd.DataFrame(trips, columns=["user_id", "origin_cell", "destination_cell", "depart", "arrive"])
    trips = trips[trips["arrive"] < DAY + pd.Timedelta(days=1)]
    stays["end"] = stays["end"].clip(upper=DAY + pd.Timedelta(days=1) - pd.Timedelta(seconds=1))
    return World.from_tables(cells, users, events, stays, trips,
                             meta={"start": DAY.isoformat(), "end": (DAY + pd.Timedelta(days=1)).isoformat()})


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "world"
    tiny_world().save(path)
    return path


def run(capsys, *argv):
    code = main(["release", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- help
def _subparsers(parser: argparse.ArgumentParser):
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def test_every_subcommand_and_option_has_help_text():
    top = build_parser()
    (commands,) = _subparsers(top)
    assert "release" in commands.choices
    release = commands.choices["release"]
    (stats,) = _subparsers(release)
    assert set(stats.choices) == {"footfall", "dwell", "od", "segments"}
    helps = {a.dest: a.help for a in stats._choices_actions}
    assert all(helps[s] for s in stats.choices)
    for name, sub in stats.choices.items():
        for action in sub._actions:
            assert action.help and action.help != argparse.SUPPRESS or action.dest == "help", (name, action.dest)
        options = {o for a in sub._actions for o in a.option_strings}
        for flag in ("--data", "--epsilon", "--rho", "--delta", "--level", "--time-bin", "--max-partitions",
                     "--max-per-partition", "--public-keys", "--private-keys", "--budget", "--budget-epsilon", "--out"):
            assert flag in options, (name, flag)
    assert "--by" in {o for a in stats.choices["segments"]._actions for o in a.option_strings}


def test_help_runs(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["release", "segments", "--help"])
    assert exc.value.code == 0
    assert "--by COL1,COL2" in capsys.readouterr().out


# --------------------------------------------------------------------------- releases
def test_footfall_public_keys_writes_every_key_and_the_privacy_record(capsys, world_dir, tmp_path):
    out = tmp_path / "footfall.parquet"
    code, stdout, err = run(capsys, "footfall", "--data", world_dir, "--epsilon", 1, "--level", "zone",
                            "--time-bin", "1h", "--max-partitions", 12, "--out", out)
    assert code == 0, err
    table = pd.read_parquet(out)
    assert list(table.columns) == ["zone_id", "time", "value", "ci_low", "ci_high"]
    assert len(table) == 3 * 24  # every zone x hour, empty ones included
    record = json.loads((tmp_path / "footfall.parquet.privacy.json").read_text())
    assert record["statistic"] == "footfall" and record["epsilon"] == 1.0
    assert record["bounds"]["max_partitions"] == 12
    assert record["mechanism"] == "discrete Laplace (OpenDP)" and record["noise_scale"] == 12.0
    assert stdout.startswith(f"footfall: 72 keys -> {out}") and "epsilon=1 for one subscriber (user_id) over" in stdout


@pytest.mark.parametrize("argv, n_keys, columns", [
    (["footfall", "--source", "events", "--time-bin", "6h"], 6 * 4, ["cell_id", "time"]),
    (["footfall", "--measure", "visits", "--level", "district", "--time-bin", "1D"], 2, ["district_id", "time"]),
    (["dwell", "--level", "zone", "--edges", "0,30,60,120"], 3 * 4, ["zone_id", "dwell_min"]),
    (["dwell", "--measure", "mean", "--level", "zone"], 3, ["zone_id"]),
    (["od", "--level", "district", "--time-bin", "6h"], 2 * 2 * 4, ["origin_district", "destination_district", "time"]),
    (["segments", "--by", "age_band,gender", "--level", "district", "--time-bin", "none"], 6 * 2 * 2,
     ["age_band", "gender", "district_id"]),
    (["segments", "--measure", "mean", "--by", "contract", "--column", "arpu", "--lower", 0, "--upper", 100], 2,
     ["contract"]),
    (["segments", "--measure", "micro", "--by", "tag_commuter,tag_tourist"], 4, ["tag_commuter", "tag_tourist"]),
])
def test_each_statistic_to_csv(capsys, world_dir, tmp_path, argv, n_keys, columns):
    out = tmp_path / "release.csv"
    code, stdout, err = run(capsys, *argv, "--data", world_dir, "--epsilon", 2, "--out", out)
    assert code == 0, err
    table = pd.read_csv(out)
    assert list(table.columns) == [*columns, "value", "ci_low", "ci_high"]
    assert len(table) == n_keys
    assert (tmp_path / "release.csv.privacy.json").exists()


def test_rho_private_keys_and_post_processing(capsys, world_dir, tmp_path):
    out = tmp_path / "f.csv"
    code, stdout, err = run(capsys, "footfall", "--data", world_dir, "--rho", 0.5, "--delta", 1e-6,
                            "--private-keys", "--time-bin", "1D", "--clip-nonnegative", "--round", "--out", out)
    assert code == 0, err
    table = pd.read_csv(out)
    assert (table["value"] >= 0).all() and (table["value"] == table["value"].round()).all()
    record = json.loads((tmp_path / "f.csv.privacy.json").read_text())
    assert record["rho"] == 0.5 and record["mechanism"].startswith("discrete Gaussian")
    assert record["parameters"]["keys"] == "private partition selection"
    assert record["parameters"]["postprocessing"] == ["clip_nonnegative", "round_to_integers"]
    assert "zCDP" in stdout


# --------------------------------------------------------------------------- budget ledger
def test_ledger_is_appended_and_an_over_budget_release_changes_nothing(capsys, world_dir, tmp_path):
    ledger = tmp_path / "ledger.json"
    first = tmp_path / "first.parquet"
    code, stdout, err = run(capsys, "footfall", "--data", world_dir, "--epsilon", 1, "--budget", ledger,
                            "--budget-epsilon", 1.5, "--out", first)
    assert code == 0, err
    assert f"ledger {ledger}: remaining epsilon=0.5, delta=0" in stdout
    entries = json.loads(ledger.read_text())["entries"]
    assert len(entries) == 1 and entries[0]["statistic"] == "footfall" and entries[0]["cost"]["epsilon"] == 1.0

    # The ledger's total is remembered: no --budget-epsilon needed to continue it.
    before = ledger.read_bytes()
    first_before = first.read_bytes()
    second = tmp_path / "second.parquet"
    code, stdout, err = run(capsys, "od", "--data", world_dir, "--epsilon", 1, "--budget", ledger, "--out", second)
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and err.startswith("privagg release: error: od_flows refused: it would spend epsilon=1")
    assert "Nothing was computed or drawn" in err
    assert ledger.read_bytes() == before
    assert not second.exists() and not (tmp_path / "second.parquet.privacy.json").exists()
    # An existing output is refused without --overwrite; with it, the budget still refuses, leaving it as it was.
    code, _, err = run(capsys, "footfall", "--data", world_dir, "--epsilon", 0.75, "--budget", ledger, "--out", first)
    assert code == 2 and "exists already. Fix: add --overwrite" in err
    code, _, err = run(capsys, "footfall", "--data", world_dir, "--epsilon", 0.75, "--budget", ledger, "--out", first,
                       "--overwrite")
    assert code == 2 and "refused" in err
    assert first.read_bytes() == first_before and ledger.read_bytes() == before
    # What fits still goes through.
    code, _, err = run(capsys, "od", "--data", world_dir, "--epsilon", 0.5, "--budget", ledger, "--out", second)
    assert code == 0, err
    assert len(json.loads(ledger.read_text())["entries"]) == 2


# --------------------------------------------------------------------------- errors: exit 2, one line
@pytest.mark.parametrize("argv, message", [
    (["footfall", "--epsilon", 1, "--out", "x.txt"],
     "privagg release: error: --out 'x.txt': unknown file type. Fix: end the file name in .parquet or .csv."),
    (["footfall", "--epsilon", -1, "--out", "x.csv"],
     "privagg release: error: --epsilon -1 must be finite and > 0. Fix: pass e.g. --epsilon 1.0."),
    (["footfall", "--epsilon", 1, "--private-keys", "--out", "x.csv"],
     "privagg release: error: --private-keys selects keys privately, which needs --delta > 0."),
    (["footfall", "--epsilon", 1, "--budget", "{tmp}/none.json", "--out", "x.csv"],
     "does not exist yet, so its total is unknown. Fix: pass --budget-epsilon E_TOTAL"),
    (["footfall", "--epsilon", 1, "--budget-epsilon", 3, "--out", "x.csv"],
     "no --budget was given. Fix: add --budget LEDGER.sqlite."),
    (["footfall", "--epsilon", 1, "--time-bin", "7min", "--out", "x.csv"],
     "time_bin='7min' is not a supported time bin."),
    (["footfall", "--epsilon", 1, "--max-partitions", 0, "--out", "x.csv"],
     "--max-partitions 0 must be between 1 and 1,000,000. Fix: e.g. --max-partitions 24."),
    (["segments", "--epsilon", 1, "--out", "x.csv"],
     "segments: --by is required for counts. Fix: e.g. --by age_band,gender."),
    (["segments", "--epsilon", 1, "--by", "arpu", "--out", "x.csv"], "by='arpu' is continuous"),
    (["footfall", "--epsilon", "lots", "--out", "x.csv"],
     "privagg release footfall: error: argument --epsilon: 'lots' is not a number"),
    (["footfall", "--epsilon", 1, "--level", "city", "--out", "x.csv"],
     "privagg release footfall: error: argument --level: invalid choice: 'city'"),
])
def test_bad_input_exits_2_with_one_line(capsys, world_dir, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    argv = [str(a).replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = main(["release", *argv[:1], "--data", str(world_dir), *argv[1:]])
    except SystemExit as exc:  # usage errors from argparse
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1, err
    assert message in err
    assert not list(tmp_path.glob("x.*")) and not (tmp_path / "none.json").exists()


def test_missing_data_directory(capsys, tmp_path):
    code, _, err = run(capsys, "footfall", "--data", tmp_path / "nowhere", "--epsilon", 1, "--out", tmp_path / "x.csv")
    assert code == 2 and err.count("\n") == 1
    assert "data directory" in err and "does not exist" in err


def test_window_and_ci_level_options(capsys, world_dir, tmp_path):
    out = tmp_path / "morning.csv"
    code, _, err = run(capsys, "footfall", "--data", world_dir, "--epsilon", 1, "--start", "2026-01-05 06:00",
                       "--end", "2026-01-05 12:00", "--ci-level", 0.9, "--out", out)
    assert code == 0, err
    table = pd.read_csv(out, parse_dates=["time"])
    assert len(table) == 6 * 6 and table["time"].min() == pd.Timestamp("2026-01-05 06:00")
    record = json.loads((tmp_path / "morning.csv.privacy.json").read_text())
    assert record["parameters"]["ci_level"] == 0.9
    assert "2026-01-05T06:00 to 2026-01-05T12:00" in record["privacy_unit"]


def test_a_ledger_with_another_total_is_refused(capsys, world_dir, tmp_path):
    ledger = tmp_path / "l.json"
    assert run(capsys, "od", "--data", world_dir, "--epsilon", 1, "--budget", ledger, "--budget-epsilon", 2,
               "--out", tmp_path / "a.csv")[0] == 0
    before = ledger.read_bytes()
    code, _, err = run(capsys, "od", "--data", world_dir, "--epsilon", 1, "--budget", ledger, "--budget-epsilon", 3,
                       "--out", tmp_path / "b.csv")
    assert code == 2 and err.count("\n") == 1 and "records the total epsilon=2, delta=0, not epsilon=3, delta=0" in err
    assert ledger.read_bytes() == before and not (tmp_path / "b.csv").exists()
