"""Every tutorial notebook runs top to bottom at a small size, and its prose holds against its outputs.

Notebooks read ``PRIVAGG_NOTEBOOK_SMALL=1`` to shrink their worlds, so the
suite stays fast while a reader running them by hand gets the full size.
Their sentences that quote a number are rendered from the computation
(``IPython.display.Markdown``) or guarded by an ``assert`` in the notebook, so
a run whose outputs stop supporting the prose fails here with an error
output. They run two at a time (each in its own kernel) to keep the suite's
wall time down on a 2-core machine.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _execute(path: str, workdir: str) -> dict:
    """Run one notebook at the small size; return its errors, figure count and rendered prose."""
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    os.environ["PRIVAGG_NOTEBOOK_SMALL"] = "1"
    os.environ["MPLBACKEND"] = "Agg"
    notebook = nbformat.read(path, as_version=4)
    # Unix sockets in the notebook's own directory: two kernels starting at once over TCP can pick the
    # same free port, and one of them dies before it answers.
    km = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(workdir, "kernel"))
    client = NotebookClient(notebook, km=km, timeout=900, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": workdir}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    return {
        "errors": [f"{o.get('ename')}: {o.get('evalue')}" for o in outputs if o.get("output_type") == "error"],
        "images": sum("image/png" in o.get("data", {}) for o in outputs),
        "markdown": [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})],
    }


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict[str, dict]:
    dirs = [str(tmp_path_factory.mktemp(p.stem)) for p in NOTEBOOKS]
    with ProcessPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1)), mp_context=get_context("spawn")) as pool:
        return dict(zip((p.stem for p in NOTEBOOKS), pool.map(_execute, map(str, NOTEBOOKS), dirs)))


@pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks in notebooks/")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, executed):
    result = executed[path.stem]
    assert not result["errors"], result["errors"]  # includes the notebook's own asserts on its prose
    assert result["images"], f"{path.name} shows no figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_stored_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    assert not any(c.get("outputs") for c in notebook.cells if c.cell_type == "code"), f"clear the outputs of {path.name}"


def test_prose_generated_from_results_says_something(executed):
    """The rendered sentences are there (a notebook that renders none has gone back to hand-typed numbers)."""
    silent = [name for name, r in executed.items() if not r["markdown"]]
    assert not silent, f"notebooks rendering no prose from their results: {silent}"
    for name, r in executed.items():
        for text in r["markdown"]:
            assert not re.search(r"\bnan\b", text), f"{name} renders a missing number: {text[:200]}"


def test_readme_lists_every_notebook():
    listed = (ROOT / "notebooks" / "README.md").read_text()
    missing = [p.name for p in NOTEBOOKS if f"`{p.name}`" not in listed]
    assert not missing, f"notebooks/README.md does not list {missing}"
