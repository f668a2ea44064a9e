"""Generated damage to ledgers: every damaged ledger is refused with PrivaggInputError, or reads back
exactly what was written; it is never read as something else, and nothing else is ever raised."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privagg.dp.budget import Budget, Loss
from privagg.errors import PrivaggInputError

SETTINGS = settings(max_examples=50, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=5)


@pytest.fixture(scope="module")
def sqlite_ledger(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "ledger.sqlite"
    b = Budget(epsilon=2.0, delta=1e-6, ledger=path)
    for i, eps in enumerate((0.25, 0.5, 0.125)):
        b.charge(Loss(epsilon=eps, delta=1e-7), statistic="footfall", parameters={"i": i}, request_id=f"r{i}")
    return path, b.entries


@SETTINGS
@given(offset=st.integers(0, 10**6), byte=st.integers(0, 255), n=st.integers(1, 4))
def test_flipped_bytes_in_an_sqlite_ledger_are_refused_or_change_nothing(sqlite_ledger, offset, byte, n):
    path, written = sqlite_ledger
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "ledger.sqlite"
        shutil.copyfile(path, copy)
        raw = bytearray(copy.read_bytes())
        at = offset % len(raw)
        for k in range(n):
            raw[(at + k) % len(raw)] = byte
        copy.write_bytes(bytes(raw))
        try:
            entries = Budget.load(copy).entries
        except PrivaggInputError as exc:
            assert "\n" not in str(exc) and "Fix:" in str(exc)
            return
        assert entries == written  # a byte that mattered would have been caught


def _legacy_ledger():
    return {"version": 1, "budget": {"epsilon": 1.5, "delta": 0.0}, "entries": [
        {"statistic": "footfall", "parameters": {"level": "zone"}, "loss": {"epsilon": 0.5}, "cost": {"epsilon": 0.5, "delta": 0.0},
         "time": "2026-01-01T00:00:00+00:00"},
        {"statistic": "od_flows", "parameters": {}, "loss": {"epsilon": 0.25}, "cost": {"epsilon": 0.25, "delta": 0.0},
         "time": "2026-01-02T00:00:00+00:00"}]}


@SETTINGS
@given(data=st.data())
def test_edited_json_ledgers_are_refused_or_migrate_only_valid_costs(data):
    ledger = _legacy_ledger()
    # Pick a place in the document and put a generated value there (or delete it).
    where = data.draw(st.sampled_from(["budget", "budget.epsilon", "budget.delta", "entries", "entry", "entry.cost",
                                       "entry.cost.epsilon", "entry.statistic", "entry.time", "entry.parameters"]))
    value = data.draw(JSON_VALUES)
    delete = data.draw(st.booleans())
    i = data.draw(st.integers(0, 1))
    target, key = {"budget": (ledger, "budget"), "budget.epsilon": (ledger["budget"], "epsilon"),
                   "budget.delta": (ledger["budget"], "delta"), "entries": (ledger, "entries"),
                   "entry": (ledger["entries"], i), "entry.cost": (ledger["entries"][i], "cost"),
                   "entry.cost.epsilon": (ledger["entries"][i]["cost"], "epsilon"),
                   "entry.statistic": (ledger["entries"][i], "statistic"), "entry.time": (ledger["entries"][i], "time"),
                   "entry.parameters": (ledger["entries"][i], "parameters")}[where]
    if delete and isinstance(key, str):
        target.pop(key, None)
    else:
        target[key] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.json"
        path.write_text(json.dumps(ledger))
        try:
            budget = Budget.load(path)
        except PrivaggInputError as exc:
            assert "\n" not in str(exc) and "Fix:" in str(exc)
            assert not (Path(tmp) / "ledger.sqlite").exists()  # nothing half-migrated
            return
        spent = budget.spent
        assert all(0 <= v <= t * (1 + 1e-12) for v, t in zip(spent.values(), budget.totals().values()))
        assert spent["epsilon"] in (0.75, 0.5, 0.25, 0.0) or where.startswith("budget")
