"""The engine interface: contribution bounding and aggregation.

A release is written once against this interface; an engine decides how the
two heavy steps run (numpy on one machine, Spark on a cluster...). The
release logic — validation, budget, noise, keys — never touches the data
frame library: it hands contributions to :meth:`Engine.bounded_totals` and
gets per-partition totals back.

Data flows through these value objects:

:class:`Contributions`
    One row per raw record (event, stay x time bin, trip, subscriber) with
    its privacy id, its partition (an int64 code into a key domain) and,
    for sums, its (clamped) value.
:class:`ContributionChunks`
    The same for a large input, built on demand one block of input rows at a
    time, so that an engine can build and reduce blocks in parallel without
    the full-length arrays ever existing.
:class:`PartitionTotals`
    Per partition: the count and, for sums, the sum, after each subscriber's
    contribution has been reduced to one (possibly bounded) row per partition.
"""

from __future__ import annotations

import math
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from privagg.dp.bounds import Bounds
    from privagg.queries import KeySet


VALUE_GRID_BITS = 20  # grid steps up to the largest |value|: 2**-20 of it, far below any sum unit (2**-10 of it)


@dataclass(frozen=True)
class ValueGrid:
    """The fixed-point grid that clamped values of row-level sums are rounded to.

    Values are ``k * 2**-fraction_bits`` for integers ``k_lo <= k <= k_lo + steps``,
    inside the clamping range. A value then carries at most
    :data:`VALUE_GRID_BITS` significant bits, so every partial sum of up to
    2**33 of them is exact in float64: a (subscriber, partition)'s sum is the
    same bit for bit in whatever order an engine adds its rows, and an engine
    may carry values as integer steps (packed into its sort keys) instead of
    floats.

    Examples
    --------
    >>> grid = ValueGrid.spanning(0.0, 480.0)
    >>> grid.fraction_bits, grid.steps
    (11, 983040)
    >>> grid.quantise(np.array([-3.0, 0.123456789, 600.0])).tolist()
    [0.0, 0.12353515625, 480.0]
    """

    k_lo: int
    fraction_bits: int
    steps: int

    @classmethod
    def spanning(cls, lower: float, upper: float) -> ValueGrid:
        """The grid for values clamped to ``[lower, upper]``: the finest power-of-two step with at most
        ``2**VALUE_GRID_BITS`` steps up to ``max(|lower|, |upper|)``, its ends rounded inwards."""
        largest = max(abs(lower), abs(upper), 2.0 ** -1000)
        fraction_bits = VALUE_GRID_BITS - math.ceil(math.log2(largest))
        scale = 2.0 ** fraction_bits
        k_lo, k_hi = math.ceil(lower * scale), math.floor(upper * scale)
        return cls(k_lo, fraction_bits, max(k_hi - k_lo, 0))

    @property
    def lower(self) -> float:
        """The smallest value on the grid (>= the clamping range's lower end)."""
        return math.ldexp(self.k_lo, -self.fraction_bits)

    @property
    def bits(self) -> int:
        """Bits a value's step ``k - k_lo`` takes."""
        return max(self.steps.bit_length(), 1)

    def quantise(self, values: np.ndarray) -> np.ndarray:
        """``values`` clamped into the grid's range and rounded to its nearest step, in place (float64)."""
        values *= 2.0 ** self.fraction_bits  # exact: a power-of-two scale
        np.rint(values, out=values)
        np.maximum(values, self.k_lo, out=values)
        np.minimum(values, self.k_lo + self.steps, out=values)
        values *= 2.0 ** -self.fraction_bits
        return values

    def steps_of(self, values: np.ndarray) -> np.ndarray:
        """int64 step ``k - k_lo`` of each value (values on the grid)."""
        k = (values * 2.0 ** self.fraction_bits).astype(np.int64)
        if self.k_lo:
            k -= self.k_lo
        return k


@dataclass
class Contributions:
    """Raw per-record contributions, before bounding.

    Attributes
    ----------
    privacy_ids
        int64 privacy id (``user_id``) of each row.
    partitions
        int64 code of each row's key in ``domain`` (``0 <= code < len(domain)``).
    domain
        The key domain codes refer to: the public :class:`KeySet`, or, without
        one, the cross product of the values observed in the data (which is
        never released as such; only partition selection can reveal keys).
    public
        Whether ``domain`` is a public KeySet.
    distinct
        True when a subscriber counts at most once per partition (footfall,
        subscriber counts); False when rows are counted (visits, trips).
    values
        float64 value of each row for sums (dwell minutes, arpu), else None.
    unique_ids
        True when every privacy id occurs at most once (one row per subscriber, as in
        per-subscriber statistics); engines may then skip grouping rows by subscriber.
    value_grid
        The :class:`ValueGrid` every value lies on, when the statistic rounds its values to one.
    """

    privacy_ids: np.ndarray
    partitions: np.ndarray
    domain: KeySet
    public: bool
    distinct: bool = True
    values: np.ndarray | None = None
    unique_ids: bool = False
    value_grid: ValueGrid | None = None

    def __len__(self) -> int:
        return len(self.partitions)

    @property
    def n_partitions(self) -> int:
        return len(self.domain)


@dataclass
class ContributionChunks:
    """Contributions of a large input, built one block of input rows at a time.

    A subscriber's rows may fall in several chunks. ``chunk(i)`` must be safe
    to call from several threads at once.

    Attributes
    ----------
    n_chunks
        Number of chunks.
    chunk
        ``chunk(i)``: the :class:`Contributions` of block ``i`` (``0 <= i < n_chunks``).
    domain, public, distinct
        As in :class:`Contributions`, shared by every chunk.
    n_rows
        Rows of the input table; a chunk's contributions usually number at most
        its block's rows (an engine must not rely on it).
    id_range
        ``(lo, hi)``: every privacy id lies in ``[lo, hi]``.
    id_sample
        Privacy ids of a sample of the rows, for balancing work across
        threads; results never depend on it.
    has_values
        Whether chunks carry values (sums); otherwise their ``values`` are None.
    chunk_rows
        Input rows per chunk, when every chunk holds at most that many
        contributions (one per input row): chunk ``i``'s ``j``-th contribution
        is then row ``i * chunk_rows + j`` of the whole input, in input order.
    unique_ids
        As in :class:`Contributions`, over all chunks together.
    value_grid
        As in :class:`Contributions`, every chunk's.
    """

    n_chunks: int
    chunk: Callable[[int], Contributions]
    domain: KeySet
    public: bool
    distinct: bool
    n_rows: int
    id_range: tuple[int, int]
    id_sample: np.ndarray
    has_values: bool = False
    chunk_rows: int | None = None
    unique_ids: bool = False
    value_grid: ValueGrid | None = None

    @property
    def n_partitions(self) -> int:
        return len(self.domain)

    def materialize(self) -> Contributions:
        """All chunks as one :class:`Contributions` (full-length arrays)."""
        parts = [self.chunk(i) for i in range(self.n_chunks)]
        ids = np.concatenate([p.privacy_ids for p in parts])
        codes = np.concatenate([p.partitions for p in parts])
        values = np.concatenate([p.values for p in parts]) if self.has_values else None
        return Contributions(ids, codes, self.domain, self.public, self.distinct, values,
                             value_grid=self.value_grid)


@dataclass
class UserPartitions:
    """One row per (privacy id, partition): the subscriber's count and sum there.

    ``privacy_ids`` is sorted (ascending), which bounding relies on.
    """

    privacy_ids: np.ndarray
    partitions: np.ndarray
    counts: np.ndarray
    sums: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.partitions)


@dataclass
class PartitionTotals:
    """Aggregates per partition code: dense over the domain (``codes is None``) or sparse."""

    counts: np.ndarray
    sums: np.ndarray | None = None
    codes: np.ndarray | None = None


class Engine(ABC):
    """Runs the data-heavy steps of a release. Implementations must be deterministic
    except for the uniformly random choice of partitions kept by L0 bounding.

    Two paths. For pandas inputs the release builds numpy :class:`Contributions`
    and hands them to :meth:`bounded_totals` (or the three steps it chains).
    An engine with its own frame type (Spark) says so with :meth:`reads`; the
    release then hands it the whole data-heavy part, in this order:

    1. ``resolve(data, query, table=, users=, cells=, start=, end=, needed_user_columns=)``:
       check columns, drop subscribers without consent, keep what is read;
    2. ``contributions(inputs, keys, define, has_values=)``: map rows to partition codes
       with ``define(table, users, keys)``, the statistic's definition on one pandas batch
       (the same function the local path runs, so both answer the same question);
    3. ``profile(contributions, distinct=)`` when bounds are chosen privately
       (per-subscriber profiles for :func:`privagg.dp.bound_choice.choose_bounds`);
    4. ``bounded_totals(contributions, bounds, dense=, sum_unit=)``: bounding and
       aggregation, no noise;
    5. the release charges the budget, then ``draw_noise(totals, count, total, public=)``
       draws every noisy value once and returns them collected
       (codes, noisy counts, noisy sums).

    Examples
    --------
    >>> import privagg as pa
    >>> isinstance(pa.LocalEngine(), pa.Engine)   # every engine offers the same steps to the release functions
    True
    """

    name: str = "engine"

    def reads(self, data: object) -> bool:
        """Whether ``data`` is this engine's own frame type, so that the engine reads it (the native path
        above) instead of the release building numpy contributions. The default: never."""
        return False

    def bounded_totals(self, contributions: Contributions | ContributionChunks, bounds: Bounds | None, *,
                       dense: bool, sum_unit: float | None = None) -> PartitionTotals:
        """Per-partition totals of the bounded contributions: the whole data-heavy part of a release.

        Parameters
        ----------
        contributions
            What every subscriber contributed, whole or in chunks.
        bounds
            Contribution bounds; ``None`` aggregates unbounded (exact statistics, never released).
        dense
            Totals for every code of the domain (public keys), else only observed codes.
        sum_unit
            When given, bounded per-subscriber sums are rounded to integer multiples of it
            before aggregation (so the sum's noise can be integer-valued).

        This default chains :meth:`per_user_partition`, :meth:`bound_contributions`
        and :meth:`aggregate`; engines may fuse them.
        """
        if isinstance(contributions, ContributionChunks):
            contributions = contributions.materialize()
        n_partitions = contributions.n_partitions
        pairs = self.per_user_partition(contributions)
        if bounds is not None:
            pairs = self.bound_contributions(pairs, bounds)
        if sum_unit is not None and pairs.sums is not None:
            pairs.sums = np.rint(pairs.sums / sum_unit)
        return self.aggregate(pairs, n_partitions, dense=dense)

    def bounding_secret(self) -> int:
        """A fresh 64-bit key for the choice of partitions L0 bounding keeps."""
        return secrets.randbits(64)

    @abstractmethod
    def per_user_partition(self, contributions: Contributions) -> UserPartitions:
        """Reduce raw rows to one row per (privacy id, partition): count (1 when distinct) and sum."""

    @abstractmethod
    def bound_contributions(self, pairs: UserPartitions, bounds: Bounds) -> UserPartitions:
        """Apply L0 (a uniformly random subset of at most ``max_partitions`` partitions per
        privacy id), Linf (counts capped at ``max_per_partition``; sums scaled down by the
        same factor so a subscriber's mean is kept) — the values themselves are clamped
        when contributions are built."""

    @abstractmethod
    def aggregate(self, pairs: UserPartitions, n_partitions: int, *, dense: bool) -> PartitionTotals:
        """Sum counts (and sums) per partition: dense over ``range(n_partitions)`` or
        sparse (only partitions with at least one contributing row)."""
