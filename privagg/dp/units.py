"""Privacy units and losses: who is protected, over what period, and how losses add up.

A :class:`PrivacyUnit` says whose data a guarantee protects (one subscriber,
named by ``user_id``) and over what period: the whole release window, or
each day or week of it. A :class:`Loss` is what one release spends. Losses
add (sequential composition over the same subscribers) and multiply by a
number of periods; :meth:`UnitLoss.over` turns a loss per subscriber-day
into the loss per subscriber over a whole window. Every label that privagg
prints about a unit or a loss (release records, reports, the command line)
comes from here, so the same release reads the same everywhere.

Examples
--------
>>> day = PrivacyUnit.parse("subscriber-day")
>>> day.label
'subscriber-day'
>>> weekly = UnitLoss(Loss(epsilon=0.5), day).over("2026-01-05", "2026-01-12")
>>> weekly.epsilon
3.5
>>> (Loss(epsilon=1.0) + Loss(epsilon=0.5, delta=1e-9)).describe()
'epsilon=1.5, delta=1e-09'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from privagg.errors import PrivaggInputError

#: Period name -> its length (None: the whole release window).
PERIODS: dict[str, pd.Timedelta | None] = {"window": None, "day": pd.Timedelta(days=1), "week": pd.Timedelta(days=7)}
#: Labels accepted by :meth:`PrivacyUnit.parse`, by period.
_ALIASES = {
    "window": ("window", "subscriber", "subscriber-window", "user", "per-window"),
    "day": ("day", "subscriber-day", "user-day", "1d", "daily"),
    "week": ("week", "subscriber-week", "user-week", "7d", "weekly"),
}


def _timestamp(value: Any) -> pd.Timestamp:
    return value if isinstance(value, pd.Timestamp) else pd.Timestamp(value)


def _fmt_time(ts: pd.Timestamp) -> str:
    return ts.isoformat(timespec="minutes")


@dataclass(frozen=True)
class PrivacyUnit:
    """One subscriber over a period: the release window, or each day or week of it.

    Parameters
    ----------
    period
        ``"window"`` (all of a subscriber's data in the release),
        ``"day"`` or ``"week"`` (a subscriber's data in each calendar day or
        week of the window, each period released and bounded on its own).
    identifier
        The column naming the subscriber.

    Examples
    --------
    >>> PrivacyUnit("day").describe("2026-01-05", "2026-01-07")
    'one subscriber (user_id) per day, 2 days from 2026-01-05T00:00 to 2026-01-07T00:00'
    >>> PrivacyUnit().describe("2026-01-05", "2026-01-07")
    'one subscriber (user_id) over 2026-01-05T00:00 to 2026-01-07T00:00'
    """

    period: str = "window"
    identifier: str = "user_id"

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise PrivaggInputError(
                f"privacy unit period {self.period!r} is unknown. Fix: use one of {', '.join(PERIODS)} "
                "(e.g. PrivacyUnit('day') for epsilon per subscriber-day)."
            )

    @classmethod
    def parse(cls, value: str | PrivacyUnit | None) -> PrivacyUnit:
        """A unit from its label: ``"subscriber"`` (the window), ``"subscriber-day"``, ``"subscriber-week"``."""
        if isinstance(value, PrivacyUnit):
            return value
        if value is None:
            return cls()
        text = str(value).strip().lower()
        for period, names in _ALIASES.items():
            if text in names:
                return cls(period)
        raise PrivaggInputError(
            f"privacy unit {value!r} is unknown. Fix: use 'subscriber' (the whole window), 'subscriber-day' or "
            "'subscriber-week'."
        )

    @property
    def length(self) -> pd.Timedelta | None:
        """Length of one period (``None`` for the window)."""
        return PERIODS[self.period]

    @property
    def label(self) -> str:
        """``"subscriber"``, ``"subscriber-day"`` or ``"subscriber-week"`` (the vocabulary of claims and specs)."""
        return "subscriber" if self.period == "window" else f"subscriber-{self.period}"

    @property
    def per(self) -> str:
        """How a loss in this unit reads: ``"per subscriber-day"``, or ``"per subscriber over the release window"``."""
        return "per subscriber over the release window" if self.period == "window" else f"per {self.label}"

    def periods(self, start: Any, end: Any) -> int:
        """Number of periods that the window ``[start, end)`` touches (1 for the window unit).

        Periods are aligned to midnight of ``start`` (weeks: every 7 days
        from there), so a window from 06:00 to 06:00 the next day touches
        two days.
        """
        if self.length is None:
            return 1
        start, end = _timestamp(start), _timestamp(end)
        if end <= start:
            raise PrivaggInputError(f"window {start} to {end} is empty. Fix: give an end after the start.")
        origin = start.floor("D")
        return int(math.ceil((end - origin) / self.length - 1e-12))

    def split(self, start: Any, end: Any) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """The window cut into this unit's periods (the window itself for the window unit)."""
        start, end = _timestamp(start), _timestamp(end)
        if self.length is None:
            return [(start, end)]
        origin = start.floor("D")
        cuts = [origin + i * self.length for i in range(self.periods(start, end) + 1)]
        return [(max(a, start), min(b, end)) for a, b in zip(cuts[:-1], cuts[1:])]

    def describe(self, start: Any = None, end: Any = None) -> str:
        """``"one subscriber (user_id) over <start> to <end>"``, or ``"... per day, N days from ..."``."""
        who = f"one subscriber ({self.identifier})"
        if start is None or end is None:
            return who if self.period == "window" else f"{who} per {self.period}"
        start, end = _timestamp(start), _timestamp(end)
        if start.year < 1700 or end.year > 2200:  # statistics without a time window
            return who if self.period == "window" else f"{who} per {self.period}"
        span = f"{_fmt_time(start)} to {_fmt_time(end)}"
        if self.period == "window":
            return f"{who} over {span}"
        n = self.periods(start, end)
        return f"{who} per {self.period}, {n} {self.period}{'s' if n != 1 else ''} from {span}"

    def to_dict(self, start: Any = None, end: Any = None) -> dict[str, Any]:
        """Structured fields for a release record: period, identifier, label and, with a window, its periods."""
        out: dict[str, Any] = {"period": self.period, "identifier": self.identifier, "label": self.label}
        if start is not None and end is not None:
            s, e = _timestamp(start), _timestamp(end)
            if 1700 < s.year and e.year < 2200:
                out.update(start=_fmt_time(s), end=_fmt_time(e), periods=self.periods(s, e))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> PrivacyUnit:
        """Inverse of :meth:`to_dict` (window fields ignored)."""
        if not data:
            return cls()
        return cls(data.get("period", "window"), data.get("identifier", "user_id"))


def _nonnegative(name: str, value: float) -> float:
    value = float(value)
    if math.isnan(value) or value < 0:
        raise PrivaggInputError(f"{name}={value!r} is not a privacy loss. Fix: use a number >= 0.")
    return value


@dataclass(frozen=True)
class Loss:
    """The privacy loss of one release (for one privacy unit).

    Attributes
    ----------
    epsilon
        Pure or approximate-DP epsilon; for zCDP releases the epsilon implied
        by ``rho`` at ``delta - selection_delta`` (``inf`` if that is 0).
    delta
        Total delta: partition selection plus, for zCDP releases, the
        conversion of rho to epsilon.
    rho
        zCDP rho (``None`` for pure/approximate-DP mechanisms).
    selection_delta
        The part of ``delta`` spent on private partition selection.

    Losses compose by ``+`` (basic sequential composition; rho adds as zCDP,
    a pure epsilon counting as ``epsilon**2 / 2``) and scale by ``*`` with a
    whole number of releases.

    Examples
    --------
    >>> (2 * Loss(epsilon=0.5)).epsilon
    1.0
    """

    epsilon: float
    delta: float = 0.0
    rho: float | None = None
    selection_delta: float = 0.0

    @property
    def is_zcdp(self) -> bool:
        return self.rho is not None

    def __add__(self, other: Loss) -> Loss:
        if not isinstance(other, Loss):
            return NotImplemented
        rho = None
        if self.rho is not None or other.rho is not None:
            rho = sum(x.rho if x.rho is not None else x.epsilon ** 2 / 2 for x in (self, other))
        return Loss(self.epsilon + other.epsilon, self.delta + other.delta, rho,
                    self.selection_delta + other.selection_delta)

    def __radd__(self, other: Any) -> Loss:
        if other == 0:  # sum([...]) starts from 0
            return self
        return self.__add__(other)

    def __mul__(self, times: float) -> Loss:
        times = _nonnegative("times", times)
        return Loss(self.epsilon * times, self.delta * times, None if self.rho is None else self.rho * times,
                    self.selection_delta * times)

    __rmul__ = __mul__

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.rho is not None:
            eps = "" if math.isinf(self.epsilon) else f" (epsilon={self.epsilon:.4g} at delta={self.delta:.3g})"
            sel = f", delta={self.selection_delta:.3g} for partition selection" if self.selection_delta else ""
            return f"rho={self.rho:.4g}{sel}{eps}"
        return f"epsilon={self.epsilon:.4g}" + (f", delta={self.delta:.3g}" if self.delta else "")


@dataclass(frozen=True)
class UnitLoss:
    """A loss per privacy unit, e.g. epsilon 0.5 per subscriber-day.

    Examples
    --------
    >>> u = UnitLoss(Loss(epsilon=0.5), PrivacyUnit("day"))
    >>> u.describe("2026-01-05", "2026-01-08")
    'epsilon=0.5 per subscriber-day (epsilon=1.5 per subscriber over the 3 days of the window)'
    """

    loss: Loss
    unit: PrivacyUnit = PrivacyUnit()

    def over(self, start: Any, end: Any) -> Loss:
        """The loss per subscriber over the whole window ``[start, end)`` (sequential composition of its periods)."""
        return self.loss * self.unit.periods(start, end)

    def express(self, unit: PrivacyUnit | str, start: Any, end: Any) -> UnitLoss:
        """The same guarantee stated per ``unit``.

        Towards a longer period the losses of the shorter periods inside one
        longer period add up (per day -> per week: up to 7 days of the
        window). Towards a shorter period the loss stays a valid bound: a
        change to one subscriber-day is a change to that subscriber.
        """
        unit = PrivacyUnit.parse(unit)
        order = list(PERIODS)[::-1]  # day, week, window: shortest first
        if order.index(unit.period) <= order.index(self.unit.period):
            return UnitLoss(self.loss, unit)
        if unit.period == "window":
            return UnitLoss(self.over(start, end), unit)
        # day -> week: days of one week inside the window, at most 7
        days = PrivacyUnit("day").periods(start, end)
        return UnitLoss(self.loss * min(7, days), unit)

    def describe(self, start: Any = None, end: Any = None) -> str:
        """``"epsilon=0.5 per subscriber-day (epsilon=3.5 per subscriber over the 7 days of the window)"``."""
        text = f"{self.loss.describe()} {self.unit.per}"
        if self.unit.period != "window" and start is not None and end is not None:
            n = self.unit.periods(start, end)
            total = self.over(start, end)
            text += f" ({total.describe()} per subscriber over the {n} {self.unit.period}{'s' if n != 1 else ''} of the window)"
        return text


__all__ = ["Loss", "PERIODS", "PrivacyUnit", "UnitLoss"]
