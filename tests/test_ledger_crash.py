"""A release killed with SIGKILL anywhere never leaves an output without its charge in the ledger.

Each run forks a child that makes one ledger-charged release through the
command line and kills itself (SIGKILL, no clean-up possible) at a named
point: while reading the tables, validating, bounding contributions, inside
the ledger's transaction, right after its commit, while drawing noise, and
while writing or publishing each file; then at evenly spread moments of a
normal run. After each, the ledger must open cleanly and, if any output file
exists, hold the release's entry.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import pandas as pd
import pytest

from privagg.dp.budget import Budget
from privagg.errors import PrivaggInputError
from test_cli_release import tiny_world

CTX = mp.get_context("fork")


def _die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_on_call(owner, name: str, nth: int) -> None:
    """Make the ``nth`` call of ``owner.name`` kill the process before it runs."""
    original = getattr(owner, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == nth:
            _die()
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def _child(point: str | None, nth: int, argv: list[str]) -> None:
    import privagg.atomic
    import privagg.dp.ledger as ledger
    import privagg.releases.core as core
    import privagg.schema as schema
    import privagg.world as world
    from privagg.cli import main
    from privagg.dp.mechanisms import NoiseMechanism

    targets = {
        "reading": (schema.pd, "read_parquet"),
        "validating": (world, "validate_table"),
        "bounding": (core, "contributions"),
        "ledger transaction": (ledger, "_entry_digest"),
        "after commit": (ledger.Ledger, "export_json"),  # call 1: the export of the new ledger; 2: after the charge
        "noise": (NoiseMechanism, "sample"),
        "writing": (pd.DataFrame, "to_parquet"),
        "publishing": (privagg.atomic.os, "replace"),
    }
    if point is not None:
        _kill_on_call(*targets[point], nth)
    os._exit(main(argv))


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("crash") / "world"
    tiny_world().save(path)
    return path


def _run(world_dir, tmp_path, tag, point=None, nth=1, kill_after=None):
    ledger, out = tmp_path / f"{tag}.json", tmp_path / f"{tag}.parquet"
    argv = ["release", "footfall", "--data", str(world_dir), "--epsilon", "1", "--budget", str(ledger),
            "--budget-epsilon", "5", "--out", str(out)]
    child = CTX.Process(target=_child, args=(point, nth, argv))
    child.start()
    if kill_after is not None:
        time.sleep(kill_after)
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=60)
    return child.exitcode, ledger, out


def _inconsistent(ledger, out) -> bool:
    """An output (table or record) without the release's entry in the ledger, or a ledger that does not open."""
    outputs = [p for p in (out, out.with_name(out.name + ".privacy.json")) if p.exists()]
    db = ledger.with_suffix(".sqlite")
    if not (db.exists() and db.stat().st_size > 0) and not ledger.exists():
        return bool(outputs)
    try:
        entries = Budget.load(ledger).entries  # raises if the kill damaged the ledger
    except PrivaggInputError as exc:
        # Killed while creating the ledger, before its first commit: a ledger with nothing in it.
        if "its creation was interrupted" not in str(exc):
            raise
        entries = []
    if out.exists():
        pd.read_parquet(out)  # a published table is complete
    return bool(outputs) and len(entries) != 1 or len(entries) > 1


POINTS = [("reading", 1), ("reading", 4), ("validating", 1), ("validating", 3), ("bounding", 1),
          ("ledger transaction", 1), ("after commit", 2), ("noise", 1), ("writing", 1), ("publishing", 1),
          ("publishing", 2), ("publishing", 3)]


def test_sigkill_at_every_point_never_leaves_an_output_without_its_charge(world_dir, tmp_path):
    killed, inconsistencies, charged_without_output = 0, 0, 0
    for i, (point, nth) in enumerate(POINTS):
        code, ledger, out = _run(world_dir, tmp_path, f"p{i}", point, nth)
        killed += code == -signal.SIGKILL
        inconsistencies += _inconsistent(ledger, out)
        charged_without_output += (not out.exists()) and ledger.exists() and len(Budget.load(ledger).entries) == 1
    assert killed == len(POINTS)  # every kill point was reached
    assert inconsistencies == 0
    assert charged_without_output >= 1  # kills after the charge lose the release, never the charge


def test_sigkill_at_spread_moments_of_a_run(world_dir, tmp_path):
    start = time.perf_counter()
    code, ledger, out = _run(world_dir, tmp_path, "full")
    duration = time.perf_counter() - start
    assert code == 0 and out.exists() and not _inconsistent(ledger, out)
    moments = [duration * k / 10 for k in range(1, 10)]
    results = [_run(world_dir, tmp_path, f"t{k}", kill_after=t) for k, t in enumerate(moments)]
    assert sum(_inconsistent(ledger, out) for _, ledger, out in results) == 0


def test_companion_publishing_before_charging_is_caught(world_dir, tmp_path, monkeypatch):
    """The check can fail: an output written while the ledger holds no entry counts as an inconsistency."""
    code, ledger, out = _run(world_dir, tmp_path, "ok")
    assert code == 0 and not _inconsistent(ledger, out)
    Budget(epsilon=5.0, ledger=tmp_path / "empty.json")
    assert _inconsistent(tmp_path / "empty.json", out)
