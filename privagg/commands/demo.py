"""``privagg demo``: the main job in one command.

Builds a small synthetic city, releases footfall, OD flows and a segment
crossbreak with small-count suppression and at two DP levels, runs attacks
against each, and writes a self-contained report (see :mod:`privagg.demo`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from privagg.demo import DEFAULTS

    parser = subparsers.add_parser(
        "demo", help="build a small city, release and attack its data, write a report",
        description="Build a small synthetic city, release footfall, OD flows and an age x gender crossbreak "
                    "with k-suppression and with user-level DP at two privacy levels, run attacks against "
                    "each, and write report.html (plus the releases and budget ledgers) into --out.",
    )
    parser.add_argument("--out", default="privagg-demo", metavar="DIR",
                        help="output directory (default ./privagg-demo)")
    parser.add_argument("--users", type=int, default=DEFAULTS["n_users"], metavar="N",
                        help=f"subscribers in the city (default {DEFAULTS['n_users']:,})")
    parser.add_argument("--cells", type=int, default=DEFAULTS["n_cells"], metavar="C",
                        help=f"cells in the city (default {DEFAULTS['n_cells']})")
    parser.add_argument("--days", type=int, default=DEFAULTS["days"], metavar="D",
                        help=f"days of movement (default {DEFAULTS['days']})")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], metavar="S",
                        help=f"seed of the synthetic city (default {DEFAULTS['seed']})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from privagg.demo import run_demo

    run_demo(Path(args.out), n_users=args.users, n_cells=args.cells, days=args.days, seed=args.seed)
    return 0
