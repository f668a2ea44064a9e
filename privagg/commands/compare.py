"""``privagg compare``: like-for-like comparison of two releases on disk.

::

    privagg compare week2.parquet week1.parquet --shift time=7D --out change.csv

Reads two releases written by ``privagg release`` (or ``Release.write``),
matches their keys and writes, per key, the difference and ratio with
confidence intervals and a significance flag, computed from the released
values and their privacy records only (:func:`privagg.compare`). It reads
no data and spends no budget.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from privagg.errors import PrivaggInputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="compare two releases key by key (difference, ratio, significance)",
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("a", metavar="A", help="release A (FILE.parquet or FILE.csv with FILE.privacy.json beside it)")
    parser.add_argument("b", metavar="B", help="release B, compared as A - B and A / B")
    parser.add_argument("--on", metavar="COL,COL", help="key columns to match on (default: those both share)")
    parser.add_argument("--shift", action="append", default=[], metavar="COL=OFFSET",
                        help="add OFFSET to B's column before matching, e.g. time=7D for the week before "
                             "(repeat for several columns)")
    parser.add_argument("--level", type=float, default=0.95, metavar="P",
                        help="confidence level of the intervals and the significance flag (default 0.95)")
    parser.add_argument("--signed", action="store_true",
                        help="the statistic can be negative: do not clip the ratio's interval at 0")
    parser.add_argument("--out", metavar="FILE",
                        help="write the comparison to FILE.parquet or FILE.csv (atomically); default: print the "
                             "significant keys")
    parser.set_defaults(func=run)


def parse_shift(items: list[str]) -> dict[str, Any]:
    """``["time=7D", "zone_id=1"]`` as ``{"time": "7D", "zone_id": 1}`` (numbers stay numbers)."""
    shift: dict[str, Any] = {}
    for item in items:
        column, sep, offset = item.partition("=")
        if not sep or not column or not offset:
            raise PrivaggInputError(
                f"--shift {item!r} is not COL=OFFSET. Fix: e.g. --shift time=7D to compare with a week earlier."
            )
        value: Any = offset
        for kind in (int, float):
            try:
                value = kind(offset)
                break
            except ValueError:
                continue
        shift[column] = value
    return shift


def run(args: argparse.Namespace) -> int:
    from privagg.compare import compare
    from privagg.release import Release, write_table

    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".parquet", ".csv"):
        raise PrivaggInputError(f"--out {args.out!r}: unknown file type. Fix: end the file name in .parquet or .csv.")
    shift = parse_shift(args.shift)
    on = [c.strip() for c in args.on.split(",") if c.strip()] if args.on else None
    a, b = Release.read(args.a), Release.read(args.b)
    result = compare(a, b, on=on, shift=shift, level=args.level, nonnegative=not args.signed)
    print(result.describe())
    table = result.to_pandas()
    if out is None:
        significant = table[table["significant"]]
        print(significant.to_string(index=False) if len(significant) else "no key changed significantly")
        return 0
    write_table(out, table)
    print(f"{len(table):,} keys written to {out}")
    return 0
