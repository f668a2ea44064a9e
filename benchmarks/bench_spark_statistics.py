"""Benchmark: dwell mean, segment mean and OD flows on Spark, against the local engine and Spark SQL.

    python benchmarks/bench_spark_statistics.py --rows 10000000 20000000
    python benchmarks/bench_spark_statistics.py --rows 2000000 --statistics dwell_mean --rounds 2

The data and the privagg calls are those of ``bench_statistics.py`` (same
generator, seed, bounds and public keys), written once per size as Parquet in
``--cache``; the footfall query has its own benchmark (``bench_spark.py``,
with Tumult and PipelineDP). Cases, interleaved (A B C A B C) for
``--rounds`` rounds; the first round warms up and the medians of the others
are reported:

spark
    The privagg release with ``engine=SparkEngine(spark)`` on the Parquet files
    read by Spark: consent, keys, bounding, aggregation, partition selection
    and OpenDP noise in the executors, the noisy table collected.
sparksql
    The non-private Spark SQL group-by of the same file and columns (the mean
    per key, or the count per OD key), collected.
local
    The same release on the local engine, on the same rows as pandas (read
    once, outside the timing).

Results go to ``benchmarks/results/spark-statistics-<timestamp>.json`` (gitignored).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_statistics as bs  # noqa: E402  (a sibling script: the data, keys and bounds of every statistic)

RESULTS = HERE / "results"
STATISTICS = ("dwell_mean", "segment_mean", "od_flows")
TABLES = {"dwell_mean": "stays", "segment_mean": "users", "od_flows": "trips"}


def ensure_parquet(statistic: str, n: int, seed: int, cache: Path) -> Path:
    """The cached columns of ``statistic`` (``bench_statistics``) as Parquet files Spark reads directly."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory = bs.ensure_data(statistic, n, seed, cache)
    if (directory / "data.parquet").exists():
        return directory
    cols = {p.stem: np.load(p) for p in directory.glob("*.npy")}
    micros = pa.timestamp("us")
    if statistic == "segment_mean":
        table = pa.table({"user_id": cols["user_id"], "age_band": np.asarray(bs.AGE_BANDS)[cols["age_band"]],
                          "gender": np.asarray(bs.GENDERS)[cols["gender"]], "arpu": cols["arpu"],
                          "opt_in": cols["opt_in"]})
    else:
        names = ["user_id", "cell_id", "start", "end"] if statistic == "dwell_mean" else [
            "user_id", "origin_cell", "destination_cell", "depart", "arrive"]
        table = pa.table({name: (pa.array((cols[name] // 1000).view("datetime64[us]"), type=micros)
                                 if name in ("start", "end", "depart", "arrive") else cols[name]) for name in names})
        users = pa.table({"user_id": cols["users"], "opt_in": np.ones(len(cols["users"]), dtype=bool)})
        pq.write_table(users, directory / "users.parquet")
    pq.write_table(table, directory / "tmp.parquet", row_group_size=1 << 20)
    (directory / "tmp.parquet").replace(directory / "data.parquet")
    return directory


def spark_call(statistic: str, spark, directory: Path):
    """The privagg release on the Spark engine, reading the Parquet files."""
    import privagg as pa
    from privagg.engines.spark import SparkEngine, read_table

    engine = SparkEngine(spark)
    cells = bs.cells_table()
    data = directory / "data.parquet"
    end_days = bs.OD_DAYS if statistic == "od_flows" else 1
    start, end = bs.DAY0, bs.DAY0 + np.timedelta64(end_days, "D")

    def call():
        table = read_table(spark, data, TABLES[statistic])
        if statistic == "segment_mean":
            return pa.segment_stats(table, by=["age_band", "gender"], measure="mean", column="arpu", epsilon=1.0,
                                    keys=pa.KeySet.from_values(age_band=bs.AGE_BANDS, gender=bs.GENDERS),
                                    bounds=pa.Bounds(lower=0, upper=100), engine=engine)
        users = read_table(spark, directory / "users.parquet", "users")
        if statistic == "dwell_mean":
            return pa.dwell_mean(table, users=users, cells=cells, epsilon=1.0, keys=pa.KeySet.areas(cells, "cell"),
                                 start=start, end=end,
                                 bounds=pa.Bounds(max_partitions=12, max_per_partition=4, upper=480), engine=engine)
        return pa.od_flows(table, users=users, cells=cells, epsilon=1.0, delta=1e-9, level="zone", time_bin="1h",
                           start=start, end=end, bounds="default", engine=engine)
    return call


def sparksql_call(statistic: str, spark, directory: Path):
    """The non-private Spark SQL group-by of the same columns."""
    from pyspark.sql import functions as F

    def call():
        frame = spark.read.parquet(str(directory / "data.parquet"))
        if statistic == "segment_mean":
            out = frame.groupBy("age_band", "gender").agg(F.mean("arpu"))
        elif statistic == "dwell_mean":
            minutes = (F.unix_timestamp("end") - F.unix_timestamp("start")) / 60
            out = frame.groupBy("cell_id").agg(F.mean(minutes))
        else:
            out = frame.groupBy((F.col("origin_cell") / bs.ZONE_CELLS).cast("long").alias("origin_zone"),
                                (F.col("destination_cell") / bs.ZONE_CELLS).cast("long").alias("destination_zone"),
                                F.date_trunc("hour", "depart").alias("hour")).count()
        return out.collect()
    return call


def bench(spark, statistic: str, directory: Path, cases: list[str], rounds: int) -> dict:
    runners = {}
    if "spark" in cases:
        runners["spark"] = spark_call(statistic, spark, directory)
    if "sparksql" in cases:
        runners["sparksql"] = sparksql_call(statistic, spark, directory)
    if "local" in cases:
        local, _ = bs._privagg_call(statistic, directory)
        runners["local"] = lambda: local(None)
    times: dict[str, list[float]] = {c: [] for c in runners}
    rows: dict[str, int] = {}
    for r in range(rounds):
        for case, run in runners.items():
            t0 = time.perf_counter()
            out = run()
            times[case].append(time.perf_counter() - t0)
            rows[case] = len(out)
            print(f"    round {r}: {statistic} {case:<9} {times[case][-1]:7.2f} s  ({rows[case]:,} rows out)", flush=True)
    meta = json.loads((directory / "meta.json").read_text())
    result: dict = {"statistic": statistic, "rows": meta["rows"], "users": meta["users"], "cases": {}}
    for case, ts in times.items():
        warm = ts[1:] if len(ts) > 1 else ts
        result["cases"][case] = {"seconds": statistics.median(warm), "all": ts, "rows_out": rows[case]}
    return result


def summarise(results: dict) -> list[str]:
    lines = []
    for r in results["runs"]:
        c = r["cases"]
        line = f"{r['statistic']:<13} {r['rows']:>12,} rows: " + ", ".join(
            f"{name} {v['seconds']:.2f} s" for name, v in c.items())
        if "spark" in c and "sparksql" in c:
            line += f"; spark / Spark SQL = {c['spark']['seconds'] / c['sparksql']['seconds']:.2f}"
        if "spark" in c and "local" in c:
            line += f"; spark / local = {c['spark']['seconds'] / c['local']['seconds']:.1f}"
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="*", default=[2_000_000], help="rows per statistic (default 2,000,000)")
    parser.add_argument("--statistics", default=",".join(STATISTICS), help=f"comma-separated, from {', '.join(STATISTICS)}")
    parser.add_argument("--cases", default="spark,sparksql,local", help="comma-separated cases (default all)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per case; the first warms up (default 3)")
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    parser.add_argument("--cache", type=Path, default=None, help="data directory kept between runs")
    parser.add_argument("--seed", type=int, default=20260105, help="the data seed of bench_statistics.py")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.statistics.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(STATISTICS))
    if unknown:
        parser.error(f"--statistics: unknown {', '.join(unknown)}; choose from {', '.join(STATISTICS)}")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]

    from privagg.engines.spark import spark_session

    spark = spark_session(args.master, config={"spark.driver.memory": "8g"})
    import pyspark

    cache = args.cache or Path(tempfile.mkdtemp(prefix="privagg-spark-stats-"))
    results: dict = {"master": args.master, "pyspark": pyspark.__version__, "runs": []}
    try:
        for n in args.rows:
            for statistic in chosen:
                print(f"{statistic}, {n:,} rows", flush=True)
                directory = ensure_parquet(statistic, n, args.seed, cache)
                results["runs"].append(bench(spark, statistic, directory, cases, args.rounds))
    finally:
        spark.stop()
    print(f"\npyspark {results['pyspark']} on {args.master}; medians of the warm rounds, interleaved")
    for line in summarise(results):
        print(line)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"spark-statistics-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
