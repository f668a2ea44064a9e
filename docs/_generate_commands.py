"""Write docs/commands/*.md: one page per ``privagg`` command, its purpose and its full ``--help``.

    python docs/_generate_commands.py          # rewrite the pages
    python docs/_generate_commands.py --check  # exit 1 if a page is out of date (the suite runs this check)

The usage text comes from the command line's own parsers (``privagg.cli.build_parser``),
so a page can never document an option the command does not have, or miss one it has.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "commands"

#: What each command is for, and a first example: the part of the page written by hand.
INTRO = {
    "demo": ("Build a small city, release its footfall, OD flows and an age x gender crossbreak with small-count "
             "suppression and with DP at two levels, attack each release, and write `report.html`.",
             "privagg demo --out privagg-demo"),
    "synth": ("Generate a synthetic city (cells, subscribers and their movements) and write it as a folder of "
              "Parquet tables with `world.json`, the input of every other command.",
              "privagg synth --users 20000 --cells 400 --days 7 --seed 1 --out world/"),
    "release": ("Make one differentially private release from a folder of tables (a synthetic World or your own "
                "CSV/Parquet tables), charged to a budget ledger before any noise is drawn; writes the table and "
                "its privacy record (`<out>.privacy.json`).",
                "privagg release footfall --data world/ --epsilon 1 --level zone --time-bin 1h --out footfall.parquet"),
    "compare": ("Compare two releases key by key, from released values only: difference and ratio with exact "
                "intervals from the two noise distributions, and a significance flag.",
                "privagg compare week2.parquet week1.parquet --shift time=7D --out change.csv"),
    "ledger": ("Show a budget ledger (every charge, chained by digests; a damaged or edited ledger is refused) or "
               "export it to JSON.", "privagg ledger show ledger.sqlite"),
    "audit": ("Test an anonymisation claim written in TOML (docs/claims.md): make the release, run every attack "
              "that applies, find the DP release of the same accuracy, and write `report.html` and `report.json` "
              "(docs/reports.md).", "privagg audit experiments/claims/operator_footfall_k10.toml --out audit-k10"),
    "audit-mechanism": ("Run a count mechanism many times on two neighbouring datasets and report a Clopper-Pearson "
                        "lower bound on its epsilon; a bound above the claim flags the mechanism as broken.",
                        "privagg audit-mechanism --mechanism naive_laplace --epsilon 1"),
    "experiment": ("Run the grid of an experiment spec (resumable, on all cores, with provenance) and plot its "
                   "figures and report.", "privagg experiment run experiments/frontier.toml --out runs/frontier"),
    "serve": ("Serve DP aggregates over HTTP to third parties, each with a token and a renewing budget, under a "
              "global cap per dataset.", "privagg serve --cap-epsilon 1.5"),
    "clients": ("Add, list and revoke the clients of `privagg serve` (a token is printed once; only its hash is "
                "stored).", "privagg clients add retailer --epsilon 1 --window 7D"),
    "service": ("Reports on `privagg serve` for a regulator: the log of who asked what at what cost, caps, budgets, "
                "and a check that the ledger and the log agree.", "privagg service report --out service-report.html"),
}


def _parsers() -> dict[str, argparse.ArgumentParser]:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: fix the width so the pages are stable
    from privagg.cli import build_parser

    root = build_parser()
    sub = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices.items())


def _help_blocks(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    """The parser's help and its subcommands' (one level or two), as (prog, text)."""
    blocks = [(parser.prog, parser.format_help())]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                blocks.extend(_help_blocks(child))
    return blocks


def render(name: str, parser: argparse.ArgumentParser) -> str:
    purpose, example = INTRO[name]
    lines = [f"# `privagg {name}`", "", purpose, "", "```bash", example, "```", "",
             "Every error a user can cause is one line naming the option, file or column and the fix, with exit "
             "code 2; `--debug` shows the traceback of an unexpected error.", ""]
    for prog, text in _help_blocks(parser):
        lines += [f"## `{prog}`", "", "```text", text.rstrip(), "```", ""]
    lines.append("*This page is generated from the command's parser by `docs/_generate_commands.py`.*")
    return "\n".join(lines) + "\n"


def render_index(names: list[str]) -> str:
    lines = ["# Command line", "", "`privagg --help` lists the commands; each has a page:", "", "```{toctree}",
             ":maxdepth: 1", ""] + names + ["```", ""]
    return "\n".join(lines)


def pages() -> dict[Path, str]:
    parsers = _parsers()
    missing = sorted(set(parsers) - set(INTRO))
    if missing:
        raise SystemExit(f"commands without an introduction in docs/_generate_commands.py: {missing}")
    out = {OUT / f"{name}.md": render(name, p) for name, p in parsers.items()}
    out[OUT / "index.md"] = render_index(list(parsers))
    return out


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = []
    for path, text in pages().items():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"out of date: {stale}. Fix: run python docs/_generate_commands.py")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
