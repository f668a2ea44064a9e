"""The ``privagg synth`` and ``privagg demo`` commands, run in-process."""

import pandas as pd
import pytest

from privagg.cli import main
from privagg.world import World


def test_synth_writes_a_loadable_world(tmp_path, capsys):
    out = tmp_path / "w"
    code = main(["synth", "--users", "300", "--cells", "40", "--days", "2", "--seed", "3", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "users      300" in printed
    assert f"written to {out}" in printed
    for name in ("cells", "users", "events", "stays", "trips", "edges"):
        assert (out / f"{name}.parquet").exists()
    world = World.load(out)
    assert len(world.users) == 300 and len(world.cells) == 40
    assert world.meta["seed"] == 3 and world.meta["days"] == 2
    assert world.end - world.start == pd.Timedelta(days=2)


def test_synth_is_deterministic_per_seed(tmp_path):
    for name in ("a", "b"):
        main(["synth", "--users", "200", "--cells", "30", "--days", "1", "--seed", "5", "--out", str(tmp_path / name)])
    a, b = World.load(tmp_path / "a"), World.load(tmp_path / "b")
    pd.testing.assert_frame_equal(a.events, b.events)


def test_synth_with_a_stadium_event(tmp_path, capsys):
    out = tmp_path / "w"
    assert main(["synth", "--users", "400", "--cells", "40", "--days", "2", "--stadium-event", "1", "--out", str(out)]) == 0
    assert World.load(out).meta["stadium_event"]["day"] == 1


def test_synth_bad_parameter_is_one_line_error(tmp_path, capsys):
    code = main(["synth", "--users", "100", "--cells", "5", "--out", str(tmp_path / "w")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("privagg synth: error: n_cells=5: expected an integer >= 20")
    assert "Traceback" not in err
    assert not (tmp_path / "w").exists()


def test_synth_needs_out(capsys):
    with pytest.raises(SystemExit):
        main(["synth", "--users", "10"])
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["synth", "demo"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"usage: privagg {command}" in capsys.readouterr().out


TINY_DEMO = ["--users", "250", "--cells", "25", "--days", "1"]


def test_demo_writes_the_report_and_says_where(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *TINY_DEMO]) == 0
    printed = capsys.readouterr().out
    report = out / "report.html"
    assert report.exists() and (out / "report.json").exists()
    assert str(report.resolve()) in printed


def test_demo_default_output_is_privagg_demo_in_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", *TINY_DEMO]) == 0
    assert (tmp_path / "privagg-demo" / "report.html").exists()
