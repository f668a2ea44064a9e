"""Benchmark: DP footfall on Spark (cell x hour, 48,000 public keys, L0 = 24, one per key, epsilon 1).

    python benchmarks/bench_spark.py --events 10000000 20000000 --master "local[2]"
    python benchmarks/bench_spark.py --noise-keys 1000000 5000000 17000000

The events are those of ``bench_footfall.py`` (same generator, seed, users and
cells), written once per size as Parquet (``ts`` in microseconds, as Spark
stores it) in ``--cache``. Cases, run interleaved (A B C A B C ...) for
``--rounds`` rounds; the first round warms up and the medians of the others
are reported:

spark
    ``privagg.footfall(events_sdf, ..., engine=SparkEngine(spark))``: the
    Parquet file read by Spark, consent (a semi-join with the users), keys,
    bounding, aggregation and OpenDP noise in the executors, the noisy table
    collected.
countdistinct
    The non-private Spark SQL distinct count of the same file:
    ``groupBy(cell_id, date_trunc('hour', ts)).agg(countDistinct(user_id))``, collected.
local
    ``privagg.footfall`` on the local engine, on the same events as pandas
    (read once, outside the timing).
tumult, pipelinedp
    Tumult Analytics 0.21 and PipelineDP 0.3.1 on Spark with the same bounds
    (L0 = 24, one row per key, Laplace, epsilon 1, the same public keys), each
    in its own virtual environment, because their pins clash with privagg's
    (Tumult needs pandas < 2 and numpy < 2 and pyspark 3.5)::

        python3 -m venv benchmarks/.venv-tumult
        benchmarks/.venv-tumult/bin/pip install "tmlt.analytics>=0.21,<0.22"
        python3 -m venv benchmarks/.venv-pipelinedp
        benchmarks/.venv-pipelinedp/bin/pip install "pipeline-dp==0.3.1" "pyspark>=3.5,<3.6" pyarrow pandas

    A case whose environment is missing is skipped with that message. Each
    runs in a process of its own (``benchmarks/_spark_peers.py --serve``) with
    its own warm ``local[2]`` session, one round at a time when its turn comes,
    so that its rounds interleave with the others' like every case's.

Accuracy: median relative error over the keys with at least 100 true visitors
(as in ``bench_footfall.py``). Noise: ``--noise-keys`` times the noise of N
public keys on both engines (local: ``NoiseMechanism.sample``; Spark: the
engine's noise step over N keys in the executors, collected).

Results go to ``benchmarks/results/spark-<timestamp>.json`` (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_footfall import (  # noqa: E402  (a sibling script, not a package)
    CELL_ID0, DAY0, EPSILON, HOUR_NS, L0, N_CELLS, cells_table, ensure_data, median_relative_error, true_counts,
    users_table,
)

RESULTS = HERE / "results"
PEERS = {"tumult": HERE / ".venv-tumult" / "bin" / "python", "pipelinedp": HERE / ".venv-pipelinedp" / "bin" / "python"}
PEER_SETUP = {
    "tumult": 'python3 -m venv benchmarks/.venv-tumult && benchmarks/.venv-tumult/bin/pip install "tmlt.analytics>=0.21,<0.22"',
    "pipelinedp": ('python3 -m venv benchmarks/.venv-pipelinedp && benchmarks/.venv-pipelinedp/bin/pip install '
                   '"pipeline-dp==0.3.1" "pyspark>=3.5,<3.6" pyarrow pandas'),
}
FLOORS = {"countdistinct_ratio_max": 2.5, "tumult_speedup_min": 3.0, "pipelinedp_speedup_min": 8.0}


def ensure_parquet(n_events: int, seed: int, cache: Path) -> Path:
    """The events (and users) of ``bench_footfall`` as Parquet files Spark reads directly."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = ensure_data(n_events, seed, cache)
    if not (directory / "events.parquet").exists():
        user = np.load(directory / "user_id.npy").astype(np.int64)
        cell = np.load(directory / "cell_id.npy").astype(np.int64)
        ts = (np.load(directory / "ts.npy") // 1000).view("datetime64[us]")
        table = pa.table({"user_id": user, "cell_id": cell, "ts": pa.array(ts, type=pa.timestamp("us"))})
        pq.write_table(table, directory / "events.parquet", row_group_size=1 << 20)
        users = users_table(directory)
        users["user_id"] = users["user_id"].astype(np.int64)
        users.to_parquet(directory / "users.parquet", index=False)
        np.save(directory / "truth.npy", true_counts(directory))
    return directory


def noisy_grid(table) -> np.ndarray:
    noisy = np.zeros((N_CELLS, 24))
    hour = (table["time"].to_numpy().astype("datetime64[ns]").astype(np.int64) - DAY0.astype(np.int64)) // HOUR_NS
    noisy[table["cell_id"].to_numpy() - CELL_ID0, hour] = table["value"].to_numpy(dtype=float)
    return noisy


def bench_size(spark, directory: Path, cases: list[str], rounds: int) -> dict:
    import pandas as pd
    from pyspark.sql import functions as F

    import privagg as pa
    from privagg.engines.spark import SparkEngine, read_table

    cells = cells_table()
    start, end = pd.Timestamp(DAY0), pd.Timestamp(DAY0) + pd.Timedelta(days=1)
    keys = pa.KeySet.areas_by_time(cells, level="cell", start=start, end=end, time_bin="1h")
    bounds = pa.Bounds(max_partitions=L0, max_per_partition=1)
    truth = np.load(directory / "truth.npy")
    engine = SparkEngine(spark)
    local_events = local_users = None
    if "local" in cases:
        local_events = pd.read_parquet(directory / "events.parquet")
        local_events["ts"] = local_events["ts"].astype("datetime64[ns]")
        local_users = pd.read_parquet(directory / "users.parquet")
    errors: dict[str, float] = {}

    def run_spark() -> None:
        events = read_table(spark, directory / "events.parquet", "events")
        users = read_table(spark, directory / "users.parquet", "users")
        rel = pa.footfall(events, users=users, cells=cells, source="events", epsilon=EPSILON, level="cell",
                          time_bin="1h", keys=keys, bounds=bounds, engine=engine)
        errors["spark"] = median_relative_error(noisy_grid(rel.to_pandas()), truth)[0]

    def run_countdistinct() -> None:
        events = spark.read.parquet(str(directory / "events.parquet"))
        out = events.groupBy("cell_id", F.date_trunc("hour", "ts").alias("hour")).agg(
            F.countDistinct("user_id").alias("visitors")).collect()
        assert len(out) > 0

    def run_local() -> None:
        rel = pa.footfall(local_events, users=local_users, cells=cells, source="events", epsilon=EPSILON,
                          level="cell", time_bin="1h", keys=keys, bounds=bounds)
        errors["local"] = median_relative_error(noisy_grid(rel.to_pandas()), truth)[0]

    runners: dict = {"spark": run_spark, "countdistinct": run_countdistinct, "local": run_local}
    out: dict = {"events": int(json.loads((directory / "meta.json").read_text())["events"]), "cases": {}}
    peers: dict[str, Peer] = {}
    for name in ("tumult", "pipelinedp"):
        if name in cases:
            peer = Peer.start(name, directory)
            if isinstance(peer, Peer):
                peers[name] = peer
                runners[name] = peer.run_round
            else:
                out["cases"][name] = peer
    times: dict[str, list[float]] = {c: [] for c in cases if c in runners}
    try:
        for r in range(rounds):
            for case in times:
                t0 = time.perf_counter()
                seconds = runners[case]()
                times[case].append(seconds if seconds is not None else time.perf_counter() - t0)
                print(f"    round {r}: {case:<14} {times[case][-1]:7.2f} s", flush=True)
    finally:
        for peer in peers.values():
            peer.stop()
    for name in peers:
        noisy_path = directory / f"{name}_noisy.npy"
        if noisy_path.exists():
            errors[name] = median_relative_error(np.load(noisy_path), truth)[0]
    for case, ts in times.items():
        warm = ts[1:] if len(ts) > 1 else ts
        out["cases"][case] = {"seconds": statistics.median(warm), "all": ts, "median_relative_error": errors.get(case)}
    for name, peer in peers.items():
        out["cases"][name]["versions"] = peer.versions
    return out


class Peer:
    """Tumult or PipelineDP in its own interpreter and warm Spark session, one round per request
    (``_spark_peers.py --serve``), so that its rounds interleave with the other cases'."""

    def __init__(self, name: str, process: subprocess.Popen) -> None:
        self.name, self.process = name, process
        self.versions: dict[str, str] = {}

    @classmethod
    def start(cls, name: str, directory: Path) -> Peer | dict:
        """The running peer, or why it is not run (a dict for the results)."""
        python = PEERS[name]
        if not python.exists():
            print(f"    {name}: skipped, its environment is missing. Create it with: {PEER_SETUP[name]}", flush=True)
            return {"skipped": f"environment missing; create it with: {PEER_SETUP[name]}"}
        cmd = [str(python), str(HERE / "_spark_peers.py"), name, str(directory), "--serve",
               "--l0", str(L0), "--epsilon", str(EPSILON)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_")}
        process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        peer = cls(name, process)
        ready = peer._reply()
        if "ready" not in ready:
            raise RuntimeError(f"{name} did not start its Spark session")
        peer.versions = ready.get("versions", {})
        print(f"    {name}: " + ", ".join(f"{k} {v}" for k, v in peer.versions.items()), flush=True)
        return peer

    def _reply(self) -> dict:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"{self.name} stopped (exit code {self.process.wait()}); its log is above")

    def run_round(self) -> float:
        """One round in the peer's session; the seconds it measured there."""
        assert self.process.stdin is not None
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        return float(self._reply()["seconds"])

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
            self.process.wait(timeout=300)


def bench_noise(spark, sizes: list[int], rounds: int) -> list[dict]:
    """Seconds per key of the noise of N public keys, local and in Spark's executors."""
    from pyspark.sql import functions as F

    from privagg.dp.mechanisms import laplace
    from privagg.engines.spark import SparkEngine, SparkTotals

    mech = laplace(EPSILON, L0)
    engine = SparkEngine(spark)
    out = []
    for n in sizes:
        times: dict[str, list[float]] = {"local": [], "spark": []}
        for _ in range(rounds):
            t0 = time.perf_counter()
            mech.sample(np.zeros(n, dtype=np.int64))
            times["local"].append(time.perf_counter() - t0)
            parts = max(2, int(spark.sparkContext.defaultParallelism) * 2)
            rows = (spark.range(0, n, numPartitions=parts).withColumnRenamed("id", "code")
                    .withColumn("count", F.lit(0).cast("long")).withColumn("sum", F.lit(0.0)))
            t0 = time.perf_counter()
            noisy = engine.draw_noise(SparkTotals(rows, n, True), mech, None, public=True)
            times["spark"].append(time.perf_counter() - t0)
            assert len(noisy.codes) == n
        row = {"keys": n}
        for k, ts in times.items():
            med = statistics.median(ts[1:] if len(ts) > 1 else ts)
            row[k] = {"seconds": med, "us_per_key": med / n * 1e6}
        print(f"  noise for {n:,} keys: local {row['local']['seconds']:.2f} s ({row['local']['us_per_key']:.2f} us/key), "
              f"spark {row['spark']['seconds']:.2f} s ({row['spark']['us_per_key']:.2f} us/key)", flush=True)
        out.append(row)
    return out


def summarise(results: dict) -> list[str]:
    lines = []
    for size in results["sizes"]:
        c = size["cases"]
        n = size["events"]
        spark = c.get("spark", {}).get("seconds")
        lines.append(f"{n:,} events, Spark {results['master']}:")
        for name, r in c.items():
            if "seconds" in r:
                err = r.get("median_relative_error")
                versions = ", ".join(f"{k} {v}" for k, v in r.get("versions", {}).items())
                lines.append(f"  {name:<14} {r['seconds']:7.2f} s" + (f"   median rel. error {err:.3f}" if err is not None else "")
                             + (f"   ({versions})" if versions else ""))
            else:
                lines.append(f"  {name:<14} {r.get('skipped') or r.get('failed')}")
        if spark:
            if "seconds" in c.get("countdistinct", {}):
                ratio = spark / c["countdistinct"]["seconds"]
                ok = ratio <= FLOORS["countdistinct_ratio_max"]
                lines.append(f"  spark / countDistinct = {ratio:.2f} (floor <= {FLOORS['countdistinct_ratio_max']}): "
                             f"{'PASS' if ok else 'FAIL'}")
            for peer, key in (("tumult", "tumult_speedup_min"), ("pipelinedp", "pipelinedp_speedup_min")):
                if "seconds" in c.get(peer, {}):
                    speedup = c[peer]["seconds"] / spark
                    lines.append(f"  {peer} / spark = {speedup:.1f}x (floor >= {FLOORS[key]}x): "
                                 f"{'PASS' if speedup >= FLOORS[key] else 'FAIL'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="*", default=[2_000_000], help="sizes (default 2,000,000)")
    parser.add_argument("--cases", default="spark,countdistinct,local,tumult,pipelinedp",
                        help="comma-separated cases (default all)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per case; the first warms up (default 3)")
    parser.add_argument("--noise-keys", type=int, nargs="*", default=[], help="also time the noise of N keys")
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    parser.add_argument("--cache", type=Path, default=None, help="data directory kept between runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from privagg.engines.spark import spark_session

    cache = args.cache or Path(tempfile.gettempdir()) / "privagg-bench-spark"
    spark = spark_session(args.master, app="privagg bench", config={"spark.driver.memory": "6g"})
    spark.sparkContext.setLogLevel("ERROR")
    import pyspark

    results: dict = {"master": args.master, "pyspark": pyspark.__version__, "sizes": [], "noise": []}
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for n in args.events:
        print(f"{n:,} events", flush=True)
        directory = ensure_parquet(n, args.seed, cache)
        results["sizes"].append(bench_size(spark, directory, cases, args.rounds))
    if args.noise_keys:
        results["noise"] = bench_noise(spark, args.noise_keys, args.rounds)
    lines = summarise(results)
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"spark-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
