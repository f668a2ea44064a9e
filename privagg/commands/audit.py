"""``privagg audit CLAIM.toml --out DIR``: test an anonymisation claim and write a report.

Makes the release the claim describes, runs every attack that applies to it,
finds the differentially private release of the same accuracy and attacks it
too, and writes DIR/report.html (one self-contained page for a
non-specialist), DIR/report.json and the releases as Parquet. The claim
format is documented in docs/claims.md; examples are in experiments/claims/.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit", help="test an anonymisation claim (TOML) and write a report",
        description="Make the release a claim describes, attack it, compare it with a DP release of the same "
                    "accuracy, and write DIR/report.html and DIR/report.json. Claim format: docs/claims.md.",
    )
    parser.add_argument("claim", metavar="CLAIM.toml",
                        help="the claim, e.g. experiments/claims/operator_footfall_k10.toml")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (created if needed)")
    parser.add_argument("--quiet", action="store_true", help="print only where the report is")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from privagg.claim_audit import audit_claim, load_claim

    claim = load_claim(args.claim)  # validate before any work
    outcome = audit_claim(claim, args.out, progress=None if args.quiet else print)
    if args.quiet:
        print(outcome.html)
    else:
        print(f"report: {outcome.html}\njson:   {outcome.json}")
    return 0
