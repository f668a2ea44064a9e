"""``privagg ledger show|export``: read and export a ledger, refusing damaged ones, charging nothing."""

from __future__ import annotations

import json

from privagg.cli import main
from privagg.dp.budget import Budget, Loss


def _run(capsys, *argv):
    code = main(["ledger", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_show_and_export(capsys, tmp_path):
    path = tmp_path / "l.sqlite"
    b = Budget(epsilon=2.0, ledger=path)
    b.charge(Loss(epsilon=0.5), statistic="footfall", request_id="r-1", client="acme")
    code, out, _ = _run(capsys, "show", path)
    assert code == 0
    assert "total (epsilon=2, delta=0), spent (epsilon=0.5, delta=0), remaining (epsilon=1.5, delta=0), 1 entries" in out
    assert "footfall" in out and "request_id=r-1 client=acme" in out
    code, out, _ = _run(capsys, "export", path, "--out", tmp_path / "e.json")
    assert code == 0 and json.loads((tmp_path / "e.json").read_text())["entries"][0]["client"] == "acme"
    code, _, err = _run(capsys, "export", path, "--out", tmp_path / "e.json")
    assert code == 2 and "exists already. Fix: add --overwrite" in err
    assert len(Budget.load(path).entries) == 1  # nothing charged


def test_an_edited_export_is_refused_then_restored(capsys, tmp_path):
    path = tmp_path / "l.json"
    Budget(epsilon=2.0, ledger=path).charge(Loss(epsilon=0.5))
    data = json.loads(path.read_text())
    data["entries"][0]["cost"]["epsilon"] = 0.0
    path.write_text(json.dumps(data))
    code, _, err = _run(capsys, "show", path)
    assert code == 2 and err.count("\n") == 1
    assert "differs from the ledger" in err and "privagg ledger export" in err
    code, _, err = _run(capsys, "export", tmp_path / "l.sqlite", "--out", path, "--overwrite")
    assert code == 0, err
    assert _run(capsys, "show", path)[0] == 0


def test_missing_or_damaged_ledgers(capsys, tmp_path):
    code, _, err = _run(capsys, "show", tmp_path / "none.sqlite")
    assert code == 2 and "does not exist" in err
    (tmp_path / "g.sqlite").write_bytes(b"garbage" * 100)
    code, _, err = _run(capsys, "show", tmp_path / "g.sqlite")
    assert code == 2 and err.count("\n") == 1 and "is not a privagg ledger or is damaged" in err
