"""Benchmark: generate a synthetic World of 1,000,000 subscribers x 1 day.

Usage::

    python benchmarks/bench_synth.py [--users 1000000] [--days 1] [--cells 2000] [--seed 0]

Reports wall time, events generated per second and the peak resident memory
of the process (``ru_maxrss``). The floor set by issue 2 is under 2 minutes
and under 8 GiB on a 2-core, 24 GiB machine. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FLOOR_SECONDS = 120.0
FLOOR_GIB = 8.0


def peak_rss_gib() -> float:
    """Peak resident set size of this process in GiB (Linux reports ru_maxrss in KiB)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / (1024**2) if sys.platform != "darwin" else kib / 1024**3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--cells", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)

    import numpy as np

    from privagg.synth import generate_world

    baseline = peak_rss_gib()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    world = generate_world(n_users=args.users, n_cells=args.cells, days=args.days, seed=args.seed)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    peak = peak_rss_gib()
    n_events = len(world.events)
    result = {
        "users": args.users, "days": args.days, "cells": args.cells, "seed": args.seed,
        "events": n_events, "stays": len(world.stays), "trips": len(world.trips),
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "load_average_before_after": [round(load_before, 2), round(load_after, 2)],
        "events_per_second": round(n_events / wall),
        "peak_rss_gib": round(peak, 2),
        "rss_before_gib": round(baseline, 2),
        "time_vs_floor": round(wall / FLOOR_SECONDS, 3),
        "memory_vs_floor": round(peak / FLOOR_GIB, 3),
        "python": platform.python_version(), "numpy": np.__version__,
        "cpus": os.cpu_count(),
    }
    print(f"generate_world(n_users={args.users:,}, n_cells={args.cells:,}, days={args.days}, seed={args.seed})")
    print(f"  events            {n_events:,} (stays {len(world.stays):,}, trips {len(world.trips):,})")
    print(f"  wall time         {wall:.1f} s   ({wall / FLOOR_SECONDS:.2f} x the 120 s floor)")
    print(f"  CPU time          {cpu:.1f} s of this process (1-minute load average {load_before:.1f} before, "
          f"{load_after:.1f} after, on {os.cpu_count()} CPUs: other processes share the machine)")
    print(f"  events per second {n_events / wall:,.0f}")
    print(f"  peak memory       {peak:.2f} GiB ({peak / FLOOR_GIB:.2f} x the 8 GiB floor; ru_maxrss of the process)")
    ok = wall < FLOOR_SECONDS and peak < FLOOR_GIB
    print("  within the floor" if ok else "  OUTSIDE the floor")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
