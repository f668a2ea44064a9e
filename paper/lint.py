"""Find numbers typed by hand into the paper's Typst sources.

Every figure in the paper must come from ``generated/numbers.json`` (``#r("key")``) or a generated
table, so that the text cannot drift from what the code measures. :func:`typed_numbers` reads a
Typst source the way Typst does (markup, code, math, raw text, comments, labels and references) and
returns every digit sequence that the prose shows and no generated file produced, except:

* in code (layout arguments such as ``columns: 2`` or ``width: 82%``): integers below 10 and numbers
  with a length or ratio unit (``pt``, ``em``, ``cm``, ``mm``, ``in``, ``fr``, ``%``, ``deg``);
  strings in code (``"1.1"`` heading numbering, ``r("mia.k20.auc")`` keys) are not shown as numbers;
* in math: the digits of :data:`MATH_DIGITS`, the constants of formulas ($L_0$,
  $(e^epsilon - 1)/(e^epsilon + 1)$, halves);
* reference and label names (``@demontjoye2013``, ``<tab-mia>``): citation keys, not text;
* the prose tokens of :data:`ALLOWED`, each with its reason.

Raw text (backticks) is checked like prose: a command line with a size in it must be generated too.

    python paper/lint.py            # exits 1 and lists the typed numbers, if any
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: Prose tokens with digits that are names, not measurements: (pattern, reason).
ALLOWED: tuple[tuple[str, str], ...] = (
    (r"\b2010 Census\b", "the name of the census whose reconstruction the paper cites, not a figure"),
)

#: Digits allowed in math: formula constants (L_0, e^eps - 1, 1 + e^eps, halves).
MATH_DIGITS = frozenset("012")

_UNIT = re.compile(r"(\d+(?:\.\d+)?)(pt|em|cm|mm|in|fr|%|deg)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_LABEL = re.compile(r"@[A-Za-z0-9_:.-]+|<[A-Za-z0-9_:.-]+>")
_STATEMENTS = ("let", "set", "show", "import", "include")


@dataclass(frozen=True)
class Finding:
    """A number typed by hand: where, what, and the surrounding text."""

    line: int
    token: str
    context: str
    where: str  # "prose", "raw", "math" or "code"

    def __str__(self) -> str:
        return f"line {self.line} ({self.where}): {self.token!r} in {self.context!r}"


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.found: list[Finding] = []
        self.allowed_spans: list[tuple[int, int]] = []
        for pattern, _reason in ALLOWED:
            self.allowed_spans += [m.span() for m in re.finditer(pattern, text)]

    # -- helpers
    def line(self, pos: int) -> int:
        return self.s.count("\n", 0, pos) + 1

    def flag(self, pos: int, token: str, where: str) -> None:
        if any(a <= pos < b for a, b in self.allowed_spans):
            return
        lo, hi = max(0, pos - 30), min(len(self.s), pos + len(token) + 30)
        self.found.append(Finding(self.line(pos), token, self.s[lo:hi].replace("\n", " "), where))

    def skip_comment(self) -> bool:
        s, i = self.s, self.i
        if s.startswith("//", i):
            j = s.find("\n", i)
            self.i = len(s) if j < 0 else j
            return True
        if s.startswith("/*", i):
            j = s.find("*/", i + 2)
            self.i = len(s) if j < 0 else j + 2
            return True
        return False

    def string(self) -> None:
        """Skip a code string starting at the opening quote."""
        s = self.s
        self.i += 1
        while self.i < len(s) and s[self.i] != '"':
            self.i += 2 if s[self.i] == "\\" else 1
        self.i += 1

    # -- modes
    def markup(self, closing: str | None = None) -> None:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if closing and c == closing:
                self.i += 1
                return
            if self.skip_comment():
                continue
            if c == "\\":
                self.i += 2
            elif c == "`":
                self.raw()
            elif c == "$":
                self.math()
            elif c == "[":  # nested content brackets inside a content block
                self.i += 1
                self.markup("]")
            elif c in "@<" and (m := _LABEL.match(s, self.i)):
                self.i = m.end()
            elif c == "#":
                self.i += 1
                self.code_expression()
            elif c.isdigit():
                m = _NUMBER.match(s, self.i)
                self.flag(self.i, m.group(), "prose")
                self.i = m.end()
            else:
                self.i += 1

    def raw(self) -> None:
        s = self.s
        ticks = len(s[self.i:]) - len(s[self.i:].lstrip("`"))
        fence = "`" * ticks
        end = s.find(fence, self.i + ticks)
        end = len(s) if end < 0 else end
        for m in _NUMBER.finditer(s, self.i + ticks, end):
            self.flag(m.start(), m.group(), "raw")
        self.i = end + ticks

    def math(self) -> None:
        s = self.s
        self.i += 1
        while self.i < len(s) and s[self.i] != "$":
            c = s[self.i]
            if c == "\\":
                self.i += 2
                continue
            if c == '"':  # text in math
                self.string()
                continue
            if c == "#":
                self.i += 1
                self.code_expression()
                continue
            if c.isdigit():
                m = _NUMBER.match(s, self.i)
                if not set(m.group()) <= MATH_DIGITS:
                    self.flag(self.i, m.group(), "math")
                self.i = m.end()
                continue
            self.i += 1
        self.i += 1

    def code_expression(self) -> None:
        """After ``#``: an identifier with calls and content blocks, a statement, or a parenthesised expression."""
        s = self.s
        m = _IDENT.match(s, self.i)
        if m and m.group() in _STATEMENTS:
            self.i = m.end()
            self.code_until_newline()
            return
        if m:
            self.i = m.end()
        while self.i < len(s) and s[self.i] in "([":
            if s[self.i] == "(":
                self.i += 1
                self.code(")")
            else:
                self.i += 1
                self.markup("]")

    def code_until_newline(self) -> None:
        s = self.s
        while self.i < len(s) and s[self.i] != "\n":
            c = s[self.i]
            if c in "([{":
                self.i += 1
                self.code({"(": ")", "[": "]", "{": "}"}[c]) if c != "[" else self.markup("]")
            else:
                self.code_token()

    def code(self, closing: str) -> None:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c == closing:
                self.i += 1
                return
            if c in "({":
                self.i += 1
                self.code(")" if c == "(" else "}")
            elif c == "[":
                self.i += 1
                self.markup("]")
            else:
                self.code_token()

    def code_token(self) -> None:
        s = self.s
        c = s[self.i]
        if self.skip_comment():
            return
        if c == '"':
            self.string()
        elif c == "$":
            self.math()
        elif c.isdigit():
            unit = _UNIT.match(s, self.i)
            if unit:
                self.i = unit.end()
                return
            m = _NUMBER.match(s, self.i)
            if not (m.group().isdigit() and int(m.group()) < 10):
                self.flag(self.i, m.group(), "code")
            self.i = m.end()
        elif c.isalpha() or c == "_":
            self.i = _IDENT.match(s, self.i).end()  # identifiers such as h1 or page-01 are names
        else:
            self.i += 1


def typed_numbers(text: str) -> list[Finding]:
    """Every number in a Typst source that no generated file produced (see the module docstring)."""
    scanner = _Scanner(text)
    scanner.markup()
    return scanner.found


def swallowed_semicolons(text: str) -> list[Finding]:
    """Calls in prose followed by ``;``: Typst takes the semicolon as the end of the expression and
    prints nothing, so ``#r("x"); more`` reads "x more". Write ``#r("x")\\;`` instead."""
    out = []
    for m in re.finditer(r'#[A-Za-z_][\w.]*\((?:[^()"]|"[^"]*"|\((?:[^()"]|"[^"]*")*\))*\);', text):
        out.append(Finding(text.count("\n", 0, m.start()) + 1, m.group(), m.group(), "prose"))
    return out


def check_sources(folder: Path) -> dict[str, list[Finding]]:
    """:func:`typed_numbers` and :func:`swallowed_semicolons` of every ``.typ`` source in ``folder``."""
    found = {}
    for p in sorted(Path(folder).glob("*.typ")):
        text = p.read_text()
        if problems := typed_numbers(text) + swallowed_semicolons(text):
            found[p.name] = problems
    return found


def main() -> int:
    problems = check_sources(Path(__file__).resolve().parent)
    for name, found in problems.items():
        for f in found:
            print(f"{name}: {f}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
