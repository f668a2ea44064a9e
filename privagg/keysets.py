"""Key sets: the public key domains of releases, and the fast lookup of keys in data.

A :class:`KeySet` is a public key domain, like Tumult Analytics' KeySet:
every key in it is released, empty ones included, so which keys exist never
leaks. Build one from the World's cells and a time range with
:meth:`KeySet.areas_by_time`, from lists of values with
:meth:`KeySet.from_values`, and combine them with ``*`` (cross product).
Time bins follow the definitions of :mod:`privagg.queries`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from privagg.errors import PrivaggInputError
from privagg.queries import TIME_COLUMN, area_column, time_bins  # defined before this module is imported

def _kind(dtype: Any) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "str"


# --------------------------------------------------------------------------- KeySet
class KeySet:
    """A public key domain: the keys a release publishes, each exactly once.

    A KeySet is the cross product of one or more *factors*; each factor is a
    table of distinct rows over some key columns. ``KeySet.from_values`` makes
    one single-column factor per column; ``KeySet.from_dataframe`` one factor
    holding the given combinations; ``a * b`` concatenates factors.

    KeySets are immutable. Their keys must be public knowledge (e.g. the
    operator's cell list and a calendar), never read from the private data.

    Examples
    --------
    >>> ks = KeySet.from_values(zone_id=[1, 2]) * KeySet.time_bins("2026-01-05", "2026-01-06", "6h")
    >>> len(ks)
    8
    """

    __slots__ = ("_factors", "_tables")

    def __init__(self, factors: Sequence[pd.DataFrame]) -> None:
        cleaned: list[pd.DataFrame] = []
        seen: set[str] = set()
        for factor in factors:
            if not isinstance(factor, pd.DataFrame) or factor.shape[1] == 0:
                raise PrivaggInputError("KeySet factors must be DataFrames with at least one column. Fix: use KeySet.from_values or KeySet.from_dataframe.")
            overlap = seen.intersection(map(str, factor.columns))
            if overlap:
                raise PrivaggInputError(
                    f"KeySet: column {sorted(overlap)[0]!r} appears in two factors of a cross product. Fix: give each key column once."
                )
            seen.update(map(str, factor.columns))
            if factor.isna().any().any():
                raise PrivaggInputError(
                    f"KeySet: key columns {list(factor.columns)} hold missing values. Fix: drop them; keys must be set."
                )
            cleaned.append(factor.drop_duplicates().reset_index(drop=True))
        if not cleaned:
            raise PrivaggInputError("KeySet needs at least one key column. Fix: use KeySet.from_values(column=[...]).")
        self._factors = tuple(cleaned)
        # Per single-column factor (and time-bin width): its prepared lookup table, built on first use,
        # so that encoding a large input chunk by chunk builds it once.
        self._tables: dict[tuple[int, int], tuple[_IntTable | None, bool]] = {}

    # -- constructors ------------------------------------------------------
    @classmethod
    def from_values(cls, mapping: Mapping[str, Iterable[Any]] | None = None, /, **columns: Iterable[Any]) -> KeySet:
        """Cross product of the given values per column: ``from_values(zone_id=[1, 2], gender=['female', 'male'])``."""
        items = dict(mapping or {})
        items.update(columns)
        if not items:
            raise PrivaggInputError("KeySet.from_values needs at least one column. Fix: e.g. KeySet.from_values(zone_id=[1, 2]).")
        factors = []
        for name, values in items.items():
            series = pd.Series(list(values) if not isinstance(values, (pd.Series, pd.Index, np.ndarray)) else values)
            if series.empty:
                raise PrivaggInputError(f"KeySet.from_values: column {name!r} has no values. Fix: give at least one value.")
            factors.append(pd.DataFrame({name: series.to_numpy()}))
        return cls(factors)

    @classmethod
    def from_dataframe(cls, frame: pd.DataFrame) -> KeySet:
        """The distinct rows of ``frame`` (public combinations, not a cross product)."""
        return cls([frame.copy()])

    @classmethod
    def areas(cls, cells: pd.DataFrame, level: str = "cell") -> KeySet:
        """Every area of ``level`` in the public cells table."""
        column = area_column(level)
        if column not in cells.columns:
            raise PrivaggInputError(f"cells table lacks column {column!r}. Fix: pass the World's cells table.")
        values = np.sort(pd.unique(cells[column].to_numpy()))
        return cls([pd.DataFrame({column: values.astype("int64")})])

    @classmethod
    def time_bins(cls, start: Any, end: Any, time_bin: Any = "1h") -> KeySet:
        """Every time bin of ``[start, end)`` (key column ``time``)."""
        return cls([pd.DataFrame({TIME_COLUMN: time_bins(start, end, time_bin)})])

    @classmethod
    def areas_by_time(cls, cells: pd.DataFrame, level: str = "cell", *, start: Any, end: Any, time_bin: Any = "1h") -> KeySet:
        """Every (area, time bin) of ``level`` x ``[start, end)``: the usual footfall domain."""
        return cls.areas(cells, level) * cls.time_bins(start, end, time_bin)

    @classmethod
    def od_pairs(cls, cells: pd.DataFrame, level: str = "zone", *, start: Any = None, end: Any = None, time_bin: Any = None) -> KeySet:
        """Every (origin area, destination area[, time bin]): the OD-flow domain."""
        column = area_column(level)
        values = np.sort(pd.unique(cells[column].to_numpy())).astype("int64")
        ks = cls.from_values({f"origin_{level}": values, f"destination_{level}": values})
        if time_bin is not None:
            ks = ks * cls.time_bins(start, end, time_bin)
        return ks

    # -- algebra & inspection ---------------------------------------------
    def __mul__(self, other: KeySet) -> KeySet:
        if not isinstance(other, KeySet):
            return NotImplemented
        return KeySet([*self._factors, *other._factors])

    @property
    def factors(self) -> tuple[pd.DataFrame, ...]:
        return tuple(f.copy() for f in self._factors)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(str(c) for f in self._factors for c in f.columns)

    def dtypes(self) -> dict[str, Any]:
        return {str(c): f[c].dtype for f in self._factors for c in f.columns}

    def __len__(self) -> int:
        n = 1
        for f in self._factors:
            n *= len(f)
        return n

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeySet):
            return NotImplemented
        a = self.to_pandas().sort_values(list(self.columns)).reset_index(drop=True)
        b = other.to_pandas()
        if set(b.columns) != set(a.columns):
            return False
        b = b[list(a.columns)].sort_values(list(a.columns)).reset_index(drop=True)
        return a.equals(b)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"KeySet({' x '.join('(' + ', '.join(map(str, f.columns)) + f')[{len(f)}]' for f in self._factors)}; {len(self):,} keys)"

    def to_pandas(self) -> pd.DataFrame:
        """All keys, in code order (the first column varies slowest)."""
        out = self._factors[0]
        for f in self._factors[1:]:
            out = out.merge(f, how="cross")
        return out.reset_index(drop=True)

    def select(self, columns: Sequence[str]) -> KeySet:
        """Project onto ``columns`` (each factor projected; duplicates dropped)."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise PrivaggInputError(f"KeySet has no column {missing[0]!r}. Fix: use one of {list(self.columns)}.")
        factors = [f[[c for c in f.columns if c in columns]] for f in self._factors]
        return KeySet([f for f in factors if f.shape[1]])

    # -- encoding ------------------------------------------------------------
    def check_columns(self, expected: Sequence[str], data_kinds: Mapping[str, str] | None = None) -> None:
        """Raise unless the KeySet has exactly ``expected`` columns, of kinds matching the data."""
        if set(self.columns) != set(expected):
            raise PrivaggInputError(
                f"keys has columns {list(self.columns)} but this release is keyed by {list(expected)}. "
                f"Fix: build the KeySet over exactly {list(expected)}, e.g. KeySet.areas_by_time(cells, level=..., start=..., end=..., time_bin=...)."
            )
        kinds = {c: _kind(d) for c, d in self.dtypes().items()}
        for column, data_kind in (data_kinds or {}).items():
            k = kinds.get(column)
            if k is None:
                continue
            compatible = k == data_kind or {k, data_kind} <= {"int", "float"} and k != "float" or (
                data_kind == "bool" and k == "bool"
            )
            if not compatible:
                fix = {
                    "int": f"cast them with .astype('int64') (e.g. KeySet.from_values({column}=[...int ids...]))",
                    "datetime": "pass timestamps (pandas.date_range or KeySet.time_bins)",
                    "str": "pass strings, e.g. 'female'",
                    "bool": "pass True/False",
                    "float": "pass numbers",
                }[data_kind]
                raise PrivaggInputError(
                    f"keys column {column!r} holds {k} values but the data's {column!r} is {data_kind}. Fix: {fix}."
                )

    def encode(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Composite int64 code in ``[0, len(self))`` of each data row, -1 where the row's key is not in the set.

        Integer and datetime columns are looked up through a dense table
        (vectorised, no hashing) when the key values are compact; other
        columns through a hash index.
        """
        code: np.ndarray | None = None
        for k, factor in enumerate(self._factors):
            fcols = [str(c) for c in factor.columns]
            if len(fcols) == 1:
                idx = _lookup(factor.iloc[:, 0], columns[fcols[0]], self._tables, k)
            else:
                index = pd.MultiIndex.from_frame(factor)
                data = pd.MultiIndex.from_arrays([np.asarray(columns[c]) for c in fcols], names=fcols)
                idx = np.asarray(index.get_indexer(data), dtype=np.int64)
            if code is None:
                code = idx
            else:
                clean = code.min(initial=0) >= 0 and idx.min(initial=0) >= 0
                if clean:
                    code *= len(factor)
                    code += idx
                else:
                    bad = (code < 0) | (idx < 0)
                    code = code * len(factor) + idx
                    code[bad] = -1
        assert code is not None
        return code

    def decode(self, codes: np.ndarray) -> pd.DataFrame:
        """Key columns of composite codes (inverse of :meth:`encode`)."""
        codes = np.asarray(codes, dtype=np.int64)
        parts: list[pd.DataFrame] = []
        rest = codes.copy()
        for factor in reversed(self._factors):
            idx = rest % len(factor)
            rest = rest // len(factor)
            parts.append(factor.iloc[idx].reset_index(drop=True))
        return pd.concat(list(reversed(parts)), axis=1)


class BinIndex:
    """Time bins as absolute integer indices (``start = index * width``): a compact, fast
    stand-in for a datetime column when encoding keys; ``np.asarray`` gives the datetimes."""

    __slots__ = ("index", "width_ns")

    def __init__(self, index: np.ndarray, width_ns: int) -> None:
        self.index = np.asarray(index, dtype=np.int64)
        self.width_ns = int(width_ns)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: Any) -> BinIndex:
        return BinIndex(self.index[item], self.width_ns)

    def to_datetime(self) -> np.ndarray:
        return (self.index * self.width_ns).view("datetime64[ns]")

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.to_datetime()
        return out if dtype is None else out.astype(dtype)


def as_int64(values: Any) -> np.ndarray | None:
    """Integer view of an int, bool or datetime array (datetimes as ns since the epoch); None otherwise."""
    arr = values.to_numpy() if isinstance(values, (pd.Series, pd.Index)) else np.asarray(values)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[ns]").view(np.int64)
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64, copy=False)
    return None


_MAX_LUT = 1 << 26


def _categorical(data: Any) -> tuple[np.ndarray, pd.Index] | None:
    """(codes, categories) of categorical data, else None."""
    if isinstance(data, pd.Series) and isinstance(data.dtype, pd.CategoricalDtype):
        data = data.array
    if isinstance(data, pd.Categorical):
        return np.asarray(data.codes), data.categories  # int8/int16: numpy gathers with them without a cast copy
    return None


@dataclass(frozen=True)
class _IntTable:
    """A dense lookup table of distinct integer keys: ``lut[(v - lo) // step]`` is the index of key ``v``."""

    lo: int
    span: int
    step: int
    lut: np.ndarray | None  # None: keys too sparse for a table (a hash index then)
    keys: np.ndarray

    @classmethod
    def of(cls, keys: np.ndarray) -> _IntTable:
        lo = int(keys.min())
        span = int(keys.max()) - lo
        step = max(int(np.gcd.reduce(np.diff(np.sort(keys)))) if len(keys) > 1 else 1, 1)
        lut = None
        if span // step < _MAX_LUT:
            lut = np.full(span // step + 1, -1, dtype=np.int64)
            lut[(keys - lo) // step] = np.arange(len(keys), dtype=np.int64)
        return cls(lo, span, step, lut, keys)

    def index(self, vals: np.ndarray) -> np.ndarray:
        """Index of each value among the keys, -1 when absent."""
        lo, span, step, lut = self.lo, self.span, self.step, self.lut
        if lut is None:
            return np.asarray(pd.Index(self.keys).get_indexer(vals), dtype=np.int64)
        if step == 1 and len(vals) and int(vals.min()) >= lo and int(vals.max()) <= lo + span:
            # Every value in range (the usual case): one gather, no full-length masks.
            return lut[vals - lo] if lo else lut[vals]
        off = vals - lo
        if step > 1:
            q, r = np.divmod(off, step)
            ok = (r == 0) & (off >= 0) & (off <= span)
        else:
            q = off
            ok = (off >= 0) & (off <= span)
        if ok.all():
            return lut[q]
        out = np.full(len(vals), -1, dtype=np.int64)
        out[ok] = lut[q[ok]]
        return out


def _lookup(factor_values: pd.Series, data: Any, tables: dict[tuple[int, int], tuple[_IntTable | None, bool]] | None = None,
            factor: int = 0) -> np.ndarray:
    """Index of each data value in ``factor_values`` (distinct), -1 when absent.

    Categorical data (pandas, or Arrow dictionaries read through pandas) is
    looked up by its categories only, then by code: one gather, never a
    conversion of every row to strings. Integer keys go through an
    :class:`_IntTable`, kept in ``tables`` (under ``factor`` and the data's
    time-bin width) when given, so it is built once per KeySet.
    """
    categorical = _categorical(data)
    if categorical is not None:
        codes, categories = categorical
        per_category = _lookup(factor_values, categories)
        # Code -1 (missing) indexes the appended -1, so no row outside the categories is ever matched.
        table = np.append(per_category, -1).astype(np.int64)
        return table[codes]
    width = data.width_ns if isinstance(data, BinIndex) else 0
    prepared = None if tables is None else tables.get((factor, width))
    if prepared is None:
        keys = as_int64(factor_values)
        # Bin starts on the data's grid are looked up by bin number, without converting the data.
        per_bin = bool(width) and keys is not None and len(keys) > 0 and not np.any(keys % width)
        if per_bin:
            keys = keys // width
        prepared = (_IntTable.of(keys) if keys is not None and len(keys) else None, per_bin)
        if tables is not None:
            tables[(factor, width)] = prepared  # idempotent: threads may build it at once
    table, per_bin = prepared
    if isinstance(data, BinIndex):
        vals = data.index if per_bin else as_int64(data.to_datetime())
    else:
        vals = as_int64(data)
    if table is not None and vals is not None:
        return table.index(vals)
    data_index = data if isinstance(data, pd.Index) else pd.Index(np.asarray(data))
    return np.asarray(pd.Index(factor_values).get_indexer(data_index), dtype=np.int64)


# --------------------------------------------------------------------------- Query
