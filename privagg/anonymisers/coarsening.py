"""Spatial and temporal coarsening: publish at zone or district level, in longer time bins.

Generalisation is the other tool of today's products: instead of cells and
hours, zones and three-hour bins. It lowers unicity slowly (de Montjoye et
al. 2013) and gives no formal guarantee. Optionally combined with
small-count suppression, as products do.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from privagg.anonymisers.base import Anonymiser, check_game
from privagg.anonymisers.models import Exact, Suppressed
from privagg.anonymisers.raw import baseline_record, exact_release
from privagg.anonymisers.suppression import _check_positive_int, check_count_statistic
from privagg.errors import PrivaggInputError
from privagg.queries import LEVELS, Query, parse_time_bin
from privagg.release import Release
from privagg.releases.inputs import window
from privagg.world import World

ORDER = {"cell": 0, "zone": 1, "district": 2}


def coarsen_query(world: Any, query: Query, level: str | None, time_bin: str | None) -> Query:
    """``query`` at a coarser ``level`` and ``time_bin`` (None keeps the query's), over the same window.

    The public key domain is dropped (it is defined at the finer level);
    the window it implied is kept explicitly.
    """
    new_level = query.level if level is None else level
    if new_level is not None and new_level not in LEVELS:
        raise PrivaggInputError(f"level={level!r} is not a spatial level. Fix: use 'zone' or 'district'.")
    if query.level is not None and new_level is not None and ORDER[new_level] < ORDER[query.level]:
        raise PrivaggInputError(
            f"level={level!r} is finer than the query's level {query.level!r}. Fix: coarsen to a larger area."
        )
    new_bin = query.time_bin if time_bin is None else time_bin
    if query.time_bin is not None and new_bin is not None:
        fine, coarse = parse_time_bin(query.time_bin), parse_time_bin(new_bin, "time_bin")
        if coarse < fine or coarse.value % fine.value:
            raise PrivaggInputError(
                f"time_bin={time_bin!r} is not a multiple of the query's time bin {query.time_bin!r}. "
                "Fix: pass a coarser bin that the query's bin divides, e.g. '3h' for '1h'."
            )
    elif query.time_bin is None and time_bin is not None:
        raise PrivaggInputError(
            f"time_bin={time_bin!r}: the query has no time bins (one bin covers its window). Fix: pass time_bin=None."
        )
    meta = getattr(world, "meta", {}) or {}
    start, end = query.start, query.end
    if query.time_bin is not None:
        start, end = window(query, query.keys, meta.get("start"), meta.get("end"))
        if new_bin is not None:
            step = pd.Timedelta(new_bin)
            start, end = start.floor(step), end.ceil(step)
    return replace(query, level=new_level, time_bin=new_bin, start=start, end=end, keys=None)


class Coarsening(Anonymiser):
    """Answer the query at a coarser spatial level and/or time bin.

    Parameters
    ----------
    level
        ``"zone"`` or ``"district"`` (or ``None`` to keep the query's level).
    time_bin
        A longer time bin, e.g. ``"3h"`` (or ``None`` to keep the query's).
    k
        Optional small-count suppression threshold applied after coarsening.

    Examples
    --------
    >>> Coarsening(level="district", time_bin="3h").name
    'coarsening(level=district, time_bin=3h)'
    """

    method = "coarsening"
    formally_private = False
    #: The same World and Query always give the same release (no randomness).
    deterministic = True

    def __init__(self, level: str | None = "zone", time_bin: str | None = "3h", k: int | None = None) -> None:
        if level is not None and level not in LEVELS:
            raise PrivaggInputError(f"level={level!r} is not a spatial level. Fix: use 'zone' or 'district'.")
        if time_bin is not None:
            parse_time_bin(time_bin)
        self.level = level
        self.time_bin = time_bin
        self.k = None if k is None else _check_positive_int("k", k, 10)

    def params(self) -> dict[str, Any]:
        return {"level": self.level, "time_bin": self.time_bin, "k": self.k}

    def published_query(self, world: World, query: Query) -> Query:
        """The query actually answered (public: the release's keys are at its level and bin)."""
        return coarsen_query(world, query, self.level, self.time_bin)

    def publication_model(self, *, l0: int, linf: int = 1, days: int | None = None, query: Any = None) -> Exact | Suppressed:
        """The model of the coarser table: exact counts, below ``k`` suppressed when ``k`` is set.

        The caller computes the exact counts at :meth:`published_query`'s
        level and bin (public), and ``l0`` counts keys of that coarser table.
        """
        check_game(l0, linf, days)
        return Exact() if self.k is None else Suppressed(k=self.k)

    def release(self, world: World, query: Query) -> Release:
        coarse = self.published_query(world, query)
        table, keys = exact_release(world, coarse)
        notes = [f"Released as '{coarse.describe()}' instead of '{query.describe()}'."]
        if self.k is not None:
            check_count_statistic(query, "coarsening with k")
            table["value"] = self.publication_model(l0=1)(table["value"].to_numpy())
            notes.append(f"Counts below k={self.k} are suppressed: value NaN, key kept.")
        notes.append("No formal guarantee: coarse counts are exact.")
        return Release(table, keys, baseline_record(world, coarse, "coarsening", self.params(), notes=tuple(notes)))
