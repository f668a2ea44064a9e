"""The README's examples run as written, and its figures are the ones scripts/readme_figures.py computes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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


ROOT = README.parent


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_figures.py"), *args], capture_output=True,
                          text=True, cwd=ROOT)


def test_cheap_figures_are_current():
    """The figures README counts from the repository (frontier cells and epsilons, the notebooks) are up to date."""
    proc = _script("--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_timed_figure_can_be_regenerated():
    """Each run time README quotes is a sentence scripts/readme_figures.py finds exactly once (to rewrite it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "scripts" / "readme_figures.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_figures"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    text = README.read_text()
    timed = [f for f in module.FIGURES if f.timed]
    assert timed
    for figure in timed:
        assert module.locate(text, figure).group(1), figure.name
    # and the check does fail on a stale figure
    stale = text.replace("`experiments/frontier.toml` (", "`experiments/frontier.toml` (1", 1)
    figure = next(f for f in module.FIGURES if f.name == "frontier cells")
    assert module.locate(stale, figure).group(1) != module.frontier_cells()


def _command_block() -> str:
    blocks = re.findall(r"## Command line\n\n```bash\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no command-line example"
    return blocks[0]


def test_command_line_example_makes_the_files_it_compares(tmp_path):
    """The README's synth -> release -> compare commands run as written (on a smaller city) and make their files."""
    lines = []
    for line in _command_block().splitlines():
        if line.startswith(("privagg audit-mechanism", "privagg experiment")):
            continue  # run by their own tests; slow
        lines.append(line)
    script = "set -e\n" + "\n".join(lines).replace("--users 20000 --cells 400", "--users 200 --cells 30")
    assert "week1.parquet" in script and "privagg compare week2.parquet week1.parquet" in script
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for name in ("footfall.parquet", "week1.parquet", "week2.parquet", "change.csv"):
        assert (tmp_path / name).exists(), name
