"""The documentation stays true: every public docstring's example runs, and the Sphinx site builds.

The API reference (``docs/api.rst``) is generated from the docstrings by
Sphinx autodoc + napoleon; it is built here with warnings as errors (``-W``)
into a temporary folder, so a broken cross-reference, a malformed docstring
or a page missing from the table of contents fails the suite. The examples
in the docstrings are run by :mod:`doctest` on tiny worlds (seconds in all).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import privagg

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

#: Public objects documented beyond ``privagg.__all__`` (they appear in docs/api.rst).
EXTRA_PUBLIC = ["privagg.synth.generate_world", "privagg.releases.plan.ReleasePlan", "privagg.releases.plan.PlanItem"]


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def public_objects() -> dict[str, object]:
    objects = {f"privagg.{n}": getattr(privagg, n) for n in privagg.__all__ if n != "__version__"}
    objects.update({d: _resolve(d) for d in EXTRA_PUBLIC})
    return objects


def doctest_modules() -> list[str]:
    """Every module defining a public object, plus the documented modules with examples of their own."""
    names = {inspect.getmodule(o).__name__ for o in public_objects().values()}
    return sorted(names | {"privagg.dp.units", "privagg.dp.budget", "privagg.keysets", "privagg.releases.plan"})


@pytest.mark.parametrize("name", sorted(public_objects()))
def test_public_docstring_has_a_runnable_example(name):
    doc = inspect.getdoc(public_objects()[name]) or ""
    assert "Examples\n--------" in doc, f"{name}: its docstring has no numpy-style Examples section"
    runnable = [line for line in doc.splitlines() if line.lstrip().startswith(">>>") and "+SKIP" not in line]
    assert runnable, f"{name}: its Examples section has no example that doctest runs (all skipped)"


@pytest.mark.parametrize("module", doctest_modules())
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False, report=True)
    assert result.attempted > 0, f"{module}: no example was run"
    assert result.failed == 0, f"{module}: {result.failed} of {result.attempted} examples failed (see the output above)"


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_examples_in_docs_pages_run(page):
    result = doctest.testfile(str(DOCS / page), module_relative=False, optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"docs/{page}: {result.failed} of {result.attempted} examples failed"


def test_command_pages_match_the_parsers():
    """docs/commands/*.md hold each command's --help as the parser prints it: regenerated, they do not change."""
    proc = subprocess.run([sys.executable, str(DOCS / "_generate_commands.py"), "--check"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_object_in_api_reference_is_public():
    """docs/api.rst names only objects that exist, and names every public object."""
    text = (DOCS / "api.rst").read_text()
    for name in public_objects():
        assert name in text, f"{name} is public but missing from docs/api.rst"


def test_sphinx_builds_without_warnings(tmp_path):
    out = tmp_path / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "-d",
                           str(tmp_path / "doctrees"), str(DOCS), str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    api = (out / "api.html").read_text()
    assert "privagg.footfall" in api and "Examples" in api
    for page in ("index", "reports", "claims", "privacy-units", "commands/index", "commands/release", "commands/audit"):
        assert (out / f"{page}.html").exists(), f"docs page {page} was not built"
