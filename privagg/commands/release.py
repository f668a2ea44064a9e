"""``privagg release``: make one differentially private release from a World on disk.

::

    privagg release footfall --data world/ --epsilon 1 --level zone --time-bin 1h --out footfall.parquet
    privagg release segments --data world/ --epsilon 0.5 --by age_band,gender --budget ledger.json \\
        --budget-epsilon 4 --out segments.csv

The release is written with :meth:`privagg.release.Release.write` (Parquet or
CSV by the extension of ``--out``, plus ``<out>.privacy.json``), each file
atomically. Everything is checked first (options, the data, ``--out``: not
an input, not an existing file unless ``--overwrite``), then the loss is
charged to ``--budget LEDGER`` (an SQLite ledger; ``LEDGER.json`` keeps it in
``LEDGER.sqlite`` beside a JSON export), then noise is drawn, then the
files are written. A release that does not fit is refused (exit 2) before any
noise is drawn, and neither the ledger nor ``--out`` is touched.

Keys are public by default: every area x time bin (x segment value) of the
World's cells table and window is released, empty ones included.
``--private-keys`` selects keys privately instead (needs ``--delta``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from privagg.commands.paths import check_out_file
from privagg.errors import PrivaggInputError

STATISTICS = ("footfall", "dwell", "od", "segments")
LEVEL_CHOICES = ("cell", "zone", "district")
#: Largest contribution bound accepted (beyond it the noise scale leaves the samplers' range).
MAX_BOUND = 1_000_000

DESCRIPTIONS = {
    "footfall": "Distinct subscribers present per area and time bin (or, with --measure visits, visits started).",
    "dwell": "Histogram of stay durations per area (or, with --measure mean, the DP mean dwell per area).",
    "od": "Trips per origin area, destination area and time bin of departure.",
    "segments": "Counts per crossbreak of user columns x area x time (or --measure mean / micro).",
}


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (``privagg release footfall: error: ...``), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not finite")
        return value

    parse.__name__ = kind
    return parse


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _common(parser: argparse.ArgumentParser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--data", required=True, metavar="DIR",
                      help="directory of a World (written by `privagg synth` or World.save): cells, users, events, stays, trips")
    data.add_argument("--out", required=True, metavar="FILE",
                      help="where to write the release: FILE.parquet or FILE.csv; its privacy record goes to FILE.privacy.json")
    data.add_argument("--overwrite", action="store_true",
                      help="replace --out (and its .privacy.json) if they exist (never an input file)")

    loss = parser.add_argument_group("privacy loss (per subscriber over the release window)")
    which = loss.add_mutually_exclusive_group(required=True)
    which.add_argument("--epsilon", type=_number("epsilon"), metavar="E",
                       help="pure differential privacy with discrete Laplace noise (OpenDP)")
    which.add_argument("--rho", type=_number("rho"), metavar="R",
                       help="zero-concentrated DP with discrete Gaussian noise (OpenDP), reported as epsilon at --delta")
    loss.add_argument("--delta", type=_number("delta"), metavar="D",
                      help="delta: needed with --private-keys (partition selection) and to report --rho as epsilon")
    loss.add_argument("--ci-level", type=_number("ci_level"), default=0.95, metavar="P",
                      help="coverage of the released noise intervals (default 0.95)")

    shape = parser.add_argument_group("what is released")
    shape.add_argument("--level", choices=LEVEL_CHOICES,
                       help="spatial level of the areas (default: cell for footfall and dwell, zone for od and segments)")
    shape.add_argument("--time-bin", metavar="BIN",
                       help="width of the time bins, from 15min to 1D and dividing a day (e.g. 15min, 1h, 6h, 1D); "
                            "'none' for one bin over the whole window")
    shape.add_argument("--start", metavar="TIME", help="start of the release window (default: the World's)")
    shape.add_argument("--end", metavar="TIME", help="end of the release window, exclusive (default: the World's)")
    keys = shape.add_mutually_exclusive_group()
    keys.add_argument("--public-keys", dest="public_keys", action="store_true", default=True,
                      help="release every key of the public domain (areas of the cells table x time bins x segment "
                           "values), empty ones included (the default)")
    keys.add_argument("--private-keys", dest="public_keys", action="store_false",
                      help="release only keys selected by private partition selection (needs --delta)")

    bounds = parser.add_argument_group("contribution bounds (per subscriber over the window)")
    bounds.add_argument("--max-partitions", type=_integer, metavar="N",
                        help="L0: the most keys one subscriber contributes to (a random subset is kept beyond it)")
    bounds.add_argument("--max-per-partition", type=_integer, metavar="N",
                        help="Linf: the most one subscriber adds to one key (visits, trips)")
    bounds.add_argument("--lower", type=_number("lower"), metavar="X", help="lower clamp of averaged values (means)")
    bounds.add_argument("--upper", type=_number("upper"), metavar="X",
                        help="upper clamp of averaged values (means; dwell minutes default to the last dwell edge)")

    budget = parser.add_argument_group("budget ledger")
    budget.add_argument("--budget", metavar="LEDGER",
                        help="charge the release to this SQLite ledger first; refused (exit 2) if it does not fit. "
                             "LEDGER.json keeps the ledger in LEDGER.sqlite beside a JSON export (an old JSON ledger "
                             "there is migrated once)")
    budget.add_argument("--budget-epsilon", type=_number("budget_epsilon"), metavar="E_TOTAL",
                        help="total epsilon of a new ledger (or, for an existing one, the total it must record)")
    budget.add_argument("--budget-rho", type=_number("budget_rho"), metavar="R_TOTAL",
                        help="total rho of a new zCDP ledger")
    budget.add_argument("--budget-delta", type=_number("budget_delta"), metavar="D_TOTAL",
                        help="total delta of a new ledger (default 0)")

    run_on = parser.add_argument_group("where it runs")
    run_on.add_argument("--engine", choices=("local", "spark"), default="local",
                        help="local: numpy on every core of this machine (default); spark: read the tables into "
                             "Spark and run the release there (needs privagg[spark] and Java 17)")
    run_on.add_argument("--spark-master", metavar="URL",
                        help="Spark master for --engine spark (default local[*]; e.g. spark://host:7077, yarn)")

    post = parser.add_argument_group("post-processing (no extra privacy loss)")
    post.add_argument("--clip-nonnegative", action="store_true",
                      help="set negative values and interval ends to 0")
    post.add_argument("--round", action="store_true", help="round values to integers (intervals widened to integers)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``privagg release`` and its four statistics."""
    parser = subparsers.add_parser(
        "release", help="make a differentially private release from a World on disk",
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[2] + "\n\n" + __doc__.split("\n\n")[3],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.error = _OneLineParser.error.__get__(parser)  # type: ignore[method-assign]
    stats = parser.add_subparsers(dest="statistic", metavar="STATISTIC", required=True, parser_class=_OneLineParser)

    p = stats.add_parser("footfall", help=DESCRIPTIONS["footfall"], description=DESCRIPTIONS["footfall"])
    p.add_argument("--measure", choices=("distinct", "visits"), default="distinct",
                   help="distinct subscribers present (default), or visits (stays starting) per key")
    p.add_argument("--source", choices=("stays", "events"), default="stays",
                   help="count presence from stays (default) or from network events (distinct only)")
    _common(p)

    p = stats.add_parser("dwell", help=DESCRIPTIONS["dwell"], description=DESCRIPTIONS["dwell"])
    p.add_argument("--measure", choices=("histogram", "mean"), default="histogram",
                   help="histogram of dwell durations per area (default), or the DP mean dwell per area")
    p.add_argument("--edges", metavar="M1,M2,...",
                   help="histogram bin edges in minutes, increasing from 0 (default 0,15,30,60,120,240,480)")
    _common(p)

    p = stats.add_parser("od", help=DESCRIPTIONS["od"], description=DESCRIPTIONS["od"])
    _common(p)

    p = stats.add_parser("segments", help=DESCRIPTIONS["segments"], description=DESCRIPTIONS["segments"])
    p.add_argument("--by", metavar="COL1,COL2",
                   help="user columns to crossbreak by, e.g. age_band,gender or tag columns (required for counts)")
    p.add_argument("--measure", choices=("count", "mean", "micro"), default="count",
                   help="count: subscribers per segment x area x time (default); mean: DP mean of --column per "
                        "segment; micro: subscribers per combination of tag columns")
    p.add_argument("--column", metavar="COL", help="numeric user column averaged by --measure mean, e.g. arpu")
    p.add_argument("--source", choices=("stays", "events"), default="stays",
                   help="count presence from stays (default) or events (--measure count)")
    _common(p)

    parser.set_defaults(func=run)


# --------------------------------------------------------------------------- running
def _csv(text: str | None) -> list[str]:
    return [] if not text else [t.strip() for t in text.split(",") if t.strip()]


def _data_files(data: str) -> list[Path]:
    source = Path(data)
    return [p for p in source.iterdir() if p.is_file()] if source.is_dir() else [source]


def _check_losses(args: argparse.Namespace) -> None:
    """Every privacy parameter in the range the mechanisms honour, before anything is read or charged."""
    from privagg.dp.mechanisms import check_delta, check_loss

    for name in ("epsilon", "rho"):
        value = getattr(args, name)
        if value is not None:
            try:
                check_loss(name, value)
            except PrivaggInputError as exc:
                raise _as_option(exc, name, value) from None
    if args.delta is not None:
        try:
            check_delta(args.delta)
        except PrivaggInputError as exc:
            raise _as_option(exc, "delta", args.delta) from None
    if not 0 < args.ci_level < 1:
        raise PrivaggInputError(f"--ci-level {args.ci_level:g} must be in (0, 1). Fix: e.g. --ci-level 0.95.")
    for name in ("budget_epsilon", "budget_rho"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise PrivaggInputError(f"--{name.replace('_', '-')} {value:g} must be > 0. Fix: e.g. --{name.replace('_', '-')} 4.")
    if args.budget_delta is not None and not 0 <= args.budget_delta < 1:
        raise PrivaggInputError(f"--budget-delta {args.budget_delta:g} must be in [0, 1). Fix: e.g. --budget-delta 1e-9.")
    for name in ("max_partitions", "max_per_partition"):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= MAX_BOUND:
            raise PrivaggInputError(
                f"--{name.replace('_', '-')} {value} must be between 1 and {MAX_BOUND:,}. Fix: e.g. --{name.replace('_', '-')} 24."
            )


def _as_option(exc: PrivaggInputError, name: str, value: float) -> PrivaggInputError:
    """A Python-API error phrased for the command line (``--epsilon 2``, not ``epsilon=2.0``)."""
    text = str(exc).replace(f"{name}={value!r}", f"--{name} {value:g}").replace(f"{name}=", f"--{name} ")
    return PrivaggInputError(text.replace(f"pass {name} between", f"pass --{name} between"))


def _check_budget(args: argparse.Namespace) -> list[Path]:
    """Check the ledger options and path without opening the ledger; return its files (inputs of the release)."""
    from privagg.dp.ledger import check_ledger_path

    totals_given = args.budget_epsilon is not None or args.budget_rho is not None
    if args.budget is None:
        if totals_given or args.budget_delta is not None:
            raise PrivaggInputError(
                "--budget-epsilon/--budget-rho/--budget-delta describe a ledger, but no --budget was given. "
                "Fix: add --budget LEDGER.sqlite."
            )
        return []
    if args.budget_epsilon is not None and args.budget_rho is not None:
        raise PrivaggInputError(
            "pass one of --budget-epsilon (epsilon, delta budget) or --budget-rho (zCDP budget), not both. Fix: drop one."
        )
    if not totals_given and args.budget_delta is not None:
        raise PrivaggInputError(
            "--budget-delta without --budget-epsilon or --budget-rho. Fix: give the ledger's full total, or neither."
        )
    try:
        db, export = check_ledger_path(args.budget, what="--budget")
    except PrivaggInputError as exc:
        raise PrivaggInputError(str(exc).replace("create the ledger with its total", "pass --budget-epsilon E_TOTAL (or --budget-rho R_TOTAL) to create it")) from None
    exists = (db.exists() and db.stat().st_size > 0) or (export is not None and export.exists())
    if not totals_given and not exists:
        raise PrivaggInputError(
            f"--budget {args.budget!r} does not exist yet, so its total is unknown. "
            "Fix: pass --budget-epsilon E_TOTAL (or --budget-rho R_TOTAL) to create it."
        )
    files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
    if export is not None:
        files += [export, export.with_name(export.name + ".migrated")]
    return files


def _budget(args: argparse.Namespace) -> Any:
    """Open (or create) the ledger, once everything else has been checked."""
    from privagg.dp.budget import Budget
    from privagg.dp.ledger import Ledger

    if args.budget is None:
        return None
    totals_given = args.budget_epsilon is not None or args.budget_rho is not None
    if not totals_given:
        return Budget.load(args.budget)
    try:
        return Budget(epsilon=args.budget_epsilon, rho=args.budget_rho, delta=args.budget_delta, ledger=args.budget)
    except PrivaggInputError as exc:
        if "was declared" not in str(exc):
            raise
    # The ledger exists with another total: say so in the command line's terms.
    want = {"rho": args.budget_rho} if args.budget_rho is not None else {"epsilon": args.budget_epsilon}
    want["delta"] = float(args.budget_delta or 0.0)
    recorded = Ledger.open(args.budget).totals
    shown = ", ".join(f"--budget-{k} {v:g}" for k, v in recorded.items())
    raise PrivaggInputError(
        f"--budget {args.budget!r} records the total {', '.join(f'{k}={v:g}' for k, v in recorded.items())}, "
        f"not {', '.join(f'{k}={v:g}' for k, v in want.items())}. Fix: drop --budget-epsilon/--budget-rho/"
        f"--budget-delta to continue it (or pass {shown}), or name a new ledger for a new budget."
    )


def _bounds(args: argparse.Namespace) -> Any:
    from privagg.dp.bounds import Bounds

    given = {k: getattr(args, k) for k in ("max_partitions", "max_per_partition", "lower", "upper")
             if getattr(args, k) is not None}
    if not given:
        return None
    defaults = _default_bounds(args)
    merged = {**defaults.to_dict(), **given}
    return Bounds(**merged)


def _query_and_call(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The Query the release answers (for its public keys), the release function, and its arguments."""
    import privagg as pa
    from privagg.queries import Query
    from privagg.releases.dwell import check_edges

    kwargs: dict[str, Any] = {}
    level = args.level if args.level is not None else "auto"
    time_bin: Any = "auto"
    if args.time_bin is not None:
        time_bin = None if args.time_bin.lower() == "none" else args.time_bin
    stat = args.statistic
    if stat == "footfall":
        if args.measure == "visits":
            if args.source != "stays":
                raise PrivaggInputError("--measure visits counts stays. Fix: drop --source events.")
            query = Query("visits", level=level, time_bin=time_bin)
            func = pa.visits
        else:
            query = Query("footfall", level=level, time_bin=time_bin, source=args.source)
            func = pa.footfall
            kwargs["source"] = args.source
    elif stat == "dwell":
        if args.measure == "mean":
            if args.edges:
                raise PrivaggInputError("--edges applies to the dwell histogram. Fix: drop --edges with --measure mean.")
            query = Query("dwell_mean", level=level, time_bin=time_bin)
            func = pa.dwell_mean
        else:
            edges = check_edges([_edge(e) for e in _csv(args.edges)]) if args.edges else None
            query = Query("dwell_times", level=level, time_bin=time_bin,
                          **({"dwell_edges": edges} if edges else {}))
            func = pa.dwell_times
            if edges:
                kwargs["edges"] = edges
    elif stat == "od":
        query = Query("od_flows", level=level, time_bin=time_bin)
        func = pa.od_flows
    else:
        by = tuple(_csv(args.by))
        measure = args.measure
        if measure == "count" and not by:
            raise PrivaggInputError("segments: --by is required for counts. Fix: e.g. --by age_band,gender.")
        if measure == "mean" and not args.column:
            raise PrivaggInputError("segments --measure mean needs --column. Fix: e.g. --column arpu --lower 0 --upper 100.")
        if args.column and measure != "mean":
            raise PrivaggInputError("--column applies to --measure mean. Fix: add --measure mean or drop --column.")
        statistic = {"count": "segment_counts", "mean": "segment_mean", "micro": "micro_segments"}[measure]
        if measure != "count":
            if time_bin not in ("auto", None):
                raise PrivaggInputError(
                    f"--time-bin {args.time_bin}: --measure {measure} describes subscribers, not times. Fix: drop --time-bin."
                )
            time_bin = None
            level = None if level == "auto" else level
        query = Query(statistic, level=level, time_bin=time_bin, by=by, column=args.column,
                      source=args.source if measure == "count" else "stays")
        func = pa.segment_stats
        kwargs.update(by=list(by), measure=measure)
        if args.column:
            kwargs["column"] = args.column
        if measure == "count":
            kwargs["source"] = args.source
    kwargs["level"] = query.level
    kwargs["time_bin"] = query.time_bin
    return query, func, kwargs


def _edge(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise PrivaggInputError(f"--edges: {text!r} is not a number. Fix: e.g. --edges 0,15,30,60,120.") from None


def _default_bounds(args: argparse.Namespace) -> Any:
    from privagg.releases.core import default_bounds

    query, _, _ = _query_and_call(args)
    return default_bounds(query)


def run(args: argparse.Namespace) -> int:
    """Check every option, input and output; load the World; charge, release, post-process, write; print one line."""
    from privagg.postprocess import clip_nonnegative, round_to_integers
    from privagg.queries import public_keys
    from privagg.releases.build import segment_columns
    from privagg.world import WINDOW_FROM_CONSENTING, World

    # 1. Options and paths, before anything is read or charged.
    _check_losses(args)
    query, func, kwargs = _query_and_call(args)
    bounds = _bounds(args)
    if not args.public_keys and not args.delta:
        raise PrivaggInputError(
            "--private-keys selects keys privately, which needs --delta > 0. Fix: add e.g. --delta 1e-9, "
            "or release every public key with --public-keys."
        )
    ledger_files = _check_budget(args)
    out = check_out_file(args.out, suffixes=(".parquet", ".csv"), overwrite=args.overwrite, companions=(".privacy.json",),
                         inputs=[*_data_files(args.data), *ledger_files])

    if args.spark_master is not None and args.engine != "spark":
        raise PrivaggInputError("--spark-master applies to --engine spark. Fix: add --engine spark or drop --spark-master.")

    # 2. The data (validated, consent applied by the release).
    if args.engine == "spark":
        world = _SparkWorld.read(args.data, query, args.spark_master)
        kwargs["engine"] = world.engine
    else:
        world = World.load(args.data)
    start = args.start if args.start is not None else world.start
    end = args.end if args.end is not None else world.end
    if query.statistic in ("segment_counts", "segment_mean", "micro_segments"):
        segment_columns(query, world.users_schema if args.engine == "spark" else world.users)  # names a bad --by column first
    keys = None
    if args.public_keys:
        try:
            users_columns = list(world.users.columns)
            keys = public_keys(query, world.cells, start=start, end=end, users_columns=users_columns)
        except PrivaggInputError as exc:
            if "no public list of values" not in str(exc):
                raise
            column = str(exc).split("user column ", 1)[1].split(".", 1)[0]
            raise PrivaggInputError(
                f"--public-keys: there is no public list of the values of user column {column}. "
                "Fix: use --private-keys --delta D, or crossbreak by columns with public values "
                "(age_band, gender, contract, device_tier, tag_* columns)."
            ) from None

    # 3. Charge (inside the release, before any noise), compute, then publish.
    budget = _budget(args)
    data = world.table if args.engine == "spark" else world
    if args.engine == "spark":
        kwargs.update(users=world.users, cells=world.cells)
    release = func(
        data, epsilon=args.epsilon, rho=args.rho, delta=args.delta, keys=keys, bounds=bounds, budget=budget,
        start=args.start, end=args.end, ci_level=args.ci_level, **kwargs,
    )
    if args.clip_nonnegative:
        release = clip_nonnegative(release)
    if args.round:
        release = round_to_integers(release)
    table_path, record_path = release.write(out)
    spent = release.privacy.describe()
    line = f"{args.statistic}: {len(release):,} keys -> {table_path} (record: {record_path.name}); {spent}"
    if args.engine == "spark":
        line += f"; on Spark ({world.engine.spark.sparkContext.master})"
    if (args.start is None or args.end is None) and world.meta.get("window_source") == WINDOW_FROM_CONSENTING:
        line += "; window derived from consenting subscribers' rows (no world.json; pass --start and --end to fix it)"
    if budget is not None:
        remaining = ", ".join(f"{k}={v:.6g}" for k, v in budget.remaining.items())
        line += f"; ledger {args.budget}: remaining {remaining}"
    print(line)
    return 0


class _SparkWorld:
    """The tables of a World directory read into Spark for ``--engine spark``: the statistic's table and
    the users as Spark DataFrames, the cells (small) and world.json's window on the driver."""

    def __init__(self, engine: Any, table: Any, users: Any, cells: Any, meta: dict[str, Any]) -> None:
        self.engine, self.table, self.users, self.cells, self.meta = engine, table, users, cells, meta
        self.users_schema = users.limit(0).toPandas()

    @property
    def start(self) -> Any:
        return self._window("start")

    @property
    def end(self) -> Any:
        return self._window("end")

    def _window(self, key: str) -> Any:
        import pandas as pd

        if key not in self.meta:
            raise PrivaggInputError(
                f"the data directory has no world.json with the window's {key}. Fix: pass --start and --end."
            )
        return pd.Timestamp(self.meta[key])

    @classmethod
    def read(cls, directory: str, query: Any, master: str | None) -> _SparkWorld:
        import json

        from privagg.engines.spark import SparkEngine, read_table, spark_session
        from privagg.releases.inputs import table_name
        from privagg.schema import load_table

        source = Path(directory)
        if not source.is_dir():
            raise PrivaggInputError(
                f"data directory {str(source)!r} does not exist or is not a directory. "
                "Fix: pass a directory written by `privagg synth` or holding the tables as .parquet or .csv."
            )

        def find(name: str) -> Path:
            for suffix in (".parquet", ".csv"):
                if (source / f"{name}{suffix}").exists():
                    return source / f"{name}{suffix}"
            raise PrivaggInputError(f"data directory {str(source)!r} has no table '{name}'. Fix: add {name}.parquet or {name}.csv.")

        spark = spark_session(master or "local[*]", app="privagg release")

        cells = load_table(find("cells"), "cells")
        users = read_table(spark, find("users"), "users")
        name = table_name(query)
        table = users if name == "users" else read_table(spark, find(name), name)
        meta_path = source / "world.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        return cls(SparkEngine(spark), table, users, cells, meta if isinstance(meta, dict) else {})
