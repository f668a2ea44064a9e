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

The ledger is a JSON file ``{"budget": {...}, "entries": [...]}`` where each
entry records the statistic, its parameters, its loss and the time. It is
only ever appended to, rewritten atomically (readers see the old or the new
file, never half of one), and reloaded by :meth:`Budget.load` or by
``Budget(..., ledger=path)``, so spending survives restarts.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from privagg.dp.mechanisms import check_delta, check_loss, zcdp_epsilon
from privagg.dp.units import Loss
from privagg.errors import BudgetExceededError, PrivaggInputError
from privagg.atomic import atomic_write_text

LEDGER_VERSION = 1
_TOL = 1e-12


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
        Optional path of a JSON ledger. If it exists, spending continues from
        it (its recorded total must equal this one); every charge appends an
        entry and rewrites the file atomically.

    Examples
    --------
    >>> b = Budget(epsilon=2.0)
    >>> b.charge(Loss(epsilon=1.5), statistic="footfall")
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
        self._total_epsilon = None if epsilon is None else check_loss("epsilon", epsilon)
        self._total_rho = None if rho is None else check_loss("rho", rho)
        self._total_delta = check_delta(delta)
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._ledger = None if ledger is None else Path(ledger)
        if self._ledger is not None and self._ledger.exists():
            recorded = _read_ledger(self._ledger)
            if recorded["budget"] != self.totals():
                raise PrivaggInputError(
                    f"ledger {str(self._ledger)!r} records the budget {recorded['budget']} but this Budget declares {self.totals()}. "
                    f"Fix: use Budget.load({str(self._ledger)!r}) to continue it, or a new ledger path for a new budget."
                )
            self._entries = list(recorded["entries"])

    # -- constructors ----------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Budget:
        """Reopen the budget recorded in ledger ``path``, with everything it has spent."""
        path = Path(path)
        if not path.exists():
            raise PrivaggInputError(f"ledger {str(path)!r} does not exist. Fix: create it with Budget(..., ledger=path).")
        budget = _read_ledger(path)["budget"]
        return cls(epsilon=budget.get("epsilon"), delta=budget.get("delta"), rho=budget.get("rho"), ledger=path)

    # -- state -----------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"approx"`` (epsilon, delta) or ``"zcdp"`` (rho, delta)."""
        return self._kind

    @property
    def ledger(self) -> Path | None:
        return self._ledger

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The charges so far (copies), oldest first."""
        return [dict(e) for e in self._entries]

    def totals(self) -> dict[str, float]:
        if self._kind == "zcdp":
            return {"rho": self._total_rho, "delta": self._total_delta}  # type: ignore[dict-item]
        return {"epsilon": self._total_epsilon, "delta": self._total_delta}  # type: ignore[dict-item]

    def _cost(self, loss: Loss) -> dict[str, float]:
        """What ``loss`` costs in this budget's currency."""
        if self._kind == "zcdp":
            rho = loss.rho if loss.rho is not None else loss.epsilon ** 2 / 2
            delta = loss.selection_delta if loss.rho is not None else loss.delta
            return {"rho": float(rho), "delta": float(delta)}
        return {"epsilon": float(loss.epsilon), "delta": float(loss.delta)}

    @property
    def spent(self) -> dict[str, float]:
        out = {k: 0.0 for k in self.totals()}
        for entry in self._entries:
            for k, v in entry["cost"].items():
                out[k] += v
        return out

    @property
    def remaining(self) -> dict[str, float]:
        spent = self.spent
        return {k: max(0.0, total - spent[k]) for k, total in self.totals().items()}

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
        cost, remaining, totals = self._cost(loss), self.remaining, self.totals()
        return all(math.isfinite(cost[k]) and cost[k] <= remaining[k] + _TOL * totals[k] for k in cost)

    def check(self, loss: Loss, statistic: str = "release") -> None:
        """Raise :class:`BudgetExceededError` if ``loss`` does not fit; change nothing."""
        if self._kind == "approx" and loss.rho is not None and math.isinf(loss.epsilon):
            raise PrivaggInputError(
                f"{statistic}: a zCDP release (rho={loss.rho:g}) charged to an (epsilon, delta) budget needs delta > 0 "
                "to convert rho to epsilon. Fix: pass delta=, e.g. delta=1e-9, or use Budget(rho=...)."
            )
        if not self.can_afford(loss):
            cost, remaining = self._cost(loss), self.remaining
            over = [k for k in cost if not (cost[k] <= remaining[k] + _TOL * self.totals()[k])]
            what = ", ".join(f"{k}={cost[k]:.6g} (remaining {remaining[k]:.6g} of {self.totals()[k]:.6g})" for k in over)
            raise BudgetExceededError(
                f"{statistic} refused: it would spend {what}. Nothing was computed or drawn. "
                f"Fix: lower epsilon/rho (or delta) to fit the remaining budget {self._fmt(remaining)}, or use a new budget."
            )

    @staticmethod
    def _fmt(values: dict[str, float]) -> str:
        return "(" + ", ".join(f"{k}={v:.6g}" for k, v in values.items()) + ")"

    def charge(self, loss: Loss, *, statistic: str = "release", parameters: dict[str, Any] | None = None) -> None:
        """Record ``loss`` (raise :class:`BudgetExceededError` and change nothing if it does not fit)."""
        with self._lock:
            if self._ledger is not None and self._ledger.exists():
                # Pick up charges made by other processes or Budget objects on the same ledger.
                recorded = _read_ledger(self._ledger)["entries"]
                if len(recorded) > len(self._entries):
                    self._entries = list(recorded)
            self.check(loss, statistic)
            entry = {
                "statistic": statistic,
                "parameters": _jsonable(parameters or {}),
                "loss": loss.to_dict(),
                "cost": self._cost(loss),
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            entries = [*self._entries, entry]
            if self._ledger is not None:
                _write_ledger(self._ledger, self.totals(), entries)
            self._entries = entries

    def __repr__(self) -> str:
        return f"Budget({self._fmt(self.totals())[1:-1]}; spent {self._fmt(self.spent)}, {len(self._entries)} releases)"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _read_ledger(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        budget, entries = data["budget"], data["entries"]
        assert isinstance(entries, list) and isinstance(budget, dict)
    except (ValueError, KeyError, AssertionError, TypeError):
        raise PrivaggInputError(
            f"ledger {str(path)!r} is not a privagg budget ledger. Fix: point ledger= at a file written by privagg, or a new path."
        ) from None
    return {"budget": budget, "entries": entries}


def _write_ledger(path: Path, totals: dict[str, float], entries: list[dict[str, Any]]) -> None:
    atomic_write_text(path, json.dumps({"version": LEDGER_VERSION, "budget": totals, "entries": entries}, indent=2))
