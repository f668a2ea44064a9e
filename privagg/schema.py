"""Table schemas of privagg's data model, and their validation.

The column names are part of the public API: synthetic worlds produce them,
user data is validated into them, and every release reads them.

=========  ===============================================================
table      columns
=========  ===============================================================
cells      cell_id, zone_id, district_id, x, y (metres), land_use
users      user_id, opt_in (required: consent); optionally age_band,
           gender, contract, arpu, device_tier, home_cell, work_cell and
           boolean ``tag_*`` columns (a statistic checks for those it reads)
events     user_id, cell_id, ts
stays      user_id, cell_id, start, end
trips      user_id, origin_cell, destination_cell, depart, arrive
=========  ===============================================================

Validation raises :class:`~privagg.errors.PrivaggInputError` before any work
is done, naming the table, the column, how many rows are affected, one
example, and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from privagg.errors import PrivaggInputError

Kind = Literal["int", "float", "str", "bool", "datetime"]

LAND_USES = ("residential", "office", "retail", "transport", "leisure", "stadium")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
GENDERS = ("female", "male")
CONTRACTS = ("prepaid", "postpaid")
DEVICE_TIERS = ("basic", "mid", "premium")
TAG_PREFIX = "tag_"


@dataclass(frozen=True)
class TableSchema:
    """Required columns of one table, in order, with their kinds.

    Parameters
    ----------
    name
        Table name, used in error messages.
    columns
        Ordered mapping of column name to kind.
    keys
        Columns that must never be null.
    unique
        Column whose values must be unique (the table's id), if any.
    optional
        Columns that may be absent; when present they must have the given kind.
    tag_columns
        Whether extra boolean ``tag_*`` columns are allowed (segment tags).
    """

    name: str
    columns: dict[str, Kind]
    keys: tuple[str, ...]
    unique: str | None = None
    optional: dict[str, Kind] | None = None
    tag_columns: bool = False

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)


SCHEMAS: dict[str, TableSchema] = {
    "cells": TableSchema(
        "cells",
        {"cell_id": "int", "zone_id": "int", "district_id": "int",
         "x": "float", "y": "float", "land_use": "str"},
        keys=("cell_id", "zone_id", "district_id"),
        unique="cell_id",
    ),
    "users": TableSchema(
        "users",
        # Only the privacy unit and consent are required: a statistic names the other columns it reads.
        {"user_id": "int", "opt_in": "bool"},
        keys=("user_id",),
        unique="user_id",
        optional={"age_band": "str", "gender": "str", "contract": "str", "arpu": "float",
                  "home_cell": "int", "work_cell": "int", "device_tier": "str"},
        tag_columns=True,
    ),
    "events": TableSchema(
        "events",
        {"user_id": "int", "cell_id": "int", "ts": "datetime"},
        keys=("user_id", "cell_id", "ts"),
    ),
    "stays": TableSchema(
        "stays",
        {"user_id": "int", "cell_id": "int", "start": "datetime", "end": "datetime"},
        keys=("user_id", "cell_id", "start", "end"),
    ),
    "trips": TableSchema(
        "trips",
        {"user_id": "int", "origin_cell": "int", "destination_cell": "int",
         "depart": "datetime", "arrive": "datetime"},
        keys=("user_id", "origin_cell", "destination_cell", "depart", "arrive"),
    ),
}

# Columns holding a cell id, which must exist in the cells table.
CELL_REFERENCES: dict[str, tuple[str, ...]] = {
    "users": ("home_cell", "work_cell"),
    "events": ("cell_id",),
    "stays": ("cell_id",),
    "trips": ("origin_cell", "destination_cell"),
}

# (earlier, later) column pairs that must be ordered.
TIME_ORDER: dict[str, tuple[str, str]] = {"stays": ("start", "end"), "trips": ("depart", "arrive")}

_KIND_DESCRIPTION = {
    "int": "integer",
    "float": "numeric",
    "str": "string",
    "bool": "boolean",
    "datetime": "datetime64",
}


def _matches_kind(series: pd.Series, kind: Kind) -> bool:
    dtype = series.dtype
    if kind == "int":
        return pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if kind == "float":
        return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if kind == "bool":
        return pd.api.types.is_bool_dtype(dtype)
    if kind == "datetime":
        return pd.api.types.is_datetime64_any_dtype(dtype) and getattr(dtype, "tz", None) is None
    # Strings: object, pandas string or categorical of strings.
    return (
        pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_object_dtype(dtype)
    )


def _example(values: pd.Series | np.ndarray) -> str:
    values = np.asarray(values)
    return repr(values[0].item() if hasattr(values[0], "item") else values[0]) if len(values) else "?"


def _fail(table: str, column: str | None, n_rows: int | None, problem: str, fix: str) -> PrivaggInputError:
    where = f"table '{table}'" + (f", column '{column}'" if column else "")
    rows = "" if n_rows is None else f" ({n_rows:,} row{'s' if n_rows != 1 else ''})"
    return PrivaggInputError(f"{where}: {problem}{rows}. Fix: {fix}")


def validate_table(df: pd.DataFrame, table: str, *, cells: pd.DataFrame | None = None) -> pd.DataFrame:
    """Check that ``df`` follows the schema of ``table``; return it unchanged.

    Parameters
    ----------
    df
        The table to check.
    table
        One of ``cells``, ``users``, ``events``, ``stays``, ``trips``.
    cells
        If given, every cell id referenced by ``df`` must be a ``cell_id`` of it.

    Returns
    -------
    pandas.DataFrame
        ``df`` itself, so calls can be chained.

    Raises
    ------
    PrivaggInputError
        On the first problem found: missing or extra columns, wrong dtypes,
        nulls in keys, duplicate ids, end before start, unknown cells.
    """
    validated_id_range(df, table, cells=cells)
    return df


def validated_id_range(df: pd.DataFrame, table: str, *, cells: pd.DataFrame | None = None) -> tuple[int, int] | None:
    """:func:`validate_table`, returning what the uniqueness check learnt: ``(min, max)`` of the table's id
    column (``user_id`` of users, ``cell_id`` of cells), or None when the table has none or its ids are not
    integers. A release reads the range from here rather than passing over the ids again.
    """
    if table not in SCHEMAS:
        raise PrivaggInputError(
            f"table={table!r} is not a privagg table. Fix: use one of {', '.join(SCHEMAS)}."
        )
    if not isinstance(df, pd.DataFrame):
        raise PrivaggInputError(
            f"table '{table}': expected a pandas DataFrame, got {type(df).__name__}. "
            "Fix: load it with privagg.schema.load_table(path, table)."
        )
    schema = SCHEMAS[table]
    optional = schema.optional or {}

    missing = [c for c in schema.columns if c not in df.columns]
    if missing:
        raise _fail(
            table, missing[0], None,
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}",
            f"'{table}' needs the columns {', '.join(schema.columns)}; rename or add the missing ones.",
        )
    extra = [
        c for c in df.columns
        if c not in schema.columns and c not in optional
        and not (schema.tag_columns and isinstance(c, str) and c.startswith(TAG_PREFIX))
    ]
    if extra:
        allowed = " (segment tags must be boolean columns named 'tag_<name>')" if schema.tag_columns else ""
        raise _fail(
            table, str(extra[0]), None,
            f"unexpected column{'s' if len(extra) > 1 else ''} {', '.join(map(repr, map(str, extra)))}",
            f"drop or rename them{allowed}.",
        )

    expected: dict[str, Kind] = dict(schema.columns)
    expected.update({c: k for c, k in optional.items() if c in df.columns})
    if schema.tag_columns:
        expected.update({c: "bool" for c in df.columns if isinstance(c, str) and c.startswith(TAG_PREFIX)})
    for column, kind in expected.items():
        series = df[column]
        if column in schema.keys or kind == "bool":
            # numpy integer and bool columns cannot hold nulls: no full-length mask to build and count.
            n_null = 0 if isinstance(series.dtype, np.dtype) and series.dtype.kind in "iub" else int(
                np.count_nonzero(series.isna().to_numpy()))
            if n_null:
                raise _fail(
                    table, column, n_null, "has null values",
                    f"drop or fill those rows; '{column}' is a key and must be set on every row.",
                )
        if not _matches_kind(series, kind):
            hint = {
                "datetime": "parse it with pandas.to_datetime (timezone-naive, local time)",
                "int": "cast it with .astype('int64')",
                "bool": "cast it with .astype(bool)",
                "float": "cast it with .astype('float64')",
                "str": "cast it with .astype(str)",
            }[kind]
            raise _fail(
                table, column, None,
                f"has dtype {series.dtype}, expected {_KIND_DESCRIPTION[kind]}",
                f"{hint}.",
            )

    id_range = None
    if schema.unique is not None:
        ids = df[schema.unique].to_numpy()
        id_range = _int_range(ids)
        if not (id_range is not None and _unique_compact_ints(ids, *id_range)):
            dup = df[schema.unique].duplicated()
            n_dup = int(dup.sum())
            if n_dup:
                raise _fail(
                    table, schema.unique, n_dup, f"has duplicate ids, e.g. {_example(df.loc[dup, schema.unique])}",
                    f"make '{schema.unique}' unique (one row per id).",
                )

    if table in TIME_ORDER:
        first, last = TIME_ORDER[table]
        bad = (df[last] < df[first]).to_numpy()
        n_bad = int(bad.sum())
        if n_bad:
            row = df.loc[bad].iloc[0]
            raise _fail(
                table, last, n_bad,
                f"has '{last}' before '{first}', e.g. {first}={row[first]}, {last}={row[last]}",
                f"swap or drop those rows; every row needs {first} <= {last}.",
            )

    if cells is not None and table in CELL_REFERENCES:
        known = np.asarray(cells["cell_id"].to_numpy())
        for column in CELL_REFERENCES[table]:
            if column not in df.columns:  # an optional column (users' home and work cells)
                continue
            values = df[column].to_numpy()
            unknown = ~np.isin(values, known)
            n_unknown = int(unknown.sum())
            if n_unknown:
                raise _fail(
                    table, column, n_unknown,
                    f"refers to cells absent from 'cells', e.g. {_example(values[unknown])}",
                    "add those cells to the cells table or drop the rows that use them.",
                )
    return id_range


def _int_range(values: np.ndarray) -> tuple[int, int] | None:
    """``(min, max)`` of an integer array, reduced on every thread (None: not integers, or empty)."""
    from privagg.parallel import min_max

    if values.dtype.kind not in "iu" or len(values) == 0:
        return None
    return min_max(values)


def _unique_compact_ints(values: np.ndarray, lo: int, hi: int) -> bool:
    """True when the integers ``values``, all in ``[lo, hi]``, form a compact range with each at most once
    (False means "not known": the caller falls back to a hash check that also finds the duplicates).

    Each row sets the byte of its id (offset by the smallest id) in a table of one byte per id of the
    range, in contiguous blocks of rows on every thread: the threads share the table, and a byte
    written by two of them still reads 1. The ids are unique exactly when as many bytes are set as
    there are rows. The table is at most half the size of the ids (a range under four ids per row).
    """
    from privagg.parallel import default_threads, thread_map

    n = len(values)
    parts = max(1, min(default_threads(), n // (1 << 20)))
    cuts = np.linspace(0, n, parts + 1).astype(np.int64)
    blocks = [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:])]
    if hi - lo >= 4 * n + (1 << 16):
        return False
    seen = np.zeros(hi - lo + 1, dtype=np.uint8)
    step = 1 << 16  # rows per block: the offsets stay in cache

    def mark(b: tuple[int, int]) -> None:
        offset = np.empty(min(step, b[1] - b[0]), dtype=np.int64)
        for start in range(b[0], b[1], step):
            m = min(step, b[1] - start)
            np.subtract(values[start:start + m], lo, out=offset[:m], casting="unsafe")
            seen[offset[:m]] = 1  # fancy assignment releases the GIL

    thread_map(mark, blocks, parts)
    return int(np.count_nonzero(seen)) == n


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _read(path: Path, table: str, fmt: str, reader) -> pd.DataFrame:
    """Read a file, turning every reader failure (damaged, truncated, not that format) into one line."""
    try:
        df = reader(path)
    except MemoryError:
        raise PrivaggInputError(
            f"table '{table}': {str(path)!r} does not fit in memory. Fix: split the data or use a bigger machine."
        ) from None
    except Exception as exc:  # pandas and pyarrow raise many types for a damaged file
        raise PrivaggInputError(
            f"table '{table}': {str(path)!r} is not a readable {fmt} file ({type(exc).__name__}: {_first_line(exc)}). "
            f"Fix: export the table again as {fmt}{' with a header row' if fmt == 'CSV' else ''}."
        ) from None
    if not isinstance(df, pd.DataFrame):  # pragma: no cover
        raise PrivaggInputError(f"table '{table}': {str(path)!r} did not read as a table. Fix: export it again.")
    return df


def load_table(source: str | Path | pd.DataFrame, table: str, *, cells: pd.DataFrame | None = None) -> pd.DataFrame:
    """Load a table from CSV, Parquet or a DataFrame and validate it.

    CSV has no types, so its datetime columns are parsed and its boolean
    columns read from ``true``/``false``; Parquet and DataFrames are taken as
    they are and must already have the right dtypes.

    Parameters
    ----------
    source
        Path to a ``.csv`` or ``.parquet`` file, or a DataFrame.
    table
        Which privagg table it holds.
    cells
        Passed to :func:`validate_table` to check cell references.
    """
    if table not in SCHEMAS:
        raise PrivaggInputError(
            f"table={table!r} is not a privagg table. Fix: use one of {', '.join(SCHEMAS)}."
        )
    if isinstance(source, pd.DataFrame):
        return validate_table(source, table, cells=cells)
    path = Path(source)
    if not path.exists():
        raise PrivaggInputError(f"table '{table}': file {str(path)!r} does not exist. Fix: check the path.")
    if not path.is_file():
        raise PrivaggInputError(f"table '{table}': {str(path)!r} is a folder, not a file. Fix: name the table's .csv or .parquet file.")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise PrivaggInputError(
            f"table '{table}': cannot read {str(path)!r}. Fix: give a .csv or .parquet file."
        )
    if path.stat().st_size == 0:
        raise PrivaggInputError(
            f"table '{table}': file {str(path)!r} is empty (0 bytes). Fix: export the table into it again"
            + (f", with a header row ({', '.join(SCHEMAS[table].columns)})." if suffix == ".csv" else ".")
        )
    if suffix == ".parquet":
        df = _read(path, table, "Parquet", pd.read_parquet)
    else:
        schema = SCHEMAS[table]
        dates = [c for c, k in {**schema.columns, **(schema.optional or {})}.items() if k == "datetime"]
        df = _read(path, table, "CSV", pd.read_csv)
        if len(df) == 0:
            raise PrivaggInputError(
                f"table '{table}': file {str(path)!r} has a header but no rows (an empty table). "
                "Fix: add its rows, or check that the right file was exported."
            )
        for column in dates:
            if column in df.columns:
                try:
                    df[column] = pd.to_datetime(df[column], format="ISO8601")
                except (ValueError, TypeError, OverflowError) as exc:
                    raise _fail(
                        table, column, None, f"could not be parsed as datetimes ({_first_line(exc)})",
                        "write timestamps as ISO 8601, e.g. 2026-01-05 08:30:00.",
                    ) from None
    return validate_table(df, table, cells=cells)
