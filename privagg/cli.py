"""The ``privagg`` command line.

Each subcommand lives in its own module under :mod:`privagg.commands` and
exposes ``register(subparsers)``, which adds its parser and sets ``func`` to
the function that runs it. Errors a user can cause are printed as one line
(no traceback) with exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from privagg.errors import PrivaggError

# Module names under privagg.commands, in the order --help lists them.
COMMANDS: tuple[str, ...] = ("demo", "synth", "release", "compare", "audit", "audit_mechanism", "experiment")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    from privagg import __version__

    parser = argparse.ArgumentParser(
        prog="privagg",
        description="Differentially private aggregation of mobility data, and the attacks that test anonymisation.",
    )
    parser.add_argument("--version", action="version", version=f"privagg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"privagg.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # The command line only writes figures to files. Library code leaves the backend alone so
    # that notebooks keep their inline figures.
    import matplotlib

    matplotlib.use("Agg")
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return int(args.func(args) or 0)
    except PrivaggError as exc:
        print(f"privagg {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
