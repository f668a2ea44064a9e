"""The one attack runner: its settings, when an attack applies, and that every route goes through it."""

from __future__ import annotations

import pytest

from privagg import PrivaggInputError, Query
from privagg.anonymisers.factory import make_anonymiser
from privagg.attacks import runner
from privagg.attacks.result import AttackResult
from privagg.attacks.runner import NotApplicable, attack_settings, canonical_attack, run_attack

HOURLY = Query("footfall", level="zone", time_bin="1h")


def test_settings_are_completed_checked_and_named_one_way():
    assert canonical_attack("membership") == "membership_inference"
    s = attack_settings("membership", {"n_bootstrap": 60, "group_size": 50})
    assert s["bootstrap"] == 60 and s["group_size"] == 50 and s["targets"] == 3
    with pytest.raises(PrivaggInputError, match=r"attack 'differencing' has no setting 'trails'. Fix: use trials, days"):
        attack_settings("differencing", {"trails": 10})
    with pytest.raises(PrivaggInputError, match=r"trials = 2 is not a whole number >= 5. Fix: e.g. trials = 40"):
        attack_settings("differencing", {"trials": 2})
    with pytest.raises(PrivaggInputError, match=r"attack 'knock' is unknown. Fix: use one of unicity, "):
        canonical_attack("knock")


def test_attacks_say_when_they_do_not_apply(small_city):
    raw = make_anonymiser("raw")
    with pytest.raises(NotApplicable, match="unicity needs pseudonymised microdata"):
        run_attack("unicity", small_city, raw, HOURLY)
    with pytest.raises(NotApplicable, match="membership inference needs hourly footfall"):
        run_attack("membership_inference", small_city, raw, Query("footfall", level="zone", time_bin="3h"))
    with pytest.raises(NotApplicable, match="trajectory recovery needs a footfall release"):
        run_attack("trajectory_recovery", small_city, raw, Query("od_flows", level="zone", time_bin="1D"))


def test_coarsened_releases_are_attacked_at_their_published_level(small_city):
    """Coarsening publishes districts: membership inference plays its game on district counts."""
    coarse = make_anonymiser("coarsening", {"level": "district"})
    result = run_attack("membership_inference", small_city, coarse, HOURLY, seed=0, label="coarse",
                        settings={"group_size": 50, "targets": 1, "n_train": 20, "n_test": 20, "bootstrap": 50})
    assert result.attack == "membership_inference" and result.target.startswith("coarse (groups of 50")
    assert 0.0 <= result.ci_low <= result.risk <= result.ci_high <= 1.0


@pytest.fixture
def recorded(monkeypatch):
    """Replace the differencing runner by a recorder: every route that reaches it is seen."""
    calls = []

    def fake(world, anonymiser, query, published, release, settings, seed, label):
        calls.append((type(anonymiser).__name__, query.statistic, label))
        return AttackResult("differencing", label, 0.5, 0.4, 0.6, 0.5, 10, "recorded")

    monkeypatch.setitem(runner._RUNNERS, "differencing", fake)
    return calls


def test_harness_audit_and_demo_go_through_the_one_runner(recorded, small_city, tmp_path):
    from privagg.claim_audit import audit_claim, parse_claim
    from privagg.demo import run_demo
    from privagg.harness import registry

    ctx = registry.AttackContext(world=small_city, query=HOURLY, statistic=None, family="raw", params={},
                                 anonymiser=make_anonymiser("raw"), release=None, truth=None, seed=0)
    registry.attack_runner("differencing")(ctx)
    claim = parse_claim('name = "c"\n[data]\nn_users = 300\nn_cells = 30\ndays = 2\nseed = 1\n'
                        '[release]\nstatistic = "footfall"\nlevel = "zone"\ntime_bin = "1h"\n'
                        '[method]\nfamily = "suppression"\nk = 5\n[attacks]\nrun = ["differencing"]\n'
                        '[comparison]\nenabled = false\n', tmp_path / "c.toml")
    audit_claim(claim, tmp_path / "audit", progress=None, world=small_city)
    run_demo(tmp_path / "demo", n_users=150, n_cells=20, days=1, progress=None,
             attacks={"footfall": {"differencing": {"trials": 5}}})
    routes = [label for _, _, label in recorded]
    assert routes[0] == "raw" and routes[1] == "suppression (k=5) (the claim)"
    assert any(label.startswith("footfall per zone per 1h, DP, epsilon") for label in routes[2:])
    assert len(recorded) == 2 + 3  # the harness, the audit, and the demo's three methods


def test_models_read_from_a_release_are_made_when_an_attack_needs_them(small_city):
    """A DP anonymiser that chooses its bounds privately reads its model from its own release: attacks that ask
    first get one made for them, so the likelihood-ratio variants still run (never a weaker attack)."""
    from privagg.anonymisers import DPAnonymiser
    from privagg.anonymisers.base import model_for_attack

    fresh = DPAnonymiser(epsilon=1.0)
    model = model_for_attack(fresh, small_city, HOURLY, l0=24, days=1)
    assert model.noise_kind in ("laplace", "gaussian") and model.noise_scale > 0
    result = run_attack("differencing", small_city, DPAnonymiser(epsilon=1.0), HOURLY, seed=0,
                        settings={"trials": 6, "days": 1})
    assert set(result.variants) == {"likelihood ratio", "difference rule"}
