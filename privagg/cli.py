"""The ``privagg`` command line.

Each subcommand lives in its own module under :mod:`privagg.commands` and
exposes ``register(subparsers)``, which adds its parser and sets ``func`` to
the function that runs it.

No traceback reaches a user: an error a user can cause (bad option, input
file, output path, ledger, a refused budget, a file that cannot be written)
is printed as one line naming what is wrong and the fix, with exit code 2;
an unexpected internal error is printed as one line saying so, with exit
code 1, and ``--debug`` (anywhere on the line) shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from privagg.errors import PrivaggError

# Module names under privagg.commands, in the order --help lists them.
COMMANDS: tuple[str, ...] = ("demo", "synth", "release", "compare", "ledger", "audit", "audit_mechanism", "experiment",
                           "serve", "clients", "service")


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (``privagg synth: error: ... (see privagg synth --help)``), exit code 2.

    Subcommands' parsers are made of this class too (argparse gives subparsers their parent's class).
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    from privagg import __version__

    parser = OneLineParser(
        prog="privagg",
        description="Differentially private aggregation of mobility data, and the attacks that test anonymisation.",
    )
    parser.add_argument("--version", action="version", version=f"privagg {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an unexpected error (may be given after the command too)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"privagg.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 done, 2 input error or refusal, 1 internal error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    # The command line only writes figures to files. Library code leaves the backend alone so
    # that notebooks keep their inline figures.
    import matplotlib

    matplotlib.use("Agg")
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    name = args.command
    try:
        return int(args.func(args) or 0)
    except PrivaggError as exc:
        print(f"privagg {name}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"privagg {name}: interrupted; no output was published.", file=sys.stderr)
        return 130
    except MemoryError:
        if debug:
            raise
        print(f"privagg {name}: error: out of memory. Fix: use smaller inputs or a machine with more memory "
              "(nothing was published).", file=sys.stderr)
        return 2
    except OSError as exc:
        # A file that could not be read or written (disk full, permissions changed meanwhile).
        if debug:
            raise
        where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        print(f"privagg {name}: error: cannot read or write{where}: {exc.strerror or exc}. "
              "Fix: check the path, its permissions and the free disk space.", file=sys.stderr)
        return 2
    except Exception as exc:
        if debug:
            raise
        print(f"privagg {name}: internal error ({type(exc).__name__}: {_one_line(exc)}); this is a bug in privagg, "
              "not in your input. Run again with --debug for the traceback and report it.", file=sys.stderr)
        return 1


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (errors quoting data may hold newlines)."""
    return " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
