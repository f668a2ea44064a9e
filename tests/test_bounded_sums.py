"""The packed sum path (many rows per subscriber) against the engine's three generic steps, bit for bit.

The release-level comparison (``test_fast_paths.py``) uses whole-minute stays, whose sums are exact in
any order. Here values are chosen so that the order of additions shows in the last bits: each
(subscriber, partition) pair has its own partition, and sums are read in units of ``2**-60`` (an exact
scaling), so the totals are the pair sums themselves, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from privagg.dp.bounds import Bounds
from privagg.engines import LocalEngine, local, packed
from privagg.engines.base import ContributionChunks, Contributions, Engine, ValueGrid
from privagg.engines.ranking import keyed_hash
from privagg.queries import KeySet

UNIT = 2.0 ** -60


def _contributions(seed: int = 0, distinct: bool = False) -> Contributions:
    """Rows of 40 subscribers in 1-9 partitions each, every pair with 1-12 rows in shuffled input order."""
    rng = np.random.default_rng(seed)
    ids, parts = [], []
    n_pairs = 0
    for user in range(40):
        for _ in range(int(rng.integers(1, 10))):
            reps = int(rng.integers(1, 13))
            ids += [1000 + 7 * user] * reps  # ids that are neither dense nor zero-based
            parts += [n_pairs] * reps
            n_pairs += 1
    order = rng.permutation(len(ids))
    values = rng.random(len(ids)) * 10.0 ** rng.integers(-3, 4, len(ids))  # mixed magnitudes: order matters
    domain = KeySet.from_values(cell_id=list(range(n_pairs)))
    return Contributions(np.asarray(ids, dtype=np.int64)[order], np.asarray(parts, dtype=np.int64)[order],
                         domain, True, distinct, values)


def _as_chunks(c: Contributions, rows: int) -> ContributionChunks:
    def chunk(i: int) -> Contributions:
        cut = slice(i * rows, (i + 1) * rows)
        return Contributions(c.privacy_ids[cut], c.partitions[cut], c.domain, True, c.distinct, c.values[cut])

    ids = c.privacy_ids
    return ContributionChunks(n_chunks=-(-len(c) // rows), chunk=chunk, domain=c.domain, public=True,
                              distinct=c.distinct, n_rows=len(c), id_range=(int(ids.min()), int(ids.max())),
                              id_sample=ids[::3], has_values=True, chunk_rows=rows)


@pytest.mark.parametrize("bounds", [Bounds(max_partitions=3, max_per_partition=4),
                                    Bounds(max_partitions=50, max_per_partition=50)], ids=["binding", "loose"])
@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
@pytest.mark.parametrize("distinct", [False, True], ids=["rows", "distinct"])
def test_sums_equal_the_generic_steps_bit_for_bit(monkeypatch, bounds, chunked, distinct):
    monkeypatch.setattr(packed, "SUM_BLOCK_ROWS", 16)  # many blocks per shard, cut at subscriber ends
    monkeypatch.setattr(local, "SHARD_MIN_ROWS", 1)  # whole inputs split into shards too
    c = _contributions(distinct=distinct)  # distinct: a subscriber's mean value in a partition counts once
    generic = Engine.bounded_totals(LocalEngine(rng=np.random.default_rng(3), threads=1), c, bounds,
                                    dense=True, sum_unit=UNIT)
    data = _as_chunks(c, 29) if chunked else c
    fast = LocalEngine(rng=np.random.default_rng(3), threads=2).bounded_totals(data, bounds, dense=True,
                                                                               sum_unit=UNIT)
    assert np.array_equal(generic.counts, fast.counts)
    assert np.array_equal(generic.sums, fast.sums)
    assert (generic.counts == 0).any() == (bounds.max_partitions == 3)  # L0 dropped pairs when binding


def test_the_comparison_sees_the_order_of_additions():
    """Companion: summing each pair's values in another order (sequentially, by bincount) changes some
    totals in these units, so a fast path that did not add in input order would fail the test above."""
    c = _contributions()
    generic = Engine.bounded_totals(LocalEngine(rng=np.random.default_rng(3), threads=1), c,
                                    Bounds(max_partitions=50, max_per_partition=50), dense=True, sum_unit=UNIT)
    sequential = np.rint(np.bincount(c.partitions, weights=c.values) / UNIT)
    assert not np.array_equal(generic.sums, sequential)
    assert np.array_equal(generic.counts, np.bincount(c.partitions))


def _brute_force_dropped(ids, parts, l0, rank_of):
    """Pairs dropped by L0: those past a subscriber's ``l0`` lowest ranks, ties in partition order (a loop)."""
    rank = rank_of(ids, parts)
    dropped = []
    for user in np.unique(ids):
        rows = np.flatnonzero(ids == user)
        dropped += rows[np.argsort(rank[rows], kind="stable")][l0:].tolist()
    return sorted(dropped)


def test_l0_keeps_the_lowest_full_ranks_even_when_truncated_ranks_tie(monkeypatch):
    """``_l0_dropped`` sorts ranks truncated to the bits left beside subscriber and position; if two of one
    subscriber tie there, it orders by the full ranks. A hash with nothing in the kept top bits makes every
    truncated rank tie: the result must still follow the full ranks. Companion: the truncated order alone
    (partition order on ties, i.e. the first four partitions) is not that result, so a path without the
    fallback would fail."""
    ids = np.repeat(np.arange(30, dtype=np.int64) + 5, 9)
    parts = np.tile(np.arange(9, dtype=np.int64), 30)
    secret = 12345
    full = lambda i, p: keyed_hash(i, p, secret)  # noqa: E731
    assert sorted(packed._l0_dropped(ids, parts, 4, secret, 0).tolist()) == _brute_force_dropped(ids, parts, 4, full)

    def low_bits_only(i, p, s):  # 9 bits: all lost to the 5 subscriber and 4 position bits of the packing
        return keyed_hash(i, p, s) >> np.uint64(64 - 9)

    monkeypatch.setattr(packed, "keyed_hash", low_bits_only)
    expected = _brute_force_dropped(ids, parts, 4, lambda i, p: low_bits_only(i, p, secret))
    assert sorted(packed._l0_dropped(ids, parts, 4, secret, 0).tolist()) == expected
    assert expected != sorted(np.flatnonzero(parts >= 4).tolist())


def test_generic_l0_keeps_the_lowest_full_ranks_even_when_truncated_ranks_tie(monkeypatch):
    """The engine's generic L0 step (``_l0_rows``) packs ranks truncated beside block and position, as
    ``_l0_dropped`` does, and falls back to the full ranks on a tie. Same construction as above: a hash
    whose high bits are all zero makes every truncated rank tie, yet the kept rows follow the full ranks.
    Companion: partition order (what the truncated order alone gives on ties) is another result."""
    ids = np.repeat(np.arange(30, dtype=np.int64) + 5, 9)
    parts = np.tile(np.arange(9, dtype=np.int64), 30)
    starts = np.arange(30, dtype=np.int64) * 9
    sizes = np.full(30, 9, dtype=np.int64)
    secret = 12345
    engine = LocalEngine(threads=1)

    def kept(rank_of):
        dropped = set(_brute_force_dropped(ids, parts, 4, rank_of))
        return [r for r in range(len(ids)) if r not in dropped]

    assert sorted(engine._l0_rows(ids, parts, starts, sizes, 4, secret).tolist()) == kept(
        lambda i, p: keyed_hash(i, p, secret))

    def low_bits_only(i, p, s):  # 9 bits: all lost to the truncation
        return keyed_hash(i, p, s) >> np.uint64(64 - 9)

    monkeypatch.setattr(local, "keyed_hash", low_bits_only)
    expected = kept(lambda i, p: low_bits_only(i, p, secret))
    assert sorted(engine._l0_rows(ids, parts, starts, sizes, 4, secret).tolist()) == expected
    assert expected != sorted(np.flatnonzero(parts < 4).tolist())


@pytest.mark.parametrize("hash_bits", ["full", "coarse"])
def test_packed_counts_keep_the_lowest_full_ranks_when_truncated_ranks_tie(monkeypatch, hash_bits):
    """The packed count path keeps a subscriber's first L0 pairs in the order of ranks truncated into the
    packing, and ranks again on all 64 bits the subscribers whose L0-th and next pair tie there. A hash
    with only 2 high bits (and 24 low ones, below any truncation) makes such ties common, yet the counts are those of the lowest
    full ranks, as a loop over subscribers finds them. Companion: the truncated order alone (ties in
    partition order) gives other counts, so a path without the re-ranking would fail."""
    rng = np.random.default_rng(8)
    ids = np.repeat(np.arange(200, dtype=np.int64) + 1000, 12)
    parts = np.concatenate([rng.choice(40, 12, replace=False) for _ in range(200)]).astype(np.int64)
    l0, secret = 5, int(np.random.default_rng(3).integers(0, 2**63, dtype=np.int64))
    if hash_bits == "coarse":
        def coarse(i, p, s):
            h = keyed_hash(i, p, s)
            return (h & np.uint64(0xC000000000000000)) | (h & np.uint64(0xFFFFFF))  # below any truncation
        monkeypatch.setattr(packed, "keyed_hash", coarse)
    rank_of = packed.keyed_hash

    def loop_counts(order_key):
        counts = np.zeros(40, dtype=np.int64)
        for user in np.unique(ids):
            mine = parts[ids == user]
            for p in sorted(mine.tolist(), key=lambda p: order_key(user, p))[:l0]:
                counts[p] += 1
        return counts

    def full(user, p):
        return int(rank_of(np.array([user]), np.array([p]), secret)[0])

    layout = packed.PackedLayout.fit(int(ids.min()), int(ids.max()), 40)

    def truncated(user, p):
        return (full(user, p) >> (64 - layout.rank_bits), p)

    got = LocalEngine(rng=np.random.default_rng(3), threads=1).bounded_totals(
        Contributions(ids, parts, KeySet.from_values(p=list(range(40))), True, True),
        Bounds(max_partitions=l0, max_per_partition=1), dense=True).counts
    assert np.array_equal(got, loop_counts(full))
    if hash_bits == "coarse":
        assert not np.array_equal(loop_counts(truncated), loop_counts(full))


def _coarse_hash(i, p, s):
    """The keyed hash with only its 2 top bits and 24 low ones: truncated ranks tie often, full ones not."""
    h = keyed_hash(i, p, s)
    return (h & np.uint64(0xC000000000000000)) | (h & np.uint64(0xFFFFFF))


@pytest.mark.parametrize("lower, upper", [(0.0, 480.0), (-5.0, 100.0)], ids=["minutes", "negative"])
@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
@pytest.mark.parametrize("distinct", [False, True], ids=["rows", "distinct"])
@pytest.mark.parametrize("hash_bits", ["full", "coarse"])
def test_grid_values_carried_in_the_keys_equal_the_generic_steps_bit_for_bit(monkeypatch, lower, upper, chunked,
                                                                             distinct, hash_bits):
    """Values on a ValueGrid travel inside the packed keys with the pairs' truncated ranks (ValueLayout, no
    value array): the totals are still those of the three generic steps, bit for bit. With a coarse hash
    the truncated ranks tie at the L0 bound for some subscribers, who are ranked again on all 64 bits
    (checked: the re-ranking runs)."""
    monkeypatch.setattr(packed, "SUM_BLOCK_ROWS", 16)
    monkeypatch.setattr(local, "SHARD_MIN_ROWS", 1)
    reranked = []
    if hash_bits == "coarse":
        monkeypatch.setattr(packed, "keyed_hash", _coarse_hash)
        monkeypatch.setattr(local, "keyed_hash", _coarse_hash)
        exact = packed._l0_dropped
        monkeypatch.setattr(packed, "_l0_dropped", lambda offsets, *a: reranked.append(len(offsets)) or exact(offsets, *a))
    calls = []
    real = local.bounded_sums
    monkeypatch.setattr(local, "bounded_sums", lambda rows, layout, *a, **k: calls.append(layout) or real(rows, layout, *a, **k))
    grid = ValueGrid.spanning(lower, upper)
    c = _contributions(distinct=distinct)
    c.values = grid.quantise(lower + (upper - lower) * np.random.default_rng(5).random(len(c)) * 1.1)
    c.value_grid = grid
    bounds = Bounds(max_partitions=3, max_per_partition=4)
    generic = Engine.bounded_totals(LocalEngine(rng=np.random.default_rng(3), threads=1), c, bounds, dense=True,
                                    sum_unit=UNIT)  # one bounding secret for both
    data = _as_chunks(c, 29) if chunked else c
    if chunked:
        data.value_grid = grid
    fast = LocalEngine(rng=np.random.default_rng(3), threads=2).bounded_totals(data, bounds, dense=True, sum_unit=UNIT)
    assert calls and all(isinstance(layout, packed.ValueLayout) and layout.rank_bits > 0 for layout in calls)
    assert np.array_equal(generic.counts, fast.counts)
    assert np.array_equal(generic.sums, fast.sums)
    assert (hash_bits == "coarse") == bool(reranked)


def test_a_value_grid_makes_sums_independent_of_the_order_of_additions():
    """Why the grid: sums of grid values are exact, so any order gives the same bits; the same values off
    the grid (the companion) do not."""
    rng = np.random.default_rng(7)
    grid = ValueGrid.spanning(0.0, 480.0)
    raw = 480.0 * rng.random(5000) * 10.0 ** rng.integers(-3, 1, 5000)
    on_grid = grid.quantise(raw.copy())
    assert np.all((on_grid >= 0) & (on_grid <= 480)) and np.array_equal(on_grid * 2.0 ** 11, np.rint(on_grid * 2.0 ** 11))
    assert np.max(np.abs(on_grid - raw)) <= 2.0 ** -12
    order = rng.permutation(5000)
    assert float(np.cumsum(on_grid)[-1]) == float(np.cumsum(on_grid[order])[-1])
    assert float(np.cumsum(raw)[-1]) != float(np.cumsum(raw[order])[-1])
