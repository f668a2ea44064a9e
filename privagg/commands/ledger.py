"""``privagg ledger``: read a budget ledger, or export it to JSON.

::

    privagg ledger show ledger.sqlite
    privagg ledger export ledger.sqlite --out ledger-2026-01.json

Both check the whole ledger first (every entry, the chain of digests): a
damaged or edited ledger is refused (exit 2), never repaired. Neither
charges anything.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ledger", help="show a budget ledger, or export it to JSON",
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print the totals, what is spent and remains, and every entry",
                              description="Print the ledger's totals, spent and remaining budget, and one line per entry.")
    show.add_argument("ledger", metavar="LEDGER", help="the ledger (LEDGER.sqlite, or LEDGER.json for the one beside it)")
    export = actions.add_parser("export", help="write the ledger as JSON", description="Write the ledger as JSON, atomically.")
    export.add_argument("ledger", metavar="LEDGER", help="the ledger (LEDGER.sqlite, or LEDGER.json for the one beside it)")
    export.add_argument("--out", required=True, metavar="FILE.json", help="where to write the JSON export")
    export.add_argument("--overwrite", action="store_true", help="replace --out if it exists (never the ledger itself)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from privagg.commands.paths import check_out_file
    from privagg.dp.ledger import Ledger, check_ledger_path, fmt, remaining_of

    db, _ = check_ledger_path(args.ledger, must_exist=True, what="LEDGER")
    if args.action == "export":
        check_out_file(args.out, suffixes=(".json",), overwrite=args.overwrite,
                       inputs=[db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")])
    ledger = Ledger.open(args.ledger)
    entries = ledger.entries()
    if args.action == "export":
        ledger.export_json(args.out, entries=entries)
        print(f"{len(entries):,} entries of {ledger.path} written to {args.out}")
        return 0
    spent = {k: 0.0 for k in ledger.totals}
    for e in entries:
        for k, v in e["cost"].items():
            spent[k] += v
    print(f"ledger {ledger.path}: total {fmt(ledger.totals)}, spent {fmt(spent)}, "
          f"remaining {fmt(remaining_of(spent, ledger.totals))}, {len(entries):,} entries")
    for e in entries:
        extra = "".join(f" {k}={e[k]}" for k in ("request_id", "client", "dataset", "window") if e.get(k))
        print(f"  {e['seq']:>4}  {e['time']}  {e['statistic']:<15} {fmt(e['cost'])}{extra}")
    return 0
