"""The demo at a tiny size: releases, ledgers, attacks and the report, written atomically."""

import json

import pandas as pd
import pytest

from privagg import Release
from privagg.demo import run_demo

SMALL_ATTACKS = {
    "footfall": {
        "differencing": {"trials": 5, "days": 1},
        "membership_inference": {"group_size": 50, "targets": 1, "n_train": 20, "n_test": 20, "days": 1,
                                 "bootstrap": 50},
    },
    "segments": {"reconstruction": {"bootstrap": 50}},
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    report = run_demo(out, n_users=250, n_cells=25, days=1, attacks=SMALL_ATTACKS, progress=lines.append)
    return out, report, lines


def test_report_and_releases(demo):
    out, report, lines = demo
    assert report == out / "report.html" and report.exists() and (out / "report.json").exists()
    assert lines[-1].startswith("done in ") and str(report.resolve()) in lines[-1]
    releases = sorted(p.name for p in (out / "releases").glob("*.parquet"))
    assert len(releases) == 9  # 3 products x (suppression + 2 DP levels)
    assert "footfall_suppression.parquet" in releases and "segments_dp_epsilon_4.parquet" in releases
    table = pd.read_parquet(out / "releases" / "od_flows_dp_epsilon_1.parquet")
    assert {"origin_zone", "destination_zone", "time", "value", "ci_low", "ci_high"} <= set(table.columns)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_budget_ledgers_spend_exactly_the_budget(demo):
    out, _, _ = demo
    from privagg import Budget

    for eps in (1, 4):
        budget = Budget.load(out / f"budget_dp_epsilon_{eps:g}.sqlite")
        assert len(budget.entries) == 3  # three products, each charged once for its window
        assert budget.spent["epsilon"] == pytest.approx(eps)


def test_labels_match_the_release_records(demo):
    """Every label the report shows for a release is printed from that release's own record."""
    out, _, _ = demo
    doc = json.loads((out / "report.json").read_text())
    footfall = {m: Release.read(out / "releases" / f"footfall_{m}.parquet")
                for m in ("suppression", "dp_epsilon_1", "dp_epsilon_4")}
    # Footfall gets half of each level: the record says 0.5 (and 2) per subscriber-day, and so do the labels.
    assert footfall["dp_epsilon_1"].privacy.label() == "DP, epsilon 0.5 per subscriber-day"
    assert footfall["dp_epsilon_4"].privacy.label() == "DP, epsilon 2 per subscriber-day"
    for release in footfall.values():
        label = release.privacy.label()
        attacked = [a for a in doc["attacks"] if a["target"].startswith(f"footfall per zone per 1h, {label}")]
        assert len(attacked) == 2, label
        assert f"footfall: {label}" in doc["utility"]["metrics"]
    described = set(doc["claim"]["releases"].values())
    assert footfall["dp_epsilon_1"].privacy.describe() in described


def test_report_content(demo):
    out, _, _ = demo
    doc = json.loads((out / "report.json").read_text())
    attacks = [a["attack"] for a in doc["attacks"]]
    assert attacks.count("differencing") == 3 and attacks.count("membership_inference") == 3
    assert attacks.count("reconstruction") == 3
    for a in doc["attacks"]:
        for key in ("risk", "ci_low", "ci_high", "baseline", "verdict"):
            assert a[key] is not None
    assert len(doc["utility"]["metrics"]) == 9
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
