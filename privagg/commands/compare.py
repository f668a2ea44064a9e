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
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists (never an input)")
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


def read_release(path: str, which: str) -> Any:
    """A release from disk, any damage in its table or privacy record reported in one line naming the file."""
    import json

    from privagg.release import Release

    p = Path(path)
    record = p.with_name(p.name + ".privacy.json")
    if record.is_file():
        try:
            data = json.loads(record.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise PrivaggInputError(
                f"release {which}: {str(record)!r} is not a privacy record ({type(exc).__name__}). Fix: pass a release "
                "written by `privagg release` with its .privacy.json unchanged."
            ) from None
    try:
        return Release.read(p)
    except PrivaggInputError as exc:
        raise PrivaggInputError(f"release {which}: {exc}") from None
    except Exception as exc:  # pyarrow/pandas raise many types for a damaged table
        raise PrivaggInputError(
            f"release {which}: {str(p)!r} is not a readable release ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:160]}). Fix: pass a release written by `privagg release`."
        ) from None


def run(args: argparse.Namespace) -> int:
    from privagg.compare import compare
    from privagg.release import Release, write_table

    from privagg.commands.paths import check_out_file

    out = None
    if args.out:
        inputs = [Path(x) for x in (args.a, args.b)]
        out = check_out_file(args.out, suffixes=(".parquet", ".csv"), overwrite=args.overwrite,
                             inputs=[*inputs, *(p.with_name(p.name + ".privacy.json") for p in inputs)])
    if not 0 < args.level < 1:
        raise PrivaggInputError(f"--level {args.level:g} must be in (0, 1). Fix: e.g. --level 0.95.")
    shift = parse_shift(args.shift)
    on = [c.strip() for c in args.on.split(",") if c.strip()] if args.on else None
    a, b = read_release(args.a, "A"), read_release(args.b, "B")
    if on is None and set(a.key_columns) != set(b.key_columns):
        raise PrivaggInputError(
            f"A is keyed by {list(a.key_columns)} and B by {list(b.key_columns)}: they release different keys "
            f"(e.g. another level or time bin), so no key matches. Fix: compare releases made with the same "
            "--level and --time-bin, or name the shared key columns with --on."
        )
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
