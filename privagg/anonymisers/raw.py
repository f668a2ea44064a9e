"""Raw aggregates: the exact answer, published as is (no protection at all).

This is the reference point of every comparison: what a release would be
with no anonymisation, only aggregation. It is *not* private; "it is only
counts" is the claim the attacks in :mod:`privagg.attacks` test.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from privagg.anonymisers.base import Anonymiser, check_game
from privagg.anonymisers.models import Exact
from privagg.dp.units import PrivacyUnit
from privagg.exact import exact_aggregate
from privagg.queries import Query
from privagg.release import PrivacyRecord, Release
from privagg.releases.inputs import window
from privagg.world import World

COUNT_STATISTICS = ("footfall", "visits", "dwell_times", "od_flows", "segment_counts", "micro_segments")


def privacy_unit(world: Any, query: Query) -> str:
    """``"one subscriber (user_id) over <start> to <end>"`` for the release window of ``query``."""
    meta = getattr(world, "meta", {}) or {}
    try:
        start, end = window(query, query.keys, meta.get("start"), meta.get("end"))
    except Exception:  # per-user statistics without a window
        return "one subscriber (user_id) over the release window"
    return PrivacyUnit().describe(start, end)


def baseline_record(
    world: Any, query: Query, method: str, parameters: dict[str, Any], notes: tuple[str, ...] = (), **fields: Any
) -> PrivacyRecord:
    """The :class:`PrivacyRecord` of a method with no formal guarantee (``formally_private=False``)."""
    return PrivacyRecord(
        statistic=query.statistic,
        method=method,
        privacy_unit=privacy_unit(world, query),
        formally_private=False,
        parameters={"query": query.describe(), **parameters},
        notes=notes,
        **fields,
    )


def exact_release(world: World, query: Query, include_empty: bool = False) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Exact aggregate of ``query`` and its key columns."""
    table = exact_aggregate(world, query, include_empty=include_empty)
    keys = tuple(c for c in table.columns if c != "value")
    return table, keys


class Raw(Anonymiser):
    """Publish the exact aggregate.

    Parameters
    ----------
    include_empty
        With a public key domain on the query, also publish its empty keys
        (value 0). By default only non-empty keys are published, as
        operators do, which itself reveals where nobody was.

    Examples
    --------
    >>> from privagg.queries import Query
    >>> Raw().name
    'raw'
    """

    method = "raw"
    formally_private = False
    #: The same World and Query always give the same release (no randomness).
    deterministic = True

    def __init__(self, include_empty: bool = False) -> None:
        self.include_empty = bool(include_empty)

    def params(self) -> dict[str, Any]:
        return {"include_empty": self.include_empty} if self.include_empty else {}

    def publication_model(self, *, l0: int, linf: int = 1, days: int | None = None, query: Any = None) -> Exact:
        """Exact counts, published as they are (no guarantee: ``loss`` is None)."""
        check_game(l0, linf, days)
        return Exact()

    def release(self, world: World, query: Query) -> Release:
        table, keys = exact_release(world, query, self.include_empty)
        record = baseline_record(
            world, query, "raw", self.params(),
            notes=("Exact aggregates of consenting subscribers, published without protection.",),
        )
        return Release(table, keys, record)
