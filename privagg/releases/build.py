"""Statistic definitions: from a :class:`~privagg.queries.Query` and tables to contributions.

This is the one place where footfall, visits, dwell, OD and segment
statistics are defined (see :mod:`privagg.queries` for the definitions in
words); exact and private releases both call :func:`contributions`, so they
always answer the same question.
"""

from __future__ import annotations

import ctypes
import functools

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd

from privagg.dp.bounds import Bounds
from privagg.engines.base import ContributionChunks, Contributions, ValueGrid
from privagg.engines.extract import (BinnedChunks, area_map, bin_starts, binned_rows, distinct_rows, encode, ns,
                                     presence_rows, sorted_unique)
from privagg.errors import PrivaggInputError
from privagg.parallel import default_threads, min_max, thread_map
from privagg.queries import LEVELS, TAG_COLUMNS_HINT, TIME_COLUMN, KeySet, Query, parse_time_bin
from privagg.schema import TAG_PREFIX


@dataclass
class Inputs:
    """The tables a release reads, their consent, and its window.

    Consent comes as a mask, not as filtered copies: ``user_mask`` marks the rows of ``users`` whose
    subscriber consented (None: all of them), and ``consent`` tells, for user ids of ``table``'s rows,
    which consented.
    """

    table: pd.DataFrame | None  # stays, events or trips (None for per-user statistics)
    users: pd.DataFrame  # the users table's columns read; its consenting rows are those of user_mask
    cells: pd.DataFrame | None
    start: pd.Timestamp
    end: pd.Timestamp
    consent: Callable[[np.ndarray], np.ndarray]  # True for user ids of consenting subscribers
    user_mask: np.ndarray | None = None  # rows of users that consented (None: every row)
    # A slice of a large table reads the whole table's columns once, as numpy, shared by every slice:
    whole: pd.DataFrame | None = None  # the table ``table`` is rows ``span`` of (None: not a slice)
    span: tuple[int, int] = (0, 0)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    user_id_range: tuple[int, int] | None = None  # (min, max) of every row's user_id in users (None: unknown)

    def column(self, name: str, *, times: bool = False) -> np.ndarray:
        """Column ``name`` of ``table`` as numpy (``times``: datetimes as int64 ns), without pandas' per-call
        cost on every slice."""
        assert self.table is not None
        source = self.table if self.whole is None else self.whole
        arr = self.arrays.get(name)
        if arr is None:  # threads may both build it: the same array either way
            arr = self.arrays.setdefault(name, ns(source[name]) if times else source[name].to_numpy())
        return arr if self.whole is None else arr[self.span[0]:self.span[1]]

    def consenting_ids(self) -> np.ndarray:
        """User ids of the consenting subscribers, in the users table's order."""
        ids = self.users["user_id"].to_numpy()
        return ids if self.user_mask is None else ids[self.user_mask]

    def consenting_rows(self) -> np.ndarray | None:
        """Positions in ``users`` of the consenting subscribers (None: every row)."""
        return None if self.user_mask is None else np.flatnonzero(self.user_mask)

    @functools.cached_property
    def row_mask(self) -> np.ndarray | None:
        """Rows of ``table`` whose subscriber consented (None: all of them)."""
        if self.table is None:
            return None
        mask = self.consent(self.column("user_id"))
        return None if mask.all() else mask

    def rows(self, mask: np.ndarray) -> np.ndarray:
        """``mask`` restricted to consenting rows."""
        return mask if self.row_mask is None else mask & self.row_mask

    def slice(self, lo: int, hi: int) -> Inputs:
        """The same inputs restricted to rows ``lo:hi`` of ``table``."""
        assert self.table is not None
        whole, base = (self.table, 0) if self.whole is None else (self.whole, self.span[0])
        return Inputs(self.table.iloc[lo:hi], self.users, self.cells, self.start, self.end, self.consent,
                      self.user_mask, whole, (base + lo, base + min(hi, len(self.table))), self.arrays,
                      self.user_id_range)


def dwell_range(query: Query, bounds: Bounds) -> tuple[float, float]:
    """Clamping range of dwell minutes: ``bounds.lower`` (default 0) to ``bounds.upper`` (default the last dwell edge)."""
    lower = 0.0 if bounds.lower is None else float(bounds.lower)
    upper = float(bounds.upper) if bounds.upper is not None else float(query.dwell_edges[-1])
    if lower < 0 or upper <= lower:
        raise PrivaggInputError(
            f"dwell clamping range [{lower:g}, {upper:g}] minutes is invalid. Fix: pass bounds=Bounds(lower=0, upper=...) with 0 <= lower < upper."
        )
    return lower, upper


def _user_lookup(users: pd.DataFrame, ids: np.ndarray) -> np.ndarray:
    """Row index in ``users`` of each id (ids are known to be present)."""
    idx = pd.Index(users["user_id"].to_numpy(dtype=np.int64)).get_indexer(ids)
    return np.asarray(idx, dtype=np.int64)


def user_column(users: pd.DataFrame, column: str, rows: np.ndarray | None = None) -> Any:
    """A user column for encoding keys: categoricals stay categorical (codes and categories), so keys
    are looked up per category rather than per row; other columns as numpy arrays."""
    series = users[column]
    if isinstance(series.dtype, pd.CategoricalDtype):
        cat = series.array
        return cat if rows is None else pd.Categorical.from_codes(np.asarray(cat.codes)[rows], dtype=cat.dtype)
    values = series.to_numpy()
    return values if rows is None else values[rows]


def segment_columns(query: Query, users: pd.DataFrame) -> tuple[str, ...]:
    """The user columns a segment statistic groups by (all tags for micro-segments without ``by``)."""
    by = query.by
    if query.statistic == "micro_segments" and not by:
        by = tuple(c for c in users.columns if isinstance(c, str) and c.startswith(TAG_PREFIX))
        if not by:
            raise PrivaggInputError(
                f"micro_segments: the users table has no segment tag columns. Fix: {TAG_COLUMNS_HINT}"
            )
    for column in by:
        if column not in users.columns or column in ("user_id", "opt_in"):
            raise PrivaggInputError(
                f"by={column!r} is not a user column. Fix: use columns of the users table such as "
                f"'age_band', 'gender', 'contract' or tag columns ('tag_...')."
            )
        if column in ("arpu",) or pd.api.types.is_float_dtype(users[column].dtype):
            raise PrivaggInputError(
                f"by={column!r} is continuous; grouping by it would make one segment per subscriber. "
                "Fix: bin it into a categorical column first, or use segment_mean(column=...)."
            )
    return tuple(by)


def key_columns(query: Query, users: pd.DataFrame) -> tuple[str, ...]:
    if query.statistic in ("segment_counts", "segment_mean", "micro_segments"):
        by = segment_columns(query, users)
        area = (LEVELS[query.level],) if query.level is not None else ()
        time = (TIME_COLUMN,) if query.time_bin is not None else ()
        return (*by, *area, *time)
    return query.key_columns()


#: Statistics with at most one contribution per input row.
ONE_PER_ROW = ("visits", "dwell_times", "dwell_mean", "od_flows")
CHUNK_ROWS = 1 << 17  # input rows per chunk: its int64 temporaries (1 MiB) stay in cache and on the heap


@functools.lru_cache(maxsize=1)
def limit_heap_growth() -> bool:
    """Tune glibc's allocator for chunked releases; return whether it applied.

    Two settings, both measured on 20M-event footfall:

    * Blocks of 4 MiB and more (the full-length arrays) are mapped on their
      own and returned to the system when freed. By default glibc raises
      this threshold up to 32 MiB after large frees, after which big
      temporaries come from the heap and fragment it, adding about half the
      input's size to peak memory.
    * The heap is trimmed only when 64 MiB at its top are free, so the
      chunks' small temporaries reuse the same pages instead of returning
      them and faulting fresh zeroed ones in on every chunk (which cost as
      much as the arithmetic).

    Elsewhere than glibc this does nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 4 << 20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20))
    except (OSError, AttributeError):
        return False


_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers
_M_MMAP_THRESHOLD = -3


def contributions(query: Query, inputs: Inputs, keys: KeySet | None,
                  bounds: Bounds | None) -> Contributions | ContributionChunks:
    """Raw contributions of the consenting subscribers for ``query``; values clamped when ``bounds`` is given.

    Statistics of a large table come as :class:`ContributionChunks` of
    ``CHUNK_ROWS`` input rows each. Over a public key domain they are built
    on demand, so the engine can build and reduce them in parallel and the
    full-length temporaries never exist; without one, they are built at once
    on every thread and coded in the observed domain (:func:`_observed_chunks`).
    """
    table = inputs.table
    if query.statistic == "segment_mean" and keys is not None and len(inputs.users) > 2 * CHUNK_ROWS:
        return _user_chunks(query, inputs, keys, bounds)
    chunked = (
        table is not None and len(table) > 2 * CHUNK_ROWS
        and query.statistic in ("footfall", "visits", "dwell_times", "od_flows", "dwell_mean")
    )
    if not chunked:
        return _contributions(query, inputs, keys, bounds)
    assert table is not None
    limit_heap_growth()
    rows = CHUNK_ROWS
    n_chunks = -(-len(table) // rows)
    if keys is None:
        observed = _observed_chunks(query, inputs, bounds, n_chunks)
        if observed is None:  # no contributions at all
            return _contributions(query, inputs, keys, bounds)
        domain, parts = observed
        chunk: Callable[[int], Contributions] = parts.__getitem__
        public, distinct = False, parts[0].distinct
        has_values, value_grid = parts[0].values is not None, parts[0].value_grid
    else:
        first = _contributions(query, inputs.slice(0, 0), keys, bounds)  # the domain and kind, from no rows
        domain, public, distinct, has_values = first.domain, first.public, first.distinct, first.values is not None
        value_grid = first.value_grid

        def chunk(i: int) -> Contributions:
            return _contributions(query, inputs.slice(i * rows, (i + 1) * rows), keys, bounds)
    consenting = inputs.consenting_ids()
    user_ids = table["user_id"].to_numpy()
    return ContributionChunks(
        n_chunks=n_chunks, chunk=chunk, domain=domain, public=public, distinct=distinct, n_rows=len(table),
        id_range=(int(consenting.min()), int(consenting.max())) if len(consenting) else (0, 0),
        id_sample=np.asarray(user_ids[:: max(1, len(user_ids) // 100_000)], dtype=np.int64),
        has_values=has_values, value_grid=value_grid,
        # One contribution per input row at most (a stay, a trip): contributions keep their row's place.
        chunk_rows=rows if query.statistic in ONE_PER_ROW else None,
    )


def _observed_chunks(query: Query, inputs: Inputs, bounds: Bounds | None,
                     n_chunks: int) -> tuple[KeySet, list[Contributions]] | None:
    """Without public keys: every chunk's contributions, coded in the observed domain of the whole table;
    None when no row contributes.

    The observed domain is what :func:`~privagg.engines.extract.encode` builds from all rows at once
    (per key column, the sorted distinct values): each chunk is built on its own, on every thread, against
    the values it holds, and its codes are then translated into the union of all chunks' values. So the
    codes, and the ranks that bounding draws from them, are those of the whole-table path (and of the
    Spark engine, which gathers the domain the same way). The chunks are kept, 16 bytes per contribution,
    because the domain, and with it the packed layout, is only known once every chunk is built.
    """
    rows = CHUNK_ROWS
    parts = thread_map(lambda i: _contributions(query, inputs.slice(i * rows, (i + 1) * rows), None, bounds),
                       range(n_chunks), default_threads())
    own = [[f.iloc[:, 0].to_numpy() for f in p.domain.factors] if len(p) else None for p in parts]
    seen = [v for v in own if v is not None]
    if not seen:
        return None
    names = list(parts[0].domain.columns)  # every chunk's, empty ones included: the query's key columns
    factors = [sorted_unique(np.concatenate([v[k] for v in seen])) for k in range(len(names))]
    domain = KeySet([pd.DataFrame({n: v}) for n, v in zip(names, factors)])

    def translate(i: int) -> Contributions:
        # Mixed radix, the first column slowest (KeySet.encode): split the chunk's code into its
        # columns' indices, map each into the whole domain's values, and combine them again.
        p, local = parts[i], own[i]
        code = np.zeros(len(p), dtype=np.int64)
        if local is not None:
            rest, scale = p.partitions, 1
            for k in reversed(range(len(names))):
                index = np.searchsorted(factors[k], local[k]).astype(np.int64)  # its values are in the union
                code += index[rest % len(local[k])] * scale
                rest = rest // len(local[k])
                scale *= len(factors[k])
        return Contributions(p.privacy_ids, code, domain, False, p.distinct, p.values, value_grid=p.value_grid)

    return domain, thread_map(translate, range(len(parts)), default_threads())


def _user_chunks(query: Query, inputs: Inputs, keys: KeySet, bounds: Bounds | None) -> ContributionChunks:
    """A per-subscriber statistic's contributions in chunks of ``CHUNK_ROWS`` users rows (one row each,
    those of subscribers who did not consent dropped).

    When the segment columns are categorical or boolean and the values are clamped, the chunks also
    describe the rows as :class:`~privagg.engines.extract.BinnedRows`: an engine can then aggregate the
    users table's own columns in one pass, without any per-row partition code, filtered copy or
    clamped copy (the chunks give the same contributions to engines that do not).
    """
    people = inputs.users
    mask = inputs.user_mask
    rows = CHUNK_ROWS
    limit_heap_growth()

    def part(lo: int, hi: int) -> Inputs:
        return Inputs(None, people.iloc[lo:hi], inputs.cells, inputs.start, inputs.end, inputs.consent,
                      None if mask is None else mask[lo:hi])

    first = _contributions(query, part(0, 0), keys, bounds)  # the domain and kind; checks the value column
    ids = people["user_id"].to_numpy()
    binned = None
    if bounds is not None and query.level is None and query.statistic == "segment_mean":
        binned = binned_rows(people, segment_columns(query, people), mask, first.domain,
                             values=people[query.column], clamp=clamp_range(query, bounds))
    return BinnedChunks(
        n_chunks=-(-len(people) // rows),
        chunk=lambda i: _contributions(query, part(i * rows, (i + 1) * rows), keys, bounds),
        domain=first.domain, public=first.public, distinct=first.distinct, n_rows=len(people),
        id_range=inputs.user_id_range or min_max(ids),  # the schema check's, when it ran
        id_sample=np.asarray(ids[:: max(1, len(ids) // 100_000)], dtype=np.int64),
        has_values=first.values is not None, unique_ids=True, binned=binned,
        # Without opt-outs, chunk i's j-th contribution is users row i * rows + j.
        chunk_rows=rows if mask is None else None,
    )


def _contributions(query: Query, inputs: Inputs, keys: KeySet | None, bounds: Bounds | None) -> Contributions:
    stat = query.statistic
    level = query.level
    bin_ns = None if query.time_bin is None else parse_time_bin(query.time_bin).value
    start_ns, end_ns = inputs.start.value, inputs.end.value
    area_col = LEVELS[level] if level is not None else None
    table = inputs.table

    if stat in ("footfall", "segment_counts"):
        users, areas, bins = presence_rows(
            table, query.source, area_of=area_map(inputs.cells, level), bin_ns=bin_ns,
            start_ns=start_ns, end_ns=end_ns, row_mask=inputs.row_mask,
        )
        ok = areas >= 0
        if not ok.all():
            users, areas = users[ok], areas[ok]
            bins = None if bins is None else bins[ok]
        columns: dict[str, Any] = {area_col: areas}
        if bins is not None:
            columns[TIME_COLUMN] = bin_starts(bins, bin_ns)
        if stat == "footfall":
            return encode(users, columns, query.key_columns(), keys, distinct=True)
        # Segment counts: one row per distinct presence, with the subscriber's user columns attached.
        arrays = [users, areas] + ([bins] if bins is not None else [])
        arrays = list(distinct_rows(*arrays))
        users = arrays[0]
        columns = {area_col: arrays[1]}
        if bins is not None:
            columns[TIME_COLUMN] = bin_starts(arrays[2], bin_ns)
        rows = _user_lookup(inputs.users, users)
        for column in segment_columns(query, inputs.users):
            columns[column] = user_column(inputs.users, column, rows)
        return encode(users, columns, key_columns(query, inputs.users), keys, distinct=True)

    if stat in ("visits", "dwell_times", "dwell_mean"):
        users = np.asarray(inputs.column("user_id"), dtype=np.int64)
        s, e = inputs.column("start", times=True), inputs.column("end", times=True)
        cell = np.asarray(inputs.column("cell_id"), dtype=np.int64)
        inside = inputs.rows((s >= start_ns) & (s < end_ns))
        if not inside.all():  # usually every row is: no copies then
            users, s, e, cell = users[inside], s[inside], e[inside], cell[inside]
        del inside
        e = np.minimum(e, end_ns)
        areas = area_map(inputs.cells, level)(cell)
        ok = areas >= 0
        if not ok.all():
            users, s, e, areas = users[ok], s[ok], e[ok], areas[ok]
        del ok, cell
        columns = {area_col: areas}
        if bin_ns is not None:
            columns[TIME_COLUMN] = bin_starts(s // bin_ns, bin_ns)
        e -= s  # the clipped stay's duration (e is a fresh array)
        minutes = np.divide(e, 60e9)
        del e
        if stat == "visits":
            return encode(users, columns, query.key_columns(), keys, distinct=False)
        if stat == "dwell_times":
            edges = np.asarray(query.dwell_edges, dtype=float)
            which = np.clip(np.searchsorted(edges, minutes, side="right") - 1, 0, len(edges) - 1)
            edge_values = np.asarray(query.dwell_edges)
            if np.all(np.mod(edges, 1) == 0):
                edge_values = edges.astype(np.int64)
            columns["dwell_min"] = edge_values[which]
            return encode(users, columns, query.key_columns(), keys, distinct=False)
        if bounds is None:
            return encode(users, columns, query.key_columns(), keys, distinct=False, values=minutes)
        # Clamped and on a fixed-point grid: a pair's sum is then exact in any order (every engine agrees).
        grid = ValueGrid.spanning(*dwell_range(query, bounds))
        contrib = encode(users, columns, query.key_columns(), keys, distinct=False, values=grid.quantise(minutes))
        contrib.value_grid = grid
        return contrib

    if stat == "od_flows":
        users = np.asarray(inputs.column("user_id"), dtype=np.int64)
        dep = inputs.column("depart", times=True)
        inside = inputs.rows((dep >= start_ns) & (dep < end_ns))
        mapper = area_map(inputs.cells, level)
        origin = mapper(np.asarray(inputs.column("origin_cell"), dtype=np.int64)[inside])
        dest = mapper(np.asarray(inputs.column("destination_cell"), dtype=np.int64)[inside])
        users, dep = users[inside], dep[inside]
        ok = (origin >= 0) & (dest >= 0)
        columns = {f"origin_{level}": origin[ok], f"destination_{level}": dest[ok]}
        if bin_ns is not None:
            columns[TIME_COLUMN] = bin_starts(dep[ok] // bin_ns, bin_ns)
        return encode(users[ok], columns, query.key_columns(), keys, distinct=False)

    # Per-user statistics: one row per consenting subscriber.
    people = inputs.users
    rows = inputs.consenting_rows()
    users = people["user_id"].to_numpy(dtype=np.int64)
    users = users if rows is None else users[rows]
    columns = {c: user_column(people, c, rows) for c in segment_columns(query, people)}
    if level is not None:
        home = people["home_cell"].to_numpy(dtype=np.int64)
        columns[area_col] = area_map(inputs.cells, level)(home if rows is None else home[rows])
    values = None
    if stat == "segment_mean":
        column = query.column
        if column not in people.columns or not pd.api.types.is_numeric_dtype(people[column].dtype) or pd.api.types.is_bool_dtype(people[column].dtype):
            raise PrivaggInputError(
                f"column={column!r} is not a numeric user column. Fix: use e.g. column='arpu'."
            )
        values = people[column].to_numpy(dtype=float)
        if rows is not None:
            values = values[rows]  # a fresh array: clamped in place below
        if bounds is not None:
            lower, upper = clamp_range(query, bounds)
            if rows is None:
                values = np.array(values, dtype=np.float64, copy=True)  # clamped in place: one copy, not three
            np.nan_to_num(values, copy=False, nan=lower)
            np.clip(values, lower, upper, out=values)
    contrib = encode(users, columns, key_columns(query, people), keys, distinct=True, values=values)
    contrib.unique_ids = True  # the users table has one row per subscriber (checked by its schema)
    return contrib


# Public default clamping ranges of numeric user columns (monthly ARPU in currency units).
DEFAULT_CLAMPS: dict[str, tuple[float, float]] = {"arpu": (0.0, 100.0)}


def clamp_range(query: Query, bounds: Bounds) -> tuple[float, float]:
    """Clamping range of ``segment_mean`` values: ``bounds.lower``/``upper``, else the column's public default."""
    default = DEFAULT_CLAMPS.get(str(query.column))
    if (bounds.lower is None or bounds.upper is None) and default is not None:
        lower = default[0] if bounds.lower is None else float(bounds.lower)
        upper = default[1] if bounds.upper is None else float(bounds.upper)
        if lower < upper:
            return lower, upper
    if bounds.lower is None or bounds.upper is None:
        raise PrivaggInputError(
            f"segment_mean of {query.column!r} needs a public clamping range. "
            "Fix: pass bounds=Bounds(lower=..., upper=...), e.g. Bounds(lower=0, upper=100) for arpu."
        )
    return float(bounds.lower), float(bounds.upper)
