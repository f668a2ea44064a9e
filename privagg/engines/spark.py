"""The Spark engine: the same releases on Spark DataFrames, on a laptop or a cluster.

A release on Spark runs every data-heavy step in the executors and keeps on
the driver only what is small and public-sized (the key domain, per-key
totals, the bound choice's histograms):

1. **Consent**: rows of subscribers without ``opt_in`` are dropped by a
   semi-join with the opted-in users, before anything else is read.
2. **Keys**: each Arrow batch of the consenting rows goes through the
   statistic's own definition (the function the local engine uses, passed in
   by the release), so both engines answer exactly the same question; a
   batch becomes rows ``(user_id, code, value)``. Without public keys the
   observed domain is first gathered from per-batch distinct values, so codes
   mean the same as on the local engine.
3. **Bounding**: one shuffle of the consenting rows by ``user_id`` puts each
   subscriber's rows in one task, which maps them to keys (step 2, in the
   same Python worker, so that every row passes through Python once), ranks
   the subscriber's partitions with the keyed hash of
   :mod:`privagg.engines.ranking` under the release's secret (drawn on the
   driver) and keeps the lowest ranks: under one secret both engines keep the
   same contributions.
4. **Aggregation** per partition code in Spark (a reduce of per-task partial
   totals); with public keys every code of the domain, empty ones included.
5. **Noise** in the executors (``mapInPandas`` calling
   :mod:`privagg.dp.mechanisms` / :mod:`privagg.dp.partition_selection`), so
   millions of keys are noised on every core of the cluster. The release
   charges the budget on the driver before this step's job is submitted, and
   the noisy values are collected once: the result handed back is data, not a
   lazy plan that could draw noise (and spend budget) again at every action.

Exact agreement with the local engine: both rank (subscriber, partition)
pairs by the same keyed hash and compare all 64 bits (the local engine sorts
truncated ranks where that is cheaper, and orders by the full ranks when two
truncated ranks of one subscriber tie), so under one secret they keep the
same contributions.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import pandas as pd

from privagg.engines.base import Contributions, Engine, PartitionTotals, UserPartitions
from privagg.engines.packed import run_starts
from privagg.engines.ranking import keyed_hash
from privagg.errors import PrivaggInputError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from privagg.dp.bounds import Bounds
    from privagg.queries import KeySet, Query

#: Columns each input table must hold (the rest of a table is never read).
TABLE_COLUMNS = {
    "events": ("user_id", "cell_id", "ts"),
    "stays": ("user_id", "cell_id", "start", "end"),
    "trips": ("user_id", "origin_cell", "destination_cell", "depart", "arrive"),
}
ENSURE_JAVA = Path(__file__).resolve().parents[2] / "scripts" / "ensure_java.sh"
JAVA_FIX = f"run 'bash {ENSURE_JAVA}' (installs Debian's openjdk-17-jre-headless), or install Java 17 and put it on PATH"


def ensure_java(*, install: bool = True) -> None:
    """Make sure a Java runtime for Spark is on PATH, installing Debian's Java 17 when missing.

    Raises :class:`~privagg.errors.PrivaggInputError` naming the command to run when it cannot.
    """
    if os.environ.get("JAVA_HOME") or shutil.which("java"):
        return
    if install and ENSURE_JAVA.exists():
        done = subprocess.run(["bash", str(ENSURE_JAVA)], capture_output=True, text=True)
        if done.returncode == 0 and shutil.which("java"):
            return
        reason = (done.stderr or "").strip().splitlines()[-1:] or [""]
        raise PrivaggInputError(f"Spark needs Java, which is missing ({reason[0]}). Fix: {JAVA_FIX}.")
    raise PrivaggInputError(f"Spark needs Java, which is missing. Fix: {JAVA_FIX}.")


def spark_session(master: str = "local[*]", *, app: str = "privagg", config: dict[str, str] | None = None) -> SparkSession:
    """A Spark session for privagg releases (``master`` as for ``spark-submit``, e.g. ``"local[2]"``).

    Sets ``PYSPARK_PYTHON`` to this interpreter (so tasks import the same
    privagg), UTC session time (timestamps round-trip unchanged) and Arrow
    transfers; installs Java first when missing (:func:`ensure_java`).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise PrivaggInputError("the Spark engine needs pyspark. Fix: pip install 'privagg[spark]'.") from None
    ensure_java()
    # pyspark 4.x warns on every conversion under pandas 3; privagg's conversions are tested with it.
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    warnings.filterwarnings("ignore", module=r"pyspark(\..*)?$")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (SparkSession.builder.master(master).appName(app)
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", "200000")
               .config("spark.ui.showConsoleProgress", "false")
               # pandas writes nanosecond Parquet timestamps, which Spark reads only as longs (see read_table).
               .config("spark.sql.legacy.parquet.nanosAsLong", "true"))
    for k, v in (config or {}).items():
        builder = builder.config(k, v)
    return builder.getOrCreate()


DATETIME_COLUMNS = ("ts", "start", "end", "depart", "arrive")


def read_table(spark: SparkSession, path: str | Path, table: str) -> DataFrame:
    """Read one privagg table (Parquet or CSV with a header) into Spark.

    Nanosecond timestamps (as pandas writes them) arrive as longs and become Spark timestamps here
    (microseconds, truncated: every bin and window boundary is a whole microsecond, so no row
    changes bin or window).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType

    path = Path(path)
    if path.suffix == ".parquet":
        frame = spark.read.parquet(str(path))
    else:
        frame = spark.read.csv(str(path), header=True, inferSchema=True)
    for f in frame.schema.fields:
        if f.name in DATETIME_COLUMNS and table != "users" and isinstance(f.dataType, LongType):
            frame = frame.withColumn(f.name, F.timestamp_micros(F.floor(F.col(f.name) / 1000)))
    return frame


# ------------------------------------------------------------------ value objects
@dataclass
class SparkInputs:
    """Consent-filtered Spark inputs of a release and its window (the Spark counterpart of
    :class:`privagg.releases.build.Inputs`).

    ``users`` is an empty pandas frame with the consenting users' columns and dtypes (for
    checks on the driver); ``rows`` the statistic's table (or the users, for per-subscriber
    statistics) restricted to consenting subscribers, with the user columns it needs joined.
    """

    rows: Any  # pyspark DataFrame
    table_columns: tuple[str, ...]  # columns of the statistic's table in ``rows`` (empty: per-user statistic)
    user_columns: tuple[str, ...]  # user columns in ``rows``
    users: pd.DataFrame
    cells: pd.DataFrame | None
    start: pd.Timestamp
    end: pd.Timestamp
    table: Any = None  # the statistic's table as given (None for per-user statistics)


@dataclass
class SparkContributions:
    """Contributions as a Spark DataFrame ``(user_id, code, value)``, one row per raw record.

    ``rows`` is extracted from ``source`` (the consenting input rows) by ``extract``, a task over
    Arrow batches. Steps that work per subscriber shuffle ``source`` by subscriber and extract in
    their own task, so each row passes through Python once (None: ``rows`` is all there is).
    """

    rows: Any  # pyspark DataFrame
    domain: KeySet
    public: bool
    distinct: bool
    has_values: bool
    source: Any = None  # pyspark DataFrame of the input rows ``rows`` comes from
    extract: Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]] | None = None

    @property
    def n_partitions(self) -> int:
        return len(self.domain)


@dataclass
class SparkTotals:
    """Per-code totals as a Spark DataFrame ``(code, count, sum)``: dense over the domain when public."""

    rows: Any  # pyspark DataFrame
    n_partitions: int
    dense: bool

    def to_numpy(self) -> PartitionTotals:
        """Collect the totals (small: one row per key) as :class:`PartitionTotals`, sorted by code."""
        frame = self.rows.toPandas().sort_values("code")
        codes = frame["code"].to_numpy(dtype=np.int64)
        counts = frame["count"].to_numpy(dtype=np.int64)
        sums = frame["sum"].to_numpy(dtype=float)
        if self.dense:
            dense_counts = np.zeros(self.n_partitions, dtype=np.int64)
            dense_sums = np.zeros(self.n_partitions)
            dense_counts[codes], dense_sums[codes] = counts, sums
            return PartitionTotals(dense_counts, dense_sums, None)
        return PartitionTotals(counts, sums, codes)


@dataclass
class NoisyTotals:
    """Noisy values of the released codes (sorted), collected from the executors once."""

    codes: np.ndarray
    counts: np.ndarray
    sums: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ per-task numpy kernels
def _pairs(ids: np.ndarray, codes: np.ndarray, values: np.ndarray | None, distinct: bool):
    """One row per (subscriber, code), grouped by subscriber then code: ids, codes, counts, sums."""
    if len(ids) == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z, (None if values is None else np.zeros(0))
    lo, width = int(ids.min()), int(codes.max()) + 1
    order = None
    if (int(ids.max()) - lo + 1) * width < 2**62:
        # (subscriber, code) as one int64, sorted by numpy's vectorised sort: several times faster than a
        # two-key lexsort. Within a pair rows may come in any order, as they do from Spark's shuffle.
        key = (ids - lo) * width + codes
        if values is None:
            key.sort()
        else:
            order = np.argsort(key)
            key = key[order]
        starts = run_starts(key)
        pair = key[starts]
        del key
        out_ids = pair // width
        out_codes = pair - out_ids * width
        out_ids += lo
    else:
        order = np.lexsort((codes, ids))
        ids, codes = ids[order], codes[order]
        new = np.empty(len(ids), dtype=bool)
        new[0] = True
        new[1:] = (ids[1:] != ids[:-1]) | (codes[1:] != codes[:-1])
        starts = np.flatnonzero(new)
        out_ids, out_codes = ids[starts], codes[starts]
    n = np.diff(np.append(starts, len(ids))).astype(np.int64)
    sums = None
    if values is not None:
        assert order is not None
        sums = np.add.reduceat(np.asarray(values, dtype=float)[order], starts)
        if distinct:
            sums = sums / n  # one contribution per (subscriber, partition): their mean value there
    counts = np.ones(len(starts), dtype=np.int64) if distinct else n
    return out_ids, out_codes, counts, sums


def _lowest_ranks(ids: np.ndarray, codes: np.ndarray, keep: int, secret: int) -> np.ndarray:
    """Rows (grouped by id, codes ascending within an id) whose keyed-hash rank is among their id's
    ``keep`` lowest; a tie is broken by code order, as on the local engine."""
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64)
    rank = keyed_hash(ids, codes, secret)
    order = np.lexsort((codes, rank, ids))
    starts = run_starts(ids[order])
    sizes = np.diff(np.append(starts, len(ids)))
    position = np.arange(len(ids)) - np.repeat(starts, sizes)
    return np.sort(order[position < keep])


def _bound_box(ids, codes, counts, sums, l0: int, linf: int, secret: int):
    starts = run_starts(ids)
    sizes = np.diff(np.append(starts, len(ids)))
    heavy = np.repeat(sizes > l0, sizes)
    if heavy.any():
        rows_h = np.flatnonzero(heavy)
        kept = rows_h[_lowest_ranks(ids[rows_h], codes[rows_h], l0, secret)]
        keep = ~heavy
        keep[kept] = True
        ids, codes, counts = ids[keep], codes[keep], counts[keep]
        sums = None if sums is None else sums[keep]
    if sums is not None:
        sums = sums * np.minimum(1.0, linf / np.maximum(counts, 1))
    return ids, codes, np.minimum(counts, linf), sums


def _heavy_pairs(ids, counts, c: int, linf: int) -> np.ndarray:
    """Pairs of subscribers whose records, capped at ``linf`` per key, exceed the total bound ``c``."""
    capped = np.minimum(counts, linf)
    starts = run_starts(ids)
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    totals = np.add.reduceat(capped, starts)
    owner = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(ids))))
    return np.flatnonzero((totals > c)[owner])


def _bound_total(ids, codes, counts, sums, l0: int, linf: int, c: int, secrets: tuple[int, int], max_reps: int):
    """Total bounding as the local engine does it: records of a pair are interchangeable, record ``k`` of
    (subscriber, key) is ranked as partition ``key * (max_reps + 1) + k`` (``max_reps`` over the whole
    input, so ranks match the local engine's), the ``c`` lowest of a subscriber's records kept."""
    original = counts.astype(np.int64)
    counts = np.minimum(original, linf)
    heavy = _heavy_pairs(ids, original, c, linf)
    if len(heavy):
        reps = counts[heavy]
        record_pair = np.repeat(heavy, reps)
        k = np.arange(len(record_pair), dtype=np.int64) - np.repeat(np.cumsum(reps) - reps, reps)
        record_code = codes[record_pair] * (max_reps + 1) + k
        kept = _lowest_ranks(ids[record_pair], record_code, c, secrets[0])
        kept_counts = np.bincount(record_pair[kept], minlength=len(ids))
        counts = counts.copy()
        counts[heavy] = kept_counts[heavy]
        rows = np.flatnonzero(counts > 0)
        ids, codes, counts, original = ids[rows], codes[rows], counts[rows], original[rows]
        sums = None if sums is None else sums[rows]
    if sums is not None:
        sums = sums * (counts / np.maximum(original, 1))
    if l0 < c:
        ids, codes, counts, sums = _bound_box(ids, codes, counts, sums, l0, linf, secrets[1])
    return ids, codes, counts, sums


@dataclass(frozen=True)
class _BoundSpec:
    """What a bounding task needs (pickled to the executors)."""

    distinct: bool
    has_values: bool
    bounded: bool
    l0: int = 0
    linf: int = 0
    total: int | None = None
    secrets: tuple[int, int] = (0, 0)
    max_reps: int = 0
    sum_unit: float | None = None


def _bound_task(spec: _BoundSpec) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        frames = [b for b in batches if len(b)]
        if not frames:
            return
        rows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        ids = rows["user_id"].to_numpy(dtype=np.int64)
        codes = rows["code"].to_numpy(dtype=np.int64)
        values = rows["value"].to_numpy(dtype=float) if spec.has_values else None
        del rows, frames
        ids, codes, counts, sums = _pairs(ids, codes, values, spec.distinct)
        if spec.bounded:
            if spec.total is not None:
                ids, codes, counts, sums = _bound_total(ids, codes, counts, sums, spec.l0, spec.linf, spec.total,
                                                        spec.secrets, spec.max_reps)
            else:
                ids, codes, counts, sums = _bound_box(ids, codes, counts, sums, spec.l0, spec.linf, spec.secrets[0])
        if sums is not None and spec.sum_unit is not None:
            sums = np.rint(sums / spec.sum_unit)
        yield _code_totals(codes, counts, sums)

    return run


def _code_totals(codes: np.ndarray, counts: np.ndarray, sums: np.ndarray | None) -> pd.DataFrame:
    """``(code, count, sum)`` per code present in ``codes``, ascending: counts and sums added per code."""
    width = int(codes.max()) + 1 if len(codes) else 0
    if width <= 4 * len(codes) + (1 << 16):  # codes dense enough for a table indexed by code (no sort)
        present = np.bincount(codes, minlength=width) > 0
        uniq = np.flatnonzero(present)
        inverse = (np.cumsum(present) - 1)[codes]
    else:
        uniq, inverse = np.unique(codes, return_inverse=True)
    out_counts = np.bincount(inverse, weights=counts, minlength=len(uniq))
    out_sums = np.bincount(inverse, weights=sums, minlength=len(uniq)) if sums is not None else np.zeros(len(uniq))
    return pd.DataFrame({"code": uniq, "count": np.rint(out_counts).astype(np.int64), "sum": out_sums})


def _max_reps_task(linf: int, c: int, distinct: bool) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        frames = [b for b in batches if len(b)]
        if not frames:
            return
        rows = pd.concat(frames, ignore_index=True)
        ids, _, counts, _ = _pairs(rows["user_id"].to_numpy(np.int64), rows["code"].to_numpy(np.int64), None, distinct)
        heavy = _heavy_pairs(ids, counts, c, linf)
        m = int(np.minimum(counts[heavy], linf).max()) if len(heavy) else 0
        yield pd.DataFrame({"m": [m]})

    return run


def _profile_task(distinct: bool) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """Per subscriber: records (``n``) and, for record counts, records left after capping each key at 1, 2, 4."""
    from privagg.dp.bound_choice import profiles

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        frames = [b for b in batches if len(b)]
        if not frames:
            return
        rows = pd.concat(frames, ignore_index=True)
        ids, _, counts, _ = _pairs(rows["user_id"].to_numpy(np.int64), rows["code"].to_numpy(np.int64), None, distinct)
        prof = profiles(ids, counts, distinct=distinct)
        yield pd.DataFrame({k: np.asarray(v, dtype=np.int64) for k, v in prof.items()})

    return run


def _noise_task(count_mech: Any, sum_mech: Any, public: bool, counter: Any):
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for b in batches:
            if len(b) == 0:
                continue
            counter.add(1)
            b = b.sort_values("code")
            codes = b["code"].to_numpy(dtype=np.int64)
            counts = b["count"].to_numpy(dtype=np.int64)
            sums = b["sum"].to_numpy(dtype=float)
            if public:
                out_codes, noisy = codes, count_mech.sample(counts, threads=1)
                kept_sums = sums
            else:
                out_codes, noisy = count_mech.release(codes, counts, threads=1)
                kept_sums = sums[np.searchsorted(codes, out_codes)] if len(out_codes) else np.zeros(0)
            noisy_sums = np.zeros(len(out_codes))
            if sum_mech is not None and len(out_codes):
                noisy_sums = sum_mech.sample(np.rint(kept_sums).astype(np.int64), threads=1).astype(float)
            yield pd.DataFrame({"code": out_codes, "noisy_count": np.asarray(noisy, dtype=np.int64), "noisy_sum": noisy_sums})

    return run


def _extract_task(define: Callable[..., Contributions], keys: KeySet | None, table_columns: tuple[str, ...],
                  user_columns: tuple[str, ...], has_values: bool, domain_only: bool):
    """Map Arrow batches of consenting rows to contributions with the statistic's own definition."""

    def split(b: pd.DataFrame) -> tuple[pd.DataFrame | None, pd.DataFrame]:
        if not table_columns:  # a per-subscriber statistic: the rows are the users
            return None, b.reset_index(drop=True)
        users = b[["user_id", *user_columns]].drop_duplicates("user_id").reset_index(drop=True)
        return b[list(table_columns)].reset_index(drop=True), users

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for b in batches:
            if len(b) == 0:
                continue
            table, users = split(b)
            c = define(table, users, None if domain_only else keys)
            if domain_only:
                if len(c):
                    values = [f.iloc[:, 0].to_numpy() for f in c.domain.factors]
                    yield pd.DataFrame({"factors": [pickle.dumps(values)]})
                continue
            ids, codes = c.privacy_ids.astype(np.int64), c.partitions.astype(np.int64)
            if has_values:
                values = c.values.astype(float) if c.values is not None else np.zeros(len(c))
                yield pd.DataFrame({"user_id": ids, "code": codes, "value": values})
                continue
            yield pd.DataFrame({"user_id": ids, "code": codes})

    return run


# ------------------------------------------------------------------ the engine
class SparkEngine(Engine):
    """Runs releases on Spark DataFrames (see the module docstring).

    Parameters
    ----------
    spark
        The ``SparkSession`` (e.g. :func:`spark_session` or the cluster's own).
    rng
        Source of the bounding secret, as for :class:`~privagg.engines.local.LocalEngine`: leave
        ``None`` (a fresh secret from :mod:`secrets` per release); tests pass a seeded generator
        to compare engines under one secret.
    partitions
        Shuffle partitions for the bounding step (default: the session's default parallelism x 2).

    Examples
    --------
    >>> engine = SparkEngine(spark)                                       # doctest: +SKIP
    >>> footfall(events_sdf, users=users_sdf, cells=cells, source="events",
    ...          epsilon=1.0, keys=keys, engine=engine)                   # doctest: +SKIP
    """

    name = "spark"

    def __init__(self, spark: SparkSession, *, rng: np.random.Generator | None = None,
                 partitions: int | None = None) -> None:
        self.spark = spark
        self._rng = rng
        self.partitions = partitions
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        #: Batches noised in the executors (a Spark accumulator): what tests check the budget against.
        self.noise_batches = spark.sparkContext.accumulator(0)
        self._converted: dict[int, tuple[pd.DataFrame, Any]] = {}
        self._persisted: list[Any] = []

    def bounding_secret(self) -> int:
        if self._rng is not None:
            return int(self._rng.integers(0, 2**63, dtype=np.int64))
        return super().bounding_secret()

    def _n_partitions(self) -> int:
        if self.partitions is not None:
            return max(1, int(self.partitions))
        return max(2, 2 * int(self.spark.sparkContext.defaultParallelism))

    # -- inputs -------------------------------------------------------------------
    def reads(self, data: Any) -> bool:
        """Whether ``data`` is this engine's frame: a Spark DataFrame, or a World (whose tables are
        then moved into Spark)."""
        from privagg.world import World

        return _is_spark(data) or isinstance(data, World)

    def to_spark(self, frame: Any) -> Any:
        """A pandas frame as a Spark DataFrame (Spark frames pass through). The conversion of each frame is
        kept while the frame lives, so releases on one World convert its tables once."""
        if frame is None or _is_spark(frame):
            return frame
        key = id(frame)
        held = self._converted.get(key)
        if held is not None and held[0] is frame:
            return held[1]
        converted = self.spark.createDataFrame(_spark_ready(frame))
        if len(self._converted) > 16:
            self._converted.clear()
        self._converted[key] = (frame, converted)
        return converted

    def resolve(self, data: Any, query: Query, *, table: str, users: Any, cells: Any,
                start: pd.Timestamp, end: pd.Timestamp, needed_user_columns: tuple[str, ...]) -> SparkInputs:
        """Check the Spark inputs' columns, drop subscribers without consent (a semi-join), keep the columns
        the statistic reads. ``table`` names the statistic's table (``"users"`` for per-subscriber ones)."""
        from pyspark.sql import functions as F

        from privagg.world import World

        if isinstance(data, World):
            users = data.users if users is None else users
            cells = data.cells if cells is None else cells
            data = None if table == "users" else getattr(data, table)
        if users is None:
            raise PrivaggInputError(
                "users= is required with raw tables, so that subscribers who did not consent (opt_in == False) "
                "are excluded. Fix: pass users= (the users table as a Spark or pandas DataFrame)."
            )
        users_sdf = self.to_spark(users)
        _check_columns(users_sdf, "users", ("user_id", "opt_in", *needed_user_columns))
        if cells is not None and _is_spark(cells):
            cells = cells.toPandas()
        if cells is not None:
            from privagg.schema import validate_table

            validate_table(cells, "cells")
        consenting = users_sdf.filter(F.col("opt_in") == F.lit(True)).select("user_id", *needed_user_columns)
        users_schema = empty_frame(consenting.schema)
        if table == "users":
            return SparkInputs(consenting, (), tuple(needed_user_columns), users_schema, cells, start, end)
        if data is None or not _is_spark(data):
            data = self.to_spark(data) if isinstance(data, pd.DataFrame) else data
        if not _is_spark(data):
            raise PrivaggInputError(
                f"data: expected the '{table}' table as a Spark or pandas DataFrame, got {type(data).__name__}. "
                f"Fix: pass spark.read.parquet('.../{table}.parquet')."
            )
        columns = TABLE_COLUMNS[table]
        _check_columns(data, table, columns)
        rows = data.select(*columns)
        if needed_user_columns:
            rows = rows.join(consenting, "user_id", "inner")
        else:
            rows = rows.join(consenting.select("user_id"), "user_id", "left_semi")
        return SparkInputs(rows, columns, tuple(needed_user_columns), users_schema, cells, start, end, data)

    # -- contributions ------------------------------------------------------------------
    def contributions(self, inputs: SparkInputs, keys: KeySet | None,
                      define: Callable[..., Contributions], *, has_values: bool) -> SparkContributions:
        """Rows ``(user_id, code, value)`` of the consenting subscribers, keyed by ``define`` (the statistic's
        definition: ``define(table, users, keys) -> Contributions`` on one pandas batch)."""
        from privagg.engines.extract import sorted_unique
        from privagg.keysets import KeySet

        empty_users = inputs.users.copy()
        empty_table = empty_frame(inputs.rows.schema)[list(inputs.table_columns)] if inputs.table_columns else None
        first = define(empty_table, empty_users, keys)
        domain, public, distinct = first.domain, keys is not None, first.distinct
        rows = inputs.rows
        if keys is None:
            # The observed domain, as the local engine builds it: per column, the sorted distinct values.
            parts = rows.mapInPandas(_extract_task(define, None, inputs.table_columns, inputs.user_columns,
                                                   has_values, True), "factors binary").collect()
            if parts:
                loaded = [pickle.loads(r["factors"]) for r in parts]
                names = list(domain.columns)
                factors = [sorted_unique(np.concatenate([p[i] for p in loaded])) for i in range(len(names))]
                domain = KeySet([pd.DataFrame({n: v}) for n, v in zip(names, factors)])
            else:
                return SparkContributions(self.spark.createDataFrame([], "user_id long, code long"
                                                                     + (", value double" if has_values else "")),
                                          domain, False, distinct, has_values)
        schema = "user_id long, code long" + (", value double" if has_values else "")
        extract = _extract_task(define, domain, inputs.table_columns, inputs.user_columns, has_values, False)
        return SparkContributions(rows.mapInPandas(extract, schema), domain, public, distinct, has_values,
                                  source=rows, extract=extract)

    # -- bounding and aggregation -------------------------------------------------------
    def _by_user(self, contributions: SparkContributions) -> Any:
        """The rows of ``contributions`` shuffled so that each subscriber's are in one task: the input rows
        when they can be extracted there (see :meth:`_per_user`), else the contributions."""
        rows = contributions.rows if contributions.source is None else contributions.source
        return rows.repartition(self._n_partitions(), "user_id")

    @staticmethod
    def _per_user(contributions: SparkContributions, by_user: Any, task: Callable, schema: str) -> Any:
        """``task`` over each subscriber's contributions in ``by_user`` (from :meth:`_by_user`), extracted
        in the same Python task when ``by_user`` holds input rows."""
        if contributions.source is None:
            return by_user.mapInPandas(task, schema)
        extract = contributions.extract

        def extract_then_task(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            return task(extract(batches))
        return by_user.mapInPandas(extract_then_task, schema)

    def bounded_totals(self, contributions: Any, bounds: Bounds | None, *, dense: bool,
                       sum_unit: float | None = None) -> Any:
        """Per-code totals of the bounded contributions, in Spark (see :meth:`Engine.bounded_totals`).

        Spark contributions give :class:`SparkTotals` (lazy, no noise in it); numpy ones take the
        local engine's path."""
        if not isinstance(contributions, SparkContributions):
            return self._local().bounded_totals(contributions, bounds, dense=dense, sum_unit=sum_unit)
        from pyspark.sql import functions as F

        by_user = self._by_user(contributions)
        spec = _BoundSpec(contributions.distinct, contributions.has_values, bounds is not None, sum_unit=sum_unit)
        if bounds is not None:
            total = bounds.max_total if bounds.shape == "total" else None
            first = self.bounding_secret()
            second = self.bounding_secret() if total is not None and bounds.max_partitions < total else first
            max_reps = 0
            if total is not None:
                by_user = by_user.persist()
                self._persisted.append(by_user)
                got = self._per_user(contributions, by_user,
                                     _max_reps_task(bounds.max_per_partition, total, contributions.distinct),
                                     "m long").agg(F.max("m")).collect()[0][0]
                max_reps = int(got or 0)
            spec = _BoundSpec(contributions.distinct, contributions.has_values, True, bounds.max_partitions,
                              bounds.max_per_partition, total, (first, second), max_reps, sum_unit)
        partial = self._per_user(contributions, by_user, _bound_task(spec), "code long, count long, sum double")
        if dense:
            # Every key of the public domain, empty ones included: a zero row per code joins the one reduce.
            zeros = (self.spark.range(contributions.n_partitions).withColumnRenamed("id", "code")
                     .select("code", F.lit(0).cast("long").alias("count"), F.lit(0.0).alias("sum")))
            partial = partial.unionByName(zeros)
        totals = partial.groupBy("code").agg(F.sum("count").alias("count"), F.sum("sum").alias("sum"))
        return SparkTotals(totals, contributions.n_partitions, dense)

    def profile(self, contributions: SparkContributions, *, distinct: bool) -> dict[str, np.ndarray]:
        """Per-subscriber contribution profiles for :func:`privagg.dp.bound_choice.choose_bounds`, computed in
        Spark; only their value counts reach the driver (a profile is a multiset of per-subscriber values)."""
        from pyspark.sql import functions as F

        names = ["n"] if distinct else ["n", "u1", "u2", "u4"]
        schema = ", ".join(f"{n} long" for n in names)
        # The bounding step reads the same rows again: keep them rather than reading the input again.
        if contributions.source is None:
            contributions.rows = contributions.rows.persist()
            self._persisted.append(contributions.rows)
        else:
            contributions.source = contributions.source.persist()
            self._persisted.append(contributions.source)
        prof = self._per_user(contributions, self._by_user(contributions), _profile_task(distinct), schema)
        counted = prof.groupBy(*names).agg(F.count(F.lit(1)).alias("k")).toPandas()
        k = counted["k"].to_numpy(np.int64)
        return {n: np.repeat(counted[n].to_numpy(np.int64), k) for n in names}

    # -- noise ------------------------------------------------------------------------
    def draw_noise(self, totals: SparkTotals, count_mech: Any, sum_mech: Any, *, public: bool) -> NoisyTotals:
        """Noise every released code in the executors and collect the result once.

        The caller charges the budget first; this submits the only job that draws noise, and what it
        returns is collected data, so no later action can draw noise again."""
        noisy = totals.rows.mapInPandas(_noise_task(count_mech, sum_mech, public, self.noise_batches),
                                        "code long, noisy_count long, noisy_sum double")
        frame = noisy.toPandas().sort_values("code")
        self._release_cached()
        sums = frame["noisy_sum"].to_numpy(dtype=float) if sum_mech is not None else None
        return NoisyTotals(frame["code"].to_numpy(np.int64), frame["noisy_count"].to_numpy(np.int64), sums)

    def _release_cached(self) -> None:
        for frame in self._persisted:
            frame.unpersist()
        self._persisted.clear()

    def release_frame(self, release: Any) -> Any:
        """A release's table as a Spark DataFrame (built from the collected noisy values: every action on
        it sees the same values)."""
        return self.spark.createDataFrame(_spark_ready(release.to_pandas()))

    # -- numpy contributions (pandas inputs with this engine) ----------------------------
    def _local(self) -> Engine:
        from privagg.engines.local import LocalEngine

        return LocalEngine(self._rng)

    def per_user_partition(self, contributions: Contributions) -> UserPartitions:
        return self._local().per_user_partition(contributions)

    def bound_contributions(self, pairs: UserPartitions, bounds: Bounds) -> UserPartitions:
        return self._local().bound_contributions(pairs, bounds)

    def aggregate(self, pairs: UserPartitions, n_partitions: int, *, dense: bool) -> PartitionTotals:
        return self._local().aggregate(pairs, n_partitions, dense=dense)


def _is_spark(obj: Any) -> bool:
    try:
        from pyspark.sql import DataFrame
    except ImportError:  # pragma: no cover - pyspark not installed
        return False
    if isinstance(obj, DataFrame):
        return True
    try:  # Spark Connect's DataFrame is a different class
        from pyspark.sql.connect.dataframe import DataFrame as ConnectFrame
    except Exception:  # noqa: BLE001 - connect extras missing
        return False
    return isinstance(obj, ConnectFrame)


def _spark_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy Spark can take: categoricals as strings, datetimes as ns."""
    out = frame.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype):
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    return out


def empty_frame(schema: Any) -> pd.DataFrame:
    """An empty pandas frame with the dtypes Spark's ``toPandas`` gives for ``schema`` (no Spark job)."""
    from pyspark.sql import types as T

    def dtype(t: Any) -> Any:
        if isinstance(t, (T.LongType, T.IntegerType, T.ShortType, T.ByteType)):
            return "int64"
        if isinstance(t, (T.DoubleType, T.FloatType, T.DecimalType)):
            return "float64"
        if isinstance(t, T.BooleanType):
            return "bool"
        if isinstance(t, (T.TimestampType, T.TimestampNTZType, T.DateType)):
            return "datetime64[ns]"
        return "object"

    return pd.DataFrame({f.name: pd.Series(dtype=dtype(f.dataType)) for f in schema.fields})


def _check_columns(frame: Any, table: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PrivaggInputError(
            f"table {table!r}: missing column(s) {', '.join(map(repr, missing))} (Spark DataFrame with columns "
            f"{', '.join(frame.columns)}). Fix: pass the {table} table with columns {', '.join(columns)}."
        )
