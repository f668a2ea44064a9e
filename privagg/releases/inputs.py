"""Resolving a release's inputs: World or tables, consent, window.

Consent is applied here, before anything else: only subscribers whose
``opt_in`` is True in the users table reach a statistic. It is carried as a
mask over the users' rows (:attr:`Inputs.user_mask`) and as a lookup of the
consenting ids (:attr:`Inputs.consent`), never as a filtered copy of the
users table. Given raw tables,
a release *requires* ``users=`` so that consent cannot be forgotten; rows of
subscribers absent from ``users`` are treated as not consenting. Nothing
here is derived from the rows: the window comes from the query, the public
keys or the World's metadata (a World built from a user's own tables derives
it from consenting subscribers' rows only, see :class:`privagg.world.World`),
and raw tables without any of them need an explicit ``start=`` and ``end=``.
The users table needs only ``user_id``, ``opt_in`` and the columns the
statistic reads.

Tables come as the user has them (:func:`as_pandas`): pandas DataFrames,
Arrow tables, Polars DataFrames and LazyFrames, or Parquet paths. Arrow and
Polars columns become pandas columns without a copy wherever the types
allow (integers, floats and timestamps without nulls); Polars is imported
only when such a table is passed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from privagg.errors import PrivaggInputError
from privagg.queries import LEVELS, TIME_COLUMN, KeySet, Query, parse_time_bin, parse_window
from privagg.releases.build import Inputs
from privagg.schema import TAG_PREFIX, validate_table, validated_id_range
from privagg.world import World

# Which table each statistic reads.
TABLE_OF = {
    "footfall": None,  # stays or events, by source
    "segment_counts": None,
    "visits": "stays",
    "dwell_times": "stays",
    "dwell_mean": "stays",
    "od_flows": "trips",
    "segment_mean": "users",
    "micro_segments": "users",
}


#: What a table argument may be, for error messages.
TABLE_TYPES = "a pandas DataFrame, a pyarrow Table, a Polars DataFrame or LazyFrame, or a Parquet path"


def _module(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def _is_parquet_path(obj: Any) -> bool:
    return isinstance(obj, (str, Path)) and (Path(obj).suffix.lower() == ".parquet" or Path(obj).is_dir())


def table_columns(obj: Any) -> list[str] | None:
    """Column names of a table in any supported form (None if ``obj`` is not a table).

    Reads only the schema: a Parquet file's footer, a LazyFrame's plan.
    """
    if isinstance(obj, pd.DataFrame):
        return [str(c) for c in obj.columns]
    module = _module(obj)
    if module == "pyarrow" and hasattr(obj, "column_names"):
        return list(obj.column_names)
    if module == "polars":
        import polars as pl

        if isinstance(obj, pl.LazyFrame):
            return list(obj.collect_schema().names())
        if isinstance(obj, pl.DataFrame):
            return list(obj.columns)
    if module == "pyspark" and hasattr(obj, "schema"):  # a Spark DataFrame: its schema, no job
        return [str(c) for c in obj.columns]
    if _is_parquet_path(obj) and Path(obj).exists():
        import pyarrow.parquet as pq

        return list(pq.read_schema(obj).names) if Path(obj).is_file() else list(pq.ParquetDataset(obj).schema.names)
    return None


def _arrow_to_pandas(table: Any) -> pd.DataFrame:
    """An Arrow table as pandas, sharing the Arrow buffers where the types allow."""
    # One block per column: numeric and timestamp columns without nulls are then views of Arrow's buffers.
    return table.to_pandas(split_blocks=True, zero_copy_only=False)


def as_pandas(obj: Any, parameter: str, *, columns: Sequence[str] | None = None,
              fix: str = "pass the table itself") -> pd.DataFrame:
    """``obj`` as a pandas DataFrame, without a copy where the column types allow.

    Parameters
    ----------
    obj
        A pandas DataFrame (returned as is), a ``pyarrow.Table`` or
        ``RecordBatch``, a Polars ``DataFrame`` or ``LazyFrame`` (collected,
        with only ``columns`` when given), or the path of a Parquet file or
        directory (only ``columns`` are read, when given).
    parameter
        The parameter's name, for the error message.
    columns
        Columns the release reads; other columns of a LazyFrame or a Parquet
        file are never materialised. Columns that do not exist are ignored
        here (the schema check reports them).
    fix
        What to pass instead, for the error message.

    Raises
    ------
    PrivaggInputError
        If ``obj`` is none of these, or a Parquet path does not exist.

    Examples
    --------
    >>> import pyarrow as pa
    >>> as_pandas(pa.table({"user_id": [1, 2]}), "users")["user_id"].tolist()
    [1, 2]
    """
    if isinstance(obj, pd.DataFrame):
        return obj
    module = _module(obj)
    if module == "pyarrow" and hasattr(obj, "to_pandas") and hasattr(obj, "column_names"):
        return _arrow_to_pandas(obj)
    if module == "polars":
        import polars as pl

        if isinstance(obj, pl.LazyFrame):
            if columns is not None:
                names = set(obj.collect_schema().names())
                obj = obj.select([c for c in columns if c in names])
            obj = obj.collect()
        if isinstance(obj, pl.DataFrame):
            # Polars -> Arrow shares buffers; Arrow -> pandas shares those of numeric columns.
            return _arrow_to_pandas(obj.to_arrow())
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        if not _is_parquet_path(path):
            raise PrivaggInputError(
                f"{parameter}={str(obj)!r} is not a Parquet path. Fix: pass a .parquet file or a directory of them, "
                f"or {TABLE_TYPES}."
            )
        if not path.exists():
            raise PrivaggInputError(f"{parameter}={str(obj)!r} does not exist. Fix: pass the path of an existing Parquet file.")
        import pyarrow.parquet as pq

        wanted = None
        if columns is not None:
            present = set(table_columns(path) or ())
            wanted = [c for c in columns if c in present]
        return _arrow_to_pandas(pq.read_table(path, columns=wanted))
    raise PrivaggInputError(
        f"{parameter}: expected {TABLE_TYPES}, got {type(obj).__name__}. Fix: {fix}."
    )


def is_table(obj: Any) -> bool:
    """Whether ``obj`` is a table in one of the forms :func:`as_pandas` accepts."""
    if isinstance(obj, pd.DataFrame):
        return True
    module = _module(obj)
    if module == "pyarrow":
        return hasattr(obj, "column_names")
    if module == "polars":
        import polars as pl

        return isinstance(obj, (pl.DataFrame, pl.LazyFrame))
    return _is_parquet_path(obj)


def consent_lookup(consenting: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function telling, for an array of user ids, which are in ``consenting`` (distinct ids).

    Built once per release (a lookup table indexed by id when ids are compact,
    else a hash index) and applied to each chunk of rows.
    """
    consenting = np.asarray(consenting, dtype=np.int64)
    if len(consenting) == 0:
        return lambda user_ids: np.zeros(len(user_ids), dtype=bool)
    lo, hi = int(consenting.min()), int(consenting.max())
    if hi - lo + 1 == len(consenting):
        # Distinct ids (the users table's, checked by its schema) filling their range: every id of it consents,
        # a range test says which (sequential ids after an upstream consent filter).
        return lambda user_ids: (np.asarray(user_ids) >= lo) & (np.asarray(user_ids) <= hi)
    if hi - lo >= max(4 * len(consenting), 1 << 20):
        index = pd.Index(consenting)
        return lambda user_ids: index.get_indexer(np.asarray(user_ids, dtype=np.int64)) >= 0
    base = 0 if 0 <= lo <= 4 * (hi - lo + 1) else lo  # index by the id itself when the table stays small
    lut = np.zeros(hi - base + 1, dtype=bool)
    lut[consenting - base] = True

    def mask(user_ids: np.ndarray) -> np.ndarray:
        # intp indices: numpy gathers several times faster with them than with int32.
        off = np.array(user_ids, dtype=np.intp)
        if len(off) == 0:
            return np.zeros(0, dtype=bool)
        if base:
            off -= base
        if int(off.min()) >= 0 and int(off.max()) <= hi - base:
            return lut[off]
        ok = (off >= 0) & (off <= hi - base)
        out = np.zeros(len(off), dtype=bool)
        out[ok] = lut[off[ok]]
        return out

    return mask


def _user_columns_read(query: Query) -> set[str]:
    """User columns a release of ``query`` may read (tag columns are kept as well)."""
    return {"user_id", "opt_in", "home_cell", *query.by, *((query.column,) if query.column else ())}


def _lazy_consent(users: pd.DataFrame, opted_in: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray]:
    """:func:`consent_lookup` of the consenting ids (rows ``opted_in`` of ``users``; None: every row), built on
    first use (per-user statistics never need it)."""
    built: list[Callable[[np.ndarray], np.ndarray]] = []

    def lookup(user_ids: np.ndarray) -> np.ndarray:
        if not built:
            ids = users["user_id"].to_numpy()
            built.append(consent_lookup(ids if opted_in is None else ids[opted_in]))
        return built[0](user_ids)

    return lookup


def check_user_columns(query: Query, users: pd.DataFrame) -> None:
    """The users table needs ``user_id`` and ``opt_in`` (checked by the schema) and only the columns the
    statistic reads: its ``by`` columns, its averaged ``column``, and ``home_cell`` for per-subscriber
    statistics by area."""
    needed: dict[str, str] = {}
    for column in query.by:
        needed[column] = f"by={column!r}"
    if query.statistic == "segment_mean" and query.column:
        needed[query.column] = f"column={query.column!r}"
    if query.statistic in ("segment_mean", "micro_segments") and query.level is not None:
        needed["home_cell"] = f"level={query.level!r} (a subscriber's area is their home cell's)"
    for column, why in needed.items():
        if column not in users.columns:
            raise PrivaggInputError(
                f"table 'users', column {column!r}: missing, and {query.statistic} with {why} reads it. "
                f"Fix: add the column {column!r} to the users table, or release without it."
            )


def _needed(name: str) -> list[str]:
    """Columns of table ``name`` a release reads (the schema's; others are never loaded from Parquet or Polars)."""
    from privagg.schema import SCHEMAS

    schema = SCHEMAS[name]
    return [*dict(schema.columns), *(schema.optional or {})]


def table_name(query: Query) -> str:
    name = TABLE_OF[query.statistic]
    return query.source if name is None else name


def resolve(
    data: Any,
    query: Query,
    *,
    users: pd.DataFrame | None,
    cells: pd.DataFrame | None,
    keys: KeySet | None,
) -> Inputs:
    """Validate and consent-filter the inputs of ``query``; fix its window.

    ``data`` is a World or the statistic's table (stays, events or trips;
    ignored for per-user statistics, which read ``users``).
    """
    name = table_name(query)
    world_start = world_end = None
    if isinstance(data, World):
        users = data.users if users is None else users
        cells = data.cells if cells is None else cells
        table = None if name == "users" else getattr(data, name)
        world_start, world_end = data.meta.get("start"), data.meta.get("end")
    else:
        table = None
        if name != "users":
            if not is_table(data):
                raise PrivaggInputError(
                    f"data: expected a World or the '{name}' table as {TABLE_TYPES}, got {type(data).__name__}. "
                    f"Fix: pass world or world.{name}."
                )
            table = as_pandas(data, "data", columns=_needed(name), fix=f"pass world or world.{name}")
        if users is None:
            raise PrivaggInputError(
                "users= is required with raw tables, so that subscribers who did not consent (opt_in == False) "
                "are excluded. Fix: pass users=world.users (or the World itself as the first argument)."
            )
    users = as_pandas(users, "users", fix="pass users=world.users")
    if cells is not None:
        cells = as_pandas(cells, "cells", fix="pass cells=world.cells")
    user_id_range = validated_id_range(users, "users")
    check_user_columns(query, users)
    if table is not None:
        validate_table(table, name)
    needs_cells = query.level in ("zone", "district") or (
        query.statistic in ("segment_mean", "micro_segments") and query.level is not None
    )
    if needs_cells:
        if cells is None:
            raise PrivaggInputError(
                f"cells= is required for level={query.level!r} (to map cells to {LEVELS[query.level]}). Fix: pass cells=world.cells."
            )
        validate_table(cells, "cells")

    opted_in: np.ndarray | None = users["opt_in"].to_numpy(dtype=bool)
    # Consent as a mask over the users' rows, never a filtered copy of the table: per-user statistics
    # apply it in the pass that maps rows to keys, the others through the consenting ids.
    if opted_in.all():  # the usual case after an upstream consent filter
        opted_in = None
    read = [c for c in users.columns if c in _user_columns_read(query) or str(c).startswith(TAG_PREFIX)]
    if len(read) < users.shape[1]:
        users = users[read]  # only the columns the statistic reads (no copy of their data)
    if not isinstance(users.index, pd.RangeIndex) or users.index.start != 0 or users.index.step != 1:
        users = users.reset_index(drop=True)
    start, end = window(query, keys, world_start, world_end)
    # A row mask rather than a filtered copy: the statistic applies it with its window, in one pass.
    return Inputs(table, users, cells, start, end, _lazy_consent(users, opted_in), opted_in,
                  user_id_range=user_id_range)


def window(query: Query, keys: KeySet | None, world_start: Any, world_end: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The release window: the query's, else the public keys' time range, else the World's."""
    tb = parse_time_bin(query.time_bin) if query.time_bin is not None else None
    start, end = query.start, query.end
    if (start is None or end is None) and keys is not None and TIME_COLUMN in keys.columns and tb is not None:
        times = keys.select([TIME_COLUMN]).to_pandas()[TIME_COLUMN]
        start = times.min() if start is None else start
        end = times.max() + tb if end is None else end
    if start is None or end is None:
        start = world_start if start is None else start
        end = world_end if end is None else end
    if start is None or end is None:
        if query.statistic in ("segment_mean", "micro_segments"):
            return pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D")
        raise PrivaggInputError(
            "the release window is unknown. Fix: pass start= and end= (the privacy unit's window), "
            "public keys with a 'time' column, or a World."
        )
    return parse_window(start, end, tb)
