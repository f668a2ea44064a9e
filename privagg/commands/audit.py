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

from privagg.errors import PrivaggInputError


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
    from privagg.commands.release import check_not_inputs, check_writable_folder

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise PrivaggInputError(f"--out {args.out!r} is a file, not a folder. Fix: name a new folder for the report.")
    inputs = [Path(args.claim)]
    if claim.data.path is not None:
        data = Path(claim.data.path)
        inputs += [data, *(p for p in data.iterdir())] if data.is_dir() else [data]
        if data.resolve() == out.resolve() or data.resolve().is_relative_to(out.resolve()):
            raise PrivaggInputError(
                f"--out {args.out!r} holds the claim's data {claim.data.path!r}, which the audit would replace. "
                "Fix: write the report to another folder."
            )
    check_not_inputs([out], inputs)
    if out.is_dir() and any(out.iterdir()) and not (out / "report.json").exists() and not args.overwrite:
        raise PrivaggInputError(
            f"--out {args.out!r} is a folder that does not hold an audit report, and it would be replaced whole. "
            "Fix: name a new folder, or add --overwrite."
        )
    check_writable_folder(out, "--out")
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
