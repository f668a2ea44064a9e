"""Bad tables, files and parameters, generated: every one ends in one line and exit 2 (or PrivaggInputError),
never a traceback, never budget spent, never an output."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import privagg as pa
from privagg.cli import main
from privagg.dp.budget import Budget
from privagg.errors import PrivaggError, PrivaggInputError
from privagg.world import TABLES, World
from test_cli_release import tiny_world

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CASES: dict[str, int] = {}  # cases run per test, for the report


@pytest.fixture(scope="module")
def world():
    return tiny_world()


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory, world):
    path = tmp_path_factory.mktemp("errors") / "world"
    world.save(path)
    return path


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return int(code), err


def _assert_clean_refusal(code: int, err: str, work: Path) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "Fix:" in err or "error: argument" in err or "invalid choice" in err, err
    assert not list(work.glob("out*")), "an output was written"
    ledger = work / "ledger.json"
    if ledger.exists() or (work / "ledger.sqlite").exists():
        assert Budget.load(ledger).entries == [], "budget was spent"


# --------------------------------------------------------------------------- bad table files (CLI)
def _bad_table(kind: str, name: str, world, data: st.DataObject) -> tuple[str, bytes | pd.DataFrame]:
    """A damaged version of table ``name``: (file suffix, raw bytes or a DataFrame to write)."""
    table = getattr(world, name).copy()
    if kind == "empty file":
        return data.draw(st.sampled_from([".csv", ".parquet"])), b""
    if kind == "garbage":
        return data.draw(st.sampled_from([".csv", ".parquet"])), data.draw(st.binary(min_size=1, max_size=300))
    if kind == "truncated parquet":
        import io

        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        raw = buf.getvalue()
        return ".parquet", raw[: data.draw(st.integers(1, len(raw) - 1))]
    if kind == "header only":
        return ".csv", (",".join(table.columns) + "\n").encode()
    if kind == "missing column":
        required = {"cells": ["cell_id", "zone_id", "x"], "users": ["user_id", "opt_in"], "events": ["ts", "cell_id"],
                    "stays": ["start", "end", "user_id"], "trips": ["depart", "origin_cell"]}[name]
        return ".parquet", table.drop(columns=data.draw(st.sampled_from(required)))
    if kind == "wrong type":
        column = data.draw(st.sampled_from([c for c in table.columns if c not in ("land_use", "age_band", "gender", "contract", "device_tier")]))
        table[column] = data.draw(st.sampled_from(["x", "2026-13-45", "", "nan"]))
        return data.draw(st.sampled_from([".csv", ".parquet"])), table
    if kind == "nulls in a key":
        key = {"cells": "cell_id", "users": "user_id", "events": "user_id", "stays": "cell_id", "trips": "user_id"}[name]
        table[key] = table[key].astype("float64")
        table.loc[data.draw(st.integers(0, len(table) - 1)), key] = np.nan
        return ".parquet", table
    if kind == "duplicate ids":
        assume_name = name if name in ("cells", "users") else "cells"
        table = getattr(world, assume_name).copy()
        return ".parquet", pd.concat([table, table.iloc[[0]]], ignore_index=True)
    if kind == "unknown cells":
        column = {"users": "home_cell", "events": "cell_id", "stays": "cell_id", "trips": "origin_cell"}.get(name, "cell_id")
        if name == "cells":
            return ".parquet", table.iloc[:1]  # the others then refer to absent cells
        table.loc[0, column] = data.draw(st.integers(1000, 10**9))
        return ".parquet", table
    assert kind == "end before start"
    first, last = {"stays": ("start", "end"), "trips": ("depart", "arrive")}.get(name, ("start", "end"))
    table = getattr(world, "stays" if name not in ("stays", "trips") else name).copy()
    table.loc[0, last] = table.loc[0, first] - pd.Timedelta(minutes=data.draw(st.integers(1, 10_000)))
    return ".parquet", table


KINDS = ["empty file", "garbage", "truncated parquet", "header only", "missing column", "wrong type", "nulls in a key",
         "duplicate ids", "unknown cells", "end before start"]


@SETTINGS
@given(data=st.data(), kind=st.sampled_from(KINDS), name=st.sampled_from(TABLES))
def test_generated_bad_tables_end_in_one_line(capsys, world, world_dir, data, kind, name):
    CASES["tables"] = CASES.get("tables", 0) + 1
    if kind == "end before start" and name not in ("stays", "trips"):
        name = "stays"
    if kind == "duplicate ids" and name not in ("cells", "users"):
        name = "users"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data_dir = work / "data"
        shutil.copytree(world_dir, data_dir)
        (data_dir / "world.json").unlink()
        (data_dir / f"{name}.parquet").unlink()
        suffix, content = _bad_table(kind, name, world, data)
        target = data_dir / f"{name}{suffix}"
        if isinstance(content, bytes):
            target.write_bytes(content)
        elif suffix == ".csv":
            content.to_csv(target, index=False)
        else:
            content.to_parquet(target, index=False)
        with pytest.raises(PrivaggInputError) as err:  # the Python API refuses the same folder
            World.load(data_dir)
        assert "\n" not in str(err.value) and "Fix:" in str(err.value)
        statistic = data.draw(st.sampled_from([["footfall"], ["od"], ["dwell"], ["segments", "--by", "gender"]]))
        code, err = _cli(["release", *statistic, "--data", str(data_dir), "--epsilon", "1", "--budget",
                          str(work / "ledger.json"), "--budget-epsilon", "5", "--out", str(work / "out.parquet")], capsys)
        _assert_clean_refusal(code, err, work)


# --------------------------------------------------------------------------- bad parameters (CLI)
BAD_NUMBERS = st.one_of(
    st.sampled_from(["0", "-1", "nan", "inf", "-inf", "1e-300", "1e300", "abc", "", "1,5", "0x10"]),
    st.floats(max_value=0, allow_nan=False).map(repr),
    st.floats(min_value=101, max_value=1e308).map(repr),
)
BAD_OPTIONS = {
    "--epsilon": BAD_NUMBERS,
    "--delta": st.sampled_from(["-1e-9", "1", "1.5", "nan", "inf", "x"]),
    "--ci-level": st.sampled_from(["0", "1", "-0.5", "95", "nan", "x"]),
    "--max-partitions": st.sampled_from(["0", "-3", "1.5", "x", "10000000000", "999999999999999999999"]),
    "--max-per-partition": st.sampled_from(["0", "-1", "1e9", "two"]),
    "--time-bin": st.sampled_from(["7min", "0h", "-1h", "25h", "abc", "1e9h", "2D"]),
    "--start": st.sampled_from(["yesterday", "2026-13-01", "2026-01-06", "99999-01-01"]),
    "--level": st.sampled_from(["city", "", "ZONE"]),
    "--budget-epsilon": st.sampled_from(["0", "-5", "nan", "x", "inf"]),
    "--budget-delta": st.sampled_from(["-1", "1", "2", "nan"]),
    "--out": st.sampled_from(["out.txt", "out", "", "{tmp}", "{data}/stays.parquet", "{tmp}/ledger.sqlite"]),
    "--budget": st.sampled_from(["{data}", "{data}/stays.parquet", "{tmp}/nowhere/ledger.json", "{tmp}/garbage.sqlite"]),
    "--data": st.sampled_from(["{tmp}/none", "{data}/stays.parquet", "{tmp}"]),
}


@SETTINGS
@given(option=st.sampled_from(sorted(BAD_OPTIONS)), data=st.data())
def test_generated_bad_parameters_end_in_one_line(capsys, world_dir, option, data):
    CASES["parameters"] = CASES.get("parameters", 0) + 1
    value = data.draw(BAD_OPTIONS[option])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "garbage.sqlite").write_bytes(b"not a database at all" * 20)
        shutil.copytree(world_dir, work / "world")
        before = {p.name: p.read_bytes() for p in (work / "world").iterdir()}
        args = {"--data": str(work / "world"), "--epsilon": "1", "--budget": str(work / "ledger.json"),
                "--budget-epsilon": "5", "--out": str(work / "out.parquet")}
        args[option] = value.replace("{tmp}", str(work)).replace("{data}", str(work / "world"))
        if option == "--start":
            args["--end"] = "2026-01-06"
        argv = ["release", "footfall", "--overwrite"]  # so that an --out naming an input is refused as an input
        for k, v in args.items():
            argv += [k, v] if not v.startswith("-") else [f"{k}={v}"]
        code, err = _cli(argv, capsys)
        _assert_clean_refusal(code, err, work)
        assert {p.name: p.read_bytes() for p in (work / "world").iterdir()} == before  # no input touched


# --------------------------------------------------------------------------- the Python API
@SETTINGS
@given(data=st.data(), which=st.sampled_from(["epsilon", "rho", "delta", "ci_level", "bounds", "window", "table"]))
def test_generated_bad_api_calls_raise_input_errors_and_spend_nothing(world, data, which):
    CASES["api"] = CASES.get("api", 0) + 1
    budget = Budget(epsilon=5.0)
    kwargs = dict(epsilon=1.0, start="2026-01-05", end="2026-01-06", users=world.users, budget=budget)
    table = world.stays
    if which in ("epsilon", "rho"):
        kwargs.pop("epsilon")
        kwargs[which] = data.draw(st.one_of(st.sampled_from([0, -1, math.nan, math.inf, 1e-300, 1e300, "1", None, True]),
                                            st.floats(min_value=101, max_value=1e308), st.floats(max_value=1e-7, min_value=-1e9)))
        if kwargs[which] is None:
            kwargs.pop(which)
    elif which == "delta":
        kwargs["delta"] = data.draw(st.sampled_from([-1e-9, 1.0, 2.0, math.nan, math.inf, "x"]))
    elif which == "ci_level":
        kwargs["ci_level"] = data.draw(st.sampled_from([0, 1, -0.5, 95, math.nan, "x", None]))
    elif which == "bounds":
        kwargs["bounds"] = data.draw(st.sampled_from([{"max_partitions": 0}, {"max_partitions": -1}, {"max_partitions": 1.5},
                                                      {"max_per_partition": 0}, {"nonsense": 1}, "x", 3]))
    elif which == "window":
        kwargs["start"], kwargs["end"] = data.draw(st.sampled_from(
            [("2026-01-06", "2026-01-05"), ("x", "2026-01-06"), ("2026-01-05", None), (None, None), ("2026-01-05", "2026-01-05")]))
    else:
        column = data.draw(st.sampled_from(list(table.columns)))
        mutation = data.draw(st.sampled_from(["drop", "strings", "nulls"]))
        table = table.copy()
        if mutation == "drop":
            table = table.drop(columns=column)
        elif mutation == "strings":
            table[column] = "x"
        else:
            table[column] = table[column].astype(object)
            table.loc[0, column] = None
    with pytest.raises(PrivaggInputError) as err:
        pa.footfall(table, **kwargs)
    assert "\n" not in str(err.value) and "Fix:" in str(err.value)
    assert budget.entries == []


def test_an_internal_error_is_one_line_pointing_to_debug(capsys, world_dir, tmp_path, monkeypatch):
    import privagg.releases.core as core

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(core, "contributions", broken)
    argv = ["release", "footfall", "--data", str(world_dir), "--epsilon", "1", "--out", str(tmp_path / "o.parquet")]
    code, err = _cli(argv, capsys)
    assert code == 1 and err.count("\n") == 1
    assert "internal error (KeyError: 'boom'); this is a bug in privagg, not in your input. Run again with --debug" in err
    with pytest.raises(KeyError):
        main([*argv, "--debug"])


@pytest.mark.parametrize("argv, message", [
    (["synth", "--users", "10000000000", "--out", "{tmp}/w"], r"n_users=10,000,000,000 over days=7 on n_cells=600 needs about [\d,.]+ GiB of memory, and this machine has [\d,.]+ GiB available. Fix: lower n_users or days"),
    (["synth", "--cells", "1000000000", "--out", "{tmp}/w"], r"needs about [\d,.]+ GiB .* Fix: lower n_cells"),
    (["audit", "{tmp}/big.toml", "--out", "{tmp}/audit"], r"claim \[data\]: n_users=10,000,000,000 .* needs about"),
    (["synth", "--users", "10", "--out", "{tmp}/big.toml"], r"--out '.*big.toml' is a file, not a folder"),
    (["audit", "{tmp}/big.toml", "--out", "{tmp}/big.toml"], r"--out '.*big.toml' is a file, not a folder"),
])
def test_sizes_and_outputs_are_checked_before_any_work(capsys, tmp_path, argv, message):
    import re

    claim = Path("experiments/claims/operator_footfall_k10.toml")
    if not claim.exists():
        claim = Path(__file__).parents[1] / claim
    (tmp_path / "big.toml").write_text(claim.read_text().replace("n_users = 2000", "n_users = 10000000000", 1))
    code, err = _cli([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert re.search(message, err), err
    assert not (tmp_path / "w").exists() and not (tmp_path / "audit").exists()


# --------------------------------------------------------------------------- other subcommands
BAD_SMALL = st.integers(min_value=-10**12, max_value=0).map(str)
BAD_OTHER = {
    ("synth", "--users"): BAD_SMALL, ("synth", "--cells"): st.integers(-10**9, 19).map(str),
    ("synth", "--days"): BAD_SMALL, ("synth", "--seed"): st.integers(-10**9, -1).map(str),
    ("synth", "--opt-in"): st.sampled_from(["-0.1", "1.5", "nan", "inf", "x"]),
    ("synth", "--stadium-event"): st.sampled_from(["-1", "7", "99", "x"]),
    ("synth", "--out"): st.sampled_from(["{tmp}/file.txt", "{tmp}/notaworld", "/proc/w"]),
    ("audit-mechanism", "--users"): st.integers(-10**6, 1).map(str),
    ("audit-mechanism", "--runs"): st.integers(-10**6, 99).map(str),
    ("audit-mechanism", "--epsilon"): st.sampled_from(["0", "-1", "nan", "x"]),
    ("audit-mechanism", "--alpha"): st.sampled_from(["0", "1", "2", "-0.5", "nan"]),
    ("audit-mechanism", "--partitions"): BAD_SMALL, ("audit-mechanism", "--max-partitions"): BAD_SMALL,
    ("compare", "--level"): st.sampled_from(["0", "1", "95", "nan", "x"]),
    ("compare", "--shift"): st.sampled_from(["time", "=7D", "time=", "time=forever", "nosuchcolumn=1"]),
    ("compare", "--on"): st.sampled_from(["nosuch", "value", "zone_id,nosuch"]),
    ("compare", "--out"): st.sampled_from(["{tmp}/a.parquet", "{tmp}/out.txt", "{tmp}/a.parquet.privacy.json", "/proc/x.csv"]),
    ("compare", "A"): st.sampled_from(["{tmp}/none.parquet", "{tmp}/broken.parquet", "{tmp}/norecord.parquet",
                                       "{tmp}/badrecord.parquet", "{tmp}/file.txt"]),
}
BASE = {
    "synth": ["synth", "--users", "50", "--cells", "20", "--days", "1", "--out", "{tmp}/world"],
    "audit-mechanism": ["audit-mechanism", "--mechanism", "dp", "--runs", "200", "--users", "20", "--partitions", "5",
                        "--max-partitions", "2"],
    "compare": ["compare", "{tmp}/a.parquet", "{tmp}/b.parquet"],
}


@pytest.fixture(scope="module")
def two_releases(tmp_path_factory, world_dir):
    path = tmp_path_factory.mktemp("releases")
    for name in ("a", "b"):
        assert main(["release", "footfall", "--data", str(world_dir), "--epsilon", "1", "--level", "zone",
                     "--out", str(path / f"{name}.parquet")]) == 0
    (path / "broken.parquet").write_bytes(b"PAR1 not really")
    shutil.copyfile(path / "a.parquet.privacy.json", path / "broken.parquet.privacy.json")
    shutil.copyfile(path / "a.parquet", path / "norecord.parquet")
    shutil.copyfile(path / "a.parquet", path / "badrecord.parquet")
    (path / "badrecord.parquet.privacy.json").write_text('{"statistic": "footfall", "epsilon": ')
    (path / "file.txt").write_text("x")
    (path / "notaworld").mkdir()
    (path / "notaworld" / "keep.txt").write_text("precious")
    return path


@SETTINGS
@given(key=st.sampled_from(sorted(BAD_OTHER)), data=st.data())
def test_generated_bad_arguments_to_other_subcommands_end_in_one_line(capsys, two_releases, key, data):
    CASES["other commands"] = CASES.get("other commands", 0) + 1
    command, option = key
    value = data.draw(BAD_OTHER[key]).replace("{tmp}", str(two_releases))
    argv = [a.replace("{tmp}", str(two_releases)) for a in BASE[command]]
    if option == "A":
        argv[1] = value
    elif option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    argv = _join_negative(argv)
    before = sorted(p.name for p in two_releases.iterdir())
    code, err = _cli(argv, capsys)
    assert code == 2, (argv, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert sorted(p.name for p in two_releases.iterdir()) == before  # nothing written beside the inputs
    assert (two_releases / "notaworld" / "keep.txt").read_text() == "precious"


def _join_negative(argv: list[str]) -> list[str]:
    """``--opt -1`` as ``--opt=-1`` (argparse would take ``-1`` for an option)."""
    out: list[str] = []
    skip = False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a.startswith("--") and "=" not in a and i + 1 < len(argv) and argv[i + 1].startswith("-") and argv[i + 1][1:2].isdigit():
            out.append(f"{a}={argv[i + 1]}")
            skip = True
        else:
            out.append(a)
    return out


def test_report_case_counts():
    """Runs last in this module: the generated cases above (reported by the closing note)."""
    print(f"\ngenerated cases: {CASES}")
    assert sum(CASES.values()) >= 150 or not CASES  # the generated tests ran (or this test was run alone)
