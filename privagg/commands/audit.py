"""``privagg audit CLAIM.toml --out DIR``: test an anonymisation claim and write a report.

Makes the release the claim describes, runs every attack that applies to it,
finds the differentially private release of the same accuracy and attacks it
too, and writes DIR/report.html (one self-contained page for a
non-specialist), DIR/report.json and the releases as Parquet. The claim
format is documented in docs/claims.md; examples are in experiments/claims/.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from privagg.commands.paths import check_out_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit", help="test an anonymisation claim (TOML) and write a report",
        description="Make the release a claim describes, attack it, compare it with a DP release of the same "
                    "accuracy, and write DIR/report.html and DIR/report.json. Claim format: docs/claims.md.",
    )
    parser.add_argument("claim", metavar="CLAIM.toml",
                        help="the claim, e.g. experiments/claims/operator_footfall_k10.toml")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output directory (created, or replaced whole once the audit has succeeded)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --out even if it holds something other than an audit report")
    parser.add_argument("--quiet", action="store_true", help="print only where the report is")
    parser.set_defaults(func=run)


def check_inputs(args: argparse.Namespace, claim) -> None:
    """Before any work: --out is a folder we may replace, not the claim or its data; the data fits in memory."""
    inputs = [Path(args.claim)]
    if claim.data.path is not None:
        data = Path(claim.data.path)
        inputs += [data, *data.iterdir()] if data.is_dir() else [data]
    check_out_dir(args.out, overwrite=args.overwrite, marker="report.json", what="an audit report", inputs=inputs)
    if claim.data.path is None:
        from privagg.synth.generate import check_fits_in_memory

        check_fits_in_memory(int(claim.data.n_users or 1), int(claim.data.days or 1), int(claim.data.n_cells or 0),
                             what="claim [data]")


def run(args: argparse.Namespace) -> int:
    from privagg.claims import load_claim
    from privagg.regulator_audit import audit_claim

    claim = load_claim(args.claim)  # validate before any work
    check_inputs(args, claim)
    outcome = audit_claim(claim, args.out, progress=None if args.quiet else print)
    if args.quiet:
        print(outcome.html)
    else:
        print(f"report: {outcome.html}\njson:   {outcome.json}")
    return 0
