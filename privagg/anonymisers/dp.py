"""The differentially private anonymiser: contribution bounds + OpenDP noise + budget, per privacy unit.

With the default unit (one subscriber over the release window) a release is
one call of :func:`privagg.releases.core.release_query`. With a unit of a
subscriber-day or -week, each period of the window is released on its own
(contribution bounds per period, the loss per period), the periods are
concatenated, and a subscriber's loss over the window is the per-period loss
times the number of periods (sequential composition), which the budget is
charged in one step before any period is released.

Bounds and mechanism: with no ``bounds=`` and public keys, a count
statistic's bounds are chosen privately and the mechanism automatically
(:mod:`privagg.dp.bound_choice`), for the window or for each period of the
unit on its own (a small share of each period's loss buys that period's
choice), so the noise is known only once the release is made; the anonymiser
keeps the record of its latest release of each query and its publication
model reads the noise and bounds from it (with periods: the period whose noise
is the least, so the model is never noisier than any period's release).
Hand-set bounds, private keys and means use the statistic's public (or given)
bounds and the explicit mechanism of the loss (Laplace for epsilon, Gaussian
for rho), known in advance.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Any

import pandas as pd

from privagg.anonymisers.base import Anonymiser, PublicationModelUnavailable, check_game
from privagg.anonymisers.models import Noisy
from privagg.dp.bounds import Bounds, as_bounds
from privagg.dp.budget import Budget
from privagg.dp.mechanisms import NoiseMechanism, check_delta, check_loss, noise_variance, zcdp_epsilon
from privagg.dp.partition_selection import ThresholdMechanism, _d_in
from privagg.dp.units import Loss, PrivacyUnit, UnitLoss
from privagg.errors import PrivaggInputError
from privagg.queries import TIME_COLUMN, KeySet, Query, public_keys
from privagg.release import Release
from privagg.release import PrivacyRecord
from privagg.releases.core import (CHOSEN_STATISTICS, MEAN_STATISTICS, default_bounds, effective_bounds, plan,
                                   release_loss, release_query)
from privagg.releases.inputs import window
from privagg.world import World

#: The statistic whose release procedure models a plain table of counts (one noisy count per key).
_COUNTS = Query(statistic="footfall")


def _max_loss(a: Loss, b: Loss) -> Loss:
    """A loss at least as large as both, component by component (a valid bound for either)."""
    rho = None if a.rho is None and b.rho is None else max(x for x in (a.rho, b.rho) if x is not None)
    return Loss(max(a.epsilon, b.epsilon), max(a.delta, b.delta), rho, max(a.selection_delta, b.selection_delta))


class DPAnonymiser(Anonymiser):
    """User-level DP releases of any :class:`~privagg.queries.Query`, per privacy unit.

    Parameters
    ----------
    epsilon, rho
        Privacy loss per privacy unit (exactly one): pure DP with discrete
        Laplace noise, or zCDP with discrete Gaussian noise.
    delta
        For private partition selection (``public_keys=False``) and for
        reporting rho as epsilon (per period).
    bounds
        Contribution bounds per privacy unit (per day for ``unit="subscriber-day"``);
        ``None`` uses each statistic's defaults.
    public_keys
        ``True``: when the query has no keys, release every key of the public
        domain built from the World's cells, window and the schema's category
        lists (:func:`privagg.queries.public_keys`). ``False``: select keys
        privately (needs ``delta > 0``).
    budget
        Optional :class:`~privagg.dp.budget.Budget` charged by every release,
        with the loss over the whole window (per-period loss x periods).
    ci_level
        Coverage of the noise intervals.
    unit
        The privacy unit: ``"subscriber"`` (the whole release window, the
        default), ``"subscriber-day"`` or ``"subscriber-week"``, or a
        :class:`~privagg.dp.units.PrivacyUnit`. With a day or week unit each
        period is released separately at the loss above; the query needs time bins.

    Examples
    --------
    >>> DPAnonymiser(epsilon=0.5, unit="subscriber-day").name
    'dp(epsilon=0.5 per subscriber-day)'
    >>> DPAnonymiser(epsilon=1.0).name
    'dp(epsilon=1)'
    """

    method = "dp"
    formally_private = True

    def __init__(self, epsilon: float | None = None, *, rho: float | None = None, delta: float | None = None,
                 bounds: Bounds | dict[str, Any] | None = None, public_keys: bool = True,
                 budget: Budget | None = None, ci_level: float = 0.95,
                 unit: PrivacyUnit | str = "subscriber") -> None:
        if (epsilon is None) == (rho is None):
            raise PrivaggInputError(
                "DPAnonymiser needs exactly one of epsilon= or rho=. Fix: e.g. DPAnonymiser(epsilon=1.0)."
            )
        self.epsilon = None if epsilon is None else check_loss("epsilon", epsilon)
        self.rho = None if rho is None else check_loss("rho", rho)
        self.delta = check_delta(delta, required=not public_keys,
                                 why="with public_keys=False (private partition selection)")
        self.bounds = None if bounds is None else as_bounds(bounds, Bounds())
        self.public_keys = bool(public_keys)
        self.budget = budget
        self.ci_level = ci_level
        self.unit = PrivacyUnit.parse(unit)
        # The record of the latest release of each query (by its description without keys): the noise
        # an automatic choice settled on, for the publication model.
        self._records: dict[tuple[Any, ...], PrivacyRecord] = {}

    def unbudgeted(self) -> "DPAnonymiser":
        """The same anonymiser, sharing the records of its releases, without a budget.

        For an adversary's simulations of its releases: they are not publications, so they are
        not charged, and they see exactly the noise the recorded releases used.
        """
        twin = copy.copy(self)
        twin.budget = None
        return twin

    def params(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon, "rho": self.rho, "delta": self.delta or None,
            "bounds": None if self.bounds is None else self.bounds.to_dict(),
            "public_keys": self.public_keys,
            "unit": self.unit.label,
        }

    @property
    def name(self) -> str:
        loss = f"epsilon={self.epsilon:g}" if self.epsilon is not None else f"rho={self.rho:g}"
        per = "" if self.unit.period == "window" else f" per {self.unit.label}"
        return f"dp({loss}{per})"

    # ------------------------------------------------------------------ the model for attacks

    def publication_model(self, *, l0: int, linf: int = 1, days: int | None = None,
                          query: Query | None = None) -> Noisy:
        """The noise this anonymiser adds to a table of counts, and the guarantee of that publication.

        The attacked table: each subscriber touches at most ``l0`` keys per
        day, at most ``linf`` each, over ``days`` days (``None``: a table
        without time, touched once). In one period of the privacy unit (the
        window, a day or a week) that is ``l0 x`` (days in the period) keys.

        Notes
        -----
        * Noise scale: exactly the release's, calibrated from the anonymiser's
          bounds per period (:func:`privagg.releases.core.plan`, the same call
          :meth:`release` makes). With ``query`` (the query the attacked table
          answers) the bounds are the ones the release of that query uses
          (:func:`~privagg.releases.core.effective_bounds` of ``bounds`` or the
          statistic's defaults). Without it, ``bounds`` are taken as given, and
          ``bounds=None`` is modelled as bounds that fit the game
          (``max_partitions`` = keys per period, ``max_per_partition`` = ``linf``).
        * Private partition selection (``public_keys=False``) is modelled by
          the release's threshold: noisy counts below it are unpublished (NaN).
        * When the game's subscribers exceed the bounds, the real release would
          truncate their contributions. The model does not: it publishes the
          untruncated counts with the release's noise, so an attack on it is at
          least as strong as on the release, and its ``loss`` is OpenDP's
          privacy map of that noise at the game's actual sensitivity (larger
          than the nominal loss), so a DP bound drawn from it holds.
        * ``loss`` is the guarantee of the whole modelled publication for one
          subscriber (add/remove): the per-period loss (the larger of the
          nominal loss and the one at the game's sensitivity) times the number
          of periods the ``days`` cover.
        """
        l0, linf, days = check_game(l0, linf, days)
        if days is None or self.unit.period == "window":
            periods, days_per_period = 1, days or 1
        elif self.unit.period == "day":
            periods, days_per_period = days, 1
        else:
            periods, days_per_period = math.ceil(days / 7), min(7, days)
        game_l0 = l0 * days_per_period
        if query is not None:
            if query.statistic in MEAN_STATISTICS:
                raise PublicationModelUnavailable(
                    f"{self.name} publishes {query.statistic} as noisy sums over noisy counts, not a table of counts. "
                    "Fix: model a count statistic (footfall, visits, od_flows, segment_counts, ...)."
                )
            if self._chooses(query):
                record = self._records.get(_query_key(query))
                if record is None:
                    raise PublicationModelUnavailable(
                        f"{self.name} chooses the bounds and mechanism of {query.statistic} privately when it releases "
                        "it, so its noise is known only after the release. Fix: release the query first "
                        "(anonymiser.release(world, query)), or give the anonymiser bounds=... ."
                    )
                return self._model_from_record(record, game_l0, linf, periods)
            eff = effective_bounds(query, as_bounds(self.bounds, default_bounds(query)))
            bound_l0, bound_linf = eff.max_partitions, eff.max_per_partition
        elif self.bounds is not None:
            bound_l0, bound_linf = self.bounds.max_partitions, self.bounds.max_per_partition
        else:
            bound_l0, bound_linf = game_l0, linf
        p = plan(query or _COUNTS, Bounds(max_partitions=bound_l0, max_per_partition=bound_linf),
                 epsilon=self.epsilon, rho=self.rho, delta=self.delta, public=self.public_keys)
        loss = p.loss
        if game_l0 > bound_l0 or linf > bound_linf:
            loss = _max_loss(loss, self._loss_at(p.count, game_l0, linf))
        threshold = p.count.threshold if isinstance(p.count, ThresholdMechanism) else None
        return Noisy(mechanism=p.count.kind, scale=float(p.count.scale), k=threshold, loss=loss * periods,
                     label=self.name)

    def _chooses(self, query: Query) -> bool:
        """Whether the release of ``query`` chooses bounds and mechanism privately (see the module docstring)."""
        return self.bounds is None and self.public_keys and query.statistic in CHOSEN_STATISTICS

    def _model_from_record(self, record: PrivacyRecord, game_l0: int, linf: int, periods: int) -> Noisy:
        """The model of a release whose bounds were chosen privately: its recorded noise and bounds."""
        assert record.mechanism is not None and record.noise_scale is not None and record.bounds is not None
        kind = record.parameters.get("mechanism", record.mechanism)
        b = record.bounds
        loss = record.total_loss()
        assert loss is not None
        beyond = (game_l0 > b["max_partitions"] or linf > b["max_per_partition"]
                  or (b.get("max_total") is not None and game_l0 * linf > b["max_total"]))
        if beyond:
            loss = _max_loss(loss, self._loss_at(NoiseMechanism(kind, float(record.noise_scale), 0.0, 0.0), game_l0, linf))
        return Noisy(mechanism=kind, scale=float(record.noise_scale), k=None, loss=loss * periods, label=self.name)

    def _loss_at(self, count: NoiseMechanism | ThresholdMechanism, l0: int, linf: int) -> Loss:
        """The loss of ``count``'s noise on a table where a subscriber touches ``l0`` keys, ``linf`` each (no truncation)."""
        if isinstance(count, ThresholdMechanism):
            eps, dlt = (float(v) for v in count.measurement().map(_d_in(count.kind, l0, linf)))
            if count.kind == "laplace":
                return Loss(epsilon=eps, delta=dlt, selection_delta=dlt)
            conversion = self.delta / 2  # the release reports rho as epsilon at half of delta
            return Loss(epsilon=zcdp_epsilon(eps, conversion), delta=dlt + conversion, rho=eps, selection_delta=dlt)
        sensitivity = l0 * linf if count.kind == "laplace" else math.sqrt(l0) * linf
        certified = NoiseMechanism(count.kind, count.scale, sensitivity, 0.0).privacy_map()
        if count.kind == "laplace":
            return Loss(epsilon=certified)
        eps = zcdp_epsilon(certified, self.delta) if self.delta > 0 else math.inf
        return Loss(epsilon=eps, delta=self.delta, rho=certified)

    # ------------------------------------------------------------------ releases

    def _prepare(self, world: World, query: Query, start: pd.Timestamp | None = None,
                 end: pd.Timestamp | None = None) -> Query:
        """``query`` over ``[start, end)`` (its own window when None) with its public keys filled in."""
        if start is not None:
            query = replace(query, start=start, end=end)
        if query.keys is None and self.public_keys:
            s, e = window(query, None, world.meta.get("start"), world.meta.get("end"))
            keys = public_keys(query, world.cells, start=s, end=e, users_columns=list(world.users.columns))
            query = replace(query, keys=keys, start=query.start if query.start is not None else (s if query.time_bin else None),
                            end=query.end if query.end is not None else (e if query.time_bin else None))
        return query

    def _release(self, world: World, query: Query, budget: Budget | None) -> Release:
        if self._chooses(query):
            # Bounds chosen privately, mechanism automatic; the model reads the noise from the record.
            rel = release_query(world, query, epsilon=self.epsilon, rho=self.rho, delta=self.delta or None,
                                bounds=None, budget=budget, ci_level=self.ci_level, mechanism="auto")
            return rel
        # Explicit bounds and mechanism (no private choice): the publication model knows the noise in advance.
        return release_query(world, query, epsilon=self.epsilon, rho=self.rho, delta=self.delta or None,
                             bounds=self.bounds if self.bounds is not None else "default", budget=budget,
                             ci_level=self.ci_level, mechanism="laplace" if self.epsilon is not None else "gaussian")

    def release(self, world: Any, query: Query) -> Release:
        """Release ``query`` on ``world`` with user-level DP per :attr:`unit` (opted-out subscribers excluded)."""
        if not isinstance(world, World):
            raise PrivaggInputError(f"DPAnonymiser.release needs a World, got {type(world).__name__}. Fix: pass a privagg World.")
        if self.unit.period == "window":
            rel = self._release(world, self._prepare(world, query), self.budget)
            if self._chooses(query):
                self._records[_query_key(query)] = rel.privacy
            return rel
        if query.time_bin is None:
            raise PrivaggInputError(
                f"unit={self.unit.label!r} releases each {self.unit.period} separately, which needs a query with time "
                f"bins; {query.statistic} has none. Fix: give the query a time_bin (e.g. '1h') or use unit='subscriber'."
            )
        start, end = window(query, query.keys, world.meta.get("start"), world.meta.get("end"))
        spans = self.unit.split(start, end)
        queries = [self._period_query(world, query, s, e) for s, e in spans]
        per_period = self._loss_per_period(queries[0])
        total = per_period * len(spans)
        if self.budget is not None:
            # One charge for the whole window, before any period is computed or noised:
            # a release that does not fit spends nothing and draws nothing.
            self.budget.check(total, query.statistic)
            self.budget.charge(total, statistic=query.statistic, parameters={
                "query": query.describe(), "unit": self.unit.label, "periods": len(spans),
                "start": str(start), "end": str(end), "loss_per_period": per_period.to_dict(),
            })
        parts = [self._release(world, q, None) for q in queries]
        first = parts[0].privacy
        chosen_notes: tuple[str, ...] = ()
        if self._chooses(query):
            # Each period chose its own bounds: the record (and the attack model) states the least noisy
            # period's noise, so neither is noisier than any period's release.
            first = min((part.privacy for part in parts), key=_noise_sd)
            chosen_notes = (f"Each {self.unit.period} chose its bounds privately: "
                            + "; ".join(Bounds(**part.privacy.bounds).label() for part in parts)
                            + f". This record states the {self.unit.period} with the least noise.",)
            self._records[_query_key(query)] = first
        table = pd.concat([p.to_pandas() for p in parts], ignore_index=True)
        composed = UnitLoss(per_period, self.unit).describe(start, end)
        record = replace(
            first,
            privacy_unit=self.unit.describe(start, end),
            unit=self.unit.to_dict(start, end),
            parameters={**first.parameters, "start": spans[0][0].isoformat(timespec="minutes"),
                        "end": spans[-1][1].isoformat(timespec="minutes"), "privacy_unit": self.unit.label,
                        "periods": len(spans)},
            notes=(*first.notes, f"Each {self.unit.period} is released separately with its own contribution bounds: "
                                 f"{composed} (sequential composition).", *chosen_notes),
        )
        return Release(table, parts[0].key_columns, record)

    def _period_query(self, world: World, query: Query, start: pd.Timestamp, end: pd.Timestamp) -> Query:
        if query.keys is not None and TIME_COLUMN in query.keys.columns:
            frame = query.keys.to_pandas()
            times = pd.to_datetime(frame[TIME_COLUMN])
            sub = frame.loc[((times >= start) & (times < end)).to_numpy()]
            return replace(query, start=start, end=end, keys=KeySet.from_dataframe(sub.reset_index(drop=True)))
        return self._prepare(world, query, start, end)

    def _loss_per_period(self, query: Query) -> Loss:
        """The loss :func:`release_query` will spend on one period (its own plan, computed before any data is read)."""
        if self._chooses(query):
            return release_loss(query, epsilon=self.epsilon, rho=self.rho, delta=self.delta or None, bounds=None)
        eff = effective_bounds(query, as_bounds(self.bounds, default_bounds(query)))
        delta = check_delta(self.delta, required=query.keys is None, why="when keys are selected privately")
        return plan(query, eff, epsilon=self.epsilon, rho=self.rho, delta=delta, public=query.keys is not None).loss


def _noise_sd(record: PrivacyRecord) -> float:
    """Standard deviation of a record's count noise."""
    assert record.noise_scale is not None
    return math.sqrt(noise_variance(record.parameters.get("mechanism", record.mechanism), float(record.noise_scale)))


def _query_key(query: Query) -> tuple[Any, ...]:
    """What identifies a query for the publication model: its description without the key set (which the
    anonymiser fills in itself when the query has none)."""
    return (query.statistic, query.level, query.time_bin, tuple(query.by or ()), str(query.start), str(query.end),
            None if query.keys is None else len(query.keys))
