"""The demo at a tiny size: releases, ledgers, attacks and the report, written atomically."""

import json

import pandas as pd
import pytest

from privagg.demo import run_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    report = run_demo(out, n_users=250, n_cells=25, days=1, differencing_trials=4, membership_targets=1,
                      progress=lines.append)
    return out, report, lines


def test_report_and_releases(demo):
    out, report, lines = demo
    assert report == out / "report.html" and report.exists() and (out / "report.json").exists()
    assert lines[-1].startswith("done in ") and str(report.resolve()) in lines[-1]
    releases = sorted(p.name for p in (out / "releases").glob("*.parquet"))
    assert len(releases) == 9  # 3 products x (suppression + 2 DP levels)
    assert "footfall_suppression.parquet" in releases and "segments_dp_epsilon_4.parquet" in releases
    table = pd.read_parquet(out / "releases" / "od_flows_dp_epsilon_0.5.parquet")
    assert {"origin_zone", "destination_zone", "time", "value", "ci_low", "ci_high"} <= set(table.columns)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_budget_ledgers_spend_exactly_the_budget(demo):
    out, _, _ = demo
    for eps in (0.5, 4):
        ledger = json.loads((out / f"budget_epsilon_{eps:g}.json").read_text())
        assert len(ledger["entries"]) == 3  # three products, one day
        spent = sum(e["loss"]["epsilon"] for e in ledger["entries"])
        assert spent == pytest.approx(eps)


def test_report_content(demo):
    out, _, _ = demo
    doc = json.loads((out / "report.json").read_text())
    attacks = [a["attack"] for a in doc["attacks"]]
    assert attacks.count("trajectory_recovery") == 3 and attacks.count("differencing") == 3
    for a in doc["attacks"]:
        for key in ("risk", "ci_low", "ci_high", "baseline", "verdict"):
            assert a[key] is not None
    assert len(doc["utility"]["metrics"]) == 9
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
