import json
import math

import pytest

from privagg.dp.budget import Budget, Loss
from privagg.errors import BudgetExceededError, PrivaggInputError


def test_pure_composition_and_refusal_message():
    b = Budget(epsilon=1.0)
    b.charge(Loss(epsilon=0.4), statistic="footfall")
    b.charge(Loss(epsilon=0.6), statistic="visits")  # exactly exhausts it (float rounding tolerated)
    assert b.remaining == {"epsilon": 0.0, "delta": 0.0}
    with pytest.raises(BudgetExceededError, match=r"footfall refused: it would spend epsilon=0.1 \(remaining 0 of 1\). Nothing was computed or drawn. Fix: lower epsilon"):
        b.charge(Loss(epsilon=0.1), statistic="footfall")
    assert len(b.entries) == 2


def test_approximate_composition_sums_delta():
    b = Budget(epsilon=2.0, delta=1e-6)
    b.charge(Loss(epsilon=0.5, delta=4e-7, selection_delta=4e-7))
    b.charge(Loss(epsilon=0.5, delta=4e-7, selection_delta=4e-7))
    with pytest.raises(BudgetExceededError, match=r"delta=4e-07 \(remaining 2e-07 of 1e-06\)"):
        b.charge(Loss(epsilon=0.5, delta=4e-7))
    assert b.spent["epsilon"] == pytest.approx(1.0)


def test_zcdp_budget_counts_pure_releases_as_half_epsilon_squared():
    b = Budget(rho=0.5, delta=1e-9)
    b.charge(Loss(epsilon=0.6))  # 0.18 rho
    b.charge(Loss(epsilon=1.0, delta=1e-6, rho=0.3, selection_delta=0.0))
    assert b.spent["rho"] == pytest.approx(0.48)
    assert b.epsilon_at(1e-9) > 0
    with pytest.raises(BudgetExceededError, match=r"rho=0.05"):
        b.charge(Loss(epsilon=1.0, rho=0.05))


def test_zcdp_release_on_approximate_budget_needs_delta():
    b = Budget(epsilon=1.0, delta=1e-6)
    with pytest.raises(PrivaggInputError, match=r"needs delta > 0 to convert rho to epsilon"):
        b.charge(Loss(epsilon=math.inf, rho=0.01))


def test_ledger_persists_and_reloads(tmp_path):
    path = tmp_path / "ledger.json"
    b = Budget(epsilon=1.0, delta=1e-9, ledger=path)
    b.charge(Loss(epsilon=0.25), statistic="footfall", parameters={"level": "zone"})
    data = json.loads(path.read_text())
    assert data["budget"] == {"epsilon": 1.0, "delta": 1e-9}
    assert data["entries"][0]["statistic"] == "footfall"
    assert data["entries"][0]["parameters"] == {"level": "zone"}
    assert data["entries"][0]["loss"]["epsilon"] == 0.25 and "time" in data["entries"][0]
    again = Budget.load(path)
    assert again.spent == {"epsilon": 0.25, "delta": 0.0}
    again.charge(Loss(epsilon=0.7))
    # A third object on the same ledger sees both charges and is refused beyond the total.
    third = Budget(epsilon=1.0, delta=1e-9, ledger=path)
    assert third.spent["epsilon"] == pytest.approx(0.95)
    before = path.read_bytes()
    with pytest.raises(BudgetExceededError):
        third.charge(Loss(epsilon=0.1))
    assert path.read_bytes() == before  # refusal leaves the ledger byte-identical
    # The first object picks up charges made through the others before charging.
    with pytest.raises(BudgetExceededError):
        b.charge(Loss(epsilon=0.1))


def test_ledger_with_another_total_is_refused(tmp_path):
    path = tmp_path / "ledger.json"
    Budget(epsilon=1.0, ledger=path).charge(Loss(epsilon=0.5))
    with pytest.raises(PrivaggInputError, match=r"records the budget .* but .* was declared. Fix: continue it without declaring a total \(Budget.load"):
        Budget(epsilon=5.0, ledger=path)
    # ledger.json is only the export of ledger.sqlite: garbage there is refused, not read as the ledger.
    path.write_text("not json")
    with pytest.raises(PrivaggInputError, match=r"is not the export of .*ledger.sqlite'?, which already exists and is the ledger"):
        Budget.load(path)
    bad = tmp_path / "other.json"
    bad.write_text("not json")
    with pytest.raises(PrivaggInputError, match=r"is not a privagg budget ledger, so it cannot be migrated"):
        Budget.load(bad)


@pytest.mark.parametrize("kwargs,message", [
    ({}, r"Budget needs exactly one of epsilon= .* or rho="),
    ({"epsilon": 1.0, "rho": 1.0}, r"Budget needs exactly one of"),
    ({"epsilon": -1.0}, r"epsilon=-1.0 must be finite and > 0"),
    ({"epsilon": math.nan}, r"epsilon=nan must be finite and > 0"),
    ({"rho": math.inf}, r"rho=inf must be finite and > 0"),
    ({"epsilon": 1.0, "delta": 1.5}, r"delta=1.5 must be in \[0, 1\)"),
])
def test_bad_budgets(kwargs, message):
    with pytest.raises(PrivaggInputError, match=message):
        Budget(**kwargs)
