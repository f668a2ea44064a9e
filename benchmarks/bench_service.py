"""Benchmark: ``privagg serve`` under load on 127.0.0.1, fresh and cached releases.

Usage::

    python benchmarks/bench_service.py [--fresh 60] [--cached 600] [--threads 8] [--users 2000] [--cells 100]
                                       [--days 7] [--max-seconds 60] [--db URL]

Starts the service as a real process (uvicorn, SQLite in a temporary folder
unless ``--db``), adds clients, then sends

* ``--fresh`` distinct footfall releases (zone x 1h, each a new charge and new noise), and
* ``--cached`` repeats of one release (the stored answer, no charge),

from ``--threads`` threads over HTTP, each phase stopped after
``--max-seconds``. Reports requests per second and the p50/p99 latency of each
phase, prints them and writes JSON to ``benchmarks/results/service.json``.
Counts and time are capped: the run is bounded. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from privagg.service.store import Store  # noqa: E402
from privagg.service.testing import ServiceProcess  # noqa: E402


def phase(url: str, tokens: list[str], bodies: list[dict], threads: int, max_seconds: float) -> dict:
    """Send ``bodies`` round-robin over ``tokens`` from ``threads`` threads; latencies and throughput."""
    lock = threading.Lock()
    todo = list(enumerate(bodies))
    latencies: list[float] = []
    codes: dict[int, int] = {}
    deadline = time.monotonic() + max_seconds

    def worker(w: int) -> None:
        with httpx.Client(timeout=120) as http:
            while True:
                with lock:
                    if not todo or time.monotonic() > deadline:
                        return
                    i, body = todo.pop(0)
                token = tokens[i % len(tokens)]
                t0 = time.perf_counter()
                r = http.post(f"{url}/v1/releases/footfall", json=body, headers={"Authorization": f"Bearer {token}"})
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    codes[r.status_code] = codes.get(r.status_code, 0) + 1

    start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    return {"requests": len(latencies), "seconds": round(wall, 3), "requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None, "status": codes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", type=int, default=60, help="distinct (charged) releases")
    parser.add_argument("--cached", type=int, default=600, help="repeats of one stored release")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time cap of each phase")
    parser.add_argument("--db", help="service database (default: SQLite in a temporary folder)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="privagg-bench-service-") as tmp:
        db = args.db or str(Path(tmp) / "service.sqlite")
        store = Store(db)
        n_clients = 4
        # Budgets large enough that no fresh request is refused: the benchmark measures serving, not refusals.
        tokens = [store.add_client(f"bench{i}-{os.getpid()}", epsilon=1e6, window="1D")[1] for i in range(n_clients)]
        args_serve = ["--synthetic-users", str(args.users), "--synthetic-cells", str(args.cells),
                      "--synthetic-days", str(args.days), "--rate-limit", "1000000", "--cap-epsilon", "1e9"]
        with ServiceProcess(db, args_serve, log=Path(tmp) / "serve.log") as svc:
            fresh_bodies = [{"epsilon": 0.01, "level": "zone", "time_bin": "1h", "ci_level": 0.5 + 0.49 * i / max(1, args.fresh)}
                            for i in range(args.fresh)]
            fresh = phase(svc.url, tokens, fresh_bodies, args.threads, args.max_seconds)
            one = {"epsilon": 0.01, "level": "zone", "time_bin": "1h", "ci_level": 0.95}
            for token in tokens:  # store the answer once per client
                httpx.post(f"{svc.url}/v1/releases/footfall", json=one, headers={"Authorization": f"Bearer {token}"},
                           timeout=120)
            cached = phase(svc.url, tokens, [one] * args.cached, args.threads, args.max_seconds)
            keys = httpx.post(f"{svc.url}/v1/releases/footfall", json=one, timeout=60,
                              headers={"Authorization": f"Bearer {tokens[0]}"}).json()["n_keys"]
        consistency = store.consistency()
        store.close()

    result = {"benchmark": "service", "world": {"users": args.users, "cells": args.cells, "days": args.days},
              "keys_per_release": keys, "threads": args.threads, "clients": n_clients, "fresh": fresh, "cached": cached,
              "ledger_and_log_agree": consistency["consistent"], "charges": consistency["charges"],
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    print(f"world: {args.users} subscribers, {args.cells} cells, {args.days} days; footfall zone x 1h = {keys} keys; "
          f"{args.threads} threads, {n_clients} clients")
    for name in ("fresh", "cached"):
        r = result[name]
        print(f"{name:>6}: {r['requests']} requests in {r['seconds']} s = {r['requests_per_s']} req/s; "
              f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms; status {r['status']}")
    print(f"ledger and log agree: {consistency['consistent']} ({consistency['charges']} charges)")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "service.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
