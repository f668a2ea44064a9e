"""Extractors: turn privagg tables into :class:`~privagg.engines.base.Contributions`.

They implement the statistic definitions of :mod:`privagg.queries` once, for
exact and private releases alike. Inputs must already be restricted to
consenting subscribers (the release layer does that before calling them),
except for :class:`BinnedRows`, which carry consent as a bit of each row's
bin, so that a users table is never copied to drop those who opted out.
All steps are vectorised numpy on int64 arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from privagg.engines.base import ContributionChunks, Contributions
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


#: Most bins a :class:`BinnedRows` may have (beyond, rows take per-row partition codes).
MAX_BINS = 1 << 15


@dataclass
class BinnedRows:
    """Rows with one contribution each (one row per subscriber), keyed through a few bins.

    A row's bin packs its segment columns' category codes and its consent bit into one small integer,
    computed block by block into a scratch array: ``bins(lo, hi, out)`` writes the bins of rows
    ``lo:hi`` into ``out`` (of dtype ``bin_dtype``) and returns it. ``bin_partition[b]`` is the
    partition code of bin ``b`` in the domain, or -1 when its rows contribute nothing (their subscriber
    did not consent, or their key is outside the domain). So keys are looked up once per category
    combination, never per row, and no filtered copy of the table exists.

    Attributes
    ----------
    n_rows, n_bins, bin_dtype, bin_partition, bins
        As above.
    values
        Each row's raw value (a numeric numpy array of ``n_rows``), or None for counts.
    clamp
        ``(lower, upper)``: a row's value is ``values`` clamped to it, NaN counting as ``lower``.
    """

    n_rows: int
    n_bins: int
    bin_dtype: np.dtype
    bin_partition: np.ndarray
    bins: Callable[[int, int, np.ndarray], np.ndarray]
    values: np.ndarray | None = None
    clamp: tuple[float, float] | None = None


@dataclass
class BinnedChunks(ContributionChunks):
    """:class:`ContributionChunks` of one row per subscriber that may also be described as
    :class:`BinnedRows` (``binned``; None when the columns do not allow it). Both give the same
    contributions; an engine may use either."""

    binned: BinnedRows | None = None


def _bin_factor(series: pd.Series) -> tuple[np.ndarray, int, int] | None:
    """(per-row codes, radix, shift) of a segment column that bins without a per-row lookup, else None.

    Categorical: the category codes, -1 (missing) shifted to slot 0; numpy bool: 0 and 1."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return np.asarray(series.array.codes), len(dtype.categories) + 1, 1
    if isinstance(dtype, np.dtype) and dtype.kind == "b":
        return series.to_numpy().view(np.int8), 2, 0
    return None


def binned_rows(frame: pd.DataFrame, columns: Sequence[str], mask: np.ndarray | None, domain: KeySet, *,
                values: pd.Series | None = None, clamp: tuple[float, float] | None = None,
                max_bins: int = MAX_BINS) -> BinnedRows | None:
    """``frame``'s rows as :class:`BinnedRows` keyed by ``columns`` into ``domain``, with consent ``mask``
    (True: the row's subscriber consented; None: all did); None when a column is neither categorical nor
    boolean, the values are not a plain numeric numpy column, or there would be more than ``max_bins`` bins.

    The domain codes of the bins come from :meth:`KeySet.encode` on one row per bin holding the same
    categories, so a row's partition is exactly the one its own values would be encoded to.
    """
    if not columns or list(domain.columns) != list(columns):
        return None  # the domain has other key columns (area, time) than the segment columns
    factors = []
    for c in columns:
        f = _bin_factor(frame[c])
        if f is None:
            return None
        factors.append(f)
    if values is not None:
        if not isinstance(values.dtype, np.dtype) or values.dtype.kind not in "iuf" or clamp is None:
            return None
        raw = values.to_numpy()
    else:
        raw = None
    n_keys = int(np.prod([r for _, r, _ in factors], dtype=np.int64))
    n_bins = n_keys * (1 if mask is None else 2)
    if n_bins > max_bins:
        return None
    dtype = next(np.dtype(t) for t in (np.int8, np.int16, np.int32) if n_bins - 1 <= np.iinfo(t).max)
    codes = [f[0] for f in factors]
    radices = [f[1] for f in factors]
    offset = 0
    for _, r, shift in factors:  # Horner's scheme over the shifts, as over the codes below
        offset = offset * r + shift

    def bins(lo: int, hi: int, out: np.ndarray) -> np.ndarray:
        # Mixed radix, the consent bit most significant and the last column least:
        # ((consent * r0 + c0) * r1 + c1) ... + offset; every partial value lies within the dtype's
        # range, and each step is one cheap ufunc over the block (no shifts: numpy's int8 shifts are slow).
        if mask is None:
            np.copyto(out, codes[0][lo:hi], casting="same_kind")
            rest = zip(codes[1:], radices[1:])
        else:
            np.copyto(out, mask[lo:hi], casting="same_kind")
            rest = zip(codes, radices)
        for c, r in rest:
            out *= r
            out += c[lo:hi]
        if offset:
            out += offset
        return out

    # One row per bin, holding the bin's categories, encoded like data rows.
    b = np.arange(n_bins, dtype=np.int64)
    consent = np.ones(n_bins, dtype=bool) if mask is None else b >= n_keys
    rest = b % n_keys
    slots = []
    for r in reversed(radices):
        slots.append(rest % r)
        rest = rest // r
    slots.reverse()
    keyed: dict[str, Any] = {}
    valid = consent.copy()
    for c, slot, (_, _, shift) in zip(columns, slots, factors):
        dtype_c = frame[c].dtype
        code = slot - shift
        if isinstance(dtype_c, pd.CategoricalDtype):
            keyed[c] = pd.Categorical.from_codes(code, dtype=dtype_c)
        else:
            keyed[c] = code.astype(bool)
    partition = np.where(valid, domain.encode(keyed), -1).astype(np.int64)
    return BinnedRows(len(frame), n_bins, dtype, partition, bins, raw, clamp)
