"""Extractors: turn privagg tables into :class:`~privagg.engines.base.Contributions`.

They implement the statistic definitions of :mod:`privagg.queries` once, for
exact and private releases alike. Inputs must already be restricted to
consenting subscribers (the release layer does that before calling them).
All steps are vectorised numpy on int64 arrays.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from privagg.engines.base import Contributions
from privagg.keysets import BinIndex, KeySet, as_int64

AreaMap = Callable[[np.ndarray], np.ndarray]


def area_map(cells: pd.DataFrame | None, level: str) -> AreaMap:
    """Function mapping cell ids to area ids of ``level`` (identity for cells; -1 for unknown cells)."""
    if level == "cell":
        return lambda ids: np.asarray(ids, dtype=np.int64)
    assert cells is not None
    column = {"zone": "zone_id", "district": "district_id"}[level]
    cell_ids = cells["cell_id"].to_numpy(dtype=np.int64)
    areas = cells[column].to_numpy(dtype=np.int64)
    lo, hi = int(cell_ids.min()), int(cell_ids.max())
    if hi - lo < (1 << 26):
        lut = np.full(hi - lo + 1, -1, dtype=np.int64)
        lut[cell_ids - lo] = areas

        def mapper(ids: np.ndarray) -> np.ndarray:
            ids = np.asarray(ids, dtype=np.int64)
            off = ids - lo
            ok = (off >= 0) & (off <= hi - lo)
            out = np.full(len(ids), -1, dtype=np.int64)
            out[ok] = lut[off[ok]]
            return out

        return mapper
    index = pd.Index(cell_ids)

    def mapper_hash(ids: np.ndarray) -> np.ndarray:
        idx = index.get_indexer(np.asarray(ids, dtype=np.int64))
        return np.where(idx >= 0, areas[np.maximum(idx, 0)], -1)

    return mapper_hash


def ns(series: pd.Series | np.ndarray) -> np.ndarray:
    """Datetimes as int64 nanoseconds since the epoch (no copy when already datetime64[ns])."""
    arr = series.to_numpy() if isinstance(series, pd.Series) else np.asarray(series)
    if arr.dtype == np.dtype("datetime64[ns]"):
        return arr.view(np.int64)
    out = as_int64(arr)
    assert out is not None
    return out


def bin_starts(bin_index: np.ndarray, bin_ns: int) -> BinIndex:
    """The time key column of absolute bin indices (datetimes of the bins' starts, lazily)."""
    return BinIndex(bin_index, bin_ns)


def sorted_unique(values: Any) -> np.ndarray:
    """Sorted distinct values; a bincount pass for compact integers, a sort otherwise (never a hash of every row)."""
    if isinstance(values, BinIndex):
        return BinIndex(sorted_unique(values.index), values.width_ns).to_datetime()
    arr = np.asarray(values)
    if len(arr) == 0:
        return arr
    if arr.dtype.kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if hi - lo < max(4 * len(arr), 1 << 20):
            return (np.flatnonzero(np.bincount(arr - lo, minlength=hi - lo + 1)) + lo).astype(arr.dtype)
    if arr.dtype.kind in "iufMmb":
        s = np.sort(arr)
        keep = np.empty(len(s), dtype=bool)
        keep[0] = True
        np.not_equal(s[1:], s[:-1], out=keep[1:])
        return s[keep]
    uniq = pd.unique(pd.Series(arr)).astype(object) if arr.dtype == object else pd.unique(arr)
    try:
        return np.sort(np.asarray(uniq))
    except TypeError:
        return np.asarray(uniq)


def encode(
    privacy_ids: np.ndarray,
    columns: Mapping[str, Any],
    order: Sequence[str],
    keys: KeySet | None,
    *,
    distinct: bool,
    values: np.ndarray | None = None,
) -> Contributions:
    """Encode key columns into partition codes of ``keys`` (dropping rows outside it), or of the observed domain."""
    privacy_ids = np.asarray(privacy_ids, dtype=np.int64)
    if keys is not None:
        domain, public = keys, True
    else:
        factors = {}
        for name in order:
            uniq = sorted_unique(columns[name])
            factors[name] = uniq
        domain, public = KeySet([pd.DataFrame({n: v}) for n, v in factors.items()]) if all(
            len(v) for v in factors.values()
        ) else None, False
        if domain is None:  # no rows at all
            domain = KeySet([pd.DataFrame({n: pd.Series([0])}) for n in order])
            return Contributions(privacy_ids[:0], np.zeros(0, dtype=np.int64), domain, False, distinct,
                                 None if values is None else np.zeros(0))
    codes = domain.encode(columns)
    ok = codes >= 0
    if not ok.all():
        privacy_ids, codes = privacy_ids[ok], codes[ok]
        values = None if values is None else values[ok]
    return Contributions(privacy_ids, codes, domain, public, distinct, values)


def presence_rows(
    table: pd.DataFrame,
    source: str,
    *,
    area_of: AreaMap,
    bin_ns: int | None,
    start_ns: int,
    end_ns: int,
    row_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(user, area, absolute bin index or None) for every presence of a subscriber in an area and bin.

    ``row_mask`` (consent) is applied together with the window, in one pass.
    """
    users = table["user_id"].to_numpy(dtype=np.int64)
    cells = table["cell_id"].to_numpy(dtype=np.int64)
    if source == "events":
        ts = ns(table["ts"])
        inside = (ts >= start_ns) & (ts < end_ns)
        if row_mask is not None:
            inside &= row_mask
        if not inside.all():
            users, cells, ts = users[inside], cells[inside], ts[inside]
        del inside
        bins = None if bin_ns is None else ts // bin_ns
        del ts
        return users, area_of(cells), bins
    s, e = ns(table["start"]), ns(table["end"])
    inside = (e > start_ns) & (s < end_ns) | ((s == e) & (s >= start_ns) & (s < end_ns))
    if row_mask is not None:
        inside &= row_mask
    if not inside.all():
        users, cells, s, e = users[inside], cells[inside], s[inside], e[inside]
    areas = area_of(cells)
    if bin_ns is None:
        return users, areas, None
    s = np.maximum(s, start_ns)
    e = np.minimum(e, end_ns)
    first = s // bin_ns
    last = np.where(e > s, (e - 1) // bin_ns, first)
    n = (last - first + 1).astype(np.int64)
    if len(n) and n.max() == 1:
        return users, areas, first
    rows = np.repeat(np.arange(len(n)), n)
    offsets = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
    return users[rows], areas[rows], first[rows] + offsets


def distinct_rows(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Distinct rows of several non-negative-or-not int64 arrays (sort-based)."""
    if len(arrays[0]) == 0:
        return arrays
    frame = pd.DataFrame({str(i): a for i, a in enumerate(arrays)})
    frame = frame.drop_duplicates()
    return tuple(frame[str(i)].to_numpy() for i in range(len(arrays)))
