"""privagg audit: an end-to-end audit of a tiny world writes the report, atomically."""

import json

import pytest

import privagg.claim_audit.audit as audit_module
from privagg import PrivaggInputError
from privagg.attacks import run_attack
from privagg.cli import main
from privagg.claim_audit import audit_claim, parse_claim
from privagg.claim_audit.equivalent import UTILITY_METRICS

TINY = """\
name = "tiny_k5"
description = "Hourly footfall per cell, counts below 5 suppressed."
seed = 3

[data]
n_users = 300
n_cells = 30
days = 2
seed = 1

[release]
statistic = "footfall"
level = "cell"
time_bin = "1h"
crossbreaks = [["age_band", "gender"], ["age_band", "contract"]]
crossbreak_level = "zone"
crossbreak_time_bin = "1D"

[method]
family = "suppression"
k = 5

[attacks.unicity]
targets = 50
[attacks.trajectory_recovery]
days = 1
bootstrap = 50
[attacks.membership]
group_size = 20
targets = 1
n_train = 20
n_test = 10
[attacks.reconstruction]
bootstrap = 50
[attacks.differencing]
trials = 5

[comparison]
epsilons = [0.5, 5, 50]
"""

ATTACK_KEYS = ("attack", "target", "risk", "ci_low", "ci_high", "baseline", "verdict", "severity")


@pytest.fixture(scope="module")
def world(small_city):
    return small_city


@pytest.fixture(scope="module")
def audited(tmp_path_factory, world):
    out = tmp_path_factory.mktemp("audit")
    claim_path = out.parent / "tiny_k5.toml"
    claim_path.write_text(TINY)
    outcome = audit_claim(claim_path, out, progress=None, world=world)
    return out, outcome


def test_report_files_and_structure(audited):
    out, outcome = audited
    assert outcome.html == out / "report.html" and outcome.json == out / "report.json"
    names = sorted(p.name for p in out.iterdir())
    assert {"report.html", "report.json", "release.parquet", "dp_equivalent.parquet", "crossbreak_1.parquet",
            "crossbreak_2.parquet"} <= set(names)
    assert not [n for n in names if n.startswith(".")], "staging files left behind"
    doc = json.loads((out / "report.json").read_text())
    assert doc["claim"]["name"] == "tiny_k5" and doc["claim"]["method"] == "counts below 5 suppressed"
    attacks = {a["attack"] for a in doc["attacks"]}
    assert {"trajectory_recovery", "differencing", "reconstruction", "membership_inference"} <= attacks
    for a in doc["attacks"]:
        for key in ATTACK_KEYS:
            assert a.get(key) is not None, (a["attack"], key)
        assert 0.0 <= a["ci_low"] <= a["risk"] <= a["ci_high"] <= 1.0
        comp = a["dp_comparison"]
        for key in ("risk", "ci_low", "ci_high", "baseline", "epsilon"):
            assert comp[key] is not None
        assert comp["epsilon"] in (0.5, 5, 50)
    assert doc["verdict"]["severity"] in ("high", "moderate", "low", "none")
    util = doc["utility"]
    assert set(util["metrics"]) == set(UTILITY_METRICS)
    assert util["dp_equivalent"]["epsilon"] in (0.5, 5, 50)
    assert any("Reference, not an attack on this release" in n for n in doc["notes"])
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3 and "http://" not in html.replace("http://www.w3.org", "")


def test_labels_match_the_release_records(audited):
    """The audit names each attacked release by the label its own record prints (one way everywhere)."""
    from privagg import Release

    out, _ = audited
    doc = json.loads((out / "report.json").read_text())
    claimed = Release.read(out / "release.parquet").privacy
    equivalent = Release.read(out / "dp_equivalent.parquet").privacy
    assert claimed.label() == "suppression (k=5)"
    assert equivalent.label() == f"DP, epsilon {equivalent.epsilon:g} per subscriber-day"
    assert equivalent.unit["period"] == "day" and equivalent.unit["periods"] == 2
    for a in doc["attacks"]:
        assert a["target"].startswith(f"{claimed.label()} (the claim)"), a["target"]
        assert a["dp_comparison"]["target"].startswith(f"{equivalent.label()}, as accurate as the claim")
    assert doc["utility"]["dp_equivalent"]["privacy"] == equivalent.describe()


def test_differencing_succeeds_against_suppression(audited):
    _, outcome = audited
    diff = next(r for r in outcome.results if r["attack"] == "differencing")
    assert diff["risk"] >= 0.8  # exact counts above k: subtraction reveals the target


def test_failed_audit_leaves_no_files(tmp_path, world, monkeypatch):
    claim = parse_claim(TINY, tmp_path / "c.toml")

    def boom(*args, **kwargs):
        raise RuntimeError("attack crashed")

    monkeypatch.setattr(audit_module, "run_attack", boom)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="attack crashed"):
        audit_claim(claim, out, progress=None, world=world)
    assert not out.exists(), "a failed audit must write nothing"
    assert list(tmp_path.glob(".out.*")) == [], "staging folder left behind"


def test_dp_claim_is_checked_against_its_bound(tmp_path, world):
    text = TINY.replace('family = "suppression"\nk = 5', 'family = "dp"\nepsilon = 1').replace(
        "crossbreaks = [[\"age_band\", \"gender\"], [\"age_band\", \"contract\"]]\ncrossbreak_level = \"zone\"\n"
        "crossbreak_time_bin = \"1D\"\n", "")
    claim = parse_claim(text, tmp_path / "dp.toml")
    outcome = audit_claim(claim, tmp_path / "dp", progress=None, world=world)
    doc = json.loads(outcome.json.read_text())
    diff = next(a for a in doc["attacks"] if a["attack"] == "differencing")
    assert diff["dp_bound"] == pytest.approx(2.718281828459045 / (1 + 2.718281828459045))
    assert all("dp_comparison" not in a for a in doc["attacks"])
    assert any("itself differentially private" in n for n in doc["notes"])


def test_per_day_dp_release_covers_every_day(world):
    from privagg.anonymisers.factory import make_anonymiser
    from privagg.queries import Query

    rel = make_anonymiser("dp", {"epsilon": 1.0, "unit": "subscriber-day"}).release(
        world, Query("footfall", level="zone", time_bin="6h"))
    table = rel.to_pandas()
    assert table["time"].nunique() == 8 and len(table) == 8 * world.cells["zone_id"].nunique()
    assert rel.privacy.epsilon == 1.0 and "per day" in rel.privacy.privacy_unit
    assert rel.privacy.unit["period"] == "day" and rel.privacy.unit["periods"] == 2


def test_cli_rejects_bad_claim(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace("k = 5", "k = 5\nepsilon = 1"))
    assert main(["audit", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"privagg audit: error: {bad}, line 22: [method] (family = \"suppression\"): unknown key 'epsilon'.")
    assert not (tmp_path / "out").exists()


def test_missing_data_directory_is_an_input_error(tmp_path):
    text = TINY.replace("n_users = 300\nn_cells = 30\ndays = 2\n", 'path = "tables"\n')
    with pytest.raises(PrivaggInputError, match="data directory .*tables' does not exist"):
        parse_claim(text, tmp_path / "c.toml")


@pytest.mark.parametrize("level", ["cell", "zone"])
def test_reconstruction_from_crossbreaks_by_home_area(world, level):
    from privagg.anonymisers.factory import make_anonymiser
    from privagg.attacks import NotApplicable
    from privagg.queries import Query

    q = Query("segment_counts", level=level, time_bin="1D", by=("age_band", "gender"))
    raw = make_anonymiser("raw")
    res = run_attack("reconstruction", world, raw, q, seed=0, label="raw",
                     settings={"bootstrap": 50, "crossbreaks": [("age_band", "gender"), ("age_band", "contract")]})
    assert res.attack == "reconstruction" and f"home {level} x age_band x gender" in res.target
    assert 0.0 <= res.ci_low <= res.risk <= res.ci_high <= 1.0
    with pytest.raises(NotApplicable):
        run_attack("reconstruction", world, raw, q, settings={"bootstrap": 50, "crossbreaks": [("device_tier",)]})


def test_pseudonymised_microdata_is_attacked_by_unicity(tmp_path, world):
    text = TINY.replace('family = "suppression"\nk = 5', 'family = "pseudonymised"')
    outcome = audit_claim(parse_claim(text, tmp_path / "p.toml"), tmp_path / "p", progress=None, world=world)
    doc = json.loads(outcome.json.read_text())
    assert [a["attack"] for a in doc["attacks"]] == ["unicity"]
    assert doc["attacks"][0]["risk"] > 0.5 and doc["verdict"]["severity"] == "high"
    assert any("no aggregate counterpart" in n for n in doc["notes"])
