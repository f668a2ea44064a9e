"""``privagg synth``: generate a synthetic World and write it as Parquet files."""

from __future__ import annotations

import argparse
import time
from privagg.commands.paths import check_out_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth", help="generate a synthetic city, its subscribers and their movements",
        description=(
            "Generate a synthetic operator's view of a city (cells, users, events, stays, trips and the "
            "cell graph) and write it to DIR as Parquet files, readable with privagg.World.load(DIR)."
        ),
    )
    parser.add_argument("--users", type=int, default=20_000, metavar="N", help="number of subscribers (default 20000)")
    parser.add_argument("--cells", type=int, default=600, metavar="C", help="number of cells, at least 20 (default 600)")
    parser.add_argument("--days", type=int, default=7, metavar="D", help="days observed, from Monday 2026-01-05 (default 7)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--opt-in", type=float, default=0.9, metavar="SHARE",
                        help="share of subscribers who consented (default 0.9)")
    parser.add_argument("--stadium-event", type=int, default=None, metavar="DAY",
                        help="add a stadium event 18:00-21:00 on day DAY (0 = Monday) drawing 15%% of subscribers")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output directory (a World there is replaced atomically; any other existing folder or "
                             "file is refused unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out even if it is not a World")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from privagg.synth import StadiumEvent, generate_world

    check_out_dir(args.out, overwrite=args.overwrite, marker="world.json", what="a World")  # sizes (and whether they fit in memory) are checked by generate_world
    t0 = time.perf_counter()
    event = StadiumEvent(day=args.stadium_event) if args.stadium_event is not None else None
    world = generate_world(
        n_users=args.users, n_cells=args.cells, days=args.days, seed=args.seed,
        opt_in_share=args.opt_in, stadium_event=event,
    )
    elapsed = time.perf_counter() - t0
    out = world.save(args.out)
    print(format_summary(world.summary()))
    print(f"generated in {elapsed:.1f} s; written to {out}")
    return 0


def format_summary(summary: dict) -> str:
    """The World summary as aligned ``key: value`` lines."""
    width = max(len(k) for k in summary)
    return "\n".join(
        f"{k:<{width}}  {v:,}" if isinstance(v, int) else f"{k:<{width}}  {v}" for k, v in summary.items()
    )
