"""The footfall query of ``bench_spark.py`` in Tumult Analytics or PipelineDP on Spark.

Run by ``bench_spark.py`` with the peer's own interpreter (``benchmarks/.venv-tumult`` or
``benchmarks/.venv-pipelinedp``), never imported by privagg:

    python _spark_peers.py tumult|pipelinedp DATA_DIR --rounds 3 --l0 24 --epsilon 1
    python _spark_peers.py tumult|pipelinedp DATA_DIR --serve --l0 24 --epsilon 1

With ``--serve`` the session stays up and runs one round per ``run`` line read from stdin,
printing ``{"seconds": ...}`` after each, until ``quit``: ``bench_spark.py`` uses it to
interleave the peers' rounds with its own cases (A B C A B C) in warm sessions.

Same data (the Parquet files), same query: distinct subscribers per (cell, hour) over the
48,000 public keys, at most L0 keys and one row per key per subscriber, Laplace noise,
epsilon per subscriber. With ``--rounds`` it prints one JSON line: ``{"seconds": warm median,
"all": [...]}``. Either way the last round's noisy grid is saved as ``<peer>_noisy.npy`` for the
accuracy check.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

N_CELLS, CELL_ID0 = 2000, 10_000
DAY0_S = int(np.datetime64("2026-01-05T00:00:00", "s").astype(np.int64))


def session():
    from pyspark.sql import SparkSession

    # This interpreter, not an inherited one: the tasks must import the peer's own packages.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    spark = (SparkSession.builder.master(os.environ.get("BENCH_MASTER", "local[2]")).appName("peer")
             .config("spark.sql.session.timeZone", "UTC").config("spark.driver.memory", "6g")
             .config("spark.ui.showConsoleProgress", "false").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def keyed_events(spark, directory: Path):
    """Events with one key column: ``key = cell index * 24 + hour`` (both peers group by one column)."""
    from pyspark.sql import functions as F

    events = spark.read.parquet(str(directory / "events.parquet"))
    hour = F.floor((F.unix_timestamp("ts") - F.lit(DAY0_S)) / 3600).cast("long")
    return events.select("user_id", ((F.col("cell_id") - CELL_ID0) * 24 + hour).alias("key"))


def tumult(spark, directory: Path, l0: int, epsilon: float) -> np.ndarray:
    from tmlt.analytics import AddRowsWithID, KeySet, MaxGroupsPerID, MaxRowsPerGroupPerID, PureDPBudget, QueryBuilder, Session

    events = keyed_events(spark, directory)
    sess = Session.from_dataframe(privacy_budget=PureDPBudget(epsilon), source_id="events", dataframe=events,
                                  protected_change=AddRowsWithID(id_column="user_id"))
    keys = KeySet.from_dict({"key": list(range(N_CELLS * 24))})
    query = (QueryBuilder("events").enforce(MaxRowsPerGroupPerID("key", 1)).enforce(MaxGroupsPerID("key", l0))
             .groupby(keys).count())
    out = sess.evaluate(query, PureDPBudget(epsilon)).toPandas()
    grid = np.zeros(N_CELLS * 24)
    grid[out["key"].to_numpy()] = out["count"].to_numpy(dtype=float)
    return grid.reshape(N_CELLS, 24)


def pipelinedp(spark, directory: Path, l0: int, epsilon: float) -> np.ndarray:
    import pipeline_dp

    rdd = keyed_events(spark, directory).rdd.map(lambda r: (r[0], r[1]))
    accountant = pipeline_dp.NaiveBudgetAccountant(total_epsilon=epsilon, total_delta=0.0)
    engine = pipeline_dp.DPEngine(accountant, pipeline_dp.SparkRDDBackend(spark.sparkContext))
    params = pipeline_dp.AggregateParams(
        metrics=[pipeline_dp.Metrics.PRIVACY_ID_COUNT], noise_kind=pipeline_dp.NoiseKind.LAPLACE,
        max_partitions_contributed=l0, max_contributions_per_partition=1,
    )
    extractors = pipeline_dp.DataExtractors(privacy_id_extractor=lambda r: r[0], partition_extractor=lambda r: r[1],
                                            value_extractor=lambda r: 0)
    public = spark.sparkContext.parallelize(range(N_CELLS * 24))
    result = engine.aggregate(rdd, params, extractors, public_partitions=public)
    accountant.compute_budgets()
    grid = np.zeros(N_CELLS * 24)
    for key, metrics in result.collect():
        grid[key] = metrics.privacy_id_count
    return grid.reshape(N_CELLS, 24)


def versions(peer: str) -> dict[str, str]:
    """The peer's library and the pyspark it runs on, as installed in its environment."""
    from importlib.metadata import version

    return {"tmlt.analytics" if peer == "tumult" else "pipeline-dp":
            version("tmlt.analytics" if peer == "tumult" else "pipeline-dp"), "pyspark": version("pyspark")}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("peer", choices=("tumult", "pipelinedp"))
    parser.add_argument("directory", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help="run one round per 'run' line on stdin")
    parser.add_argument("--l0", type=int, default=24)
    parser.add_argument("--epsilon", type=float, default=1.0)
    args = parser.parse_args()
    spark = session()
    run = {"tumult": tumult, "pipelinedp": pipelinedp}[args.peer]
    times: list[float] = []
    grid = None

    def one_round() -> float:
        nonlocal grid
        t0 = time.perf_counter()
        grid = run(spark, args.directory, args.l0, args.epsilon)
        times.append(time.perf_counter() - t0)
        return times[-1]

    if args.serve:
        print(json.dumps({"ready": True, "versions": versions(args.peer)}), flush=True)
        for line in sys.stdin:
            if line.strip() != "run":
                break
            print(json.dumps({"seconds": one_round()}), flush=True)
    else:
        for _ in range(args.rounds):
            one_round()
    if grid is not None:
        np.save(args.directory / f"{args.peer}_noisy.npy", grid)
    if not args.serve:
        warm = times[1:] if len(times) > 1 else times
        print(json.dumps({"seconds": statistics.median(warm), "all": times}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
