"""The local engine: bounding and aggregation with vectorised numpy.

Everything is sort- or bincount-based on int64 composite keys; no Python
loop runs over rows. The only randomness is the choice of which partitions a
subscriber over the L0 bound keeps: a uniformly random subset, drawn from a
generator seeded from the operating system's CSPRNG on every call (it is not
release noise, which always comes from OpenDP).
"""

from __future__ import annotations

import secrets

import numpy as np

from privagg.dp.bounds import Bounds
from privagg.engines.base import Contributions, Engine, PartitionTotals, UserPartitions

_LIMIT = 1 << 62


def _compact_ids(ids: np.ndarray, n_partitions: int) -> np.ndarray:
    """Privacy ids as non-negative int64 small enough that ``id * n_partitions`` fits in int64."""
    if len(ids) == 0:
        return ids.astype(np.int64)
    lo, hi = int(ids.min()), int(ids.max())
    if lo >= 0 and (hi + 1) * max(n_partitions, 1) < _LIMIT:
        return ids.astype(np.int64, copy=False)
    import pandas as pd

    codes, _ = pd.factorize(ids, sort=True)
    if (int(codes.max()) + 1) * max(n_partitions, 1) >= _LIMIT:
        raise OverflowError("too many (subscriber, partition) combinations to encode in 64 bits")
    return codes.astype(np.int64)


def _group_starts(sorted_ids: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a sorted array."""
    if len(sorted_ids) == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(sorted_ids[1:] != sorted_ids[:-1]) + 1
    return np.concatenate(([0], change)).astype(np.int64)


class LocalEngine(Engine):
    """Single-machine engine on numpy arrays.

    Parameters
    ----------
    rng
        Generator for the L0 subset choice. Leave ``None`` (the default): a
        fresh generator seeded with 128 bits from :mod:`secrets` is used for
        every bounding. Tests may pass one to make bounding reproducible.
    """

    name = "local"

    def __init__(self, rng: np.random.Generator | None = None) -> None:
        self._rng = rng

    def _generator(self) -> np.random.Generator:
        return self._rng if self._rng is not None else np.random.default_rng(secrets.randbits(128))

    # -- reduce ----------------------------------------------------------------
    def per_user_partition(self, contributions: Contributions) -> UserPartitions:
        n = max(contributions.n_partitions, 1)
        ids = _compact_ids(np.asarray(contributions.privacy_ids), n)
        parts = np.asarray(contributions.partitions, dtype=np.int64)
        key = ids * n + parts
        if contributions.values is None:
            if contributions.distinct:
                uniq = np.unique(key)
                counts = np.ones(len(uniq), dtype=np.int64)
            else:
                uniq, counts = np.unique(key, return_counts=True)
                counts = counts.astype(np.int64)
            return UserPartitions(uniq // n, uniq % n, counts)
        order = np.argsort(key, kind="stable")
        skey = key[order]
        starts = _group_starts(skey)
        uniq = skey[starts]
        counts = np.diff(np.append(starts, len(skey))).astype(np.int64)
        values = np.asarray(contributions.values, dtype=np.float64)[order]
        sums = np.add.reduceat(values, starts) if len(values) else np.zeros(0)
        if contributions.distinct:
            # One contribution per (subscriber, partition): the subscriber's mean value there.
            sums = sums / counts
            counts = np.ones(len(uniq), dtype=np.int64)
        return UserPartitions(uniq // n, uniq % n, counts, sums)

    # -- bound -----------------------------------------------------------------
    def bound_contributions(self, pairs: UserPartitions, bounds: Bounds) -> UserPartitions:
        l0, linf = bounds.max_partitions, bounds.max_per_partition
        ids, parts, counts, sums = pairs.privacy_ids, pairs.partitions, pairs.counts, pairs.sums
        starts = _group_starts(ids)
        sizes = np.diff(np.append(starts, len(ids)))
        heavy_groups = np.flatnonzero(sizes > l0)
        if len(heavy_groups):
            keep = np.ones(len(ids), dtype=bool)
            # Rows of subscribers over the L0 bound, and each row's group (0..n_heavy_groups-1).
            heavy_sizes = sizes[heavy_groups]
            heavy_rows = np.repeat(starts[heavy_groups], heavy_sizes) + (
                np.arange(heavy_sizes.sum()) - np.repeat(np.cumsum(heavy_sizes) - heavy_sizes, heavy_sizes)
            )
            group = np.repeat(np.arange(len(heavy_groups), dtype=np.int64), heavy_sizes)
            m = len(heavy_rows)
            # A random permutation gives every row a distinct random rank: sorting by
            # (group, rank) orders each subscriber's partitions uniformly at random.
            perm = self._generator().permutation(m).astype(np.int64)
            bits = max(int(m).bit_length(), 1)
            order = np.sort((group << bits) | perm)
            rank_value = order & ((1 << bits) - 1)
            row_of_rank = np.empty(m, dtype=np.int64)
            row_of_rank[perm] = np.arange(m, dtype=np.int64)
            sorted_rows = row_of_rank[rank_value]
            sorted_group = order >> bits
            first = np.repeat(np.cumsum(heavy_sizes) - heavy_sizes, heavy_sizes)
            position = np.arange(m) - first  # rank of the row within its subscriber
            assert np.array_equal(sorted_group, group)
            dropped = heavy_rows[sorted_rows[position >= l0]]
            keep[dropped] = False
            ids, parts, counts = ids[keep], parts[keep], counts[keep]
            sums = sums[keep] if sums is not None else None
        if sums is not None:
            factor = np.minimum(1.0, linf / np.maximum(counts, 1))
            sums = sums * factor
        counts = np.minimum(counts, linf)
        return UserPartitions(ids, parts, counts, sums)

    # -- aggregate -------------------------------------------------------------
    def aggregate(self, pairs: UserPartitions, n_partitions: int, *, dense: bool) -> PartitionTotals:
        parts = pairs.partitions
        if dense:
            if np.all(pairs.counts == 1):
                counts = np.bincount(parts, minlength=n_partitions).astype(np.int64)
            else:
                counts = np.rint(np.bincount(parts, weights=pairs.counts, minlength=n_partitions)).astype(np.int64)
            sums = None if pairs.sums is None else np.bincount(parts, weights=pairs.sums, minlength=n_partitions)
            return PartitionTotals(counts, sums, None)
        codes, inverse = np.unique(parts, return_inverse=True)
        counts = np.rint(np.bincount(inverse, weights=pairs.counts, minlength=len(codes))).astype(np.int64)
        sums = None if pairs.sums is None else np.bincount(inverse, weights=pairs.sums, minlength=len(codes))
        return PartitionTotals(counts, sums, codes)
