"""The experiment runner on fakes: grid, parallel run, results and provenance, resume, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privagg import PrivaggError, PrivacyRecord, Release, World
from privagg.cli import main
from privagg.harness import registry
from privagg.harness.runner import project_to_truth, run_experiment
from privagg.harness.spec import FAMILY_PARAMETERS, parse_spec

# ----------------------------------------------------------------------------- fakes

CALLS = {"path": None}  # marker file: one line per release, written by whichever process makes it


def tiny_world(n_users: int = 30, n_cells: int = 6, days: int = 1, seed: int = 0, **_: object) -> World:
    rng = np.random.default_rng(seed)
    cells = pd.DataFrame({
        "cell_id": np.arange(n_cells, dtype="int64"),
        "zone_id": (np.arange(n_cells) // 2).astype("int64"),
        "district_id": (np.arange(n_cells) // 4).astype("int64"),
        "x": np.arange(n_cells, dtype=float) * 500.0,
        "y": (np.arange(n_cells) % 3).astype(float) * 400.0,
        "land_use": ["residential"] * n_cells,
    })
    users = pd.DataFrame({
        "user_id": np.arange(n_users, dtype="int64"), "age_band": ["25-34"] * n_users,
        "gender": ["female"] * n_users, "contract": ["prepaid"] * n_users, "arpu": np.full(n_users, 20.0),
        "home_cell": rng.integers(0, n_cells, n_users).astype("int64"),
        "work_cell": rng.integers(0, n_cells, n_users).astype("int64"), "opt_in": np.ones(n_users, bool),
    })
    start = pd.Timestamp("2026-01-05")
    n = n_users * 4 * days
    ts = start + pd.to_timedelta(rng.integers(0, 24 * days, n), unit="h")
    stays = pd.DataFrame({"user_id": np.repeat(users["user_id"].to_numpy(), 4 * days),
                          "cell_id": rng.integers(0, n_cells, n).astype("int64"),
                          "start": ts, "end": ts + pd.Timedelta(minutes=30)})
    events = stays.rename(columns={"start": "ts"})[["user_id", "cell_id", "ts"]]
    trips = pd.DataFrame({"user_id": stays["user_id"], "origin_cell": stays["cell_id"],
                          "destination_cell": stays["cell_id"], "depart": stays["start"], "arrive": stays["end"]})
    return World.from_tables(cells, users, events, stays, trips,
                             meta={"start": start.isoformat(), "end": (start + pd.Timedelta(days=days)).isoformat()})


def fake_query(world, statistic):
    return {"level": statistic.level, "time_bin": statistic.time_bin}


def fake_truth(world, query):
    s = world.stays.assign(hour=world.stays["start"].dt.hour)
    area = {"cell": "cell_id", "zone": "zone_id", "district": "district_id"}[query["level"]]
    s = s.merge(world.cells[["cell_id", "zone_id", "district_id"]], on="cell_id")
    keys = pd.MultiIndex.from_product([sorted(world.cells[area].unique()), range(24)], names=[area, "hour"])
    counts = s.groupby([area, "hour"])["user_id"].nunique().reindex(keys, fill_value=0)
    return counts.rename("value").astype(float).reset_index()


class FakeAnonymiser:
    """Truth plus seeded Gaussian noise of sd ``scale``; ``fail=True`` raises."""

    def __init__(self, scale: float = 1.0, fail: bool = False, seed: int = 0) -> None:
        self.scale, self.fail, self.seed = scale, fail, seed

    def release(self, world, query):
        if os.environ.get("PRIVAGG_TEST_SLOW"):
            time.sleep(float(os.environ["PRIVAGG_TEST_SLOW"]))
        if CALLS["path"]:
            with open(CALLS["path"], "a") as fh:
                fh.write(f"{os.getpid()} {self.scale}\n")
        if self.fail:
            raise RuntimeError("boom")
        table = fake_truth(world, query)
        rng = np.random.default_rng(self.seed)
        table["value"] = table["value"] + rng.normal(0, self.scale, len(table))
        record = PrivacyRecord("footfall", "fake", "one subscriber", epsilon=1.0 / self.scale,
                               formally_private=True)
        return Release(table, [c for c in table.columns if c != "value"], record)


def fake_attack(ctx):
    risk = 1.0 / (1.0 + ctx.params["scale"])
    return {"attack": "fake_attack", "target": ctx.family, "risk": risk, "ci_low": risk - 0.05,
            "ci_high": risk + 0.05, "baseline": 0.5, "n_trials": 100, "background_knowledge": "all",
            "metrics": {"auc": risk}, "interpretation": "test"}


def picky_attack(ctx):
    raise registry.NotApplicable("only for microdata")


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    monkeypatch.setitem(registry.HOOKS, "world", tiny_world)
    monkeypatch.setitem(registry.HOOKS, "query", fake_query)
    monkeypatch.setitem(registry.HOOKS, "truth", fake_truth)
    monkeypatch.setitem(registry.ANONYMISERS, "fake", FakeAnonymiser)
    monkeypatch.setitem(FAMILY_PARAMETERS, "fake", ("scale", "fail"))
    registry.register_attack("fake_attack", fake_attack)
    registry.register_attack("picky_attack", picky_attack)
    monkeypatch.setitem(CALLS, "path", str(tmp_path / "calls.txt"))
    # A fresh per-process cache for each test.
    from privagg.harness import runner

    monkeypatch.setattr(runner, "_WORLDS", {})
    monkeypatch.setattr(runner, "_QUERIES", {})
    monkeypatch.setattr(runner, "_TRUTHS", {})
    return tmp_path


SPEC = """\
name = "fake"
repetitions = 2
seed = 3
metrics = ["mae", "mean_relative_error", "hotspot_spearman"]

[world]
n_users = 30
n_cells = 6
days = 1
seed = 5

[[statistics]]
statistic = "footfall"
level = "cell"
time_bin = "1h"

[[anonymisers]]
family = "fake"
scale = [0.5, 2.0, 8.0]

[[attacks]]
name = "fake_attack"

[[attacks]]
name = "picky_attack"
"""


def calls(tmp_path: Path) -> list[str]:
    p = tmp_path / "calls.txt"
    return p.read_text().splitlines() if p.exists() else []


def test_run_writes_tidy_results_and_provenance(fakes):
    out = fakes / "exp"
    summary = run_experiment(parse_spec(SPEC, fakes / "fake.toml"), out, max_workers=2, progress=False)
    # 3 scales x 2 repetitions x (utility + 2 attacks)
    assert (summary.n_cells, summary.n_run, summary.n_reused) == (18, 18, 0)
    assert len(calls(fakes)) == 18
    assert len({line.split()[0] for line in calls(fakes)}) >= 1  # worker processes made the releases

    df = pd.read_parquet(out / "results.parquet")
    util = df[(df.kind == "utility") & (df.metric == "mae")]
    assert len(util) == 6
    mae = util.groupby("params")["value"].mean()
    # Gaussian noise: MAE ~ 0.8 * scale
    assert mae['{"scale":0.5}'] < mae['{"scale":2.0}'] < mae['{"scale":8.0}']
    risk = df[(df.kind == "risk") & (df.attack == "fake_attack") & (df.metric == "risk")]
    assert sorted(risk["value"].round(3).unique()) == [0.111, 0.333, 0.667]
    assert set(risk["baseline"]) == {0.5} and (risk["ci_high"] > risk["ci_low"]).all()
    assert set(df[df.attack == "picky_attack"]["status"]) == {"not_applicable"}
    assert df[(df.kind == "privacy") & (df.metric == "epsilon_spent")]["value"].max() == 2.0
    assert set(df["spec_hash"]) == {summary.provenance["spec_hash"]}
    assert {"seconds", "started", "finished", "git_commit", "privagg_version", "cell_seed"} <= set(df.columns)

    prov = json.loads((out / "provenance.json").read_text())
    assert prov["seeds"] == [3, 4] and prov["n_cells"] == 18 and prov["n_cells_run"] == 18
    assert prov["git_commit"] == "unknown" or len(prov["git_commit"].split("+")[0]) == 40
    assert len(prov["cells"]) == 18 and all(c["seconds"] >= 0 for c in prov["cells"].values())
    assert (out / "spec.toml").read_text() == SPEC
    assert (out / "worlds").is_dir() and list((out / "samples").glob("release-*.parquet"))


def test_killed_run_resumes_only_missing_cells(fakes):
    out = fakes / "exp"
    spec = parse_spec(SPEC, fakes / "fake.toml")
    run_experiment(spec, out, max_workers=2, progress=False)
    first = pd.read_parquet(out / "results.parquet")
    assert len(calls(fakes)) == 18
    # Simulate a run killed before the end: no results table, three cells missing.
    (out / "results.parquet").unlink()
    removed = sorted((out / "cells").glob("*.parquet"))[:3]
    for p in removed:
        p.unlink()
    summary = run_experiment(spec, out, max_workers=2, progress=False)
    assert (summary.n_run, summary.n_reused) == (3, 15)
    assert len(calls(fakes)) == 21
    again = pd.read_parquet(out / "results.parquet")
    assert len(again) == len(first)
    assert sorted(again["cell"].unique()) == sorted(first["cell"].unique())
    # a rerun with everything done does nothing
    summary = run_experiment(spec, out, max_workers=2, progress=False)
    assert (summary.n_run, summary.n_reused) == (0, 18) and len(calls(fakes)) == 21
    # a changed grid only runs the new cells
    summary = run_experiment(parse_spec(SPEC.replace("8.0]", "8.0, 16.0]"), fakes / "f.toml"), out,
                             max_workers=1, progress=False)
    assert (summary.n_run, summary.n_reused) == (6, 18)


def test_failed_cells_are_reported_and_retried(fakes):
    out = fakes / "exp"
    text = SPEC.replace("scale = [0.5, 2.0, 8.0]", "scale = [0.5, 2.0]\nfail = [false, true]").replace(
        "[[attacks]]\nname = \"picky_attack\"\n", "")
    spec = parse_spec(text, fakes / "f.toml")
    # 4 configurations x 2 repetitions x (utility + attack); fail=true in half of them
    with pytest.raises(PrivaggError, match=r"^8 of 16 cells failed \(first: RuntimeError: boom\)\. The 8 finished "
                                           r"cells are saved in .*Fix the cause and rerun to retry only those\.$"):
        run_experiment(spec, out, max_workers=2, progress=False)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["n_cells_failed"] == 8 and len(list((out / "cells").glob("*.parquet"))) == 8
    assert "RuntimeError: boom" in next(iter(prov["failed"].values()))
    assert len(pd.read_parquet(out / "results.parquet")["cell"].unique()) == 8
    assert len(calls(fakes)) == 16
    # a rerun retries only the failed cells
    with pytest.raises(PrivaggError, match="^8 of 16 cells failed"):
        run_experiment(spec, out, max_workers=1, progress=False)
    assert len(calls(fakes)) == 24


def test_missing_component_fails_before_any_work(fakes, monkeypatch):
    monkeypatch.setitem(registry.ANONYMISERS, "fake", "privagg.not_yet_written:Thing")
    with pytest.raises(registry.MissingComponentError) as info:
        run_experiment(parse_spec(SPEC, fakes / "fake.toml"), fakes / "exp", progress=False)
    assert str(info.value) == (
        f"{fakes / 'fake.toml'}: 1 part(s) of this experiment are not available:\n"
        "  - anonymiser family 'fake' needs privagg.not_yet_written:Thing, which cannot be imported "
        "(No module named 'privagg.not_yet_written'). Fix: install or merge the branch that provides it, "
        "or remove it from the spec."
    )
    assert not (fakes / "exp").exists()
    assert calls(fakes) == []


def test_cli_run_and_plot(fakes, capsys):
    spec = fakes / "fake.toml"
    spec.write_text(SPEC)
    out = fakes / "cli"
    assert main(["experiment", "run", str(spec), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "18 cells: 18 run, 0 reused" in printed and str(out / "results.parquet") in printed
    assert main(["experiment", "plot", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (out / "figures" / "frontier-fake_attack.png").is_file()
    assert (out / "figures" / "frontier-fake_attack.svg").is_file()
    assert (out / "figures" / "footfall-heatmap.png").is_file()
    assert "frontier-fake_attack.png" in printed
    assert main(["experiment", "plot", str(fakes / "nothing")]) == 2
    assert "has no results.parquet" in capsys.readouterr().err
    assert main(["experiment", "run", str(fakes / "nope.toml"), "--out", str(out)]) == 2
    assert "spec file" in capsys.readouterr().err


def test_coarse_release_is_spread_over_cells():
    cells = pd.DataFrame({"cell_id": [0, 1, 2], "zone_id": [0, 0, 1]})
    released = pd.DataFrame({"zone_id": [0, 1], "hour": [7, 7], "value": [10.0, 4.0]})
    truth = pd.DataFrame({"cell_id": [0, 1, 2], "hour": [7, 7, 7], "value": [6.0, 4.0, 4.0]})
    out, note = project_to_truth(released, ["zone_id", "hour"], truth, ["cell_id", "hour"], cells)
    assert out.sort_values("cell_id")["value"].tolist() == [5.0, 5.0, 4.0]
    assert note == "zone_id values spread evenly over each zone's cells"
    # a 2h release onto a 1h truth: presence repeated, additive counts divided
    hours = pd.date_range("2026-01-05", periods=4, freq="1h")
    truth_t = pd.DataFrame({"cell_id": [0] * 4 + [1] * 4, "time": list(hours) * 2, "value": np.arange(8.0)})
    rel_t = pd.DataFrame({"zone_id": [0, 0], "time": hours[[0, 2]], "value": [8.0, 4.0]})
    out, note = project_to_truth(rel_t, ["zone_id", "time"], truth_t, ["cell_id", "time"], cells)
    assert out["value"].tolist() == [4.0, 4.0, 2.0, 2.0] * 2
    assert note == ("zone_id values spread evenly over each zone's cells; "
                    "0 days 02:00:00 values repeated for each 0 days 01:00:00 bin")
    out, _ = project_to_truth(rel_t, ["zone_id", "time"], truth_t, ["cell_id", "time"], cells, additive_in_time=True)
    assert out["value"].tolist() == [2.0, 2.0, 1.0, 1.0] * 2
    with pytest.raises(PrivaggError, match=r"the release has keys \['day'\] but the true table has"):
        project_to_truth(released.rename(columns={"zone_id": "day"}), ["day"], truth, ["cell_id", "hour"], cells)


KILL_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import tests.test_harness_runner as t
from privagg.harness import registry
from privagg.harness.runner import run_experiment
from privagg.harness.spec import FAMILY_PARAMETERS, parse_spec
registry.HOOKS.update(world=t.tiny_world, query=t.fake_query, truth=t.fake_truth)
registry.ANONYMISERS["fake"] = t.FakeAnonymiser
FAMILY_PARAMETERS["fake"] = ("scale", "fail")
registry.register_attack("fake_attack", t.fake_attack)
registry.register_attack("picky_attack", t.picky_attack)
t.CALLS["path"] = {calls!r}
run_experiment(parse_spec(t.SPEC, {spec!r}), {out!r}, max_workers=2, progress=False)
"""


def test_run_killed_mid_way_resumes(fakes):
    """Kill a real run (SIGKILL to its process group) after a few cells, then finish it."""
    out = fakes / "exp"
    script = fakes / "run.py"
    script.write_text(KILL_SCRIPT.format(root=str(Path(__file__).parent.parent), calls=str(fakes / "calls.txt"),
                                         spec=str(fakes / "fake.toml"), out=str(out)))
    env = {**os.environ, "PRIVAGG_TEST_SLOW": "0.4", "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    def finished_cells() -> set[str]:
        return {p.stem for p in (out / "cells").glob("*.parquet") if not p.name.startswith(".")}

    while time.monotonic() < deadline and len(finished_cells()) < 4 and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = finished_cells()
    assert 4 <= len(done) < 18, "the run finished before it could be killed"
    assert not (out / "results.parquet").exists()
    started_before = len(calls(fakes))
    summary = run_experiment(parse_spec(SPEC, fakes / "fake.toml"), out, max_workers=2, progress=False)
    assert summary.n_reused >= len(done) and summary.n_run == 18 - summary.n_reused
    # only the missing cells were computed again
    assert len(calls(fakes)) - started_before == summary.n_run
    assert len(pd.read_parquet(out / "results.parquet")["cell"].unique()) == 18
    assert not list((out / "cells").glob(".*"))
