"""``privagg demo``: the main job in one command.

For now: generate a small synthetic city, print its summary and write a
footfall heat map. Later steps of the pipeline extend :func:`run_demo`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEMO_WORLD = {"n_users": 2_000, "n_cells": 200, "days": 2, "seed": 0}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="generate a small city and show what privagg does",
        description="Generate a small synthetic city (2,000 subscribers, 200 cells, 2 days), print its summary "
                    "and write a footfall heat map.",
    )
    parser.add_argument("--out", default="privagg-demo", metavar="DIR",
                        help="output directory (default ./privagg-demo)")
    parser.add_argument("--seed", type=int, default=DEMO_WORLD["seed"], metavar="S", help="random seed (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_demo(Path(args.out), seed=args.seed)
    return 0


def run_demo(out: Path, *, seed: int = 0) -> dict[str, Path]:
    """Generate the demo world, print its summary, write the heat map; return the files written."""
    from privagg.commands.synth import format_summary
    from privagg.synth import generate_world
    from privagg.synth.plot import footfall_heatmap

    world = generate_world(**(DEMO_WORLD | {"seed": seed}))
    print("A synthetic city:")
    print(format_summary(world.summary()))
    out.mkdir(parents=True, exist_ok=True)
    heatmap = footfall_heatmap(world, out / "footfall_heatmap.png")
    print(f"\nFootfall heat map: {heatmap.resolve()}")
    return {"heatmap": heatmap}
