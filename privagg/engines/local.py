"""The local engine: bounding and aggregation with vectorised numpy.

Everything is sort- or bincount-based on int64 composite keys; no Python
loop runs over rows. Bounded counts take one sort of packed rows, on every
core for large inputs (:mod:`privagg.engines.packed`); bounded sums take one
sort of rows packed with their place in the input, in shards of subscribers
on every core, which gives the three steps' totals bit for bit; inputs with
one row per subscriber (per-subscriber means) are aggregated without any
grouping. Exact aggregates (no bounds) take the three steps of the engine
interface. The only
randomness is the choice of which partitions a subscriber over the L0 bound
keeps: a uniformly random subset, ranked by a keyed hash
(:mod:`privagg.engines.ranking`) under a secret drawn from the operating
system's CSPRNG for every release. Each subscriber's choice depends only on
their own partitions, which is what the sensitivity argument needs (it is
not release noise, which always comes from OpenDP).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privagg.dp.bounds import Bounds
from privagg.engines.base import ContributionChunks, Contributions, Engine, PartitionTotals, UserPartitions, ValueGrid
from privagg.engines.extract import BinnedRows
from privagg.engines.packed import (PackedLayout, RowLayout, ShardBuffer, ValueLayout, bounded_counts, bounded_sums,
                                    pack_chunks, route, run_starts)
from privagg.engines.ranking import keyed_hash
from privagg.parallel import default_threads, thread_map

_LIMIT = 1 << 62
CHUNK_ROWS = 1 << 22  # rows per block of subscribers ranked at once by L0 bounding
SHARD_MIN_ROWS = 1 << 20  # whole inputs from this many rows are bounded in shards, one per thread
BINNED_BLOCK = 1 << 16  # rows per block of one-row-per-subscriber aggregation: its scratch stays in L2


def _partition_totals(counts: np.ndarray, sums: np.ndarray | None, dense: bool) -> PartitionTotals:
    """Dense per-partition totals as :class:`PartitionTotals`: all of them, or (``dense=False``) the
    partitions someone contributed to, with their codes."""
    if dense:
        return PartitionTotals(counts, sums, None)
    codes = np.flatnonzero(counts)
    return PartitionTotals(counts[codes], None if sums is None else sums[codes], codes)


def _pack_bits(n_partitions: int) -> int:
    """Bits holding a partition code: keys are ``id << bits | partition``."""
    return max(int(max(n_partitions, 1) - 1).bit_length(), 1)


def _compact_ids(ids: np.ndarray, n_partitions: int) -> np.ndarray:
    """Privacy ids as non-negative int64 small enough that ``id * n_partitions`` fits in int64."""
    return _compact_ids_bits(ids, _pack_bits(n_partitions))


def _compact_ids_bits(ids: np.ndarray, bits: int) -> np.ndarray:
    """Privacy ids as non-negative int64 small enough that ``id << bits`` fits in int64."""
    if len(ids) == 0:
        return ids.astype(np.int64)
    lo, hi = int(ids.min()), int(ids.max())
    if lo >= 0 and hi < (_LIMIT >> bits):
        return ids.astype(np.int64, copy=False)
    codes = sorted_codes(ids)
    if int(codes.max()) >= (_LIMIT >> bits):
        raise OverflowError("too many (subscriber, partition) combinations to encode in 64 bits")
    return codes


def sorted_codes(ids: np.ndarray) -> np.ndarray:
    """Dense codes 0..k-1 of ``ids`` preserving order (sort-based, no hashing)."""
    import pandas as pd

    codes, _ = pd.factorize(ids, sort=True)
    return codes.astype(np.int64)


def ones(n: int) -> np.ndarray:
    """A read-only array of n int64 ones that takes no memory (zero stride)."""
    return np.broadcast_to(np.int64(1), (n,))


def is_ones(counts: np.ndarray) -> bool:
    """Whether ``counts`` is an :func:`ones` array (every subscriber counts once)."""
    return counts.ndim == 1 and (len(counts) == 0 or (counts.strides == (0,) and int(counts[0]) == 1))


def take(counts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``counts[rows]``, staying zero-stride for :func:`ones`."""
    return ones(len(rows)) if is_ones(counts) else counts[rows]


class LocalEngine(Engine):
    """Single-machine engine on numpy arrays.

    Parameters
    ----------
    rng
        Source of the secret behind the L0 subset choice. Leave ``None`` (the
        default): a fresh 64-bit secret from :mod:`secrets` is drawn for every
        bounding. Tests may pass a seeded generator to make bounding reproducible.
    consume
        Let :meth:`per_user_partition` empty the Contributions it reduces, to
        free memory early (releases do; exact aggregates and tests need not).
    threads
        Threads for chunked contributions (default: :func:`privagg.parallel.default_threads`):
        chunks are built on all of them, then the subscribers are bounded in as many shards.

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> keys = pa.KeySet.areas_by_time(world.cells, level="zone", start=world.start, end=world.end, time_bin="6h")
    >>> rel = pa.footfall(world, epsilon=1.0, level="zone", time_bin="6h", keys=keys, engine=pa.LocalEngine(threads=1))
    >>> rel.privacy.parameters["engine"]
    'local'
    """

    name = "local"

    def __init__(self, rng: np.random.Generator | None = None, *, consume: bool = False,
                 threads: int | None = None) -> None:
        self._rng = rng
        self.consume = consume
        self.threads = default_threads() if threads is None else max(1, int(threads))

    def bounded_totals(self, contributions: Contributions | ContributionChunks, bounds: Bounds | None, *,
                       dense: bool, sum_unit: float | None = None) -> PartitionTotals:
        """See :meth:`Engine.bounded_totals`. Bounded counts take one sort of packed rows
        (:mod:`privagg.engines.packed`), chunked ones on every thread; the rest chain the three steps."""
        if bounds is not None and sum_unit is not None and _has_values(contributions) and bounds.shape != "total":
            fast = self._bounded_sums(contributions, bounds, dense=dense, sum_unit=sum_unit)
            if fast is not None:
                return fast
        layout = _packed_layout(contributions, bounds)
        if layout is None or bounds is None:
            return super().bounded_totals(contributions, bounds, dense=dense, sum_unit=sum_unit)
        n_partitions, distinct = contributions.n_partitions, contributions.distinct
        secret = self.bounding_secret()
        if isinstance(contributions, ContributionChunks):
            shards = min(self.threads, contributions.n_chunks)
            cuts = layout.shard_cuts(contributions.id_sample, shards)
            buffers = pack_chunks(contributions, lambda i, c: layout.pack(c.privacy_ids, c.partitions, secret), cuts,
                                  self.threads)
        else:
            ids = contributions.privacy_ids
            key = layout.pack(ids, contributions.partitions, secret)
            # Large whole inputs are split into shards of subscribers too, sorted on every thread.
            cuts = layout.shard_cuts(np.asarray(ids[:: max(1, len(ids) // 100_000)]), self.threads) \
                if len(ids) >= SHARD_MIN_ROWS and self.threads > 1 else np.zeros(0, dtype=np.int64)
            if self.consume:
                contributions.privacy_ids = contributions.partitions = np.zeros(0, dtype=np.int64)
            del ids
            if len(cuts):
                buffers = [ShardBuffer(len(key)) for _ in range(len(cuts) + 1)]
                route(key, cuts, buffers)
            else:
                buffers = [ShardBuffer.holding(key)]
            del key

        def shard_counts(rows: ShardBuffer) -> np.ndarray:
            return bounded_counts(rows, layout, bounds.max_partitions, bounds.max_per_partition, distinct, n_partitions,
                                  secret)

        shard_totals = thread_map(shard_counts, buffers, self.threads)
        counts = shard_totals.pop()
        for other in shard_totals:  # in place: no stack of every shard's dense totals
            counts += other
        return _partition_totals(counts, None, dense)

    def _bounded_sums(self, contributions: Contributions | ContributionChunks, bounds: Bounds, *, dense: bool,
                      sum_unit: float) -> PartitionTotals | None:
        """Bounded counts and sums (box bounds) without the stable argsort of the three steps, giving the
        same totals bit for bit; None when the input does not fit the packed layouts (then the three steps run).

        One row per subscriber (per-subscriber statistics): nothing to group or bound, every row is its
        subscriber's pair. Otherwise rows are packed with their value, when values lie on a grid
        (:class:`~privagg.engines.packed.ValueLayout`), else with their place in the input
        (:class:`~privagg.engines.packed.RowLayout`, the values gathered after the sort); they are routed to
        shards of subscribers, and each shard is sorted, summed, bounded (one secret for every shard) and
        aggregated on its own thread.
        """
        n_partitions, distinct = contributions.n_partitions, contributions.distinct
        if n_partitions > max(4 * _n_rows(contributions), 1 << 24):
            return None  # dense per-shard totals would outgrow the input
        if isinstance(contributions, Contributions) and (contributions.unique_ids or _distinct_ids(contributions.privacy_ids)):
            return self._one_row_per_id([contributions], n_partitions, dense=dense, sum_unit=sum_unit)
        if isinstance(contributions, ContributionChunks) and contributions.unique_ids:
            return self._one_row_per_id(contributions, n_partitions, dense=dense, sum_unit=sum_unit)
        grid = contributions.value_grid
        values: np.ndarray | None = None  # per-row values, gathered after the sort (RowLayout only)
        if isinstance(contributions, ContributionChunks):
            stride = contributions.chunk_rows
            layout = _sum_layout(grid, contributions.id_range, n_partitions,
                                 None if stride is None else contributions.n_chunks * stride)
            if layout is None:
                return None
            if isinstance(layout, RowLayout):
                values = np.empty(contributions.n_chunks * stride, dtype=np.float64)

            def pack(i: int, c: Contributions) -> np.ndarray:
                first_row = 0
                if values is not None:  # the values at their rows, read back after the sort
                    first_row = i * stride
                    if len(c) > stride:
                        raise ValueError("a chunk holds more contributions than input rows")
                    values[first_row:first_row + len(c)] = c.values
                return layout.pack_contributions(c, first_row, secret)

            cuts = layout.shard_cuts(contributions.id_sample, min(self.threads, contributions.n_chunks))
            secret = self.bounding_secret()
            try:
                buffers = pack_chunks(contributions, pack, cuts, self.threads)
            except ValueError:
                return None
        else:
            ids = np.asarray(contributions.privacy_ids)
            n = len(ids)
            id_range = (int(ids.min()), int(ids.max())) if n else (0, 0)
            layout = _sum_layout(grid, id_range, n_partitions, n)
            if layout is None:
                return None
            if isinstance(layout, RowLayout):
                values = np.asarray(contributions.values, dtype=np.float64)
            secret = self.bounding_secret()
            key = layout.pack_contributions(contributions, 0, secret)
            shards = self.threads if n >= SHARD_MIN_ROWS else 1
            cuts = layout.shard_cuts(ids[:: max(1, n // 100_000)], shards)
            buffers = [ShardBuffer(n) for _ in range(len(cuts) + 1)] if len(cuts) else []
            if self.consume:
                contributions.privacy_ids = contributions.partitions = np.zeros(0, dtype=np.int64)
            if buffers:
                route(key, cuts, buffers)
            else:
                buffers = [ShardBuffer.holding(key)]
            del key, ids

        def shard_totals(rows: ShardBuffer) -> tuple[np.ndarray, np.ndarray]:
            return bounded_sums(rows, layout, values, max_partitions=bounds.max_partitions,
                                max_per_partition=bounds.max_per_partition, distinct=distinct, secret=secret,
                                sum_unit=sum_unit, n_partitions=n_partitions)

        parts_totals = thread_map(shard_totals, buffers, self.threads)
        del buffers
        counts = np.sum([t[0] for t in parts_totals], axis=0)
        sums = np.sum([t[1] for t in parts_totals], axis=0)
        return _partition_totals(counts, sums, dense)

    def _one_row_per_id(self, parts: Any, n_partitions: int, *, dense: bool, sum_unit: float) -> PartitionTotals:
        """Totals when every subscriber has one row (``parts``: Contributions, or chunks built on every thread).

        Each row is a whole (subscriber, partition) pair, within every ``L0 >= 1`` and ``Linf >= 1``, so
        bounding keeps it unchanged; its value in units is rounded and added to its partition. The unit
        sums are integers, so adding them per chunk and then across chunks is exact, as in the three steps.
        """
        chunked = isinstance(parts, ContributionChunks)
        binned = getattr(parts, "binned", None) if chunked else None
        if isinstance(binned, BinnedRows) and binned.values is not None and binned.clamp is not None:
            return self._binned_totals(binned, n_partitions, dense=dense, sum_unit=sum_unit)

        def totals(i: int) -> tuple[np.ndarray, np.ndarray]:
            c = parts.chunk(i) if chunked else parts[i]
            units = np.divide(np.asarray(c.values, dtype=np.float64), sum_unit)
            np.rint(units, out=units)
            codes = np.asarray(c.partitions, dtype=np.intp)
            return (np.bincount(codes, minlength=n_partitions).astype(np.int64),
                    np.bincount(codes, weights=units, minlength=n_partitions))

        outs = thread_map(totals, range(parts.n_chunks if chunked else len(parts)), self.threads)
        counts = np.sum([o[0] for o in outs], axis=0)
        sums = np.sum([o[1] for o in outs], axis=0)
        return _partition_totals(counts, sums, dense)

    def _binned_totals(self, rows: BinnedRows, n_partitions: int, *, dense: bool, sum_unit: float) -> PartitionTotals:
        """:meth:`_one_row_per_id` over :class:`~privagg.engines.extract.BinnedRows`: one pass over the
        table's own columns in blocks of ``BINNED_BLOCK`` rows, a contiguous range of blocks per thread,
        every temporary a block-sized scratch reused by its thread.

        Per block: the rows' bins; their values in units, ``rint(v / unit)`` clamped to
        ``[rint(lower / unit), rint(upper / unit)]`` (NaN: the lower end), which equals the generic
        path's ``rint(clip(v, lower, upper) / unit)`` bit for bit because ``x -> rint(x / unit)`` is
        non-decreasing (a block holding NaN, which ``clip`` keeps, is done again with ``fmax``/``fmin``);
        and one bincount per bin of ``units - u_lo + M``, with ``M`` a power of two
        above any block's ``sum(units - u_lo)``, so that its quotient by ``M`` is the bin's count and its
        remainder the sum (all exact integers below 2**53). Bins are then added into their partitions
        (consent and the key domain are in ``bin_partition``), in int64.
        """
        assert rows.values is not None and rows.clamp is not None
        n, n_bins, values = rows.n_rows, rows.n_bins, rows.values
        unit = float(sum_unit)
        u_lo = float(np.rint(np.float64(rows.clamp[0]) / unit))
        u_hi = float(np.rint(np.float64(rows.clamp[1]) / unit))
        block = BINNED_BLOCK
        span = max(u_hi - u_lo, 0.0)
        base = 1 << int(block * span).bit_length()  # > block * span
        packed = base * (block + 1) < 2.0 ** 52
        shift = float(base) - u_lo
        n_blocks = -(-n // block)
        parts = max(1, min(self.threads, n_blocks))
        cuts = [min(n, (n_blocks * i // parts) * block) for i in range(parts + 1)]

        def in_units(lo: int, hi: int, u: np.ndarray, *, nan_safe: bool) -> None:
            np.divide(values[lo:hi], unit, out=u, dtype=np.float64)
            np.rint(u, out=u)
            if nan_safe:
                np.fmax(u, u_lo, out=u)  # fmax and fmin: NaN becomes the lower end
                np.fmin(u, u_hi, out=u)
            else:
                np.clip(u, u_lo, u_hi, out=u)  # twice as fast as fmax and fmin; keeps NaN

        def run(i: int) -> tuple[np.ndarray, np.ndarray]:
            bins = np.empty(min(block, n), dtype=rows.bin_dtype)
            units = np.empty(min(block, n), dtype=np.float64)
            counts = np.zeros(n_bins, dtype=np.int64)
            sums = np.zeros(n_bins, dtype=np.int64)
            for lo in range(cuts[i], cuts[i + 1], block):
                hi = min(lo + block, cuts[i + 1])
                b = rows.bins(lo, hi, bins[: hi - lo])
                u = units[: hi - lo]
                in_units(lo, hi, u, nan_safe=False)
                if packed:
                    u += shift
                    total = np.bincount(b, weights=u, minlength=n_bins)
                    if np.isnan(total).any():  # NaN values (clip keeps them): the block again, NaN as lower
                        in_units(lo, hi, u, nan_safe=True)
                        u += shift
                        total = np.bincount(b, weights=u, minlength=n_bins)
                    c = np.floor(total / base)
                    counts += c.astype(np.int64)
                    sums += (total - c * base).astype(np.int64)
                    sums += c.astype(np.int64) * int(u_lo)
                else:
                    if np.isnan(u).any():
                        in_units(lo, hi, u, nan_safe=True)
                    counts += np.bincount(b, minlength=n_bins)
                    sums += np.bincount(b, weights=u, minlength=n_bins).astype(np.int64)
            return counts, sums

        outs = thread_map(run, range(parts), self.threads)
        bin_counts = np.sum([o[0] for o in outs], axis=0)
        bin_sums = np.sum([o[1] for o in outs], axis=0)
        keep = rows.bin_partition >= 0
        counts = np.zeros(n_partitions, dtype=np.int64)
        sums_int = np.zeros(n_partitions, dtype=np.int64)
        np.add.at(counts, rows.bin_partition[keep], bin_counts[keep])
        np.add.at(sums_int, rows.bin_partition[keep], bin_sums[keep])
        sums = sums_int.astype(np.float64)
        return _partition_totals(counts, sums, dense)

    def bounding_secret(self) -> int:
        """A fresh 64-bit key for the bounding hash (from ``secrets`` unless a test generator was given)."""
        if self._rng is not None:
            return int(self._rng.integers(0, 2**63, dtype=np.int64))
        return super().bounding_secret()

    # -- reduce ----------------------------------------------------------------
    def per_user_partition(self, contributions: Contributions) -> UserPartitions:
        bits = _pack_bits(contributions.n_partitions)
        mask = (1 << bits) - 1
        ids = _compact_ids_bits(np.asarray(contributions.privacy_ids), bits)
        parts = np.asarray(contributions.partitions, dtype=np.int64)
        key = ids << bits  # a fresh array: sorted in place below
        key |= parts
        if contributions.values is None and self.consume:
            # The per-row arrays are no longer needed: let them go before sorting.
            contributions.privacy_ids = contributions.partitions = np.zeros(0, dtype=np.int64)
        if contributions.values is None:
            del ids, parts
            key.sort()
            first = np.empty(len(key), dtype=bool)
            if len(key):
                first[0] = True
                np.not_equal(key[1:], key[:-1], out=first[1:])
            if contributions.distinct:
                uniq = key[first]
                del key, first
                counts = ones(len(uniq))
            else:
                starts = np.flatnonzero(first)
                uniq = key[starts]
                counts = np.diff(np.append(starts, len(key))).astype(np.int64)
                del key, first, starts
            parts_out = uniq & mask
            uniq >>= bits
            return UserPartitions(uniq, parts_out, counts)
        order = np.argsort(key, kind="stable")
        skey = key[order]
        starts = run_starts(skey)
        uniq = skey[starts]
        counts = np.diff(np.append(starts, len(skey))).astype(np.int64)
        values = np.asarray(contributions.values, dtype=np.float64)[order]
        sums = np.add.reduceat(values, starts) if len(values) else np.zeros(0)
        if contributions.distinct:
            # One contribution per (subscriber, partition): the subscriber's mean value there.
            sums = sums / counts
            counts = ones(len(uniq))
        return UserPartitions(uniq >> bits, uniq & mask, counts, sums)

    # -- bound -----------------------------------------------------------------
    def bound_contributions(self, pairs: UserPartitions, bounds: Bounds) -> UserPartitions:
        if bounds.shape == "total":
            return self._bound_total(pairs, bounds)
        return self._bound_box(pairs, bounds)

    def _bound_total(self, pairs: UserPartitions, bounds: Bounds) -> UserPartitions:
        """Total-contribution bounding: at most Linf records per key, then a uniformly random C of
        a subscriber's remaining records, then (if still needed) a random L0 subset of their keys.

        Records of one subscriber in one key are interchangeable for a count, so record ``k`` of
        (subscriber, key) is ranked by the keyed hash of (subscriber, key * m + k) under a fresh
        secret, and the C lowest ranks of the subscriber are kept: a uniformly random C-subset of
        their records that depends on nothing but their own records.
        """
        assert bounds.max_total is not None
        c, linf = bounds.max_total, bounds.max_per_partition
        ids, parts, sums = pairs.privacy_ids, pairs.partitions, pairs.sums
        original = np.asarray(pairs.counts, dtype=np.int64)
        counts = np.minimum(original, linf)
        starts = run_starts(ids)
        totals = np.add.reduceat(counts, starts) if len(ids) else np.zeros(0, dtype=np.int64)
        over = totals > c
        if over.any():
            owner = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(ids))))
            heavy = np.flatnonzero(over[owner])  # pairs of subscribers over C
            reps = counts[heavy]
            record_pair = np.repeat(heavy, reps)
            k = np.arange(len(record_pair), dtype=np.int64) - np.repeat(np.cumsum(reps) - reps, reps)
            record_ids = ids[record_pair]
            record_code = parts[record_pair].astype(np.int64) * (int(reps.max()) + 1) + k
            r_starts = run_starts(record_ids)
            r_sizes = np.diff(np.append(r_starts, len(record_ids)))
            secret = self.bounding_secret()
            kept = self._l0_rows_chunked(record_ids, record_code, r_starts, r_sizes, c, secret)
            kept_counts = np.bincount(record_pair[kept], minlength=len(ids))
            counts = counts.copy()
            counts[heavy] = kept_counts[heavy]
            rows = np.flatnonzero(counts > 0)
            ids, parts, counts, original = ids[rows], parts[rows], counts[rows], original[rows]
            sums = None if sums is None else sums[rows]
        if sums is not None:
            sums = sums * (counts / np.maximum(original, 1))
        out = UserPartitions(ids, parts, counts, sums)
        if bounds.max_partitions < c:
            # The key bound binds too: a random L0 subset of the keys left (counts already capped).
            out = self._bound_box(out, Bounds(max_partitions=bounds.max_partitions, max_per_partition=linf))
        return out

    def _bound_box(self, pairs: UserPartitions, bounds: Bounds, *, secret: int | None = None) -> UserPartitions:
        """L0 (a uniformly random subset of each subscriber's partitions, ranked under ``secret``, a
        fresh one by default), then Linf. Shards of one release pass the release's one secret."""
        l0, linf = bounds.max_partitions, bounds.max_per_partition
        ids, parts, counts, sums = pairs.privacy_ids, pairs.partitions, pairs.counts, pairs.sums
        starts = run_starts(ids)
        sizes = np.diff(np.append(starts, len(ids)))
        heavy = sizes > l0
        if heavy.any():
            heavy_rows_total = int(sizes[heavy].sum())
            if secret is None:
                secret = self.bounding_secret()
            if heavy_rows_total > len(ids) // 2:
                # Most rows belong to subscribers over the bound: rank everyone (a subscriber
                # within the bound keeps all rows anyway), avoiding gathers and scatters.
                rows = self._l0_rows_chunked(ids, parts, starts, sizes, l0, secret)
            else:
                heavy_mask = np.repeat(heavy, sizes)
                heavy_rows = np.flatnonzero(heavy_mask)
                h_sizes = sizes[heavy]
                h_starts = np.cumsum(h_sizes) - h_sizes
                kept = heavy_rows[self._l0_rows_chunked(ids[heavy_rows], parts[heavy_rows], h_starts, h_sizes, l0, secret)]
                heavy_mask[kept] = False  # now marks the dropped rows
                rows = np.flatnonzero(~heavy_mask)
            ids, parts, counts = ids[rows], parts[rows], take(counts, rows)
            sums = sums[rows] if sums is not None else None
        if sums is not None:
            factor = np.minimum(1.0, linf / np.maximum(counts, 1))
            sums = sums * factor
        if not is_ones(counts) and counts.max(initial=0) > linf:
            counts = np.minimum(counts, linf)
        return UserPartitions(ids, parts, counts, sums)

    def _l0_rows_chunked(self, ids: np.ndarray, parts: np.ndarray, starts: np.ndarray, sizes: np.ndarray, l0: int,
                         secret: int) -> np.ndarray:
        """:meth:`_l0_rows` over blocks of whole subscribers of about ``CHUNK_ROWS`` rows each,
        so its temporaries stay small (bounding is per subscriber, so blocks are independent)."""
        m = len(ids)
        if m <= 2 * CHUNK_ROWS:
            return self._l0_rows(ids, parts, starts, sizes, l0, secret)
        # Split at subscriber boundaries: the first block start at or after each multiple of CHUNK_ROWS.
        cuts = np.unique(np.concatenate((
            [0], np.searchsorted(starts, np.arange(CHUNK_ROWS, m, CHUNK_ROWS)), [len(starts)],
        )).astype(np.int64))
        out = []
        for g0, g1 in zip(cuts[:-1], cuts[1:]):
            if g1 <= g0:
                continue
            r0 = int(starts[g0])
            r1 = int(starts[g1]) if g1 < len(starts) else m
            local = self._l0_rows(ids[r0:r1], parts[r0:r1], starts[g0:g1] - r0, sizes[g0:g1], l0, secret)
            local += r0
            out.append(local)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def _l0_rows(self, ids: np.ndarray, parts: np.ndarray, starts: np.ndarray, sizes: np.ndarray, l0: int,
                 secret: int) -> np.ndarray:
        """Rows kept by L0 bounding, for rows grouped by subscriber (blocks ``starts``/``sizes``).

        Each (subscriber, partition) gets a random rank, a keyed hash under a
        fresh secret, so a subscriber's kept subset depends only on their own
        partitions; the ``l0`` lowest ranks of each block are kept. Block,
        rank and position are packed into one int64 and sorted once (no
        argsort), ranks truncated to the bits left over; if two truncated
        ranks of one subscriber tie, the rows are ordered by the full 64-bit
        ranks instead, so the kept set is always that of the full ranks, as
        in the packed paths and the Spark engine.
        """
        m = len(ids)
        n_groups = len(sizes)
        position = np.arange(m, dtype=np.int64)
        position -= np.repeat(starts, sizes)  # each row's position in its block
        rank = keyed_hash(ids, parts, secret)
        gbits = max(int(n_groups).bit_length(), 1)
        pbits = max(int(sizes.max()).bit_length(), 1)
        rbits = 63 - gbits - pbits
        tie = False
        if rbits >= 24:
            packed = np.repeat(np.arange(n_groups, dtype=np.int64), sizes)
            packed <<= rbits + pbits
            rank >>= np.uint64(64 - rbits)
            rank <<= np.uint64(pbits)
            packed |= rank.view(np.int64)
            del rank
            packed |= position
            packed.sort()
            high = packed >> pbits
            tie = bool(np.any(high[1:] == high[:-1]))
            del high
            if not tie:
                packed &= (1 << pbits) - 1  # the sorted rows' positions in their block
                sorted_position = packed
        if rbits < 24 or tie:  # order by the full ranks (recomputed: the truncation shifted them in place)
            rank = keyed_hash(ids, parts, secret)
            group = np.repeat(np.arange(n_groups, dtype=np.int64), sizes)
            sorted_position = position[np.lexsort((rank, group))]
            del rank, group
        # Sorting keeps each block in place; within it, entries are now in rank order. The row
        # at sorted index i is (block start) + sorted_position[i], block start = i - position[i].
        keep = position < l0
        rows = np.arange(m, dtype=np.int64)
        rows -= position
        del position
        rows += sorted_position
        return rows[keep]

    # -- aggregate -------------------------------------------------------------
    def aggregate(self, pairs: UserPartitions, n_partitions: int, *, dense: bool) -> PartitionTotals:
        parts = pairs.partitions
        if dense:
            if is_ones(pairs.counts):
                counts = np.bincount(parts, minlength=n_partitions).astype(np.int64)
            else:
                counts = np.rint(np.bincount(parts, weights=pairs.counts, minlength=n_partitions)).astype(np.int64)
            sums = None if pairs.sums is None else np.bincount(parts, weights=pairs.sums, minlength=n_partitions)
            return PartitionTotals(counts, sums, None)
        if n_partitions <= max(4 * len(parts), 1 << 24):
            dense_totals = self.aggregate(pairs, n_partitions, dense=True)
            codes = np.flatnonzero(np.bincount(parts, minlength=n_partitions))
            sums = None if dense_totals.sums is None else dense_totals.sums[codes]
            return PartitionTotals(dense_totals.counts[codes], sums, codes)
        order = np.argsort(parts, kind="stable")
        sparts = parts[order]
        starts = run_starts(sparts)
        codes = sparts[starts]
        counts = np.add.reduceat(pairs.counts[order], starts).astype(np.int64) if len(parts) else np.zeros(0, np.int64)
        sums = None
        if pairs.sums is not None:
            sums = np.add.reduceat(pairs.sums[order], starts) if len(parts) else np.zeros(0)
        return PartitionTotals(counts, sums, codes)


def _sum_layout(grid: ValueGrid | None, id_range: tuple[int, int], n_partitions: int,
                n_rows: int | None) -> ValueLayout | RowLayout | None:
    """The packing of rows with values: the values inside the keys when they lie on a grid, else the rows'
    places in the input (``n_rows`` of them; None: unknown, no packing); None when neither fits 63 bits."""
    layout = None if grid is None else ValueLayout.fit(*id_range, n_partitions, grid)
    if layout is None and n_rows is not None:
        return RowLayout.fit(*id_range, n_partitions, n_rows)
    return layout


def _has_values(contributions: Contributions | ContributionChunks) -> bool:
    if isinstance(contributions, ContributionChunks):
        return contributions.has_values
    return contributions.values is not None


def _n_rows(contributions: Contributions | ContributionChunks) -> int:
    return contributions.n_rows if isinstance(contributions, ContributionChunks) else len(contributions)


def _distinct_ids(ids: np.ndarray) -> bool:
    """Whether every privacy id occurs once, decided by one bincount when ids are compact (False: unknown)."""
    ids = np.asarray(ids)
    if len(ids) == 0:
        return True
    lo, hi = int(ids.min()), int(ids.max())
    if hi - lo >= 4 * len(ids) + (1 << 16):
        return False
    return int(np.bincount((ids - lo).astype(np.intp, copy=False)).max()) <= 1


def _packed_layout(contributions: Contributions | ContributionChunks, bounds: Bounds | None) -> PackedLayout | None:
    """The packed layout for bounded counts; None when they take the engine's three steps (sums,
    exact aggregates, ids too far apart to pack, or a domain too large for dense counts)."""
    if bounds is None or bounds.shape == "total":
        return None
    if isinstance(contributions, ContributionChunks):
        n_rows, id_range = contributions.n_rows, contributions.id_range
    elif contributions.values is None:
        ids = contributions.privacy_ids
        n_rows, id_range = len(ids), ((int(ids.min()), int(ids.max())) if len(ids) else (0, 0))
    else:
        return None
    if contributions.n_partitions > max(4 * n_rows, 1 << 24):
        return None
    return PackedLayout.fit(*id_range, contributions.n_partitions)
