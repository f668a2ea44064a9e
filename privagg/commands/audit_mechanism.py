"""``privagg audit-mechanism``: an empirical lower bound on a mechanism's epsilon.

Runs the mechanism many times on a small dataset and on the same dataset
without its most active subscriber (who touches ``--max-partitions``
partitions), and prints a lower bound on epsilon valid with confidence
``1 - alpha``, the claimed epsilon, the verdict and how many runs it needed
(runs are added until the claim is refuted or ``--max-runs`` is reached,
unless ``--runs`` fixes them).
"""

from __future__ import annotations

import argparse
import json

#: The names of privagg.audit.COUNT_MECHANISMS, listed here so that building the parser imports no numpy.
MECHANISMS = ("dp", "naive_laplace", "miscalibrated", "half_scale", "data_keys")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "audit-mechanism",
        help="empirical lower bound on a mechanism's epsilon (flags broken mechanisms)",
        description=(
            "Release counts many times on neighbouring datasets (the most active subscriber removed), choose a "
            "distinguishing event on half the runs and bound epsilon from below on the other half with "
            "Clopper-Pearson intervals. A mechanism whose lower bound exceeds its claimed epsilon is flagged. "
            "Runs are added (doubling from 4000) until the claim is refuted or --max-runs is reached. "
            "Mechanisms: dp (privagg's discrete Laplace from OpenDP, correct), naive_laplace (textbook numpy "
            "floating-point Laplace, insecure), miscalibrated (discrete Laplace whose sensitivity ignores L0), "
            "half_scale (discrete Laplace at half the claimed scale), data_keys (correct noise, but only the "
            "partitions with a non-zero count are released: the key set depends on the data)."
        ),
    )
    parser.add_argument("--mechanism", choices=MECHANISMS, required=True, help="mechanism to audit")
    parser.add_argument("--epsilon", type=float, default=1.0, help="claimed epsilon per subscriber (default 1)")
    parser.add_argument("--runs", type=int, default=None,
                        help="fixed number of releases per dataset (default: adaptive, up to --max-runs)")
    parser.add_argument("--max-runs", type=int, default=128_000,
                        help="cap on releases per dataset of the adaptive schedule (default 128000)")
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence of the bound (default 0.05)")
    parser.add_argument("--partitions", type=int, default=20, help="partitions in the public domain (default 20)")
    parser.add_argument("--max-partitions", type=int, default=10,
                        help="L0 bound: partitions one subscriber may touch (default 10)")
    parser.add_argument("--users", type=int, default=200, help="subscribers in the audit dataset (default 200)")
    parser.add_argument("--seed", type=int, default=None, help="seed for the dataset, the split and numpy noise")
    parser.add_argument(
        "--release", choices=("counts", "world"), default="counts",
        help="counts (default): the mechanism on a count vector, fast; world: privagg's anonymiser "
             "(DPAnonymiser or NaiveLaplace) releasing hourly district footfall of a 60-subscriber synthetic "
             "World, one full release per run (slow: 200 runs unless --runs says otherwise)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from privagg.audit import COUNT_MECHANISMS, epsilon_lower_bound, example_contributions

    _check_sizes(args)
    runs = args.runs
    if args.release == "world":
        mechanism, data = _world_release(args)
        runs = 200 if runs is None else runs  # one whole pipeline per run: a fixed, small number
    else:
        mechanism = COUNT_MECHANISMS[args.mechanism](args.epsilon, args.partitions, max_partitions=args.max_partitions)
        # data_keys: the most active subscriber is alone in one partition, so their removal drops a key
        data = example_contributions(
            args.users, args.partitions, heavy_partitions=args.max_partitions,
            seed=0 if args.seed is None else args.seed, own_partition=args.mechanism == "data_keys",
        )
    result = epsilon_lower_bound(mechanism, data, n_runs=runs, alpha=args.alpha, seed=args.seed,
                                 max_runs=max(args.max_runs, 4_000))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"mechanism:        {args.mechanism}")
    print(f"neighbours:       {result.neighbour}")
    print(f"runs:             {result.n_runs} per dataset, needed after {result.metrics['looks']} look(s) "
          f"({result.metrics['stopped']}); half choose the event, half measure it")
    print(f"event:            {result.event}")
    print(f"P[event]:         {result.p_event_d:.4f} on D, {result.p_event_neighbour:.4f} on D'")
    print(f"epsilon lower bound: {result.epsilon_lb:.3f} ({result.confidence:.0%} confidence)")
    print(f"claimed epsilon:  {result.claimed_epsilon:g}")
    print(f"verdict:          {'FLAGGED: the claim is refuted' if result.flagged else 'not flagged'}")
    return 0


def _check_sizes(args: argparse.Namespace) -> None:
    """Sizes the audit can run with, and fit in memory, before anything is allocated."""
    from privagg.errors import PrivaggInputError
    from privagg.synth.generate import available_memory_bytes

    if args.users < 2:
        raise PrivaggInputError(
            f"--users {args.users} is too small: the audit removes one subscriber from a dataset of them. Fix: e.g. --users 200."
        )
    # Each run keeps one released vector of --partitions counts per dataset (two datasets, int64, plus work space).
    need = 4 * 2 * 8 * max(args.runs, 0) * max(args.partitions, 0) + 64 * max(args.users, 0) * max(args.partitions, 0)
    have = available_memory_bytes()
    if have is not None and need > have:
        raise PrivaggInputError(
            f"--runs {args.runs:,} x --partitions {args.partitions:,} (with --users {args.users:,}) needs about "
            f"{need / 2**30:,.1f} GiB of memory, and this machine has {have / 2**30:,.1f} GiB available. "
            "Fix: lower --runs or --partitions."
        )


def _world_release(args: argparse.Namespace):
    from privagg.anonymisers.dp import DPAnonymiser
    from privagg.anonymisers.naive_laplace import NaiveLaplace
    from privagg.audit import ReleaseMechanism
    from privagg.errors import PrivaggInputError
    from privagg.queries import Query
    from privagg.synth import generate_world

    if args.mechanism not in ("dp", "naive_laplace"):
        raise PrivaggInputError(
            f"--mechanism {args.mechanism} exists only as a count mechanism. Fix: drop --release world."
        )
    anonymiser = DPAnonymiser(args.epsilon) if args.mechanism == "dp" else NaiveLaplace(args.epsilon)
    world = generate_world(n_users=60, n_cells=20, days=1, seed=0 if args.seed is None else args.seed)
    query = Query("footfall", level="district", time_bin="1h")
    return ReleaseMechanism(anonymiser, query), world
