"""``privagg clients``: add, list and revoke the service's clients.

::

    privagg clients add retailer --epsilon 1 --window 7D         # prints the token once
    privagg clients add operator --admin                         # an administrator (clients over HTTP)
    privagg clients list
    privagg clients revoke retailer

Tokens are long random secrets; the database keeps only their SHA-256.
"""

from __future__ import annotations

import argparse

from privagg.commands.serve import db_option


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("clients", help="add, list and revoke clients of `privagg serve`",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="create a client and print its token (once)")
    add.add_argument("name", help="client name: letters, digits, _ . -")
    add.add_argument("--epsilon", type=float, default=0.0, metavar="E",
                     help="budget per dataset per window (required for a client)")
    add.add_argument("--delta", type=float, default=0.0, metavar="D", help="delta budget per dataset per window (0)")
    add.add_argument("--window", default="7D", metavar="W", help="budget window, renewing: 1D, 7D, ... (default 7D)")
    add.add_argument("--dataset", action="append", metavar="NAME",
                     help="a dataset the client may query (repeat for several; default all)")
    add.add_argument("--rate-limit", type=int, metavar="N",
                     help="requests per minute for this client (default: the server's --rate-limit)")
    add.add_argument("--admin", action="store_true", help="an administrator: manages clients, makes no releases")
    db_option(add)
    lst = sub.add_parser("list", help="list clients and their budgets")
    db_option(lst)
    rev = sub.add_parser("revoke", help="revoke a client's token")
    rev.add_argument("name")
    db_option(rev)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from privagg.service.store import Store

    store = Store(args.db)
    try:
        if args.action == "add":
            client, token = store.add_client(args.name, epsilon=args.epsilon, delta=args.delta, window=args.window,
                                             datasets=args.dataset, role="admin" if args.admin else "client",
                                             rate_limit=args.rate_limit)
            what = "administrator" if client.is_admin else (
                f"epsilon={client.epsilon:g}, delta={client.delta:g} per {client.window} on "
                f"{'every dataset' if client.datasets is None else ', '.join(client.datasets)}")
            print(f"client {client.name!r} added ({what}). Its token, shown only now:")
            print(token)
        elif args.action == "list":
            rows = store.list_clients()
            if not rows:
                print("no clients. Add one with `privagg clients add NAME --epsilon E`.")
            for c in rows:
                state = f"revoked {c.revoked}" if c.revoked else "active"
                budget = "admin" if c.is_admin else f"epsilon={c.epsilon:g} delta={c.delta:g} per {c.window}"
                ds = "*" if c.datasets is None else ",".join(c.datasets)
                rate = f"\trate={c.rate_limit}/min" if c.rate_limit else ""
                print(f"{c.name}\t{c.role}\t{budget}\tdatasets={ds}{rate}\t{state}")
        else:
            c = store.revoke_client(args.name)
            print(f"client {c.name!r}: token revoked ({c.revoked}).")
    finally:
        store.close()
    return 0
