"""Contribution bounds: how much one subscriber may contribute to a release.

Sensitivity comes from these bounds, never from the data (privacy rule 2).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from privagg.errors import PrivaggInputError


@dataclass(frozen=True)
class Bounds:
    """Per-subscriber contribution bounds over the release window.

    Parameters
    ----------
    max_partitions
        L0: the most keys (partitions) one subscriber contributes to. A
        subscriber present in more keeps a uniformly random subset of this
        many (not the first ones).
    max_per_partition
        Linf: the most one subscriber adds to one key (e.g. visits or trips
        counted per key). Distinct-subscriber statistics (footfall) use 1.
    lower, upper
        Clamping range of summed values (dwell minutes, ``arpu``...). ``None``
        means the statistic's default (e.g. the last dwell edge).

    Sensitivities of a count vector: ``l1 = max_partitions * max_per_partition``
    and ``l2 = sqrt(max_partitions) * max_per_partition``.
    """

    max_partitions: int = 24
    max_per_partition: int = 1
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_partitions", "max_per_partition"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int,)) and not (
                isinstance(value, float) and value.is_integer()
            ):
                raise PrivaggInputError(
                    f"bounds.{name}={value!r} is not an integer. Fix: pass a whole number >= 1, e.g. Bounds({name}=24)."
                )
            if value < 1:
                raise PrivaggInputError(
                    f"bounds.{name}={value!r} is below 1. Fix: pass a whole number >= 1, e.g. Bounds({name}=24)."
                )
            object.__setattr__(self, name, int(value))
        for name in ("lower", "upper"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
                raise PrivaggInputError(f"bounds.{name}={value!r} is not a finite number. Fix: pass a finite number or None.")
        if self.lower is not None and self.upper is not None and self.lower >= self.upper:
            raise PrivaggInputError(
                f"bounds.lower={self.lower!r} is not below bounds.upper={self.upper!r}. Fix: pass lower < upper."
            )

    @property
    def l1_sensitivity(self) -> int:
        """l1 sensitivity of a count vector under these bounds: L0 * Linf."""
        return self.max_partitions * self.max_per_partition

    @property
    def l2_sensitivity(self) -> float:
        """l2 sensitivity of a count vector under these bounds: sqrt(L0) * Linf."""
        return math.sqrt(self.max_partitions) * self.max_per_partition

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_bounds(bounds: Any, default: Bounds) -> Bounds:
    """``bounds`` as a :class:`Bounds` (``None`` -> ``default``; dicts accepted)."""
    if bounds is None:
        return default
    if isinstance(bounds, Bounds):
        return bounds
    if isinstance(bounds, dict):
        try:
            return Bounds(**bounds)
        except TypeError as exc:
            raise PrivaggInputError(f"bounds={bounds!r}: {exc}. Fix: use keys max_partitions, max_per_partition, lower, upper.") from None
    raise PrivaggInputError(
        f"bounds={bounds!r} is not a Bounds. Fix: pass privagg.Bounds(max_partitions=..., max_per_partition=...)."
    )
