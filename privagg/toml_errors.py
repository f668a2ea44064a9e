"""Errors for TOML files that point at the file, line and key, with a fix.

Experiment specs (:mod:`privagg.harness.spec`) and anonymisation claims
(:mod:`privagg.claim_audit.claim`) are both TOML written by hand; their validation
reports problems as ``FILE, line N: WHERE: PROBLEM. Fix: FIX``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any, Iterable

from privagg.errors import PrivaggInputError


class TomlErrors:
    """Where we are in the file, to build error messages with file, line and key."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def _block(self, header: str | None, index: int | None) -> tuple[int, int]:
        """Line range (0-based, end exclusive) of a table, or of the top level when header is None."""
        if header is None:
            end = next((i for i, l in enumerate(self.lines) if re.match(r"\s*\[", l)), len(self.lines))
            return 0, end
        pattern = re.compile(r"^\s*\[\[\s*" + re.escape(header) + r"\s*\]\]" if index is not None
                             else r"^\s*\[\s*" + re.escape(header) + r"\s*\]")
        hits = [i for i, l in enumerate(self.lines) if pattern.match(l)]
        if not hits:
            return -1, -1
        start = hits[index if index is not None and index < len(hits) else 0]
        end = len(self.lines)
        for j in range(start + 1, len(self.lines)):
            line = self.lines[j].strip()
            if line.startswith("[") and not line.startswith(f"[{header}.") and not line.startswith(f"[[{header}."):
                end = j
                break
        return start, end

    def line_of(self, header: str | None, key: str | None, index: int | None = None) -> int | None:
        """1-based line where ``key`` is set in table ``header`` (#index for arrays of tables)."""
        start, end = self._block(header, index)
        if start < 0:
            return None
        if key is None:
            return start + 1 if header is not None else None
        pat = re.compile(r"^\s*(\"?)" + re.escape(key) + r"\1\s*=")
        for i in range(start, end):
            if pat.match(self.lines[i]):
                return i + 1
        # key given as a sub-table: [header.key]
        for i in range(start, end):
            if re.match(r"^\s*\[\s*" + re.escape(f"{header}.{key}" if header else key) + r"\s*\]", self.lines[i]):
                return i + 1
        return start + 1 if header is not None else None

    def error(self, where: str, problem: str, fix: str, *, header: str | None = None,
              key: str | None = None, index: int | None = None) -> PrivaggInputError:
        line = self.line_of(header, key, index)
        loc = f"{self.path}" + (f", line {line}" if line else "")
        return PrivaggInputError(f"{loc}: {where}: {problem}. Fix: {fix}")


def suggest(key: str, allowed: Iterable[str]) -> str:
    """"did you mean 'x'? " when ``key`` looks like a typo of an allowed name, else ""."""
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'? " if close else ""


def read_toml_document(text: str, path: str | Path, default: str) -> tuple[dict[str, Any], TomlErrors, str, Path]:
    """Parse a claim or spec: its TOML, an error builder, the path as text, and the folder its relative paths
    start from (the file's folder; the working folder for text given with the placeholder path ``default``)."""
    path_str = str(path)
    raw, ctx = parse_toml(text, path_str)
    base_dir = Path(path_str).resolve().parent if path_str != default else Path.cwd()
    return raw, ctx, path_str, base_dir


def parse_toml(text: str, path: str) -> tuple[dict[str, Any], TomlErrors]:
    """The parsed TOML and an error builder for it; invalid TOML raises PrivaggInputError."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PrivaggInputError(f"{path}: not valid TOML ({exc}). Fix: correct the syntax at that line.") from None
    return raw, TomlErrors(path, text)
