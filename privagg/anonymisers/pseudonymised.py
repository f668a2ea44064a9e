"""Pseudonymised microdata: every record kept, subscriber ids replaced by random pseudonyms.

The most common "anonymisation" of mobility data, and the target of the
unicity attack (de Montjoye et al. 2013): a handful of known places and
times single out almost everyone's whole trace. Optionally coarsened in
space (zone, district) and time (rounded down to a time bin).

Microdata is not a table of aggregates, so the result is a
:class:`PseudonymisedMicrodata` (a table plus its :class:`PrivacyRecord`)
rather than a :class:`~privagg.release.Release`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from privagg.anonymisers.base import Anonymiser
from privagg.errors import PrivaggInputError
from privagg.queries import LEVELS, parse_time_bin
from privagg.release import PrivacyRecord
from privagg.world import World

SOURCES = {
    "events": ("ts",),
    "stays": ("start", "end"),
    "trips": ("depart", "arrive"),
}


@dataclass(frozen=True)
class PseudonymisedMicrodata:
    """Pseudonymised records with their privacy record.

    Attributes
    ----------
    table
        ``pseudonym`` then the source's columns (locations at the chosen
        level, times floored to the chosen bin), sorted by pseudonym and time.
    privacy
        ``method="pseudonymised"``, ``formally_private=False``.
    """

    table: pd.DataFrame
    privacy: PrivacyRecord
    user_column: str = "pseudonym"

    def to_pandas(self) -> pd.DataFrame:
        """A copy of the table."""
        return self.table.copy()

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        return f"PseudonymisedMicrodata({len(self)} rows; {self.privacy.describe()})"


class Pseudonymised(Anonymiser):
    """Replace ``user_id`` by random pseudonyms in events, stays or trips.

    Parameters
    ----------
    source
        ``"events"``, ``"stays"`` or ``"trips"``.
    level
        ``"cell"`` keeps cell ids; ``"zone"`` or ``"district"`` replaces them by
        the area's id (column ``zone_id``/``district_id``; for trips
        ``origin_<level>``/``destination_<level>``).
    time_bin
        Floor timestamps to this bin (e.g. ``"1h"``); ``None`` keeps them.
    attributes
        User columns published with each record (e.g. ``("age_band",)``).
    seed
        Seed of the pseudonyms; ``None`` draws fresh ones from :mod:`secrets`.

    Examples
    --------
    >>> Pseudonymised(level="zone", time_bin="3h").name
    'pseudonymised(source=events, level=zone, time_bin=3h)'
    """

    method = "pseudonymised"
    formally_private = False

    def __init__(
        self,
        source: str = "events",
        level: str = "cell",
        time_bin: str | None = None,
        attributes: tuple[str, ...] = (),
        seed: int | None = None,
    ) -> None:
        if source not in SOURCES:
            raise PrivaggInputError(f"source={source!r} is unknown. Fix: use 'events', 'stays' or 'trips'.")
        if level not in LEVELS:
            raise PrivaggInputError(f"level={level!r} is not a spatial level. Fix: use 'cell', 'zone' or 'district'.")
        if time_bin is not None:
            parse_time_bin(time_bin)
        self.source = source
        self.level = level
        self.time_bin = time_bin
        self.attributes = tuple(attributes)
        self.seed = seed

    def params(self) -> dict[str, Any]:
        return {"source": self.source, "level": self.level, "time_bin": self.time_bin}

    def publication_model(self, *, l0: int, linf: int = 1, days: int | None = None, query: Any = None) -> Any:
        """Unavailable: pseudonymised microdata is not a table of counts.

        Raises
        ------
        PublicationModelUnavailable
            Always; attack the microdata directly (unicity, trajectory linking).
        """
        from privagg.anonymisers.base import PublicationModelUnavailable

        raise PublicationModelUnavailable(
            f"{self.name} publishes pseudonymised records, not a table of counts, so it has no publication model. "
            "Fix: attack its releases with privagg.attacks.unicity instead."
        )

    def release(self, world: World, query: Any = None) -> PseudonymisedMicrodata:  # type: ignore[override]
        """Pseudonymise the consenting subscribers' ``source`` table.

        ``query`` is accepted for the common interface; its window
        (``start``/``end``), when set, restricts the records.
        """
        world = world.opted_in()
        table = getattr(world, self.source).copy()
        time_cols = SOURCES[self.source]
        start, end = getattr(query, "start", None), getattr(query, "end", None)
        if start is not None:
            table = table.loc[table[time_cols[0]] >= pd.Timestamp(start)]
        if end is not None:
            table = table.loc[table[time_cols[0]] < pd.Timestamp(end)]
        missing = [c for c in self.attributes if c not in world.users.columns]
        if missing:
            raise PrivaggInputError(f"attributes {missing} are not user columns. Fix: use columns of world.users.")
        if self.attributes:
            table = table.merge(world.users[["user_id", *self.attributes]], on="user_id", how="left")
        if self.level != "cell":
            area = world.cells.set_index("cell_id")[LEVELS[self.level]]
            cell_cols = ["cell_id"] if self.source != "trips" else ["origin_cell", "destination_cell"]
            for col in cell_cols:
                new = LEVELS[self.level] if col == "cell_id" else col.replace("cell", self.level)
                position = table.columns.get_loc(col)
                values = area.reindex(table[col].to_numpy()).to_numpy()
                table = table.drop(columns=col)
                table.insert(position, new, values)
        if self.time_bin is not None:
            step = pd.Timedelta(self.time_bin)
            for col in time_cols:
                table[col] = pd.to_datetime(table[col]).dt.floor(step)
        rng = np.random.default_rng(self.seed if self.seed is not None else secrets.randbits(128))
        ids = world.users["user_id"].to_numpy()
        pseudonyms = pd.Series(rng.permutation(len(ids)) + 1, index=ids)
        table.insert(0, "pseudonym", pseudonyms.reindex(table["user_id"].to_numpy()).to_numpy())
        table = table.drop(columns="user_id").sort_values(["pseudonym", time_cols[0]], kind="stable")
        record = PrivacyRecord(
            statistic=f"{self.source} microdata",
            method="pseudonymised",
            privacy_unit="one subscriber (user_id)",
            formally_private=False,
            parameters={**self.params(), "attributes": list(self.attributes)},
            notes=(
                "Every record is published; only the subscriber id is replaced by a random pseudonym.",
                "No formal guarantee: a few known places and times single out most traces (unicity).",
            ),
        )
        return PseudonymisedMicrodata(table.reset_index(drop=True), record)
