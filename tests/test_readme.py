"""The README's Python quickstart runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_quickstart_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    budget = namespace["budget"]
    assert budget.spent["epsilon"] == pytest.approx(3.9)  # 1 + 0.5 + 0.5 + 2 x 0.5 + the plan's 0.9
    assert [e["statistic"] for e in budget.entries][-1] == "plan"
    assert namespace["rel"].privacy.parameters["bounds_rule"].startswith("chosen privately")
    assert (tmp_path / "ledger.sqlite").exists()
    assert len(namespace["rel"].to_pandas()) == len(namespace["keys"])
