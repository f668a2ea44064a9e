"""The engine interface: contribution bounding and aggregation.

A release is written once against this interface; an engine decides how the
two heavy steps run (numpy on one machine, Spark on a cluster...). The
release logic — validation, budget, noise, keys — never touches the data
frame library.

Data flows through two value objects:

:class:`Contributions`
    One row per raw record (event, stay x time bin, trip, subscriber) with
    its privacy id, its partition (an int64 code into a key domain) and,
    for sums, its (clamped) value.
:class:`PartitionTotals`
    Per partition: the count and, for sums, the sum, after each subscriber's
    contribution has been reduced to one (possibly bounded) row per partition.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from privagg.dp.bounds import Bounds
    from privagg.queries import KeySet


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
    """

    privacy_ids: np.ndarray
    partitions: np.ndarray
    domain: KeySet
    public: bool
    distinct: bool = True
    values: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.partitions)

    @property
    def n_partitions(self) -> int:
        return len(self.domain)


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
    except for the uniformly random choice of partitions kept by L0 bounding."""

    name: str = "engine"

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
