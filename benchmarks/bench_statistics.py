"""Benchmark: every statistic on one machine against the non-private Polars group-by of the same data.

    python benchmarks/bench_statistics.py                     # quick: 2M rows, every statistic
    python benchmarks/bench_statistics.py --rows 2000000 20000000 --repeats 2

Statistics (privagg call, then the Polars peer on the same columns):

footfall
    ``footfall(events, level="cell", time_bin="1h", keys=<2,000 cells x 24 h>,
    bounds=Bounds(max_partitions=24))`` against ``group_by(cell_id, hour).agg(user_id.n_unique())``
    and against the floor of any sort-based distinct count, ``np.sort`` of the
    composite int64 key (the events of ``bench_footfall.py``).
dwell_mean
    ``dwell_mean(stays, level="cell", keys=<2,000 cells>, bounds=Bounds(max_partitions=12,
    max_per_partition=4, upper=480))`` against ``group_by(cell_id).agg(minutes.mean())``.
segment_mean
    ``segment_stats(users, by=["age_band", "gender"], measure="mean", column="arpu",
    keys=<6 age bands x 2 genders>, bounds=Bounds(lower=0, upper=100))`` on one row per
    subscriber (categorical columns) against ``group_by(age_band, gender).agg(arpu.mean())``.
od_flows
    ``od_flows(trips, level="zone", time_bin="1h", keys=None, delta=1e-9)`` (keys chosen
    privately: OpenDP's threshold mechanism on every observed key) against
    ``group_by(origin_zone, destination_zone, hour).len()``; 200 zones over a week.

Each case runs in its own subprocess (one case's memory never pollutes
another's): it loads the cached columns (numpy, fixed seed), runs the call
once on the first 10,000 rows to warm up, resets the kernel's peak-RSS mark,
and times the full call. Cases are interleaved (privagg, Polars, privagg,
Polars...) and medians are reported. Peak memory is the peak RSS above the
RSS before the input was loaded, divided by the input's in-memory size.

Floors (issue 16): each statistic within 1.5x of the Polars group-by at 20M
rows with peak memory under 3x the input; footfall within 2.5x of the numpy
sort floor. Results go to ``benchmarks/results/statistics-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

import bench_footfall as ff  # noqa: E402  (shares the footfall data, memory probes and Polars n_unique peer)

DAY0 = ff.DAY0
MIN_NS = 60_000_000_000
HOUR_NS = ff.HOUR_NS
N_CELLS = ff.N_CELLS
CELL_ID0 = ff.CELL_ID0
USER_ID0 = ff.USER_ID0
ZONE_CELLS = 10  # cells per zone: 200 zones
OD_DAYS = 7
WARM_ROWS = 10_000
FLOORS = {"polars_ratio_max": 1.5, "memory_ratio_max": 3.0, "sort_ratio_max": 2.5}
STATISTICS = ("footfall", "dwell_mean", "segment_mean", "od_flows")
AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
GENDERS = ["female", "male"]


# --------------------------------------------------------------------------- data
def generate(statistic: str, n: int, seed: int, directory: Path) -> dict:
    """Write the columns of ``statistic``'s table (n rows) as .npy; footfall reuses bench_footfall's events."""
    directory.mkdir(parents=True, exist_ok=True)
    if statistic == "footfall":
        meta = ff.generate(n, seed, directory)
        (directory / "meta.json").write_text(json.dumps(meta))
        return meta
    rng = np.random.default_rng(seed)
    cell_w = 1.0 / np.arange(1, N_CELLS + 1) ** 0.8
    rng.shuffle(cell_w)
    cell_cdf = np.cumsum(cell_w / cell_w.sum())
    cols: dict[str, np.ndarray] = {}
    if statistic == "segment_mean":
        n_users = n
        idx = rng.permutation(n_users)
        cols["user_id"] = (idx + USER_ID0).astype(np.int64)
        cols["age_band"] = rng.integers(0, len(AGE_BANDS), n_users).astype(np.int8)
        cols["gender"] = rng.integers(0, len(GENDERS), n_users).astype(np.int8)
        cols["arpu"] = rng.gamma(2.0, 12.0, n_users)
        cols["opt_in"] = rng.random(n_users) >= 0.05
    else:
        n_users = ff.n_users_for(n)
        activity = rng.lognormal(0.0, 1.2, n_users)
        user_cdf = np.cumsum(activity / activity.sum())
        user = np.minimum(np.searchsorted(user_cdf, rng.random(n)), n_users - 1)
        cols["user_id"] = (user + USER_ID0).astype(np.int64)
        home = np.searchsorted(cell_cdf, rng.random(n_users))
        if statistic == "dwell_mean":
            at_home = rng.random(n) < 0.5
            cell = np.where(at_home, home[user], np.minimum(np.searchsorted(cell_cdf, rng.random(n)), N_CELLS - 1))
            start = DAY0.astype(np.int64) + rng.integers(0, 24 * 60, n) * MIN_NS
            cols["cell_id"] = (cell + CELL_ID0).astype(np.int64)
            cols["start"] = start
            cols["end"] = start + np.minimum(rng.exponential(45.0, n), 600).astype(np.int64) * MIN_NS
        else:  # od_flows
            work = np.searchsorted(cell_cdf, rng.random(n_users))
            commute = rng.random(n) < 0.6
            origin = np.where(commute, home[user], np.minimum(np.searchsorted(cell_cdf, rng.random(n)), N_CELLS - 1))
            dest = np.where(commute, work[user], np.minimum(np.searchsorted(cell_cdf, rng.random(n)), N_CELLS - 1))
            depart = DAY0.astype(np.int64) + rng.integers(0, OD_DAYS * 24 * 60, n) * MIN_NS
            cols["origin_cell"] = (origin + CELL_ID0).astype(np.int64)
            cols["destination_cell"] = (dest + CELL_ID0).astype(np.int64)
            cols["depart"] = depart
            cols["arrive"] = depart + rng.integers(5, 90, n) * MIN_NS
        cols["users"] = np.arange(n_users, dtype=np.int64) + USER_ID0
    for name, arr in cols.items():
        np.save(directory / f"{name}.npy", arr)
    meta = {"statistic": statistic, "rows": n, "users": int(n_users), "seed": seed}
    (directory / "meta.json").write_text(json.dumps(meta))
    return meta


def _load(directory: Path, names: list[str]) -> dict[str, np.ndarray]:
    return {n: np.load(directory / f"{n}.npy") for n in names}


def cells_table():
    import pandas as pd

    ids = np.arange(CELL_ID0, CELL_ID0 + N_CELLS, dtype=np.int64)
    return pd.DataFrame({"cell_id": ids, "zone_id": ids // ZONE_CELLS, "district_id": ids // 200,
                         "x": np.zeros(N_CELLS), "y": np.zeros(N_CELLS), "land_use": "retail"})


def _plain_users(ids: np.ndarray):
    import pandas as pd

    return pd.DataFrame({"user_id": ids, "opt_in": np.ones(len(ids), dtype=bool)})


def _frame_bytes(frame) -> int:
    return int(frame.memory_usage(deep=True, index=False).sum())


# --------------------------------------------------------------------------- cases (run in a child)
def _privagg_call(statistic: str, directory: Path):
    """(call(rows or None), input bytes): the privagg release of ``statistic`` on the cached data."""
    import pandas as pd

    import privagg as pa
    from privagg.dp.mechanisms import opendp

    opendp()
    cells = cells_table()
    dt = "datetime64[ns]"
    if statistic == "footfall":
        user, cell, ts = ff.load_events(directory)
        table = pd.DataFrame({"user_id": user, "cell_id": cell, "ts": ts.view(dt)}, copy=False)
        users = ff.users_table(directory)
        keys = pa.KeySet.areas_by_time(cells, level="cell", start=DAY0, end=DAY0 + np.timedelta64(1, "D"), time_bin="1h")

        def call(rows):
            t = table if rows is None else table.iloc[:rows]
            return pa.footfall(t, users=users, cells=cells, source="events", epsilon=1.0, keys=keys,
                               bounds=pa.Bounds(max_partitions=24, max_per_partition=1))
        return call, _frame_bytes(table) + _frame_bytes(users)
    if statistic == "segment_mean":
        c = _load(directory, ["user_id", "age_band", "gender", "arpu", "opt_in"])
        users = pd.DataFrame({
            "user_id": c["user_id"], "age_band": pd.Categorical.from_codes(c["age_band"], AGE_BANDS),
            "gender": pd.Categorical.from_codes(c["gender"], GENDERS), "arpu": c["arpu"], "opt_in": c["opt_in"],
        }, copy=False)
        keys = pa.KeySet.from_values(age_band=AGE_BANDS, gender=GENDERS)

        def call(rows):
            u = users if rows is None else users.iloc[:rows]
            return pa.segment_stats(u, by=["age_band", "gender"], measure="mean", column="arpu", epsilon=1.0,
                                    keys=keys, bounds=pa.Bounds(lower=0, upper=100))
        return call, _frame_bytes(users)
    if statistic == "dwell_mean":
        c = _load(directory, ["user_id", "cell_id", "start", "end", "users"])
        table = pd.DataFrame({"user_id": c["user_id"], "cell_id": c["cell_id"], "start": c["start"].view(dt),
                              "end": c["end"].view(dt)}, copy=False)
        users = _plain_users(c["users"])
        keys = pa.KeySet.areas(cells, "cell")

        def call(rows):
            t = table if rows is None else table.iloc[:rows]
            return pa.dwell_mean(t, users=users, cells=cells, epsilon=1.0, keys=keys, start=DAY0,
                                 end=DAY0 + np.timedelta64(1, "D"),
                                 bounds=pa.Bounds(max_partitions=12, max_per_partition=4, upper=480))
        return call, _frame_bytes(table) + _frame_bytes(users)
    c = _load(directory, ["user_id", "origin_cell", "destination_cell", "depart", "arrive", "users"])
    table = pd.DataFrame({"user_id": c["user_id"], "origin_cell": c["origin_cell"],
                          "destination_cell": c["destination_cell"], "depart": c["depart"].view(dt),
                          "arrive": c["arrive"].view(dt)}, copy=False)
    users = _plain_users(c["users"])

    def call(rows):
        t = table if rows is None else table.iloc[:rows]
        return pa.od_flows(t, users=users, cells=cells, epsilon=1.0, delta=1e-9, level="zone", time_bin="1h",
                           start=DAY0, end=DAY0 + np.timedelta64(OD_DAYS, "D"), bounds="default")
    return call, _frame_bytes(table) + _frame_bytes(users)


def _polars_call(statistic: str, directory: Path):
    import polars as pl

    dt = "datetime64[ns]"
    if statistic == "footfall":
        user, cell, ts = ff.load_events(directory)
        df = pl.DataFrame({"user_id": user, "cell_id": cell, "ts": ts.view(dt)})

        def call(rows):
            d = df if rows is None else df.head(rows)
            return d.group_by("cell_id", pl.col("ts").dt.truncate("1h").alias("hour")).agg(
                pl.col("user_id").n_unique())
    elif statistic == "segment_mean":
        c = _load(directory, ["user_id", "age_band", "gender", "arpu", "opt_in"])
        df = pl.DataFrame({
            "user_id": c["user_id"],
            "age_band": pl.Series(np.asarray(AGE_BANDS)[c["age_band"]]).cast(pl.Categorical),
            "gender": pl.Series(np.asarray(GENDERS)[c["gender"]]).cast(pl.Categorical),
            "arpu": c["arpu"], "opt_in": c["opt_in"],
        })

        def call(rows):
            d = df if rows is None else df.head(rows)
            return d.group_by("age_band", "gender").agg(pl.col("arpu").mean())
    elif statistic == "dwell_mean":
        c = _load(directory, ["user_id", "cell_id", "start", "end"])
        df = pl.DataFrame({"user_id": c["user_id"], "cell_id": c["cell_id"], "start": c["start"].view(dt),
                           "end": c["end"].view(dt)})

        def call(rows):
            d = df if rows is None else df.head(rows)
            return d.group_by("cell_id").agg(((pl.col("end") - pl.col("start")).dt.total_seconds() / 60).mean())
    else:
        c = _load(directory, ["user_id", "origin_cell", "destination_cell", "depart", "arrive"])
        df = pl.DataFrame({"user_id": c["user_id"], "origin_cell": c["origin_cell"],
                           "destination_cell": c["destination_cell"], "depart": c["depart"].view(dt),
                           "arrive": c["arrive"].view(dt)})

        def call(rows):
            d = df if rows is None else df.head(rows)
            return d.group_by((pl.col("origin_cell") // ZONE_CELLS).alias("origin_zone"),
                              (pl.col("destination_cell") // ZONE_CELLS).alias("destination_zone"),
                              pl.col("depart").dt.truncate("1h").alias("hour")).len()
    return call, int(df.estimated_size())


def _sort_floor(directory: Path) -> dict:
    return ff.case_sort(directory)


def run_in_child(statistic: str, engine: str, directory: Path) -> dict:
    if engine == "sort":
        return _sort_floor(directory)
    noise = {"seconds": 0.0, "values": 0}
    if engine == "privagg":  # libraries are loaded before the baseline, so only data counts
        import privagg  # noqa: F401
        from privagg.dp.mechanisms import NoiseMechanism, opendp

        opendp()
        sample = NoiseMechanism.sample

        def timed_sample(self, values, **kw):  # OpenDP's sampler: how much of the time is noise
            t = time.perf_counter()
            out = sample(self, values, **kw)
            noise["seconds"] += time.perf_counter() - t
            noise["values"] += len(values)
            return out

        NoiseMechanism.sample = timed_sample
    else:
        import polars  # noqa: F401
    gc.collect()
    base = ff._status("VmRSS")
    call, input_bytes = (_privagg_call if engine == "privagg" else _polars_call)(statistic, directory)
    call(WARM_ROWS)  # imports and first-call costs out of the timing, as for Polars
    noise.update(seconds=0.0, values=0)
    gc.collect()
    before = ff._status("VmRSS")
    ff.reset_peak()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with ff.RssSampler() as sampler:
        out = call(None)
    seconds = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    peak = max(ff._status("VmHWM"), sampler.peak)
    # CPU time of all threads (user + system): on a shared machine, wall time also holds waiting for a core.
    result = {"seconds": seconds, "peak_rss": peak, "rss_before_input": base, "rss_with_input": before,
              "input_bytes": input_bytes, "output_rows": len(out),
              "cpu_user": r1.ru_utime - r0.ru_utime, "cpu_system": r1.ru_stime - r0.ru_stime}
    if engine == "privagg":
        from privagg.parallel import default_threads

        result["threads"] = default_threads()
        result["noise_seconds"], result["noised_values"] = noise["seconds"], noise["values"]
        result["memory_by_step"] = sampler.by_step(base)
    else:
        import polars as pl

        result["threads"] = pl.thread_pool_size()
    return result


# --------------------------------------------------------------------------- orchestration
def run_case(statistic: str, engine: str, directory: Path, timeout: float | None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", statistic, engine, "--data", str(directory)]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {proc.returncode}", "stderr": proc.stderr[-4000:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ensure_data(statistic: str, n: int, seed: int, cache: Path) -> Path:
    directory = cache / f"{statistic}-{n}-{seed}"
    if not (directory / "meta.json").exists():
        t0 = time.perf_counter()
        print(f"  generating {statistic} data, {n:,} rows ...", flush=True)
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--generate", statistic, str(n),
                        "--seed", str(seed), "--data", str(directory)], check=True)
        print(f"  generated in {time.perf_counter() - t0:.1f} s", flush=True)
    return directory


def _median(runs: list[dict], field: str) -> float | None:
    values = [r[field] for r in runs if field in r]
    return statistics.median(values) if values else None


def bench(statistic: str, n: int, seed: int, cache: Path, repeats: int, timeout: float | None) -> dict:
    directory = ensure_data(statistic, n, seed, cache)
    runs: dict[str, list[dict]] = {"privagg": [], "polars": []}
    for _ in range(repeats):
        for engine in ("privagg", "polars"):  # interleaved: A B A B
            r = run_case(statistic, engine, directory, timeout)
            runs[engine].append(r)
            shown = "ERROR " + r["error"] if "error" in r else f"{r['seconds']:.2f} s, peak {ff.fmt_bytes(r['peak_rss'] - r['rss_before_input'])}"
            print(f"    {statistic} {n:,} {engine}: {shown}", flush=True)
    out: dict = {"statistic": statistic, "rows": n, "meta": json.loads((directory / "meta.json").read_text()),
                 "runs": runs}
    for engine, rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        if ok:
            out[engine] = {"seconds": _median(ok, "seconds"),
                           "cpu_seconds": statistics.median(r["cpu_user"] + r["cpu_system"] for r in ok),
                           "memory_ratio": statistics.median(ff.memory_ratio(r) for r in ok),
                           "peak_bytes": statistics.median(r["peak_rss"] - r["rss_before_input"] for r in ok),
                           "input_bytes": ok[0]["input_bytes"], "threads": ok[0].get("threads")}
            if "noise_seconds" in ok[0]:
                out[engine]["noise_seconds"] = _median(ok, "noise_seconds")
                out[engine]["noised_values"] = ok[0]["noised_values"]
    if statistic == "footfall":
        sorts = [run_case(statistic, "sort", directory, timeout) for _ in range(repeats)]
        ok = [s for s in sorts if "error" not in s]
        if ok:
            out["sort"] = {"seconds": _median(ok, "seconds"), "key_seconds": _median(ok, "key_seconds")}
            print(f"    {statistic} {n:,} numpy.sort: {out['sort']['seconds']:.2f} s", flush=True)
    return out


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def summarise(results: dict) -> list[str]:
    lines = [f"Polars {results['versions'].get('polars', '?')} (non-private group-by), numpy "
             f"{results['versions'].get('numpy', '?')}, OpenDP {results['versions'].get('opendp', '?')}; "
             f"medians of {results['repeats']} interleaved runs; {results['machine']['cpus']} cores, "
             f"{results['machine'].get('cpu', '?')}"]
    for r in results["cases"]:
        p, q = r.get("privagg"), r.get("polars")
        head = f"{r['statistic']:<13} {r['rows']:>11,} rows"
        if not p or not q:
            errors = [x.get("error") for rs in r["runs"].values() for x in rs if "error" in x]
            lines.append(f"{head}: ERROR {errors[:1]}")
            continue
        ratio = p["seconds"] / q["seconds"]
        line = (f"{head}: privagg {p['seconds']:6.2f} s, polars {q['seconds']:6.2f} s, ratio {ratio:5.2f} "
                f"(<= {FLOORS['polars_ratio_max']}: {_verdict(ratio <= FLOORS['polars_ratio_max'])}); "
                f"memory {p['memory_ratio']:.2f}x input (< {FLOORS['memory_ratio_max']:.0f}: "
                f"{_verdict(p['memory_ratio'] < FLOORS['memory_ratio_max'])}; polars {q['memory_ratio']:.2f}x)")
        verdicts = {"ratio_vs_polars": ratio, "memory_ratio": p["memory_ratio"]}
        if "sort" in r:
            sr = p["seconds"] / r["sort"]["seconds"]
            verdicts["ratio_vs_sort"] = sr
            line += (f"; privagg / numpy.sort {sr:.2f} (<= {FLOORS['sort_ratio_max']}: "
                     f"{_verdict(sr <= FLOORS['sort_ratio_max'])}; sort {r['sort']['seconds']:.2f} s)")
        r["verdicts"] = verdicts
        lines.append(line)
        lines.append(f"{'':<31}CPU (user + system, all threads): privagg {p['cpu_seconds']:.2f} s, "
                     f"polars {q['cpu_seconds']:.2f} s; OpenDP noise {p.get('noise_seconds', 0):.2f} s of privagg's "
                     f"wall time for {p.get('noised_values', 0):,} values")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[2_000_000],
                        help="rows per statistic (default 2000000; the issue's floors are at 20000000)")
    parser.add_argument("--statistics", default=",".join(STATISTICS), help=f"comma-separated, from {', '.join(STATISTICS)}")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per engine (default 2)")
    parser.add_argument("--seed", type=int, default=20260105)
    parser.add_argument("--cache", type=Path, default=None, help="directory for the generated data (default: temporary)")
    parser.add_argument("--timeout", type=float, default=None)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate:
        generate(args.generate[0], int(args.generate[1]), args.seed, args.data)
        return 0
    if args.child:
        print(json.dumps(run_in_child(args.child[0], args.child[1], args.data)))
        return 0

    import shutil

    chosen = [s.strip() for s in args.statistics.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in STATISTICS]
    if unknown:
        parser.error(f"--statistics: unknown {unknown}; choose from {', '.join(STATISTICS)}")
    cleanup = args.cache is None
    cache = Path(tempfile.mkdtemp(prefix="privagg-stats-")) if cleanup else args.cache
    versions = {"numpy": np.__version__}
    for module in ("polars", "pandas"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            pass
    try:
        from importlib.metadata import version

        versions["opendp"] = version("opendp")
    except Exception:  # pragma: no cover
        pass
    results: dict = {
        "command": "python benchmarks/bench_statistics.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": versions, "floors": FLOORS,
        "repeats": args.repeats,
        "machine": ff.machine(),
        "cases": [],
    }
    try:
        for n in args.rows:
            for statistic in chosen:
                print(f"{statistic}, {n:,} rows", flush=True)
                results["cases"].append(bench(statistic, n, args.seed, cache, args.repeats, args.timeout))
                if cleanup:
                    shutil.rmtree(cache / f"{statistic}-{n}-{args.seed}", ignore_errors=True)
    finally:
        if cleanup:
            shutil.rmtree(cache, ignore_errors=True)
    results["load_average_at_end"] = os.getloadavg()
    lines = summarise(results)
    lines.append(f"load average {results['machine']['load_average_at_start'][0]:.1f} at start, "
                 f"{results['load_average_at_end'][0]:.1f} at end (other jobs share the machine)")
    ff.save_results("statistics", results, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
