"""Claim files: parsing, defaults, and the messages a regulator sees for mistakes."""

from pathlib import Path

import pytest

from privagg import PrivaggInputError
from privagg.claim_audit.claim import ATTACK_DEFAULTS, DEFAULT_EPSILONS, load_claim, parse_claim

ROOT = Path(__file__).resolve().parents[1]

GOOD = """\
name = "k10"
description = "Hourly footfall per cell, counts below 10 suppressed."

[data]
n_users = 300
n_cells = 30
days = 2
seed = 1

[release]
statistic = "footfall"
level = "cell"
time_bin = "1h"
crossbreaks = [["age_band", "gender"]]

[method]
family = "suppression"
k = 10
"""


def error_of(text: str) -> str:
    with pytest.raises(PrivaggInputError) as info:
        parse_claim(text, "claim.toml")
    return str(info.value)


def test_good_claim_and_defaults():
    claim = parse_claim(GOOD, "claim.toml")
    assert claim.name == "k10"
    assert claim.release.statistic == "footfall" and claim.release.level == "cell" and claim.release.time_bin == "1h"
    assert claim.release.crossbreaks == (("age_band", "gender"),)
    assert claim.method.name == "suppression" and claim.method.params == {"k": 10}
    assert claim.data.n_users == 300 and claim.data.path is None
    assert set(claim.attacks) == set(ATTACK_DEFAULTS)
    assert claim.attacks["differencing"] == {"trials": 40, "days": 1}
    assert claim.epsilons == DEFAULT_EPSILONS and claim.metric_floor == 10.0
    shown = claim.to_dict()
    assert shown["method"] == "counts below 10 suppressed" and shown["crossbreak_level"] == "cell"


def test_dp_claim_defaults_to_subscriber_day():
    text = GOOD.replace('family = "suppression"\nk = 10', 'family = "dp"\nepsilon = 1')
    claim = parse_claim(text, "claim.toml")
    assert claim.method.params == {"epsilon": 1.0, "unit": "subscriber-day"}
    assert claim.method.describe() == "differential privacy, epsilon = 1 per subscriber-day"


def test_examples_parse():
    for name in ("operator_footfall_k10.toml", "dp_footfall_eps1.toml"):
        claim = load_claim(ROOT / "experiments" / "claims" / name)
        assert claim.name == name.removesuffix(".toml")


def test_unknown_top_level_key_names_file_line_and_suggestion():
    msg = error_of("nme = 'x'\n" + GOOD)
    assert msg == ("claim.toml, line 1: top level: unknown key 'nme'. Fix: did you mean 'name'? allowed keys are "
                   "name, title, description, seed, world, data, release, method, attacks, comparison.")


def test_unknown_method_parameter():
    msg = error_of(GOOD.replace("k = 10", "k = 10\nepsilon = 1"))
    assert msg.startswith("claim.toml, line 19: [method] (family = \"suppression\"): unknown key 'epsilon'.")
    assert "allowed keys are k, rounding." in msg


def test_bad_values_name_key_and_fix():
    assert error_of(GOOD.replace("k = 10", "k = 0")) == (
        "claim.toml, line 18: [method]: k = 0 is not a whole number >= 1. Fix: write e.g. k = 10.")
    assert error_of(GOOD.replace('level = "cell"', 'level = "street"')) == (
        "claim.toml, line 12: [release]: level = 'street' is not allowed. Fix: use one of 'cell', 'zone', 'district'.")
    assert error_of(GOOD.replace('time_bin = "1h"', 'time_bin = "7min"')) == (
        "claim.toml, line 13: [release]: time_bin = '7min' is not a supported time bin. Fix: use a duration from "
        "15 minutes to 1 day that divides a day, e.g. \"1h\", \"3h\", \"1D\".")
    assert error_of(GOOD.replace('family = "suppression"', 'family = "supression"')).endswith(
        "Fix: did you mean 'suppression'? use one of 'raw', 'suppression', 'coarsening', 'pseudonymised', 'dp', "
        "'naive_laplace'.")


def test_dp_needs_exactly_one_loss():
    msg = error_of(GOOD.replace('family = "suppression"\nk = 10', 'family = "dp"'))
    assert msg == ("claim.toml, line 16: [method]: needs exactly one of 'epsilon' or 'rho'. "
                   "Fix: write e.g. epsilon = 1.0.")
    msg = error_of(GOOD.replace('family = "suppression"\nk = 10', 'family = "dp"\nepsilon = -1'))
    assert "epsilon = -1 is not a positive number" in msg


def test_missing_tables_and_data_choices():
    assert error_of('name = "x"\n') == (
        "claim.toml: missing [world] table. Fix: add it, e.g. [world] n_users = 2000, n_cells = 100, days = 7")
    msg = error_of(GOOD.replace("days = 2\n", ""))
    assert msg.startswith("claim.toml, line 4: [data]: has no 'days'.")
    msg = error_of(GOOD.replace("n_users = 300", 'path = "tables"\nn_users = 300'))
    assert "sets both 'path' and 'n_users'" in msg
    msg = error_of(GOOD.replace("n_users = 300\nn_cells = 30\ndays = 2\n", 'path = "/no/such/dir"\n'))
    assert "data directory '/no/such/dir' does not exist" in msg


def test_attack_settings_validated():
    msg = error_of(GOOD + "\n[attacks]\nrun = [\"diferencing\"]\n")
    assert "attack 'diferencing' is unknown. Fix: did you mean 'differencing'?" in msg
    msg = error_of(GOOD + "\n[attacks.differencing]\ntrails = 5\n")
    assert msg.startswith("claim.toml, line 21: [attacks.differencing]: unknown key 'trails'. Fix: did you mean 'trials'?")
    claim = parse_claim(GOOD + "\n[attacks]\nrun = [\"differencing\"]\n[attacks.differencing]\ntrials = 5\n", "c.toml")
    assert claim.attacks == {"differencing": {"trials": 5, "days": 1}}
    msg = error_of(GOOD + "\n[attacks]\nrun = [\"unicity\"]\n[attacks.differencing]\ntrials = 5\n")
    assert "[attacks.differencing] is set but 'differencing' is not in run" in msg


def test_crossbreaks_and_by_checked():
    assert "crossbreaks = 'age_band' is not a list of column lists" in error_of(
        GOOD.replace('crossbreaks = [["age_band", "gender"]]', 'crossbreaks = "age_band"'))
    assert "by = ['age_band'] crossbreaks od_flows" in error_of(
        GOOD.replace('statistic = "footfall"', 'statistic = "od_flows"').replace(
            'crossbreaks = [["age_band", "gender"]]', 'by = ["age_band"]'))


def test_coarsening_must_be_coarser():
    text = GOOD.replace('family = "suppression"\nk = 10', 'family = "coarsening"\ntime_bin = "90min"')
    assert "time_bin = '90min' is not a multiple of the release's '1h'" in error_of(text)
    text = GOOD.replace('level = "cell"', 'level = "zone"').replace(
        'family = "suppression"\nk = 10', 'family = "coarsening"\nlevel = "cell"')
    assert "level = 'cell' is finer than the release's level 'zone'" in error_of(text)


def test_invalid_toml_and_missing_file(tmp_path):
    assert error_of("name = \n").startswith("claim.toml: not valid TOML (")
    with pytest.raises(PrivaggInputError, match="claim file .* does not exist. Fix: check the path"):
        load_claim(tmp_path / "nope.toml")


def test_world_table_is_the_specs_vocabulary(tmp_path):
    """``[world]`` reads as in experiment specs (``data = "DIR"`` for own tables); ``[data]`` stays readable."""
    (tmp_path / "tables").mkdir()
    synthetic = GOOD.replace("[data]", "[world]")
    assert parse_claim(synthetic, tmp_path / "c.toml").data == parse_claim(GOOD, tmp_path / "c.toml").data
    own = parse_claim(GOOD.replace("[data]", "[world]").replace("n_users = 300\n", 'data = "tables"\n')
                      .replace("n_cells = 30\n", "").replace("days = 2\n", ""), tmp_path / "c.toml")
    assert own.data.path == str((tmp_path / "tables").resolve())
    with pytest.raises(PrivaggInputError, match=r"\[world\]: unknown key 'path'"):
        parse_claim(synthetic.replace("n_users = 300", 'path = "tables"'), tmp_path / "c.toml")
    with pytest.raises(PrivaggInputError, match=r"has both \[world\] and \[data\]"):
        parse_claim(GOOD + '\n[world]\nn_users = 10\n', tmp_path / "c.toml")
