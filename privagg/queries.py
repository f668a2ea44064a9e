"""Queries (what is asked) and key sets (which keys are released).

A :class:`Query` says declaratively what a release computes: the statistic,
the spatial level, the time bin, the window and the grouping. It does not say
how the answer is protected; that is the anonymiser's job, so the harness can
put any anonymiser under any query.

A :class:`KeySet` is a public key domain, like Tumult Analytics' KeySet:
every key in it is released, empty ones included, so which keys exist never
leaks. Build one from the World's cells and a time range with
:meth:`KeySet.areas_by_time`, from lists of values with
:meth:`KeySet.from_values`, and combine them with ``*`` (cross product).

Definitions (shared by exact and private releases)
--------------------------------------------------
Time bins are half-open intervals ``[t, t + time_bin)`` aligned to midnight
(``time_bin`` divides a day: 15min, 30min, 1h, 2h, 3h, 4h, 6h, 8h, 12h, 1D).
The key column ``time`` holds the bin's start. Only data inside the window
``[start, end)`` counts; stays are clipped to it.

footfall
    Distinct subscribers present per (area, time bin). From stays, a stay
    ``[start, end)`` makes its subscriber present in every bin it overlaps
    (a zero-length stay: the bin holding ``start``). From events, a subscriber
    is present in the bin holding each event's ``ts``.
visits
    Number of stays *starting* in (area, time bin). A stay is one visit even if
    it spans several bins; consecutive stays in two cells of one zone are two
    visits at zone level.
dwell_times
    Histogram of stay durations (minutes, ``end - start`` after clipping to the
    window, then clamped to the last edge) per area and dwell bin; the key
    column ``dwell_min`` is the bin's lower edge in minutes. Stays are assigned
    to the area (and, with a time bin, the bin) where they start.
dwell_mean
    Mean clamped stay duration (minutes) per area: noisy clamped sum divided by
    noisy count of stays.
od_flows
    Number of trips per (origin area, destination area, time bin of
    ``depart``); key columns ``origin_<level>``, ``destination_<level>``, ``time``.
segment_counts
    Distinct subscribers per (segment columns, area, time bin): footfall
    crossbroken by user columns (``age_band``, ``gender``, ``contract``,
    ``tag_*``...). With ``level=None`` and ``time_bin=None``: subscribers per segment.
segment_mean
    Mean of a clamped numeric user column (e.g. ``arpu``) per segment
    (noisy clamped sum / noisy count of subscribers). With a ``level``, the
    area is the subscriber's *home* area (``home_cell`` mapped to the level).
micro_segments
    Subscribers per combination of boolean ``tag_*`` columns (all of them
    unless ``by`` names some); with a ``level``, per home area too.

Every statistic counts opted-in subscribers only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from privagg.errors import PrivaggInputError

LEVELS: dict[str, str] = {"cell": "cell_id", "zone": "zone_id", "district": "district_id"}
TIME_COLUMN = "time"
DAY = pd.Timedelta(days=1)
# Per-statistic defaults of (level, time_bin) when a Query leaves them "auto".
DEFAULTS: dict[str, tuple[str | None, str | None]] = {
    "footfall": ("cell", "1h"),
    "visits": ("cell", "1h"),
    "dwell_times": ("cell", None),
    "dwell_mean": ("cell", None),
    "od_flows": ("zone", "1h"),
    "segment_counts": ("zone", "1D"),
    "segment_mean": (None, None),
    "micro_segments": (None, None),
}
# Statistics with one row per subscriber (its user attributes); ``level`` there means the home area.
PER_USER_STATISTICS = ("segment_mean", "micro_segments")
STATISTICS = (
    "footfall", "visits", "dwell_times", "dwell_mean", "od_flows",
    "segment_counts", "segment_mean", "micro_segments",
)


# --------------------------------------------------------------------------- helpers
def area_column(level: str) -> str:
    """Key column of an area level: ``cell`` -> ``cell_id``, ``zone`` -> ``zone_id``..."""
    check_level(level)
    return LEVELS[level]


def check_level(level: Any, parameter: str = "level") -> str:
    if level not in LEVELS:
        raise PrivaggInputError(
            f"{parameter}={level!r} is not a spatial level. Fix: use one of {', '.join(map(repr, LEVELS))}."
        )
    return level


def parse_time_bin(time_bin: Any, parameter: str = "time_bin") -> pd.Timedelta:
    """Parse a time bin ("15min".."1D"); it must divide a day and be at least 15 minutes."""
    try:
        delta = pd.Timedelta(time_bin)
    except (ValueError, TypeError):
        delta = None
    if (
        delta is None or pd.isna(delta) or delta < pd.Timedelta(minutes=15) or delta > DAY
        or DAY.value % delta.value != 0
    ):
        raise PrivaggInputError(
            f"{parameter}={time_bin!r} is not a supported time bin. "
            "Fix: use a duration from 15 minutes to 1 day that divides a day, e.g. '15min', '30min', '1h', '6h', '1D'."
        )
    return delta


def parse_timestamp(value: Any, parameter: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        ts = None
    if ts is None or pd.isna(ts) or ts.tz is not None:
        raise PrivaggInputError(
            f"{parameter}={value!r} is not a timezone-naive timestamp. Fix: pass e.g. '2026-01-05' or pandas.Timestamp('2026-01-05 00:00')."
        )
    return ts


def parse_window(start: Any, end: Any, time_bin: pd.Timedelta | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Validate a release window ``[start, end)``, aligned to ``time_bin`` when given."""
    s = parse_timestamp(start, "start")
    e = parse_timestamp(end, "end")
    if e <= s:
        raise PrivaggInputError(f"end={e} is not after start={s}. Fix: pass start < end.")
    if time_bin is not None:
        for name, ts in (("start", s), ("end", e)):
            if ts.value % time_bin.value != 0:
                raise PrivaggInputError(
                    f"{name}={ts} is not aligned to time_bin={_fmt_td(time_bin)}. "
                    f"Fix: use {ts.floor(time_bin)} or {ts.ceil(time_bin)}."
                )
    return s, e


def _fmt_td(td: pd.Timedelta) -> str:
    minutes = int(td.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}D"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}min"


def time_bins(start: Any, end: Any, time_bin: Any) -> pd.DatetimeIndex:
    """Start timestamps of the bins covering ``[start, end)``."""
    tb = parse_time_bin(time_bin)
    s, e = parse_window(start, end, tb)
    return pd.date_range(s, e, freq=tb, inclusive="left")


# Key sets live in their own module; it reads the vocabulary above, so it is imported here, after it.
from privagg.keysets import KeySet  # noqa: E402


@dataclass(frozen=True)
class Query:
    """What a release computes (not how it is protected).

    Parameters
    ----------
    statistic
        One of ``footfall``, ``visits``, ``dwell_times``, ``dwell_mean``,
        ``od_flows``, ``segment_counts``, ``segment_mean``, ``micro_segments``
        (see the module docstring for the exact definitions).
    level
        Spatial level ``cell``, ``zone`` or ``district``; ``None`` only for
        segment statistics without an area.
    time_bin
        Width of the time bins (``"15min"`` .. ``"1D"``); ``None`` for one
        bin covering the whole window (dwell and segment statistics).
    start, end
        The release window ``[start, end)``; ``None`` means the World's window.
        This is also the privacy unit's window.
    by
        User columns to crossbreak by (segment statistics), e.g.
        ``("age_band", "gender")`` or tag columns.
    source
        ``"stays"`` or ``"events"`` (footfall only).
    column
        Numeric user column whose mean ``segment_mean`` releases (e.g. ``"arpu"``).
    dwell_edges
        Public dwell-histogram bin edges in minutes, increasing, starting at 0;
        durations beyond the last edge are clamped into the last bin.
    keys
        The public key domain (:class:`KeySet`), or ``None`` for private
        partition selection (needs ``delta > 0``); exact aggregates ignore it
        unless asked to fill empty keys.

    Examples
    --------
    >>> import privagg as pa
    >>> q = pa.Query("footfall", level="zone", time_bin="1h")
    >>> q.key_columns()
    ('zone_id', 'time')
    >>> pa.Query("od_flows", level="district", time_bin=None).key_columns()
    ('origin_district', 'destination_district')
    """

    statistic: str
    level: str | None = "auto"
    time_bin: str | None = "auto"
    start: Any = None
    end: Any = None
    by: tuple[str, ...] = ()
    source: str = "stays"
    column: str | None = None
    dwell_edges: tuple[float, ...] = (0, 15, 30, 60, 120, 240, 480)
    keys: KeySet | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.statistic not in STATISTICS:
            raise PrivaggInputError(
                f"statistic={self.statistic!r} is unknown. Fix: use one of {', '.join(STATISTICS)}."
            )
        level_default, bin_default = DEFAULTS[self.statistic]
        if self.level == "auto":
            object.__setattr__(self, "level", level_default)
        if self.time_bin == "auto":
            object.__setattr__(self, "time_bin", bin_default)
        if self.statistic in PER_USER_STATISTICS and self.time_bin is not None:
            raise PrivaggInputError(
                f"time_bin={self.time_bin!r}: {self.statistic} describes subscribers, not times. Fix: pass time_bin=None."
            )
        if isinstance(self.by, str):
            object.__setattr__(self, "by", (self.by,))
        else:
            object.__setattr__(self, "by", tuple(self.by))
        object.__setattr__(self, "dwell_edges", tuple(self.dwell_edges))
        if self.level is not None:
            check_level(self.level)
        elif self.statistic not in ("segment_counts", "segment_mean", "micro_segments"):
            raise PrivaggInputError(
                f"level=None is only allowed for segment statistics, not {self.statistic}. Fix: pass level='cell', 'zone' or 'district'."
            )
        if self.time_bin is not None:
            parse_time_bin(self.time_bin)
        elif self.statistic in ("footfall", "visits", "od_flows"):
            pass  # whole window as one bin
        if self.source not in ("stays", "events"):
            raise PrivaggInputError(f"source={self.source!r} is unknown. Fix: use 'stays' or 'events'.")
        if self.source == "events" and self.statistic not in ("footfall", "segment_counts"):
            raise PrivaggInputError(
                f"source='events' is only meaningful for footfall and segment_counts, not {self.statistic}. Fix: use source='stays'."
            )
        if self.statistic == "segment_mean" and not self.column:
            raise PrivaggInputError("segment_mean needs column=, e.g. column='arpu'. Fix: name the numeric user column to average.")
        if self.keys is not None and not isinstance(self.keys, KeySet):
            raise PrivaggInputError(
                f"keys must be a privagg KeySet or None, got {type(self.keys).__name__}. Fix: wrap them with KeySet.from_dataframe(df)."
            )

    @property
    def area_column(self) -> str | None:
        return None if self.level is None else LEVELS[self.level]

    def key_columns(self) -> tuple[str, ...]:
        """The release's key columns, in order."""
        time = (TIME_COLUMN,) if self.time_bin is not None else ()
        if self.statistic == "od_flows":
            return (f"origin_{self.level}", f"destination_{self.level}", *time)
        if self.statistic in ("segment_counts", "segment_mean", "micro_segments"):
            area = (LEVELS[self.level],) if self.level is not None else ()
            by = self.by
            return (*by, *area, *time)
        area = (LEVELS[self.level],)  # type: ignore[index]
        if self.statistic == "dwell_times":
            return (*area, *time, "dwell_min")
        return (*area, *time)

    def describe(self) -> str:
        parts = [self.statistic]
        if self.level:
            parts.append(f"per {self.level}")
        if self.time_bin:
            parts.append(f"per {self.time_bin}")
        if self.by:
            parts.append("by " + ", ".join(self.by))
        return " ".join(parts)


TAG_COLUMNS_HINT = "add boolean 'tag_<name>' columns to the users table, or pass by=[...] naming user columns."


def public_keys(query: Query, cells: pd.DataFrame | None, *, start: Any, end: Any,
                users_columns: Sequence[str] | None = None) -> KeySet:
    """The public key domain of ``query``: areas from ``cells``, bins of ``[start, end)``,
    dwell edges, and the schema's category lists for user columns.

    Everything here is public knowledge (the operator's cell list, a calendar,
    the schema), never read from subscribers' data. User columns without a
    known category list (other than boolean ``tag_*`` columns) need explicit keys.
    """
    from privagg.schema import AGE_BANDS, CONTRACTS, DEVICE_TIERS, GENDERS, TAG_PREFIX

    known = {"age_band": AGE_BANDS, "gender": GENDERS, "contract": CONTRACTS, "device_tier": DEVICE_TIERS}
    by = query.by
    if query.statistic == "micro_segments" and not by:
        by = tuple(c for c in (users_columns or ()) if str(c).startswith(TAG_PREFIX))
    factors: list[KeySet] = []
    for column in by:
        if column in known:
            factors.append(KeySet.from_values({column: list(known[column])}))
        elif str(column).startswith(TAG_PREFIX):
            factors.append(KeySet.from_values({column: [False, True]}))
        else:
            raise PrivaggInputError(
                f"no public list of values for user column {column!r}. Fix: pass keys=KeySet.from_values({column}=[...]) "
                "crossed with the other key columns."
            )

    def need_cells() -> pd.DataFrame:
        if cells is None:
            raise PrivaggInputError("public keys need the cells table. Fix: pass cells=world.cells or a World.")
        return cells

    level = query.level
    if query.statistic == "od_flows":
        factors.append(KeySet.od_pairs(need_cells(), level))
    elif level is not None:
        factors.append(KeySet.areas(need_cells(), level))
    if query.time_bin is not None:
        factors.append(KeySet.time_bins(start, end, query.time_bin))
    if query.statistic == "dwell_times":
        edges = np.asarray(query.dwell_edges)
        if np.all(np.mod(edges.astype(float), 1) == 0):
            edges = edges.astype(np.int64)
        factors.append(KeySet.from_values(dwell_min=edges))
    if not factors:
        raise PrivaggInputError(f"{query.statistic} has no key columns. Fix: pass by=[...] or a level.")
    out = factors[0]
    for f in factors[1:]:
        out = out * f
    check_domain_size(out, query)
    return out


MAX_PUBLIC_KEYS = 50_000_000


def check_domain_size(keys: KeySet, query: Query | None = None) -> None:
    """Refuse public key domains too large to release densely (every key gets a noisy value)."""
    if len(keys) > MAX_PUBLIC_KEYS:
        what = f"{query.statistic} " if query is not None else ""
        sizes = " x ".join(str(len(f)) for f in keys._factors) if len(keys._factors) <= 6 else f"{len(keys._factors)} factors"
        raise PrivaggInputError(
            f"the public key domain of this {what}release has {len(keys):,} keys ({sizes}), "
            f"more than {MAX_PUBLIC_KEYS:,} can be released. Fix: group by fewer columns (e.g. by=[a few tags]), "
            "a coarser level or time bin, or keys=None with delta > 0 to select keys privately."
        )
