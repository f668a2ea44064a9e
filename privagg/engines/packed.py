"""One-sort contribution bounding for counts, in parallel shards of subscribers.

For count statistics (no values) the local engine packs every row into one
int64::

    subscriber offset | rank | partition

where ``rank`` is the keyed hash of (subscriber, partition) under the
release's bounding secret (:func:`~privagg.engines.ranking.keyed_hash`),
truncated to the bits left over (none, when ids and partitions take them
all). A single sort then puts each subscriber's rows together, in rank
order, with the rows of one partition adjacent: the length of a partition's
run is the subscriber's count there, and a subscriber over the L0 bound
keeps their first ``L0`` distinct partitions, a uniformly random subset of
theirs. A rank depends only on (subscriber id, partition, secret), never on
other rows, which is what the sensitivity argument needs.

The kept set is always that of the full 64-bit ranks, as on the Spark
engine: only when the ``L0``-th and the next partition of a subscriber tie
in the truncated rank could the order of the sort differ from theirs, and
those subscribers (rare with 24 or more rank bits; every heavy one without
rank bits) are ranked again on all 64 bits (:func:`_l0_dropped`).

Large inputs arrive as :class:`~privagg.engines.base.ContributionChunks`.
Worker threads build and pack chunks and route every packed row to the
shard of its subscriber (a range of ids), appending to one preallocated
buffer per shard; then each shard is sorted, bounded and counted on its own
thread. The full-length per-row arrays are never built: the buffers (8
bytes per row) are all that grows with the input.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from privagg.engines.base import ContributionChunks, Contributions, ValueGrid
from privagg.engines.ranking import keyed_hash
from privagg.parallel import thread_map

MAX_RANK_BITS = 40  # more would only lower the chance of a tie that is resolved exactly anyway


@dataclass(frozen=True)
class PackedLayout:
    """Bit layout of packed rows: ``(id - id_lo) << id_shift | rank << partition_bits | partition``."""

    id_lo: int
    id_bits: int
    partition_bits: int
    rank_bits: int

    @classmethod
    def fit(cls, id_lo: int, id_hi: int, n_partitions: int) -> PackedLayout | None:
        """A layout for ids in ``[id_lo, id_hi]`` and ``n_partitions`` codes, with the rank in the bits left
        (up to :data:`MAX_RANK_BITS`); None if ids and partitions alone need more than 63 bits."""
        id_bits = max(int(id_hi - id_lo).bit_length(), 1)
        partition_bits = max(int(max(n_partitions, 1) - 1).bit_length(), 1)
        if id_bits + partition_bits > 63:
            return None
        return cls(int(id_lo), id_bits, partition_bits, min(63 - id_bits - partition_bits, MAX_RANK_BITS))

    @property
    def id_shift(self) -> int:
        return self.rank_bits + self.partition_bits

    def pack(self, privacy_ids: np.ndarray, partitions: np.ndarray, secret: int) -> np.ndarray:
        """Packed int64 rows (a new array) for rows with these ids and partition codes."""
        parts = np.asarray(partitions, dtype=np.int64)
        offset = _id_offsets(privacy_ids, self.id_lo, self.id_bits)
        offset <<= self.id_shift
        offset |= parts
        if self.rank_bits:
            # The rank hashes the id itself, not its offset, so it never depends on other subscribers.
            rank = keyed_hash(np.asarray(privacy_ids), parts, secret)
            rank >>= np.uint64(64 - self.rank_bits)
            rank <<= np.uint64(self.partition_bits)
            offset |= rank.view(np.int64)
        return offset

    def shard_cuts(self, id_sample: np.ndarray, shards: int) -> np.ndarray:
        """Packed-key boundaries splitting subscribers into ``shards`` groups of about equal rows."""
        return shard_cuts(id_sample, shards, self.id_lo, self.id_bits, self.id_shift)


def shard_cuts(id_sample: np.ndarray, shards: int, id_lo: int, id_bits: int, id_shift: int) -> np.ndarray:
    """Packed-key boundaries splitting subscribers into ``shards`` groups of about equal rows, for keys
    ``(id - id_lo) << id_shift | ...`` with ``id_bits`` bits of id offset."""
    if shards <= 1 or len(id_sample) == 0:
        return np.zeros(0, dtype=np.int64)
    sample = np.sort(np.asarray(id_sample, dtype=np.int64))
    ids = np.unique(sample[(np.arange(1, shards) * len(sample)) // shards])
    offsets = np.clip(ids - id_lo, 0, (1 << id_bits) - 1)  # the sample may hold ids of non-consenting rows
    return np.unique(offsets) << id_shift


class ShardBuffer:
    """An append-only int64 buffer that threads fill at once (each append copies into its own slice).

    The buffer is allocated for ``capacity`` rows but only the pages written
    become resident; rows beyond it go to an overflow list.
    """

    def __init__(self, capacity: int) -> None:
        self._buf: np.ndarray | None = np.empty(max(capacity, 1), dtype=np.int64)
        self._used = 0
        self._overflow: list[np.ndarray] = []
        self._lock = threading.Lock()

    @classmethod
    def holding(cls, rows: np.ndarray) -> ShardBuffer:
        """A filled buffer around ``rows`` (no copy)."""
        out = cls(0)
        out._buf, out._used = rows, len(rows)
        return out

    def append(self, rows: np.ndarray, where: np.ndarray | None = None) -> None:
        """Append ``rows`` (only those where ``where`` is True, if given)."""
        assert self._buf is not None
        count = len(rows) if where is None else int(np.count_nonzero(where))
        with self._lock:
            at = self._used
            if at + count > len(self._buf):
                self._overflow.append(rows.copy() if where is None else rows[where])
                return
            self._used = at + count
        if where is None:
            self._buf[at:at + count] = rows
        else:  # straight into the buffer, without a temporary
            np.compress(where, rows, out=self._buf[at:at + count])

    def take(self) -> np.ndarray:
        """The rows appended (the buffer lets go of them: call once, after every append)."""
        assert self._buf is not None
        out = self._buf[: self._used]
        if self._overflow:
            out = np.concatenate([out, *self._overflow])
        self._buf, self._overflow = None, []
        return out


def bounded_counts(rows: ShardBuffer, layout: PackedLayout, max_partitions: int, max_per_partition: int,
                   distinct: bool, n_partitions: int, secret: int) -> np.ndarray:
    """Count per partition code (dense int64) of the (subscriber, partition) pairs kept by L0/Linf bounding
    (rows packed under ``secret``).

    The packed rows are taken from ``rows`` and sorted in place; their
    memory goes as soon as the pairs are found.
    """
    key = rows.take()
    n = len(key)
    if n == 0:
        return np.zeros(n_partitions, dtype=np.int64)
    key.sort()
    first = np.empty(n, dtype=bool)
    first[0] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    counts = None
    if distinct or max_per_partition == 1:
        pairs = key[first]
    else:
        starts = np.flatnonzero(first)
        pairs = key[starts]
        counts = np.diff(np.append(starts, n))
        np.minimum(counts, max_per_partition, out=counts)
        del starts
    del first
    m = len(pairs)
    # A subscriber's pairs start where the bits above rank and partition change. The sorted rows are
    # no longer needed: their memory serves as scratch (fresh pages cost more than the arithmetic).
    scratch = key[: m - 1]
    np.bitwise_xor(pairs[1:], pairs[:-1], out=scratch)
    new = np.empty(m, dtype=bool)
    new[0] = True
    np.greater_equal(scratch, np.int64(1) << layout.id_shift, out=new[1:])
    del key, scratch
    starts = np.flatnonzero(new)
    del new
    sizes = np.diff(np.append(starts, m))
    heavy = np.flatnonzero(sizes > max_partitions)
    h_starts, h_sizes = starts[heavy], sizes[heavy]
    # Subscribers whose L0-th and next pair tie in the truncated rank: the sort's order there may not
    # be the full ranks' order, so they are ranked again on all 64 bits.
    tied = ((pairs[h_starts + max_partitions - 1] ^ pairs[h_starts + max_partitions]) >> layout.partition_bits) == 0
    offsets = pairs >> layout.id_shift if tied.any() else None
    pairs &= (1 << layout.partition_bits) - 1
    total = np.bincount(pairs, weights=counts, minlength=n_partitions)
    if len(heavy):
        # A subscriber keeps their first L0 pairs in rank order: take the rest back out.
        dropped = _rows_of(h_starts[~tied] + max_partitions, h_sizes[~tied] - max_partitions)
        if offsets is not None:
            rows = _rows_of(h_starts[tied], h_sizes[tied])
            exact = _l0_dropped(offsets[rows], pairs[rows], max_partitions, secret, layout.id_lo)
            assert exact is not None  # every tied subscriber is over the bound
            dropped = np.concatenate([dropped, rows[exact]])
        if len(dropped) < n_partitions // 8:  # a large domain: subtract in place, not over all of it
            np.subtract.at(total, pairs[dropped], 1 if counts is None else counts[dropped])
        else:
            total -= np.bincount(pairs[dropped], weights=None if counts is None else counts[dropped],
                                 minlength=n_partitions)
    return total.astype(np.int64, copy=False) if counts is None else np.rint(total).astype(np.int64)


def run_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Start index (int64) of each run of equal values in a sorted array."""
    m = len(sorted_keys)
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    new = np.empty(m, dtype=bool)  # a mask, not a list of changes plus one: no temporaries beyond it
    new[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new[1:])
    return np.flatnonzero(new).astype(np.int64, copy=False)


def _rows_of(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The rows of blocks ``starts[i] : starts[i] + sizes[i]``, in order."""
    rows = np.repeat(starts - (np.cumsum(sizes) - sizes), sizes)
    rows += np.arange(len(rows), dtype=np.int64)
    return rows


def route(key: np.ndarray, cuts: np.ndarray, buffers: list[ShardBuffer]) -> None:
    """Append packed rows to the buffer of their subscriber's shard (shard ``s`` holds keys in
    ``[cuts[s-1], cuts[s])``)."""
    if len(cuts) == 0:
        buffers[0].append(key)
        return
    if len(cuts) == 1:
        upper = key >= cuts[0]
        buffers[1].append(key, upper)
        np.logical_not(upper, out=upper)
        buffers[0].append(key, upper)
        return
    which = np.searchsorted(cuts, key, side="right")
    for s, buffer in enumerate(buffers):
        buffer.append(key, which == s)


def pack_chunks(chunks: ContributionChunks, pack: Callable[[int, Contributions], np.ndarray], cuts: np.ndarray,
                threads: int) -> list[ShardBuffer]:
    """Build every chunk on ``threads`` threads, pack it (``pack(i, chunk)``) and route its rows; the filled
    buffer of each shard."""
    buffers = [ShardBuffer(chunks.n_rows) for _ in range(len(cuts) + 1)]

    def build(i: int) -> None:
        key = pack(i, chunks.chunk(i))
        route(key, cuts, buffers)

    thread_map(build, range(chunks.n_chunks), threads)
    return buffers


# --------------------------------------------------------------------------- sums
@dataclass(frozen=True)
class RowLayout:
    """Bit layout of packed rows carrying values: ``(id - id_lo) << id_shift | partition << row_bits | row``.

    ``row`` is the contribution's place in the whole input, so one sort puts
    each (subscriber, partition)'s rows together *in input order*: summing
    them then gives bit for bit what a stable argsort of the rows gives, as
    the engine's three steps do, without the argsort. The rank of a pair is
    computed afterwards, on the pairs of subscribers over the L0 bound only.
    """

    id_lo: int
    id_bits: int
    partition_bits: int
    row_bits: int

    @classmethod
    def fit(cls, id_lo: int, id_hi: int, n_partitions: int, n_rows: int) -> RowLayout | None:
        """A layout for ids in ``[id_lo, id_hi]``, ``n_partitions`` codes and ``n_rows`` rows; None if it needs
        more than 63 bits."""
        id_bits = max(int(id_hi - id_lo).bit_length(), 1)
        partition_bits = max(int(max(n_partitions, 1) - 1).bit_length(), 1)
        row_bits = max(int(max(n_rows, 1) - 1).bit_length(), 1)
        if id_bits + partition_bits + row_bits > 63:
            return None
        return cls(int(id_lo), id_bits, partition_bits, row_bits)

    @property
    def low_bits(self) -> int:
        return self.row_bits

    rank_bits = 0  # ranks are computed after the sort, on the pairs of subscribers over the bound

    @property
    def id_shift(self) -> int:
        return self.partition_bits + self.row_bits

    def pack(self, privacy_ids: np.ndarray, partitions: np.ndarray, first_row: int) -> np.ndarray:
        """Packed rows (a new array) for contributions ``first_row, first_row + 1, ...`` of the input."""
        key = _id_offsets(privacy_ids, self.id_lo, self.id_bits)
        key <<= self.id_shift
        parts = np.asarray(partitions, dtype=np.int64) << self.row_bits
        key |= parts
        del parts
        key |= np.arange(first_row, first_row + len(key), dtype=np.int64)
        return key

    def pack_contributions(self, c: Contributions, first_row: int, secret: int) -> np.ndarray:
        """:meth:`pack` of contributions that are rows ``first_row, ...`` of the input (ranks come later)."""
        return self.pack(c.privacy_ids, c.partitions, first_row)

    def pair_sums(self, block: np.ndarray, starts: np.ndarray, counts: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Sum of the values of each run of ``block`` starting at ``starts``, in input order."""
        return np.add.reduceat(values[block & np.int64((1 << self.row_bits) - 1)], starts)

    def shard_cuts(self, id_sample: np.ndarray, shards: int) -> np.ndarray:
        """Packed-key boundaries splitting subscribers into ``shards`` groups of about equal rows."""
        return shard_cuts(id_sample, shards, self.id_lo, self.id_bits, self.id_shift)


@dataclass(frozen=True)
class ValueLayout:
    """Bit layout of packed rows carrying their value:
    ``(id - id_lo) << id_shift | rank << (partition_bits + grid.bits) | partition << grid.bits | step``,
    ``step`` the value's place on its :class:`~privagg.engines.base.ValueGrid` and ``rank`` the pair's
    keyed hash truncated to the bits left (none, if need be), as in :class:`PackedLayout`.

    One sort puts each (subscriber, partition)'s rows together with their
    values, and a subscriber's pairs in rank order: the pair's sum is the
    integer sum of its steps, exact, which is bit for bit the float sum of
    its values in any order (the grid makes every partial sum exact), as
    the engine's three steps and the Spark engine compute it; and L0 keeps a
    subscriber's first pairs, unless the truncated ranks tie at the bound.
    No value array is built or gathered.
    """

    id_lo: int
    id_bits: int
    partition_bits: int
    grid: ValueGrid
    rank_bits: int

    @classmethod
    def fit(cls, id_lo: int, id_hi: int, n_partitions: int, grid: ValueGrid) -> ValueLayout | None:
        """A layout for ids in ``[id_lo, id_hi]``, ``n_partitions`` codes and values on ``grid``, with the rank
        in the bits left (up to :data:`MAX_RANK_BITS`); None if the rest needs more than 63 bits."""
        id_bits = max(int(id_hi - id_lo).bit_length(), 1)
        partition_bits = max(int(max(n_partitions, 1) - 1).bit_length(), 1)
        spare = 63 - id_bits - partition_bits - grid.bits
        if spare < 0:
            return None
        return cls(int(id_lo), id_bits, partition_bits, grid, min(spare, MAX_RANK_BITS))

    @property
    def low_bits(self) -> int:
        return self.grid.bits

    @property
    def id_shift(self) -> int:
        return self.rank_bits + self.partition_bits + self.grid.bits

    def pack(self, privacy_ids: np.ndarray, partitions: np.ndarray, values: np.ndarray, secret: int) -> np.ndarray:
        """Packed rows (a new array) for contributions with these ids, partition codes and grid values, ranked
        under ``secret``."""
        key = _id_offsets(privacy_ids, self.id_lo, self.id_bits)
        key <<= self.id_shift
        parts = np.asarray(partitions, dtype=np.int64)
        if self.rank_bits:
            # The rank hashes the id itself, not its offset, so it never depends on other subscribers.
            rank = keyed_hash(np.asarray(privacy_ids), parts, secret)
            rank >>= np.uint64(64 - self.rank_bits)
            rank <<= np.uint64(self.partition_bits + self.grid.bits)
            key |= rank.view(np.int64)
            del rank
        key |= parts << self.grid.bits
        del parts
        key |= self.grid.steps_of(values)
        return key

    def pack_contributions(self, c: Contributions, first_row: int, secret: int) -> np.ndarray:
        """:meth:`pack` of a chunk's contributions (``first_row`` is not needed: the values travel in the keys)."""
        assert c.values is not None
        return self.pack(c.privacy_ids, c.partitions, c.values, secret)

    def pair_sums(self, block: np.ndarray, starts: np.ndarray, counts: np.ndarray, values: None) -> np.ndarray:
        """Float sum of the values of each run of ``block`` starting at ``starts`` (``counts`` rows each)."""
        steps = block & np.int64((1 << self.grid.bits) - 1)
        sums = np.add.reduceat(steps, starts).astype(np.float64)
        sums *= 2.0 ** -self.grid.fraction_bits  # exact: a power-of-two scale
        if self.grid.k_lo:
            sums += counts * self.grid.lower
        return sums

    def shard_cuts(self, id_sample: np.ndarray, shards: int) -> np.ndarray:
        """Packed-key boundaries splitting subscribers into ``shards`` groups of about equal rows."""
        return shard_cuts(id_sample, shards, self.id_lo, self.id_bits, self.id_shift)


def _id_offsets(privacy_ids: np.ndarray, id_lo: int, id_bits: int) -> np.ndarray:
    """int64 ``id - id_lo`` (a new array), checked to fit in ``id_bits`` bits."""
    key = np.asarray(privacy_ids, dtype=np.int64) - id_lo
    if len(key) and (int(key.min()) < 0 or int(key.max()) >> id_bits):
        raise ValueError("a privacy id lies outside the id range the packed layout was made for")
    return key


SUM_BLOCK_ROWS = 1 << 16  # sorted rows per block of whole subscribers: every per-block temporary stays in cache


def bounded_sums(rows: ShardBuffer, layout: RowLayout | ValueLayout, values: np.ndarray | None, *, max_partitions: int,
                 max_per_partition: int, distinct: bool, secret: int, sum_unit: float, n_partitions: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Dense per-partition ``(counts, sums)`` of one shard's rows after L0/Linf bounding, sums in units.

    The rows are sorted in place (one full-length pass); everything after
    runs over blocks of whole subscribers of about :data:`SUM_BLOCK_ROWS`
    rows, so no other full-length array is made. Per block, exactly as the
    engine's three steps do it:

    * a (subscriber, partition)'s sum is ``np.add.reduceat`` of its values
      (``values`` at the rows a :class:`RowLayout` packs, in input order: bit for
      bit the sum of the stable argsort; or the steps a :class:`ValueLayout`
      packs, an exact sum);
    * a subscriber with more than ``max_partitions`` partitions keeps those
      of lowest rank, the keyed hash of (subscriber id, partition) under
      ``secret`` (:func:`_l0_dropped`), compared on all 64 bits, as the
      three steps and the Spark engine do;
    * a pair's count is capped at ``max_per_partition`` and its sum scaled by
      the same factor (its mean kept), then rounded to units of ``sum_unit``.

    Unit sums are integers, so adding them per block is exact.
    """
    counts_out = np.zeros(n_partitions, dtype=np.int64)
    sums_out = np.zeros(n_partitions, dtype=np.float64)
    key = rows.take()
    n = len(key)
    if n == 0:
        return counts_out, sums_out
    key.sort()
    id_shift, low_bits = layout.id_shift, layout.low_bits
    part_mask = np.int64((1 << layout.partition_bits) - 1)
    # Block ends: the end of the subscriber holding every SUM_BLOCK_ROWS-th row.
    marks = key[SUM_BLOCK_ROWS::SUM_BLOCK_ROWS] >> id_shift
    cuts = np.unique(np.searchsorted(key, (marks + 1) << id_shift))
    bounds = np.concatenate(([0], cuts[cuts < n], [n])).astype(np.int64)
    for r0, r1 in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        block = key[r0:r1]
        pair = block >> low_bits  # subscriber offset << rank_bits + partition_bits | rank | partition
        starts = run_starts(pair)
        counts = np.diff(starts, append=len(pair))
        sums = layout.pair_sums(block, starts, counts, values)
        pair = pair[starts]
        parts = pair & part_mask
        pair >>= layout.partition_bits  # now the subscriber offset << rank_bits | rank
        if distinct:
            sums /= counts  # one contribution per (subscriber, partition): their mean value there
            counts = np.ones(len(counts), dtype=np.int64)
        dropped = _dropped_in_rank_order(pair, layout.rank_bits, parts, max_partitions, secret, layout.id_lo)
        if dropped is not None:  # they add nothing: a count and a sum of zero
            counts[dropped] = 0
            sums[dropped] = 0.0
        # Linf: the count capped, the sum scaled by the same factor (the three steps' arithmetic).
        factor = np.minimum(1.0, max_per_partition / np.maximum(counts, 1))
        sums *= factor
        np.minimum(counts, max_per_partition, out=counts)
        sums /= sum_unit
        np.rint(sums, out=sums)
        if n_partitions <= 8 * len(parts):
            counts_out += np.bincount(parts, weights=counts, minlength=n_partitions).astype(np.int64)
            sums_out += np.bincount(parts, weights=sums, minlength=n_partitions)
        else:  # a domain much larger than the block: add in place, not over the whole domain
            np.add.at(counts_out, parts, counts)
            np.add.at(sums_out, parts, sums)
    return counts_out, sums_out


def _dropped_in_rank_order(ranked: np.ndarray, rank_bits: int, parts: np.ndarray, max_partitions: int, secret: int,
                           id_lo: int) -> np.ndarray | None:
    """Indices of the pairs L0 bounding drops (None: none), for pairs ``ranked``: ``subscriber offset <<
    rank_bits | truncated rank``, sorted, with their partition codes ``parts``.

    A subscriber over the bound keeps their first ``max_partitions`` pairs,
    those of lowest truncated rank; when the last kept and the first dropped
    pair tie in it (always, without rank bits), the subscriber's pairs are
    ranked again on all 64 bits (:func:`_l0_dropped`).
    """
    offsets = ranked >> rank_bits if rank_bits else ranked
    starts = run_starts(offsets)
    sizes = np.diff(starts, append=len(offsets))
    heavy = np.flatnonzero(sizes > max_partitions)
    if not len(heavy):
        return None
    h_starts, h_sizes = starts[heavy], sizes[heavy]
    tied = ranked[h_starts + max_partitions - 1] == ranked[h_starts + max_partitions]
    dropped = _rows_of(h_starts[~tied] + max_partitions, h_sizes[~tied] - max_partitions)
    if tied.any():
        rows = _rows_of(h_starts[tied], h_sizes[tied])
        exact = _l0_dropped(offsets[rows], parts[rows], max_partitions, secret, id_lo)
        assert exact is not None  # every tied subscriber is over the bound
        dropped = np.concatenate([dropped, rows[exact]])
    return dropped


def _l0_dropped(offsets: np.ndarray, parts: np.ndarray, max_partitions: int, secret: int, id_lo: int
                ) -> np.ndarray | None:
    """Indices of the (subscriber, partition) pairs L0 bounding drops (None: none), for pairs sorted by
    subscriber offset then partition: a subscriber with more than ``max_partitions`` keeps the
    ``max_partitions`` of lowest 64-bit rank (:func:`~privagg.engines.ranking.keyed_hash` of their id
    and the partition under ``secret``) and drops the rest.

    Ranks are sorted packed with the subscriber's place and the pair's position, truncated to the
    bits left (usually 40 or more in blocks of :data:`SUM_BLOCK_ROWS` rows); if two truncated ranks of
    one subscriber tie, the heavy pairs are ordered by the full rank instead, so the kept set is always
    that of the full 64-bit ranks (which never tie within a subscriber: the hash is a bijection of the
    partition).
    """
    starts = run_starts(offsets)
    sizes = np.diff(starts, append=len(offsets))
    heavy = sizes > max_partitions
    if not heavy.any():
        return None
    h_sizes = sizes[heavy]
    h_first = np.cumsum(h_sizes)
    h_first -= h_sizes  # where each heavy subscriber's pairs start among the heavy pairs
    position = np.arange(int(h_first[-1] + h_sizes[-1]), dtype=np.int64)
    position -= np.repeat(h_first, h_sizes)  # each heavy pair's position in its subscriber's pairs
    rows = np.repeat(starts[heavy], h_sizes)
    rows += position  # the heavy pairs, grouped by subscriber
    rank = keyed_hash(offsets[rows] + id_lo, parts[rows], secret)
    gbits = max(int(len(h_sizes) - 1).bit_length(), 1)
    pbits = max(int(h_sizes.max() - 1).bit_length(), 1)
    packed = np.repeat(np.arange(len(h_sizes), dtype=np.uint64), h_sizes)
    packed <<= np.uint64(64 - gbits)
    rank >>= np.uint64(gbits + pbits)
    rank <<= np.uint64(pbits)
    packed |= rank
    del rank
    packed |= position.view(np.uint64)
    packed.sort()
    high = packed >> np.uint64(pbits)
    if bool(np.any(high[1:] == high[:-1])):  # a tie of truncated ranks: order by the full ranks
        full = keyed_hash(offsets[rows] + id_lo, parts[rows], secret)
        group = np.repeat(np.arange(len(h_sizes), dtype=np.int64), h_sizes)
        sorted_position = position[np.lexsort((full, group))]
    else:
        sorted_position = (packed & np.uint64((1 << pbits) - 1)).view(np.int64)
    del high, packed
    # The sort keeps each subscriber's pairs in place: the entry at sorted index i is the pair at
    # (subscriber's first) + sorted_position[i], subscriber's first = i - position[i]; past the
    # first max_partitions entries, they are dropped.
    dropped = position >= max_partitions
    at = np.flatnonzero(dropped)
    at += sorted_position[dropped]
    at -= position[dropped]
    return rows[at]

