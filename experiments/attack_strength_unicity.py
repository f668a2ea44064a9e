"""Unicity at full strength: de Montjoye's random points against the worst case (some k points).

    python experiments/attack_strength_unicity.py [--users 400] [--cells 40] [--days 2] [--seed 3]

Pseudonymised cell x hour events of a synthetic city. For k = 1, 2, 4: the
share of subscribers singled out by k random points of their trace (de
Montjoye et al. 2013), by some k of their points (the worst case, exact), the
worst case's upper bound (undecided targets counted as singled out), and the
time taken. All subscribers with at least k distinct points are targets.
"""

from __future__ import annotations

import argparse
import time

from privagg.anonymisers.pseudonymised import Pseudonymised
from privagg.attacks.unicity import unicity
from privagg.synth import generate_world


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    t0 = time.perf_counter()
    world = generate_world(n_users=args.users, n_cells=args.cells, days=args.days, seed=args.seed)
    micro = Pseudonymised(level="cell", time_bin="1h", seed=0).release(world)
    print(f"{args.users} subscribers, {args.cells} cells, {args.days} days, cell x hour "
          f"(world and release {time.perf_counter() - t0:.1f} s)")
    print(f"{'k':>2} {'targets':>7} {'random k points':>15} {'some k points':>13} {'upper':>6} {'seconds':>8}")
    for k in (1, 2, 4):
        t = time.perf_counter()
        r = unicity(micro, p=k, n_targets=None, seed=args.seed)
        print(f"{k:>2} {r.n_trials:>7} {r.variants['random k points']:>15.3f} {r.risk:>13.3f} "
              f"{r.metrics['worst_case_upper']:>6.3f} {time.perf_counter() - t:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
