"""``privagg serve``: the HTTP service for accredited third parties (FastAPI on uvicorn).

::

    privagg serve                                  # a synthetic World, SQLite in ./privagg-service.sqlite
    privagg serve --catalogue datasets.toml --db postgresql+psycopg://privagg@localhost/privagg --port 8000

Add clients with ``privagg clients add`` (same ``--db``). The OpenAPI
document is at ``/openapi.json``, its pages at ``/docs``.
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_DB = "privagg-service.sqlite"


def db_option(parser: argparse.ArgumentParser) -> None:
    """``--db``: shared by serve, clients and service."""
    parser.add_argument("--db", default=os.environ.get("PRIVAGG_SERVICE_DB", DEFAULT_DB), metavar="URL",
                        help="the service database: an SQLite file (default ./privagg-service.sqlite, or "
                             "$PRIVAGG_SERVICE_DB) or a SQLAlchemy URL such as postgresql+psycopg://user@host/db")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="serve DP aggregates over HTTP to clients with budgets",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    db_option(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--catalogue", metavar="TOML", help="datasets to serve (default: one synthetic World)")
    p.add_argument("--synthetic-users", type=int, metavar="N", help="subscribers of the default synthetic World (2000)")
    p.add_argument("--synthetic-cells", type=int, metavar="N", help="cells of the default synthetic World (100)")
    p.add_argument("--synthetic-days", type=int, metavar="N", help="days of the default synthetic World (7)")
    p.add_argument("--cap-epsilon", type=float, default=10.0, metavar="E",
                   help="global cap per dataset, all clients together (default 10; a catalogue entry may set its own)")
    p.add_argument("--cap-delta", type=float, default=1e-6, metavar="D", help="global delta cap per dataset (1e-6)")
    p.add_argument("--rate-limit", type=int, default=120, metavar="N", help="requests per client per minute (120)")
    p.add_argument("--max-body", type=int, default=64 * 1024, metavar="BYTES", help="largest request body (64 KiB)")
    p.add_argument("--time-limit", type=float, default=60.0, metavar="S", help="seconds a release may take (60)")
    p.add_argument("--max-keys", type=int, default=200_000, metavar="N", help="most keys in one answer (200000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from privagg.errors import PrivaggInputError
    from privagg.service.app import Settings, create_app

    for name in ("port", "rate_limit", "max_body", "max_keys"):
        if getattr(args, name) <= 0:
            raise PrivaggInputError(f"--{name.replace('_', '-')} {getattr(args, name)} must be > 0. Fix: e.g. the default.")
    if not args.time_limit > 0 or not args.cap_epsilon >= 0 or not 0 <= args.cap_delta < 1:
        raise PrivaggInputError("--time-limit must be > 0, --cap-epsilon >= 0, --cap-delta in [0, 1). Fix: e.g. the defaults.")
    synthetic = tuple((k, v) for k, v in (("n_users", args.synthetic_users), ("n_cells", args.synthetic_cells),
                                          ("days", args.synthetic_days)) if v is not None)
    settings = Settings(db=args.db, catalogue=args.catalogue, synthetic=synthetic, cap_epsilon=args.cap_epsilon,
                        cap_delta=args.cap_delta, max_body=args.max_body, rate_limit=args.rate_limit,
                        time_limit=args.time_limit, max_keys=args.max_keys)
    _check_port(args.host, args.port)
    app = create_app(settings)
    names = ", ".join(app.state.catalogue)
    print(f"privagg serve: http://{args.host}:{args.port} (datasets: {names}; database {app.state.store.shown}; "
          f"OpenAPI at /openapi.json)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def _check_port(host: str, port: int) -> None:
    """Refuse an address already in use in one line, before the datasets are loaded."""
    import socket

    from privagg.errors import PrivaggInputError

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        raise PrivaggInputError(
            f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}). Fix: choose another --port, "
            "or stop the program using it."
        ) from None
