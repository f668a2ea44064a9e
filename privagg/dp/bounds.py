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
    max_total
        C: the most records (visits, trips, presences) one subscriber adds
        over all keys together. A subscriber with more keeps at most
        ``max_per_partition`` records per key and then a uniformly random C of
        those (ranked by a keyed hash under a fresh secret). ``None``: no
        total bound beyond ``max_partitions * max_per_partition``.

    Notes
    -----
    Sensitivities of a count vector (one subscriber's largest possible
    contribution vector): l1 is ``min(C, L0 * Linf)``; l2 is the norm of
    q keys at Linf and one key holding the remainder, with
    ``q = min(L0, C // Linf)`` (``sqrt(L0) * Linf`` without C).

    Examples
    --------
    >>> Bounds(max_partitions=24).l1_sensitivity
    24
    >>> Bounds(max_partitions=10, max_per_partition=4, max_total=10).l2_sensitivity
    6.0
    """

    max_partitions: int = 24
    max_per_partition: int = 1
    lower: float | None = None
    upper: float | None = None
    max_total: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_partitions", "max_per_partition", "max_total"):
            value = getattr(self, name)
            if value is None and name == "max_total":
                continue
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
    def total(self) -> int:
        """The most one subscriber adds over all keys: ``min(C, L0 * Linf)``."""
        box = self.max_partitions * self.max_per_partition
        return box if self.max_total is None else min(box, self.max_total)

    @property
    def l1_sensitivity(self) -> int:
        """l1 sensitivity of a count vector under these bounds: ``min(C, L0 * Linf)``."""
        return self.total

    @property
    def l2_sensitivity(self) -> float:
        """l2 sensitivity of a count vector: the largest norm of integer vectors with at most L0
        non-zero entries, each at most Linf, summing to at most C (full keys first, then the rest)."""
        linf = self.max_per_partition
        full = min(self.max_partitions, self.total // linf)
        rest = min(self.total - full * linf, linf) if full < self.max_partitions else 0
        return math.sqrt(full * linf * linf + rest * rest)

    @property
    def shape(self) -> str:
        """``"box"`` (L0 x Linf) or ``"total"`` (C binds: fewer than L0 * Linf records in all)."""
        return "box" if self.max_total is None or self.max_total >= self.max_partitions * self.max_per_partition else "total"

    def label(self) -> str:
        """Short form: ``L0=24``, ``L0=8xLinf=2``, ``C=28`` or ``C=28,Linf=4`` (a per-key cap below C).

        >>> Bounds(max_partitions=28, max_per_partition=4, max_total=28).label()
        'C=28,Linf=4'
        """
        if self.max_total is not None:
            cap = self.max_per_partition
            return f"C={self.max_total}" + ("" if cap >= self.max_total else f",Linf={cap}")
        return f"L0={self.max_partitions}" + ("" if self.max_per_partition == 1 else f"xLinf={self.max_per_partition}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BoundsWarning(UserWarning):
    """Hand-set contribution bounds drop a large share of the contributions (shown on screen only)."""


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
            raise PrivaggInputError(f"bounds={bounds!r}: {exc}. Fix: use keys max_partitions, max_per_partition, max_total, lower, upper.") from None
    raise PrivaggInputError(
        f"bounds={bounds!r} is not a Bounds. Fix: pass privagg.Bounds(max_partitions=..., max_per_partition=...)."
    )
