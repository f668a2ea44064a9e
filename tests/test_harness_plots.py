"""Figures: frontier with bands and DP bound, error against epsilon, maps; the DP bounds themselves."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from privagg import PrivaggInputError  # noqa: E402
from privagg.harness import plots  # noqa: E402
from privagg.harness.store import tidy  # noqa: E402


def results_table() -> pd.DataFrame:
    rows = []
    configs = [("raw", {}, 0.0, 0.95), ("suppression", {"k": 10}, 0.3, 0.9)] + [
        ("dp", {"epsilon": e}, 1.0 / e, 0.5 + 0.4 * (1 - math.exp(-e))) for e in (0.1, 1.0, 10.0)]
    for family, params, err, risk in configs:
        config = f"{family} " + " ".join(f"{k}={v}" for k, v in params.items())
        for rep in range(2):
            base = {"cell": f"{config}{rep}", "statistic": "footfall cell x 1h", "family": family, "config": config,
                    "params": json.dumps(params, separators=(",", ":")), "epsilon": params.get("epsilon"),
                    "repetition": rep, "status": "ok"}
            rows.append({**base, "kind": "utility", "metric": "mean_relative_error", "value": err + 0.01 * rep})
            rows.append({**base, "kind": "risk", "attack": "membership_inference", "metric": "risk", "value": risk,
                         "ci_low": risk - 0.04, "ci_high": min(1, risk + 0.04), "baseline": 0.5})
    return tidy(rows)


def test_dp_bounds():
    auc = plots.DP_BOUNDS[("membership_inference", "risk")]
    assert auc(0.0, 0.0) == pytest.approx(0.5, abs=1e-3)
    assert auc(1.0, 0.0) < auc(3.0, 0.0) < auc(10.0, 0.0) <= 1.0
    # closed form of the area under min(e^eps x, 1 - e^-eps (1 - x)): 1/2 + (e^eps - 1)/(2 (e^eps + 1))
    e = math.e
    assert auc(1.0, 0.0) == pytest.approx(0.5 + (e - 1) / (2 * (e + 1)), abs=1e-4)
    assert plots.DP_BOUNDS[("differencing", "risk")](1.0, 0.0) == pytest.approx(e / (1 + e))
    assert plots.DP_BOUNDS[("membership_inference", "tpr_at_0.01_fpr")](1.0, 1e-6) == pytest.approx(0.01 * e + 1e-6)


def test_frontier_table_and_figure():
    df = results_table()
    table = plots.frontier_table(df, "membership_inference", "mean_relative_error")
    assert len(table) == 5
    dp1 = table[table["config"] == "dp epsilon=1.0"].iloc[0]
    assert dp1["utility"] == pytest.approx(1.005) and dp1["risk"] == pytest.approx(0.5 + 0.4 * (1 - math.exp(-1)))
    fig = plots.frontier_figure(df, "membership_inference")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "user-level DP (epsilon)" in labels and "random guess (baseline)" in labels
    assert "DP guarantee: highest possible risk" in labels
    assert len(ax.collections) >= 1  # the DP confidence band
    plt.close(fig)


def test_error_vs_epsilon_and_save(tmp_path):
    fig = plots.error_vs_epsilon_figure(results_table())
    assert fig.axes[0].get_xscale() == "log"
    paths = plots.save_figure(fig, tmp_path, "err")
    assert [p.name for p in paths] == ["err.png", "err.svg"]
    assert paths[0].read_bytes().startswith(b"\x89PNG") and b"<svg" in paths[1].read_bytes()[:500]


def test_maps():
    cells = pd.DataFrame({"cell_id": range(9), "zone_id": [0, 0, 0, 1, 1, 1, 2, 2, 2],
                          "x": np.tile([0.0, 500, 1000], 3), "y": np.repeat([0.0, 500, 1000], 3)})
    truth = pd.DataFrame({"cell_id": np.repeat(range(9), 2), "hour": np.tile([8, 9], 9),
                          "value": np.arange(18, dtype=float)})
    released = truth.assign(value=np.where(truth["value"] < 5, np.nan, truth["value"]))
    fig = plots.footfall_map_figure(cells, {"true": truth, "k=5": released})
    assert [a.get_title() for a in fig.axes[:2]] == ["true", "k=5"]
    plt.close(fig)
    flows = pd.DataFrame({"origin_zone": [0, 0, 1, 2], "destination_zone": [1, 2, 2, 2], "value": [10.0, 3, 5, 9]})
    fig = plots.od_flow_map_figure(cells, flows)
    assert "the 3 largest flows" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(PrivaggInputError, match="flows have no origin/destination columns"):
        plots.od_flow_map_figure(cells, truth)
    with pytest.raises(PrivaggInputError, match="table 'x' has no area column"):
        plots.footfall_map_figure(cells, {"x": flows})


def test_trajectory_frontier_draws_the_stay_put_yardstick():
    df = results_table()
    df = df.assign(attack=df["attack"].replace("membership_inference", "trajectory_recovery"))
    extra = df[df["kind"] == "risk"].assign(metric="stay_put_accuracy", value=0.6, ci_low=np.nan, ci_high=np.nan)
    df = pd.concat([df, extra], ignore_index=True)
    table = plots.frontier_table(df, "trajectory_recovery", "mean_relative_error")
    assert (table["yardstick"] == 0.6).all()
    fig = plots.frontier_figure(df, "trajectory_recovery")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "staying put at the night cell (no linking)" in labels
    plt.close(fig)
    assert plots.frontier_table(results_table(), "membership_inference", "mean_relative_error")["yardstick"].isna().all()
