"""``privagg service report``: the service's log as an HTML report for a regulator.

::

    privagg service report --out service-report.html
"""

from __future__ import annotations

import argparse

from privagg.commands.serve import db_option


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("service", help="reports on `privagg serve`: who asked what, at what cost",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    rep = sub.add_parser("report", help="render the service log, budgets and caps as HTML")
    rep.add_argument("--out", default="service-report.html", metavar="FILE", help="the HTML file (service-report.html)")
    rep.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    db_option(rep)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from privagg.commands.paths import check_out_file
    from privagg.service.report import write_service_report
    from privagg.service.store import Store, database_url

    url = database_url(args.db)
    inputs = [Path(url.split("///", 1)[1])] if url.startswith("sqlite:///") else []
    check_out_file(args.out, suffixes=(".html",), overwrite=args.overwrite, inputs=inputs)
    store = Store(args.db)
    try:
        path, summary = write_service_report(store, args.out)
    finally:
        store.close()
    state = "ledger and log agree" if summary["consistent"] else f"{len(summary['problems'])} inconsistencies"
    print(f"service report -> {path} ({summary['log_entries']} log entries, {summary['charges']} charges, "
          f"{summary['answered']} answered; {state})")
    return 0
