"""Reconstruction tie-breaks: each variant's held-out share and the reported (strongest on training areas) one.

On the hand-built population of the tests (20 areas x 15 subscribers) and on
a synthetic World's subscribers by home cell, for raw tables, k=5 and k=10
suppression and DP at epsilon 0.1, 1 and 10 (per subscriber, all tables
together). Run from the repository root::

    .venv/bin/python experiments/attack_strength_reconstruction.py

Writes ``experiments/results/attack_strength_reconstruction.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from privagg.anonymisers.dp import DPAnonymiser
from privagg.anonymisers.raw import Raw
from privagg.anonymisers.suppression import Suppression
from privagg.attacks.reconstruction import reconstruction_attack, records_from_users
from privagg.synth import generate_world

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from _records_toy import toy_records  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t_start = time.time()
    world = generate_world(n_users=args.users, n_cells=args.cells, days=1, seed=args.seed)
    populations = {
        "hand-built (20 areas x 15)": toy_records(20, 15, seed=0),
        f"synthetic ({args.users} subscribers by home cell)": records_from_users(world.users, area="home_cell"),
    }
    anonymisers = [Raw(), Suppression(k=5), Suppression(k=10)] + [DPAnonymiser(epsilon=e) for e in (0.1, 1.0, 10.0)]
    header = ("| population | release | max-entropy | random | solver | reported (variant) | 95% interval | "
              "product-of-marginals baseline | seconds |\n|---|---|---|---|---|---|---|---|---|")
    lines = [header]
    print(header)
    for pop, records in populations.items():
        for anonymiser in anonymisers:
            t0 = time.time()
            r = reconstruction_attack(records, anonymiser=anonymiser, seed=args.seed)
            v = r.variants
            line = (f"| {pop} | {anonymiser.name} | {v['tie-break: max-entropy']:.3f} | {v['tie-break: random']:.3f} | "
                    f"{v['tie-break: solver']:.3f} | {r.risk:.3f} ({r.variant}) | {r.ci_low:.3f}-{r.ci_high:.3f} | "
                    f"{r.baseline:.3f} | {time.time() - t0:.0f} |")
            print(line, flush=True)
            lines.append(line)
    total = time.time() - t_start
    print(f"\ntotal {total:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "attack_strength_reconstruction.md").write_text(
        "# Reconstruction: tie-break variants (held-out areas)\n\n"
        f"`experiments/attack_strength_reconstruction.py --users {args.users} --cells {args.cells} --seed {args.seed}` "
        f"({total:.0f} s)\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
