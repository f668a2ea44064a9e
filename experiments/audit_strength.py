"""The empirical audit against a claimed epsilon of 1: lower bound, verdict and runs needed per mechanism.

    python experiments/audit_strength.py [--seed 0] [--max-runs 128000]

Counts over 20 public partitions, 200 subscribers, L0 = 10; D' removes the most
active subscriber (10 partitions, one count each). Mechanisms: privagg's
discrete Laplace (correct), the same at half its claimed scale, the one whose
sensitivity ignores L0, numpy's float Laplace, and correct noise over a key set
taken from the data (the subscriber alone in one partition). Each audit adds
runs until the claim is refuted or the cap is reached.
"""

from __future__ import annotations

import argparse
import time

from privagg.audit import COUNT_MECHANISMS, epsilon_lower_bound, example_contributions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-runs", type=int, default=128_000)
    args = parser.parse_args()
    print(f"{'mechanism':<22} {'claimed':>7} {'eps lower bound':>15} {'verdict':>12} {'runs needed':>11} "
          f"{'seconds':>8}  event")
    for key, cls in COUNT_MECHANISMS.items():
        mech = cls(1.0, 20, max_partitions=10)
        data = example_contributions(200, 20, heavy_partitions=10, seed=args.seed, own_partition=key == "data_keys")
        t0 = time.perf_counter()
        r = epsilon_lower_bound(mech, data, seed=args.seed, max_runs=args.max_runs)
        print(f"{mech.name:<22} {r.claimed_epsilon:>7g} {r.epsilon_lb:>15.3f} "
              f"{'FLAGGED' if r.flagged else 'not flagged':>12} {r.n_runs:>11} {time.perf_counter() - t0:>8.1f}  "
              f"{r.event[:110]}", flush=True)


if __name__ == "__main__":
    main()
