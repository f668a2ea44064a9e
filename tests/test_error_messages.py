"""Errors a user can meet in the attacks and anonymisers read "PROBLEM. Fix: FIX." and are privagg's own.

The check reads the source: every ``raise`` of an exception built from a
message must have a message containing ``Fix:``, and no bare
``ValueError``/``RuntimeError``/``TypeError`` may be raised, because those
reach a user as tracebacks instead of one-line errors.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import privagg

PACKAGE = Path(privagg.__file__).parent
CHECKED = ("attacks", "anonymisers", "claim_audit")
BARE = {"ValueError", "RuntimeError", "TypeError", "KeyError", "AssertionError", "Exception"}


def _text(node: ast.AST) -> str:
    """The literal parts of a message expression (strings, f-strings, concatenations)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _text(node.left) + _text(node.right)
    return ""


def _raises(path: Path) -> list[tuple[int, str, str]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            func = node.exc.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            message = _text(node.exc.args[0]) if node.exc.args else ""
            if name != "error":  # ctx.error(where, problem, fix) of the TOML parsers adds "Fix:" itself
                out.append((node.lineno, name, message))
    return sorted(out)


FILES = sorted(p for sub in CHECKED for p in (PACKAGE / sub).glob("*.py"))


def test_the_check_sees_the_raises():
    found = [r for p in FILES for r in _raises(p)]
    assert len(found) > 20  # the walk reaches real raise statements


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_errors_name_the_fix(path):
    bad = []
    for line, name, message in _raises(path):
        if name in BARE:
            bad.append(f"line {line}: bare {name}")
        elif message and "Fix:" not in message:
            bad.append(f"line {line}: {name}({message[:60]!r}...) has no 'Fix:'")
    assert not bad, f"{path.name}: " + "; ".join(bad)


def test_the_check_fails_on_a_message_without_a_fix(tmp_path):
    """Companion: the check flags a message without a fix and a bare ValueError."""
    bad = tmp_path / "bad.py"
    bad.write_text('def f(x):\n    if x:\n        raise PrivaggInputError(f"x={x} is wrong.")\n    raise ValueError("no")\n')
    found = _raises(bad)
    assert [(n, "Fix:" in m) for _, n, m in found] == [("PrivaggInputError", False), ("ValueError", False)]
