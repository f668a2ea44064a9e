"""Release plans: several statistics under one budget, charged once, refused whole."""

from __future__ import annotations

import numpy as np
import pytest

import privagg as pa
from tests.dp_fixtures import random_world
from privagg.dp.mechanisms import NoiseMechanism
from privagg.errors import BudgetExceededError, PrivaggInputError
from privagg.queries import public_keys
from privagg.releases.plan import PlanItem, ReleasePlan

DAY = dict(start="2026-01-05", end="2026-01-06")


@pytest.fixture(scope="module")
def world():
    return random_world(n_users=300)


def items(world):
    def keyed(q):
        from dataclasses import replace

        return replace(q, keys=public_keys(q, world.cells, start=DAY["start"], end=DAY["end"],
                                           users_columns=list(world.users.columns)), **DAY)

    return [
        PlanItem("footfall", keyed(pa.Query("footfall", level="zone", time_bin="1h")), weight=2),
        PlanItem("od", keyed(pa.Query("od_flows", level="district", time_bin=None))),
        PlanItem("crossbreak", keyed(pa.Query("segment_counts", level="district", time_bin=None, by=("age_band", "gender")))),
    ]


def test_plan_is_charged_once_and_records_each_share(world):
    budget = pa.Budget(epsilon=3.0, delta=1e-6)
    plan = ReleasePlan(items(world), epsilon=2.0, delta=1e-9)
    out = plan.release(world, budget=budget)
    assert [e["statistic"] for e in budget.entries] == ["plan"]
    assert budget.spent["epsilon"] == pytest.approx(2.0)
    shares = plan.shares()
    assert shares == pytest.approx({"footfall": 0.5, "od": 0.25, "crossbreak": 0.25})
    for name, rel in out.items():
        assert rel.privacy.parameters["plan_share"] == pytest.approx(shares[name])
        assert rel.privacy.epsilon == pytest.approx(2.0 * shares[name])
    assert sum(r.privacy.epsilon for r in out.values()) == pytest.approx(2.0)


def test_plan_that_does_not_fit_is_refused_whole_and_spends_nothing(world, monkeypatch):
    def boom(self, values, threads=None):
        raise AssertionError("noise drawn for a refused plan")

    monkeypatch.setattr(NoiseMechanism, "sample", boom)
    budget = pa.Budget(epsilon=1.5)
    with pytest.raises(BudgetExceededError):
        ReleasePlan(items(world), epsilon=2.0).release(world, budget=budget)
    assert budget.entries == [] and budget.spent["epsilon"] == 0


def test_equal_error_split_gives_more_to_larger_key_sets(world):
    plan = ReleasePlan(items(world), epsilon=2.0, split="equal_error")
    shares = plan.shares()
    sizes = {i.name: len(i.query.keys) for i in items(world)}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert max(shares, key=shares.get) == max(sizes, key=sizes.get)
    assert plan.total_loss().epsilon == pytest.approx(2.0)


def test_plan_input_errors(world):
    with pytest.raises(PrivaggInputError, match="exactly one of epsilon= or rho="):
        ReleasePlan(items(world))
    with pytest.raises(PrivaggInputError, match="repeat"):
        ReleasePlan(items(world) * 2, epsilon=1.0)
    with pytest.raises(PrivaggInputError, match="weight"):
        PlanItem("x", pa.Query("footfall"), weight=0)
