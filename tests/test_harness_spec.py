"""Experiment specs: parsing, grid expansion, and the messages a user sees for mistakes."""

from pathlib import Path

import pytest

from privagg import PrivaggInputError
from privagg.harness.runner import expand
from privagg.harness.spec import load_spec, parse_spec

GOOD = """\
name = "demo"
repetitions = 2
seed = 7
metrics = ["mae", "mean_relative_error"]

[metric_options.mean_relative_error]
floor = 10

[world]
n_users = 100
n_cells = 10
days = 2
seed = 1

[[statistics]]
statistic = "footfall"
level = "cell"
time_bin = "1h"

[[anonymisers]]
family = "raw"

[[anonymisers]]
family = "suppression"
k = [5, 10]

[[anonymisers]]
family = "dp"
epsilon = [0.1, 1.0, 10.0]
max_partitions = 24

[[attacks]]
name = "membership"
applies_to = ["raw", "dp"]
[attacks.params]
group_size = 50
"""


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_good_spec_parses_and_expands(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.name == "demo"
    assert spec.seeds == (7, 8)
    assert spec.primary_metric == "mean_relative_error"
    assert spec.metric_options == {"mean_relative_error": {"floor": 10}}
    assert [a.family for a in spec.anonymisers] == ["raw", "suppression", "dp"]
    assert spec.anonymisers[2].expand() == [
        {"max_partitions": 24, "epsilon": 0.1}, {"max_partitions": 24, "epsilon": 1.0},
        {"max_partitions": 24, "epsilon": 10.0},
    ]
    cells = expand(spec)
    # 6 configurations x 2 repetitions utility cells; membership on raw (1) + dp (3) x 2 repetitions
    assert sum(c.attack is None for c in cells) == 12
    assert sum(c.attack is not None for c in cells) == 8
    assert len({c.hash for c in cells}) == 20
    assert {c.config for c in cells if c.family == "dp"} == {
        "dp max_partitions=24 epsilon=0.1", "dp max_partitions=24 epsilon=1", "dp max_partitions=24 epsilon=10"}


def test_hash_ignores_comments_but_not_values(tmp_path):
    a = parse_spec(GOOD)
    b = parse_spec("# a comment\n" + GOOD)
    c = parse_spec(GOOD.replace("k = [5, 10]", "k = [5, 20]"))
    assert a.hash == b.hash != c.hash


def error_for(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(PrivaggInputError) as info:
        load_spec(path)
    return str(info.value), str(path)


def test_typo_in_anonymiser_parameter_names_file_line_key_and_fix(tmp_path):
    msg, path = error_for(tmp_path, GOOD.replace("epsilon = [0.1", "epsilom = [0.1"))
    line = GOOD.splitlines().index("epsilon = [0.1, 1.0, 10.0]") + 1
    assert msg == (
        f"{path}, line {line}: [[anonymisers]] #3 (family 'dp'): unknown key 'epsilom'. "
        "Fix: did you mean 'epsilon'? Family 'dp' accepts epsilon, rho, delta, unit, max_partitions, "
        "max_per_partition, lower, upper, public_keys, ci_level."
    )


def test_typo_at_top_level(tmp_path):
    msg, path = error_for(tmp_path, GOOD.replace("repetitions = 2", "repetition = 2"))
    assert msg.startswith(f"{path}, line 2: top level: unknown key 'repetition'. Fix: did you mean 'repetitions'?")


def test_unknown_family_and_bad_values(tmp_path):
    msg, _ = error_for(tmp_path, GOOD.replace('family = "suppression"', 'family = "supression"'))
    assert "line 24: [[anonymisers]] #2: family = 'supression' is not a known anonymiser family. " \
           "Fix: did you mean 'suppression'?" in msg
    msg, _ = error_for(tmp_path, GOOD.replace("epsilon = [0.1, 1.0, 10.0]", "epsilon = [0.1, -1]"))
    assert "epsilon = -1 must be a positive finite number. Fix: e.g. epsilon = [0.1, 1, 10]." in msg
    msg, _ = error_for(tmp_path, GOOD.replace("k = [5, 10]", "k = [5, 2.5]"))
    assert "'k' = 2.5 is not an integer >= 1. Fix: set k to a whole number of at least 1." in msg
    msg, _ = error_for(tmp_path, GOOD.replace('level = "cell"', 'level = "cel"'))
    assert "[[statistics]] #1: level = 'cel' is not an area level. Fix: did you mean 'cell'?" in msg
    msg, _ = error_for(tmp_path, GOOD.replace('time_bin = "1h"', 'time_bin = "hourly"'))
    assert ("time_bin = 'hourly' is not a supported time bin. Fix: use a duration from 15 minutes to 1 day that "
            "divides a day, like \"15min\", \"1h\" or \"1D\" (or \"none\").") in msg
    msg, _ = error_for(tmp_path, GOOD.replace('time_bin = "1h"', 'time_bin = "7h"'))
    assert "time_bin = '7h' is not a supported time bin" in msg


def test_attack_metric_and_seed_mistakes(tmp_path):
    msg, _ = error_for(tmp_path, GOOD.replace('name = "membership"', 'name = "membershp"'))
    assert "[[attacks]] #1: name = 'membershp' is not a known attack. Fix: did you mean 'membership_inference'?" in msg
    msg, _ = error_for(tmp_path, GOOD.replace('"mae", "mean_relative_error"', '"mae", "mre"'))
    assert "line 4: top level: metric 'mre' is not known." in msg
    msg, _ = error_for(tmp_path, GOOD.replace("repetitions = 2", "repetitions = 2\nseeds = [1, 2, 3]"))
    assert "repetitions = 2 but 3 seeds are listed. Fix: drop repetitions" in msg
    msg, _ = error_for(tmp_path, GOOD.replace('applies_to = ["raw", "dp"]', 'applies_to = ["raw", "dpp"]'))
    assert "applies_to names unknown family ['dpp']" in msg


def test_world_mistakes(tmp_path):
    msg, path = error_for(tmp_path, GOOD.replace("n_users = 100\n", ""))
    assert msg.startswith(f"{path}, line 9: [world]: has no 'n_users'. Fix: give n_users, n_cells and days")
    msg, _ = error_for(tmp_path, GOOD.replace("days = 2", 'days = 2\ndata = "nowhere"'))
    assert "[world]: sets both 'data' and ['n_users', 'n_cells', 'days']" in msg
    no_world = GOOD.split("[world]")[0] + "[[statistics]]" + GOOD.split("[[statistics]]")[1]
    msg, path = error_for(tmp_path, no_world)
    assert msg == f"{path}: missing 'world'. Fix: add a [world] table with n_users, n_cells, days and seed (or data = \"DIR\")."


def test_data_path_is_relative_to_the_spec(tmp_path):
    (tmp_path / "tables").mkdir()
    text = GOOD.replace("n_users = 100\nn_cells = 10\ndays = 2\n", 'data = "tables"\n')
    spec = load_spec(write(tmp_path, text))
    assert spec.world.data == str((tmp_path / "tables").resolve())
    msg, _ = error_for(tmp_path, text.replace('"tables"', '"missing"'))
    assert "data directory" in msg and "does not exist" in msg


def test_invalid_toml_and_missing_file(tmp_path):
    msg, path = error_for(tmp_path, GOOD.replace('name = "demo"', "name = demo"))
    assert msg.startswith(f"{path}: not valid TOML (") and "line 1" in msg and msg.endswith(
        "Fix: correct the syntax at that line.")
    with pytest.raises(PrivaggInputError, match=r"spec file '.*nope.toml' does not exist. Fix: check the path"):
        load_spec(tmp_path / "nope.toml")


def test_frontier_spec_is_valid():
    spec = load_spec(Path(__file__).resolve().parents[1] / "experiments" / "frontier.toml")
    families = {a.family for a in spec.anonymisers}
    assert {"raw", "suppression", "coarsening", "dp"} <= families
    assert spec.repetitions == 3
