"""The harness on the real library: a tiny synthetic world, real anonymisers and attacks, two workers."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from privagg.harness.runner import run_experiment
from privagg.harness.spec import parse_spec

SPEC = """\
name = "tiny-real"
repetitions = 1
seed = 5
metrics = ["mean_relative_error", "mae", "false_negative_keys"]

[world]
n_users = 120
n_cells = 20
days = 1
seed = 3

[[statistics]]
statistic = "footfall"
level = "cell"
time_bin = "1h"

[[anonymisers]]
family = "raw"

[[anonymisers]]
family = "suppression"
k = [5]

[[anonymisers]]
family = "coarsening"
level = "zone"

[[anonymisers]]
family = "pseudonymised"

[[anonymisers]]
family = "dp"
epsilon = [1.0]
max_partitions = 24

[[attacks]]
name = "trajectory_recovery"
applies_to = ["raw", "suppression"]

[[attacks]]
name = "unicity"
applies_to = ["pseudonymised", "raw"]
[attacks.params]
points = 2
"""


def test_tiny_real_experiment(tmp_path):
    pytest.importorskip("privagg.synth")
    summary = run_experiment(parse_spec(SPEC, tmp_path / "tiny.toml"), tmp_path / "out", max_workers=2, progress=False)
    df = pd.read_parquet(tmp_path / "out" / "results.parquet")
    mre = df[(df.kind == "utility") & (df.metric == "mean_relative_error")].set_index("config")["value"]
    assert mre["raw"] == 0.0
    assert 0.0 < mre["suppression k=5"] < mre["dp max_partitions=24 epsilon=1"]
    assert mre["coarsening level=zone"] > 0.0
    risk = df[(df.metric == "risk") & (df.status == "ok")].set_index(["attack", "config"])
    assert risk.loc[("trajectory_recovery", "raw"), "value"] > risk.loc[("trajectory_recovery", "raw"), "baseline"]
    assert 0.0 <= risk.loc[("unicity", "pseudonymised"), "value"] <= 1.0
    # unicity does not apply to an aggregate release: recorded, not failed
    assert df[(df.attack == "unicity") & (df.config == "raw")]["status"].tolist() == ["not_applicable"]
    dp_eps = df[(df.kind == "privacy") & (df.metric == "epsilon_spent")].set_index("config")["value"]
    assert dp_eps["dp max_partitions=24 epsilon=1"] == 1.0
    assert summary.n_cells == 9
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["n_cells_failed"] == 0
