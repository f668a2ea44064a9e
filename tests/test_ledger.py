"""The SQLite budget ledger: one transaction per charge, append-only, refused when damaged or edited."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sqlite3
import threading

import numpy as np
import pytest

from privagg.dp.budget import Budget, Loss
from privagg.dp.ledger import Ledger, ledger_paths
from privagg.errors import BudgetExceededError, PrivaggInputError

APPROX = {"epsilon": 1.0, "delta": 0.0}


# --------------------------------------------------------------------------- race
def _contender(paths: list[str], eps: float, n_threads: int, barrier, results, world=None) -> None:
    """One process: for each ledger, its threads all charge ``eps`` at once (or, given a World, make a real
    footfall release charged to it); report (round, successes)."""
    if world is not None:
        import privagg as pa

        window = {"start": "2026-01-05", "end": "2026-01-06"}
        keys = pa.KeySet.areas_by_time(world.cells, "zone", time_bin="6h", **window)
    for round_, path in enumerate(paths):
        budget = Budget.load(path)
        ok = []
        start = threading.Barrier(n_threads)

        def attempt() -> None:
            start.wait()
            try:
                if world is None:
                    budget.charge(Loss(epsilon=eps), statistic="footfall")
                else:
                    pa.footfall(world, epsilon=eps, level="zone", time_bin="6h", keys=keys, budget=budget, **window)
                ok.append(1)
            except BudgetExceededError:
                pass

        barrier.wait()  # every process starts the round together
        threads = [threading.Thread(target=attempt) for _ in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results.put((round_, len(ok)))


def test_race_many_processes_and_threads_never_overspend(tmp_path):
    """8 processes x 3 threads (24 contenders) charge at once against a ledger that admits exactly k of them,
    over 10 rounds with k from 1 to 23 (and epsilon=0.1, whose multiples are not exact in floating point):
    exactly k succeed and the ledger holds exactly k entries, every round."""
    n_proc, n_threads, rounds, eps = 8, 3, 10, 0.1
    rng = np.random.default_rng(3)
    ks = [1, 23, *rng.integers(1, n_proc * n_threads, rounds - 2).tolist()]
    paths = []
    for i, k in enumerate(ks):
        # Half the rounds through a .json path, whose export is rewritten after each charge.
        path = tmp_path / (f"r{i}.json" if i % 2 else f"r{i}.sqlite")
        Budget(epsilon=k * eps, ledger=path)
        paths.append(str(path))
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(n_proc), ctx.Queue()
    procs = [ctx.Process(target=_contender, args=(paths, eps, n_threads, barrier, results)) for _ in range(n_proc)]
    for p in procs:
        p.start()
    successes = [0] * rounds
    for _ in range(rounds * n_proc):
        round_, n_ok = results.get(timeout=120)
        successes[round_] += n_ok
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    overspends = 0
    for k, path, n_ok in zip(ks, paths, successes):
        budget = Budget.load(path)
        assert n_ok == k
        assert len(budget.entries) == k
        overspends += budget.spent["epsilon"] > k * eps * (1 + 1e-12)
        assert [e["seq"] for e in budget.entries] == list(range(1, k + 1))
    assert overspends == 0
    # The exports caught up with their ledgers.
    for path in paths[1::2]:
        assert len(json.loads(open(path).read())["entries"]) == len(Budget.load(path).entries)


def test_race_real_releases_from_many_processes(tmp_path):
    """The same with real footfall releases (read, bound, charge, noise) on a tiny World: 8 processes x 2
    threads, 4 rounds admitting k = 1, 5, 9, 15 of the 16."""
    from test_cli_release import tiny_world

    n_proc, n_threads, eps, ks = 8, 2, 0.25, [1, 5, 9, 15]
    paths = []
    for i, k in enumerate(ks):
        Budget(epsilon=k * eps, ledger=tmp_path / f"r{i}.sqlite")
        paths.append(str(tmp_path / f"r{i}.sqlite"))
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(n_proc), ctx.Queue()
    world = tiny_world()
    procs = [ctx.Process(target=_contender, args=(paths, eps, n_threads, barrier, results, world)) for _ in range(n_proc)]
    for p in procs:
        p.start()
    successes = [0] * len(ks)
    for _ in range(len(ks) * n_proc):
        round_, n_ok = results.get(timeout=120)
        successes[round_] += n_ok
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert successes == ks
    assert [len(Budget.load(p).entries) for p in paths] == ks
    assert all(e["statistic"] == "footfall" and e["parameters"]["level"] == "zone"
               for p in paths for e in Budget.load(p).entries)


def test_race_a_weakened_ledger_without_the_transaction_does_overspend(tmp_path, monkeypatch):
    """Companion: with the check outside the write lock (a plain read, then a separate write), threads that
    all read before anyone writes all succeed, so the race test above can fail."""
    path = tmp_path / "weak.sqlite"
    Budget(epsilon=0.1, ledger=path)
    budget = Budget.load(path)
    gate = threading.Barrier(4)
    original_check = Budget.check

    def weak_charge(self, loss, **kwargs):
        original_check(self, loss)  # read outside any transaction
        gate.wait()  # everybody has checked
        return self._store.charge(Loss(epsilon=0.0), **kwargs)  # the write no longer re-checks the real cost

    monkeypatch.setattr(Budget, "charge", weak_charge)
    threads = [threading.Thread(target=budget.charge, args=(Loss(epsilon=0.1),)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(budget.entries) == 4  # 4 releases of epsilon=0.1 admitted by a 0.1 budget


# --------------------------------------------------------------------------- request ids
def test_a_retried_request_is_not_charged_twice(tmp_path):
    ledger = Ledger.open(tmp_path / "l.sqlite", totals=APPROX)
    first = ledger.charge(Loss(epsilon=0.4), statistic="footfall", request_id="req-1", client="acme",
                          dataset="city-2026", window="2026-01-05/2026-01-12")
    again = ledger.charge(Loss(epsilon=0.4), statistic="footfall", request_id="req-1")
    assert again == first and again["client"] == "acme" and again["window"] == "2026-01-05/2026-01-12"
    assert len(ledger.entries()) == 1 and ledger.spent()["epsilon"] == 0.4
    with pytest.raises(PrivaggInputError, match=r"request_id 'req-1' was already charged \(epsilon=0.4, delta=0\), not "):
        ledger.charge(Loss(epsilon=0.5), request_id="req-1")
    ledger.charge(Loss(epsilon=0.6), request_id="req-2")
    with pytest.raises(BudgetExceededError):
        ledger.charge(Loss(epsilon=0.1), request_id="req-3")
    assert ledger.charge(Loss(epsilon=0.6), request_id="req-2")["seq"] == 2  # a retry after exhaustion still answers
    b = Budget(epsilon=1.0)
    b.charge(Loss(epsilon=0.5), request_id="x")
    b.charge(Loss(epsilon=0.5), request_id="x")
    assert b.spent["epsilon"] == 0.5


# --------------------------------------------------------------------------- damage and edits
def _raw(path):
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("DROP TRIGGER IF EXISTS entries_no_update")
    con.execute("DROP TRIGGER IF EXISTS entries_no_delete")
    con.execute("DROP TRIGGER IF EXISTS meta_no_update")
    return con


@pytest.fixture
def ledger_path(tmp_path):
    path = tmp_path / "ledger.sqlite"
    b = Budget(epsilon=1.5, ledger=path)
    b.charge(Loss(epsilon=0.5), statistic="footfall")
    b.charge(Loss(epsilon=0.5), statistic="od_flows")
    return path


def test_entries_are_append_only(ledger_path):
    con = sqlite3.connect(ledger_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("UPDATE entries SET cost = '{\"delta\":0,\"epsilon\":0}'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        con.execute("DELETE FROM entries")
    with pytest.raises(sqlite3.DatabaseError, match="totals are fixed"):
        con.execute("UPDATE meta SET value = '{}' WHERE key = 'totals'")


@pytest.mark.parametrize("edit,message", [
    ("UPDATE entries SET cost = '{\"delta\":0.0,\"epsilon\":-100.0}' WHERE seq = 2", r"entry 2 has a negative cost epsilon=-100.0"),
    ("UPDATE entries SET cost = '{\"delta\":0.0,\"epsilon\":\"lots\"}' WHERE seq = 1", r"entry 1 has a cost epsilon='lots' that is not a number"),
    ("UPDATE entries SET cost = '{\"delta\":0.0,\"epsilon\":0.1}' WHERE seq = 1", r"entry 1 does not match its digest \(it was changed after it was written\)"),
    ("UPDATE entries SET cost = '{\"rho\":0.1,\"delta\":0.0}' WHERE seq = 1", r"entry 1 has a cost in units \['delta', 'rho'\], not this budget's \['epsilon', 'delta'\]"),
    ("UPDATE entries SET cost = 'nope' WHERE seq = 1", r"entry 1 is not valid JSON"),
    ("DELETE FROM entries WHERE seq = 1", r"entry 1 is missing"),
    ("UPDATE meta SET value = '{\"delta\":0.0,\"epsilon\":100.0}' WHERE key = 'totals'", r"its recorded totals were changed"),
])
def test_an_edited_ledger_is_refused_and_left_as_it_is(ledger_path, edit, message):
    con = _raw(ledger_path)
    con.execute(edit)
    con.close()
    before = ledger_path.read_bytes()
    with pytest.raises(PrivaggInputError, match=r"ledger '.*' is damaged or was edited: " + message +
                       r"; privagg does not repair a ledger and charged nothing. Fix: restore it from a backup"):
        Budget.load(ledger_path)
    assert ledger_path.read_bytes() == before


def test_an_edit_made_while_a_budget_is_open_is_seen_at_the_next_charge(ledger_path):
    budget = Budget.load(ledger_path)
    con = _raw(ledger_path)
    con.execute("UPDATE entries SET cost = '{\"delta\":0.0,\"epsilon\":-100.0}' WHERE seq = 1")
    con.close()
    with pytest.raises(PrivaggInputError, match=r"entry 1 has a negative cost"):
        budget.charge(Loss(epsilon=0.1))


def test_garbage_and_foreign_files_are_refused(tmp_path):
    garbage = tmp_path / "g.sqlite"
    garbage.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(PrivaggInputError, match=r"is not a privagg ledger or is damaged \(SQLite: file is not a database\)"):
        Budget.load(garbage)
    foreign = tmp_path / "f.sqlite"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)")
    with pytest.raises(PrivaggInputError, match=r"is an SQLite database but not a privagg ledger"):
        Budget.load(foreign)
    with pytest.raises(PrivaggInputError, match=r"does not exist, so its total is unknown"):
        Budget.load(tmp_path / "none.sqlite")
    with pytest.raises(PrivaggInputError, match=r"is not a file"):
        Budget(epsilon=1.0, ledger=tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_ledger_is_refused_before_anything(ledger_path):
    os.chmod(ledger_path, 0o444)
    try:
        with pytest.raises(PrivaggInputError, match=r"is not readable and writable. Fix: change its permissions"):
            Budget.load(ledger_path)
    finally:
        os.chmod(ledger_path, 0o644)


# --------------------------------------------------------------------------- JSON: migration and export
def _legacy(path, entries, budget=None):
    path.write_text(json.dumps({"version": 1, "budget": budget or {"epsilon": 1.5, "delta": 0.0}, "entries": entries}))


def _old_entry(cost):
    return {"statistic": "footfall", "parameters": {}, "loss": {"epsilon": 0.5}, "cost": cost, "time": "2026-01-01T00:00:00+00:00"}


def test_a_json_ledger_is_migrated_once_and_exported_after_each_charge(tmp_path):
    path = tmp_path / "ledger.json"
    _legacy(path, [_old_entry({"epsilon": 0.5, "delta": 0.0})])
    original = path.read_bytes()
    budget = Budget.load(path)
    db, export = ledger_paths(path)
    assert db == tmp_path / "ledger.sqlite" and export == path
    assert (tmp_path / "ledger.json.migrated").read_bytes() == original
    assert budget.spent == {"epsilon": 0.5, "delta": 0.0}
    budget.charge(Loss(epsilon=0.25), statistic="od_flows")
    data = json.loads(path.read_text())
    assert data["format"] == "privagg-ledger-export" and data["budget"] == {"epsilon": 1.5, "delta": 0.0}
    assert [e["statistic"] for e in data["entries"]] == ["footfall", "od_flows"]
    # Reopening does not migrate again: the SQLite file is the ledger.
    assert len(Budget.load(path).entries) == 2


def test_an_edited_export_is_refused_and_a_stale_one_refreshed(tmp_path):
    path = tmp_path / "ledger.json"
    budget = Budget(epsilon=1.5, ledger=path)
    budget.charge(Loss(epsilon=0.5))
    stale = path.read_text()
    budget.charge(Loss(epsilon=0.5))
    path.write_text(stale)  # as if killed between the commit and the export
    Budget.load(path)  # a prefix of the ledger: refreshed, not refused
    assert len(json.loads(path.read_text())["entries"]) == 2
    data = json.loads(path.read_text())
    data["entries"][0]["cost"]["epsilon"] = -100.0
    path.write_text(json.dumps(data))
    with pytest.raises(PrivaggInputError, match=r"the export .* differs from the ledger .* \(it was edited\)"):
        Budget.load(path)


@pytest.mark.parametrize("cost,message", [
    ({"epsilon": -100, "delta": 0.0}, r"entry 2 has a negative cost epsilon=-100"),
    ({"epsilon": "0.5", "delta": 0.0}, r"entry 2 has a cost epsilon='0.5' that is not a number"),
    ({"epsilon": float("inf"), "delta": 0.0}, r"entry 2 has a cost epsilon=inf that is not finite"),
    ({"eps": 0.5}, r"entry 2 has a cost in units \['eps'\], not this budget's \['epsilon', 'delta'\]"),
])
def test_a_tampered_json_ledger_is_not_migrated(tmp_path, cost, message):
    path = tmp_path / "ledger.json"
    _legacy(path, [_old_entry({"epsilon": 0.5, "delta": 0.0}), _old_entry(cost)])
    with pytest.raises(PrivaggInputError, match=r"JSON ledger .*: " + message + r"; nothing was migrated and nothing charged"):
        Budget.load(path)
    assert not (tmp_path / "ledger.sqlite").exists()


def test_a_json_ledger_spending_more_than_its_total_is_not_migrated(tmp_path):
    path = tmp_path / "ledger.json"
    _legacy(path, [_old_entry({"epsilon": 1.0, "delta": 0.0})] * 2)
    with pytest.raises(PrivaggInputError, match=r"its entries spend \(epsilon=2, delta=0\), more than its total"):
        Budget.load(path)


def test_a_ledger_that_cannot_be_written_is_refused_before_anything(ledger_path, monkeypatch):
    """As a non-root user sees a read-only ledger (root ignores permissions, so os.access is stood in for)."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(ledger_path) else real(p, mode))
    before = ledger_path.read_bytes()
    with pytest.raises(PrivaggInputError, match=r"ledger.sqlite' is not readable and writable. Fix: change its permissions"):
        Budget.load(ledger_path)
    assert ledger_path.read_bytes() == before


def test_a_ledger_whose_creation_was_interrupted_is_created_again(tmp_path):
    path = tmp_path / "l.sqlite"
    sqlite3.connect(path).execute("PRAGMA journal_mode = WAL").fetchall()  # what a kill before the first commit leaves
    with pytest.raises(PrivaggInputError, match=r"is empty \(its creation was interrupted\), so its total is unknown"):
        Budget.load(path)
    Budget(epsilon=1.0, ledger=path).charge(Loss(epsilon=0.5))
    assert Budget.load(path).spent["epsilon"] == 0.5


def test_an_export_ahead_of_a_stale_read_is_not_taken_for_an_edit(tmp_path, monkeypatch):
    """Opening while another process charges: the export may hold an entry our first read did not see."""
    from privagg.dp import ledger as ledger_module

    path = tmp_path / "l.json"
    Budget(epsilon=1.0, ledger=path).charge(Loss(epsilon=0.25))
    other = Budget.load(path)
    real_entries = ledger_module.Ledger.entries
    calls = []

    def entries_then_someone_charges(self):
        out = real_entries(self)
        if not calls:
            calls.append(1)
            other.charge(Loss(epsilon=0.25))  # commits and rewrites the export after our read
        return out

    monkeypatch.setattr(ledger_module.Ledger, "entries", entries_then_someone_charges)
    assert len(Budget.load(path).store.entries()) == 2
