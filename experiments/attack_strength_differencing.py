"""Differencing at full strength: today's difference rule, the likelihood-ratio test, and the reported one.

For raw footfall, small-count suppression at k=5 and k=10, and DP at epsilon
0.1, 1 and 10 per subscriber-day, runs :func:`privagg.attacks.differencing`
(training games choose the stronger adversary, held-out games measure it) and
prints each adversary's held-out success, the reported (strongest) figure
with its interval, and the DP bound.

Run from the repository root::

    .venv/bin/python experiments/attack_strength_differencing.py            # ~ a few minutes
    .venv/bin/python experiments/attack_strength_differencing.py --trials 60  # quicker

Writes ``experiments/results/attack_strength_differencing.md`` (and ``.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from privagg.anonymisers.dp import DPAnonymiser
from privagg.anonymisers.raw import Raw
from privagg.anonymisers.suppression import Suppression
from privagg.attacks.differencing import differencing
from privagg.queries import Query
from privagg.synth import generate_world

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--trials", type=int, default=200, help="held-out games (plus half as many training games)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--level", default="cell")
    parser.add_argument("--time-bin", default="1h")
    args = parser.parse_args()

    t_start = time.time()
    world = generate_world(n_users=args.users, n_cells=args.cells, days=args.days, seed=args.seed)
    query = Query("footfall", level=args.level, time_bin=args.time_bin)
    anonymisers = [Raw(), Suppression(k=5), Suppression(k=10)]
    anonymisers += [DPAnonymiser(epsilon=eps, unit="subscriber-day") for eps in (0.1, 1.0, 10.0)]
    rows = []
    header = (f"| release | difference rule | likelihood ratio | reported (variant) | 95% interval | DP bound | seconds |\n"
              f"|---|---|---|---|---|---|---|")
    print(f"world: {args.users} subscribers, {args.cells} cells, {args.days} days; query {query.describe()}; "
          f"{args.trials} held-out games + {args.trials // 2} training games per release\n")
    print(header)
    lines = [header]
    for anonymiser in anonymisers:
        t0 = time.time()
        r = differencing(world, query, anonymiser, n_trials=args.trials, seed=args.seed)
        row = {
            "release": anonymiser.name,
            "difference_rule": r.variants.get("difference rule"),
            "likelihood_ratio": r.variants.get("likelihood ratio"),
            "reported": r.risk, "variant": r.variant, "ci_low": r.ci_low, "ci_high": r.ci_high,
            "dp_bound": r.metrics.get("dp_bound"), "epsilon_over_window": r.metrics.get("epsilon"),
            "share_both_hidden": r.metrics["share_coin_flips"], "seconds": round(time.time() - t0, 1),
        }
        rows.append(row)
        bound = "-" if row["dp_bound"] is None else f"{row['dp_bound']:.3f} (eps {row['epsilon_over_window']:g})"
        line = (f"| {row['release']} | {row['difference_rule']:.3f} | {row['likelihood_ratio']:.3f} | "
                f"{row['reported']:.3f} ({row['variant']}) | {row['ci_low']:.3f}-{row['ci_high']:.3f} | {bound} | "
                f"{row['seconds']:.0f} |")
        print(line, flush=True)
        lines.append(line)
    total = time.time() - t_start
    print(f"\ntotal {total:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    command = "experiments/attack_strength_differencing.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items())
    (RESULTS / "attack_strength_differencing.md").write_text(
        f"# Differencing: difference rule vs likelihood ratio\n\n`{command}` ({total:.0f} s)\n\n"
        f"World: {args.users} subscribers, {args.cells} cells, {args.days} days; query `{query.describe()}`.\n\n"
        + "\n".join(lines) + "\n")
    (RESULTS / "attack_strength_differencing.json").write_text(json.dumps(
        {"command": command, "seconds": total, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
