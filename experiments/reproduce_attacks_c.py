"""Reproduce the headline results of the unicity, trajectory-recovery and differencing attacks.

On a synthetic city (``privagg.synth.generate_world``):

* unicity of pseudonymised events at p = 1..5 points, cell and hour, and
  under spatial/temporal coarsening (de Montjoye et al. 2013: 95% at p = 4);
* trajectory recovery from hourly cell footfall (Xu et al. 2017: 73-91%)
  against raw, suppressed, coarsened and DP releases (epsilon 0.1, 1, 10
  per subscriber-day: each day is a separate release);
* the differencing game against the same methods.

Writes ``<out>/<name>.csv`` and ``<out>/<name>.md`` (one row per
attack x method: risk, 95% CI, baseline, n, seconds) and prints them.

Usage::

    python experiments/reproduce_attacks_c.py                      # research scale
    python experiments/reproduce_attacks_c.py --unicity-users 2000 --xu-users 500 --diff-trials 40   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from privagg.anonymisers import DPAnonymiser
from privagg.anonymisers.coarsening import Coarsening
from privagg.anonymisers.pseudonymised import Pseudonymised
from privagg.anonymisers.raw import Raw
from privagg.anonymisers.suppression import Suppression
from privagg.attacks.differencing import differencing
from privagg.attacks.trajectory_recovery import location_coordinates, trajectory_recovery, true_locations
from privagg.attacks.unicity import unicity
from privagg.queries import Query
from privagg.synth import generate_world

EPSILONS = (0.1, 1.0, 10.0)


def row(result, method: str, seconds: float, **extra) -> dict:
    out = {
        "attack": result.attack,
        "method": method,
        "risk": result.risk,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "baseline": result.baseline,
        "n_trials": result.n_trials,
        "seconds": seconds,
    }
    out.update(extra)
    return out


def markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table (floats to 3 decimals, missing values blank)."""
    def cell(v) -> str:
        if v is pd.NA:
            return ""
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.3f}"
        return str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in rec) + " |" for rec in table.itertuples(index=False)]
    return "\n".join(lines)


def daily_release(world, anonymiser, level: str = "cell", time_bin: str = "1h") -> pd.DataFrame:
    """Footfall released one day at a time, so that epsilon is per subscriber-day."""
    parts = []
    for day in pd.date_range(world.start, world.end, freq="1D", inclusive="left"):
        query = Query("footfall", level=level, time_bin=time_bin, start=day, end=day + pd.Timedelta("1D"))
        parts.append(anonymiser.release(world, query).to_pandas())
    return pd.concat(parts, ignore_index=True)


def run_unicity(args, rows: list) -> None:
    t = time.perf_counter()
    world = generate_world(n_users=args.unicity_users, n_cells=args.cells, days=args.days, seed=args.seed)
    print(f"unicity world: {world.summary()} ({time.perf_counter() - t:.1f} s)")
    settings = [("cell", "1h", p) for p in (1, 2, 3, 4, 5)] + [
        ("zone", "1h", 4), ("district", "1h", 4), ("cell", "3h", 4), ("zone", "3h", 4), ("district", "6h", 4),
    ]
    releases = {}
    for level, time_bin, p in settings:
        if level not in releases:  # one pseudonymised release per level; unicity bins its times itself
            releases[level] = Pseudonymised(source="events", level=level, time_bin="1h", seed=args.seed).release(world)
        t = time.perf_counter()
        result = unicity(releases[level], p=p, time_bin=time_bin, n_targets=None, seed=args.seed)
        seconds = time.perf_counter() - t
        rows.append(row(result, f"pseudonymised events ({level}, {time_bin})", seconds, p=p,
                        n_users=int(result.metrics["n_users"]),
                        mean_reidentification_probability=result.metrics["mean_reidentification_probability"]))
        print(f"  unicity p={p} {level}/{time_bin}: {result.risk:.3f} [{result.ci_low:.3f}, {result.ci_high:.3f}] "
              f"n={result.n_trials} in {seconds:.2f} s", flush=True)


def run_recovery(args, rows: list) -> None:
    t = time.perf_counter()
    world = generate_world(n_users=args.xu_users, n_cells=args.cells, days=args.days, seed=args.seed)
    print(f"recovery world: {world.summary()} ({time.perf_counter() - t:.1f} s)")
    consenting = world.opted_in()
    slots = pd.date_range(world.start, world.end, freq="1h", inclusive="left")
    _, truth = true_locations(consenting.stays, slots)
    coords = location_coordinates(world.cells)
    methods = [("raw", Raw()), ("suppression k=5", Suppression(k=5)), ("suppression k=10", Suppression(k=10)),
               ("suppression k=20", Suppression(k=20)), ("suppression k=5, rounded to 5", Suppression(k=5, rounding=5))]
    methods += [(f"dp epsilon={e:g} per subscriber-day", DPAnonymiser(epsilon=e)) for e in sorted(EPSILONS, reverse=True)]
    for name, anonymiser in methods:
        t0 = time.perf_counter()
        footfall = daily_release(world, anonymiser)
        release_s = time.perf_counter() - t0
        t = time.perf_counter()
        result = trajectory_recovery(footfall, coords, truth, seed=args.seed, target=name)
        seconds = time.perf_counter() - t
        rows.append(row(result, name, seconds, release_seconds=release_s, **{
            k: result.metrics[k] for k in ("reidentified_top2", "reidentified_top3", "unique_top2", "unique_top3")
        }))
        print(f"  recovery {name}: {result.risk:.3f} [{result.ci_low:.3f}, {result.ci_high:.3f}] baseline "
              f"{result.baseline:.3f}; top-2 unique {result.metrics['unique_top2']:.2f}, re-identified "
              f"{result.metrics['reidentified_top2']:.3f}; {seconds:.1f} s", flush=True)
    # coarsened release: zone-level footfall, scored against zone-level truth
    zone_of = world.cells.set_index("cell_id")["zone_id"]
    zone_truth = zone_of.reindex(truth.ravel()).to_numpy().reshape(truth.shape)
    t = time.perf_counter()
    footfall = daily_release(world, Raw(), level="zone")
    result = trajectory_recovery(footfall, location_coordinates(world.cells, "zone_id"), zone_truth,
                                 location_col="zone_id", seed=args.seed, target="coarsening zone, 1h")
    seconds = time.perf_counter() - t
    rows.append(row(result, "coarsening (zone, 1h; scored at zone level)", seconds, **{
        k: result.metrics[k] for k in ("reidentified_top2", "reidentified_top3", "unique_top2", "unique_top3")
    }))
    print(f"  recovery zone-level: {result.risk:.3f} baseline {result.baseline:.3f}")


def run_differencing(args, rows: list) -> None:
    world = generate_world(n_users=args.diff_users, n_cells=args.diff_cells, days=1, seed=args.seed)
    print(f"differencing world: {world.summary()}")
    query = Query("footfall", level="cell", time_bin="1h")
    methods = [("raw", Raw()), ("suppression k=5", Suppression(k=5)), ("suppression k=10", Suppression(k=10)),
               ("suppression k=20", Suppression(k=20)), ("coarsening (zone, 3h)", Coarsening("zone", "3h"))]
    methods += [(f"dp epsilon={e:g} per subscriber-day", DPAnonymiser(epsilon=e)) for e in EPSILONS]
    for name, anonymiser in methods:
        t = time.perf_counter()
        result = differencing(world, query, anonymiser, n_trials=args.diff_trials, seed=args.seed, target=name)
        seconds = time.perf_counter() - t
        rows.append(row(result, name, seconds, dp_bound=result.metrics.get("dp_bound", np.nan),
                        share_coin_flips=result.metrics["share_coin_flips"]))
        bound = f" (DP bound {result.metrics['dp_bound']:.3f})" if "dp_bound" in result.metrics else ""
        print(f"  differencing {name}: {result.risk:.3f} [{result.ci_low:.3f}, {result.ci_high:.3f}]{bound}; {seconds:.1f} s",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--unicity-users", type=int, default=20_000)
    parser.add_argument("--xu-users", type=int, default=2_000)
    parser.add_argument("--diff-users", type=int, default=1_000)
    parser.add_argument("--diff-cells", type=int, default=100)
    parser.add_argument("--diff-trials", type=int, default=100)
    parser.add_argument("--cells", type=int, default=600)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=(), choices=("unicity", "recovery", "differencing"))
    parser.add_argument("--out", type=Path, default=Path("experiments/results"))
    parser.add_argument("--name", default="attacks_c", help="file name stem of the results")
    args = parser.parse_args()
    rows: list = []
    started = time.perf_counter()
    if "unicity" not in args.skip:
        run_unicity(args, rows)
    if "recovery" not in args.skip:
        run_recovery(args, rows)
    if "differencing" not in args.skip:
        run_differencing(args, rows)
    total = time.perf_counter() - started
    table = pd.DataFrame(rows)
    if "p" in table.columns:
        table["p"] = table["p"].astype("Int64")
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / f"{args.name}.csv", index=False)
    shown = table[["attack", "method", "p", "risk", "ci_low", "ci_high", "baseline", "n_trials", "seconds"]
                  if "p" in table.columns else ["attack", "method", "risk", "ci_low", "ci_high", "baseline", "n_trials", "seconds"]]
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    flags = " ".join("--" + k.replace("_", "-") + " " + str(v) for k, v in settings.items() if k != "skip")
    if args.skip:
        flags += " --skip " + " ".join(args.skip)
    header = (
        f"# Attacks C: reproduced results\n\nCommand: `python experiments/reproduce_attacks_c.py {flags}`\n\n"
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"total {total:.0f} s.\n\n"
    )
    (args.out / f"{args.name}.md").write_text(header + markdown(shown) + "\n")
    (args.out / f"{args.name}.json").write_text(json.dumps({"settings": settings, "total_seconds": total}, indent=2))
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"total {total:.0f} s; wrote {args.out / (args.name + '.csv')} and {args.out / (args.name + '.md')}")


if __name__ == "__main__":
    main()
