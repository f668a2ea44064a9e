"""Privacy budget: composition, refusal before noise, and a persistent ledger.

A :class:`Budget` is an accountant with a fixed total. Releases *charge* it
with a :class:`Loss` before any noisy value exists; a charge that would
exceed the total raises :class:`~privagg.errors.BudgetExceededError` and
changes nothing (not the spend, not the ledger file).

Composition (sequential, over the same subscribers):

* ``Budget(epsilon=E, delta=D)`` — approximate DP. A release costs
  ``(epsilon_i, delta_i)``; pure releases have ``delta_i = 0``; zCDP
  releases cost the epsilon their rho implies at their delta. Totals add up:
  ``sum epsilon_i <= E`` and ``sum delta_i <= D`` (basic composition).
  ``Budget(epsilon=E)`` (``D = 0``) is a pure-DP budget.
* ``Budget(rho=R, delta=D)`` — zero-concentrated DP. A release costs
  ``rho_i`` (pure epsilon-DP counts as ``epsilon^2 / 2``-zCDP) plus, for
  private partition selection, ``delta_i`` (approximate zCDP). Totals:
  ``sum rho_i <= R``, ``sum delta_i <= D``; :meth:`Budget.epsilon_at` reports
  the overall epsilon at a delta.

With ``ledger=path`` the spending lives in a :class:`~privagg.dp.ledger.Ledger`:
one SQLite file where the check and the charge are one transaction, shared
safely by any number of processes and threads, append-only, and refused if
damaged or edited. It is reloaded by :meth:`Budget.load` or by
``Budget(..., ledger=path)``, so spending survives restarts. A path ending
in ``.json`` keeps the ledger in ``.sqlite`` beside it and a JSON export at
the path; a JSON ledger of an earlier privagg found there is migrated once.
"""

from __future__ import annotations

import json
import math
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from privagg.atomic import atomic_write_text
from privagg.dp.mechanisms import check_delta, zcdp_epsilon
from privagg.dp.ledger import Ledger, cost_of, fmt, refusal, remaining_of
from privagg.dp.ledger_format import _jsonable
from privagg.dp.units import Loss
from privagg.errors import BudgetExceededError, PrivaggInputError  # noqa: F401  (BudgetExceededError: re-exported)


def pure(epsilon: float) -> Loss:
    return Loss(epsilon=epsilon)


class Budget:
    """A total privacy budget that releases draw from.

    Parameters
    ----------
    epsilon, delta
        Approximate-DP total (``delta`` defaults to 0: pure DP).
    rho, delta
        zCDP total (``delta``: total for private partition selection).
    ledger
        Optional path of a persistent ledger (:class:`privagg.dp.ledger.Ledger`,
        SQLite). If it exists, spending continues from it (its recorded total
        must equal this one); otherwise it is created. Every charge is checked
        and appended in one transaction that no other process or thread can
        interleave. A path ending in ``.json`` keeps the ledger in ``.sqlite``
        beside it and a JSON export at the path (an old JSON ledger there is
        migrated once).

    Examples
    --------
    >>> b = Budget(epsilon=2.0)
    >>> _ = b.charge(Loss(epsilon=1.5), statistic="footfall")
    >>> b.remaining
    {'epsilon': 0.5, 'delta': 0.0}
    """

    def __init__(self, epsilon: float | None = None, delta: float | None = None, *, rho: float | None = None,
                 ledger: str | Path | None = None) -> None:
        if (epsilon is None) == (rho is None):
            raise PrivaggInputError(
                "Budget needs exactly one of epsilon= (pure/approximate DP) or rho= (zCDP). "
                "Fix: e.g. Budget(epsilon=4.0, delta=1e-9) or Budget(rho=0.5, delta=1e-9)."
            )
        self._kind = "zcdp" if rho is not None else "approx"
        self._total_epsilon = None if epsilon is None else _check_total("epsilon", epsilon)
        self._total_rho = None if rho is None else _check_total("rho", rho)
        self._total_delta = check_delta(delta)
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ledger = None if ledger is None else Path(ledger)
        self._store: Ledger | None = None
        if self._ledger is not None:
            self._store = Ledger.open(self._ledger, totals=self.totals())

    # -- constructors ----------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Budget:
        """Reopen the budget recorded in ledger ``path``, with everything it has spent."""
        totals = Ledger.open(path).totals
        return cls(epsilon=totals.get("epsilon"), delta=totals.get("delta"), rho=totals.get("rho"), ledger=path)

    # -- state -----------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"approx"`` (epsilon, delta) or ``"zcdp"`` (rho, delta)."""
        return self._kind

    @property
    def ledger(self) -> Path | None:
        """The ledger path this Budget was given (``None``: in memory only)."""
        return self._ledger

    @property
    def store(self) -> Ledger | None:
        """The SQLite :class:`~privagg.dp.ledger.Ledger` behind this Budget, if any."""
        return self._store

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The charges so far (copies), oldest first; read from the ledger if there is one."""
        if self._store is not None:
            return self._store.entries()
        with self._lock:
            return [dict(e) for e in self._entries]

    def totals(self) -> dict[str, float]:
        if self._kind == "zcdp":
            return {"rho": self._total_rho, "delta": self._total_delta}  # type: ignore[dict-item]
        return {"epsilon": self._total_epsilon, "delta": self._total_delta}  # type: ignore[dict-item]

    def _cost(self, loss: Loss, statistic: str = "release") -> dict[str, float]:
        """What ``loss`` costs in this budget's currency."""
        return cost_of(loss, self._kind, statistic)

    @property
    def spent(self) -> dict[str, float]:
        if self._store is not None:
            return self._store.spent()
        out = {k: 0.0 for k in self.totals()}
        for entry in self.entries:
            for k, v in entry["cost"].items():
                out[k] += v
        return out

    @property
    def remaining(self) -> dict[str, float]:
        return remaining_of(self.spent, self.totals())

    def epsilon_at(self, delta: float | None = None) -> float:
        """Overall epsilon spent so far: the sum for approximate budgets; for zCDP, at ``delta``
        (beyond the selection deltas spent; default: the budget's delta)."""
        spent = self.spent
        if self._kind == "approx":
            return spent["epsilon"]
        delta = self._total_delta if delta is None else delta
        return zcdp_epsilon(spent["rho"], delta) if spent["rho"] else 0.0

    def can_afford(self, loss: Loss) -> bool:
        """Whether ``loss`` fits in what remains (up to float rounding of 1e-12 of the total)."""
        try:
            cost = self._cost(loss)
        except PrivaggInputError:
            return False
        return refusal("release", cost, self.spent, self.totals()) is None

    def check(self, loss: Loss, statistic: str = "release") -> None:
        """Raise :class:`BudgetExceededError` if ``loss`` does not fit now; change nothing.

        Releases call this before computing anything; :meth:`charge` checks
        again, in its transaction, so a charge made meanwhile by another
        process is seen.
        """
        error = refusal(statistic, self._cost(loss, statistic), self.spent, self.totals())
        if error is not None:
            raise error

    def charge(self, loss: Loss, *, statistic: str = "release", parameters: dict[str, Any] | None = None,
               request_id: str | None = None, client: str | None = None, dataset: str | None = None,
               window: str | None = None) -> dict[str, Any]:
        """Record ``loss`` and return its entry (raise :class:`BudgetExceededError` and change nothing if it
        does not fit). With a ledger, the check and the append are one transaction; a ``request_id`` already
        charged returns its entry without charging again."""
        if self._store is not None:
            return self._store.charge(loss, statistic=statistic, parameters=parameters, request_id=request_id,
                                      client=client, dataset=dataset, window=window)
        cost = self._cost(loss, statistic)
        with self._lock:
            if request_id is not None:
                for old in self._entries:
                    if old["request_id"] == request_id:
                        return dict(old)
            spent = {k: 0.0 for k in self.totals()}
            for e in self._entries:
                for k, v in e["cost"].items():
                    spent[k] += v
            error = refusal(statistic, cost, spent, self.totals())
            if error is not None:
                raise error
            entry = {
                "seq": len(self._entries) + 1, "request_id": request_id, "statistic": statistic, "client": client,
                "dataset": dataset, "window": window, "parameters": _jsonable(parameters or {}),
                "loss": loss.to_dict(), "cost": cost,
                "time": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
            }
            self._entries.append(entry)
            return dict(entry)

    def export_json(self, path: str | Path) -> Path:
        """Write the entries so far to ``path`` as JSON (atomically)."""
        if self._store is not None:
            return self._store.export_json(path)
        return atomic_write_text(path, json.dumps({"budget": self.totals(), "spent": self.spent,
                                                   "entries": _jsonable(self.entries)}, indent=2))

    def __repr__(self) -> str:
        return f"Budget({fmt(self.totals())[1:-1]}; spent {fmt(self.spent)}, {len(self.entries)} releases)"


def _check_total(name: str, value: Any) -> float:
    """A budget total: a finite number > 0 (no upper limit, unlike a single release's loss)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)) or value <= 0:
        raise PrivaggInputError(f"{name}={value!r} must be finite and > 0. Fix: pass e.g. {name}=1.0.")
    return float(value)
