"""Small-count suppression, optionally with rounding: what footfall products do today.

Operators' footfall services publish counts per area and hour but hide
those below a threshold ``k`` (Orange Flux Vision uses 20) and sometimes
round the rest. Suppressed keys stay in the table with ``value`` NaN, so
the release shows *that* a count was hidden, as the products' tables do.

Neither step gives a formal guarantee: above the threshold counts are
exact, so two releases that differ by one subscriber reveal them
(:func:`privagg.attacks.differencing.differencing`), and the pattern of
suppressed cells itself leaks when a count crosses ``k``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from privagg.anonymisers.base import Anonymiser, check_game
from privagg.anonymisers.models import Suppressed
from privagg.anonymisers.raw import COUNT_STATISTICS, baseline_record, exact_release
from privagg.errors import PrivaggInputError
from privagg.queries import Query
from privagg.release import Release
from privagg.world import World


def _check_positive_int(name: str, value: Any, example: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise PrivaggInputError(f"{name}={value!r} is not a whole number >= 1. Fix: pass e.g. {name}={example}.")
    return int(value)


def suppress_table(values: np.ndarray, k: int, rounding: int | None) -> np.ndarray:
    """Counts below ``k`` become NaN; the rest are rounded to the nearest multiple of ``rounding``.

    Kept for callers written before the publication models; it is
    :class:`~privagg.anonymisers.models.Suppressed` (the one implementation).
    """
    return Suppressed(k=k, rounding=rounding)(values)


def check_count_statistic(query: Query, method: str) -> None:
    if query.statistic not in COUNT_STATISTICS:
        raise PrivaggInputError(
            f"{method} applies to counts, not to statistic={query.statistic!r}. "
            f"Fix: use one of {', '.join(COUNT_STATISTICS)}."
        )


class Suppression(Anonymiser):
    """Publish exact counts, hiding those below ``k``, optionally rounded.

    Parameters
    ----------
    k
        Counts strictly below ``k`` are suppressed (``value`` NaN, key kept).
    rounding
        Round published counts to the nearest multiple of this base (e.g. 5);
        ``None`` publishes them exactly.
    include_empty
        With a public key domain on the query, also list its empty keys
        (suppressed like any count below ``k``).

    Examples
    --------
    >>> Suppression(k=10, rounding=5).name
    'suppression(k=10, rounding=5)'
    """

    method = "suppression"
    formally_private = False
    #: The same World and Query always give the same release (no randomness).
    deterministic = True

    def __init__(self, k: int = 10, rounding: int | None = None, include_empty: bool = False) -> None:
        self.k = _check_positive_int("k", k, 10)
        self.rounding = None if rounding is None else _check_positive_int("rounding", rounding, 5)
        self.include_empty = bool(include_empty)

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "rounding": self.rounding}

    def publication_model(self, *, l0: int, linf: int = 1, days: int | None = None, query: Any = None) -> Suppressed:
        """Exact counts with those below ``k`` suppressed and the rest rounded, as :meth:`release` publishes them."""
        check_game(l0, linf, days)
        return Suppressed(k=self.k, rounding=self.rounding)

    def release(self, world: World, query: Query) -> Release:
        check_count_statistic(query, "suppression")
        table, keys = exact_release(world, query, self.include_empty)
        table["value"] = self.publication_model(l0=1)(table["value"].to_numpy())
        notes = [f"Counts below k={self.k} are suppressed: value NaN, key kept."]
        if self.rounding:
            notes.append(f"Published counts are rounded to the nearest multiple of {self.rounding}.")
        notes.append("No formal guarantee: counts at or above k are exact, so differencing reveals individuals.")
        return Release(table, keys, baseline_record(world, query, "suppression", self.params(), notes=tuple(notes)))
