"""What a privacy loss costs in a budget's units, and whether it still fits.

A budget is kept in one of two kinds of units (:data:`UNITS`): ``"approx"``,
(epsilon, delta), or ``"zcdp"``, (rho, delta). :func:`cost_of` converts a
:class:`~privagg.dp.budget.Loss` into the units of a budget, and
:func:`refusal` is the one place that decides whether a cost fits what
remains (up to :data:`TOLERANCE`). The in-memory
:class:`~privagg.dp.budget.Budget` and the SQLite
:class:`~privagg.dp.ledger.Ledger` both charge through these functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from privagg.errors import BudgetExceededError, PrivaggInputError

if TYPE_CHECKING:  # pragma: no cover
    from privagg.dp.budget import Loss

#: The units of each kind of budget, in the order they are reported.
UNITS = {"approx": ("epsilon", "delta"), "zcdp": ("rho", "delta")}
#: Relative float tolerance of a charge that exactly exhausts a budget.
TOLERANCE = 1e-12



def kind_of(totals: Mapping[str, Any]) -> str:
    """``"approx"`` for ``{"epsilon", "delta"}`` totals, ``"zcdp"`` for ``{"rho", "delta"}``."""
    for kind, units in UNITS.items():
        if set(totals) == set(units):
            return kind
    raise PrivaggInputError(
        f"budget totals {dict(totals)} are not in known units. Fix: give epsilon and delta, or rho and delta."
    )


def check_totals(totals: Mapping[str, Any], where: str = "budget") -> dict[str, float]:
    """Validate a budget's totals (finite, epsilon/rho > 0, 0 <= delta < 1); return them as floats in unit order."""
    kind = kind_of(totals)
    out: dict[str, float] = {}
    for unit in UNITS[kind]:
        value = totals[unit]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise PrivaggInputError(f"{where}: total {unit}={value!r} is not a finite number. Fix: e.g. {unit}=1.0.")
        value = float(value)
        if unit == "delta" and not 0 <= value < 1:
            raise PrivaggInputError(f"{where}: total delta={value!r} must be in [0, 1). Fix: e.g. delta=1e-9.")
        if unit != "delta" and value <= 0:
            raise PrivaggInputError(f"{where}: total {unit}={value!r} must be > 0. Fix: e.g. {unit}=1.0.")
        out[unit] = value
    return out


def cost_of(loss: Loss, kind: str, statistic: str = "release") -> dict[str, float]:
    """What ``loss`` costs in a budget of ``kind``: ``{"epsilon", "delta"}`` or ``{"rho", "delta"}``.

    Pure epsilon-DP counts as ``epsilon^2 / 2``-zCDP in a zCDP budget; a zCDP
    loss in an (epsilon, delta) budget costs the epsilon its rho implies.
    """
    if kind == "zcdp":
        rho = loss.rho if loss.rho is not None else loss.epsilon ** 2 / 2
        delta = loss.selection_delta if loss.rho is not None else loss.delta
        cost = {"rho": float(rho), "delta": float(delta)}
    else:
        if loss.rho is not None and math.isinf(loss.epsilon):
            raise PrivaggInputError(
                f"{statistic}: a zCDP release (rho={loss.rho:g}) charged to an (epsilon, delta) budget needs delta > 0 "
                "to convert rho to epsilon. Fix: pass delta=, e.g. delta=1e-9, or use Budget(rho=...)."
            )
        cost = {"epsilon": float(loss.epsilon), "delta": float(loss.delta)}
    for unit, value in cost.items():
        if not math.isfinite(value) or value < 0:
            raise PrivaggInputError(
                f"{statistic}: its cost {unit}={value!r} is not a finite number >= 0. Fix: pass a finite epsilon/rho > 0."
            )
    return cost


def fmt(values: Mapping[str, float]) -> str:
    """``(epsilon=1, delta=0)``."""
    return "(" + ", ".join(f"{k}={v:.6g}" for k, v in values.items()) + ")"


def refusal(statistic: str, cost: Mapping[str, float], spent: Mapping[str, float],
            totals: Mapping[str, float]) -> BudgetExceededError | None:
    """The error refusing ``cost`` after ``spent`` of ``totals``, or ``None`` if it fits (up to float rounding)."""
    remaining = remaining_of(spent, totals)
    over = [k for k in cost if not cost[k] <= remaining[k] + TOLERANCE * totals[k]]
    if not over:
        return None
    what = ", ".join(f"{k}={cost[k]:.6g} (remaining {remaining[k]:.6g} of {totals[k]:.6g})" for k in over)
    return BudgetExceededError(
        f"{statistic} refused: it would spend {what}. Nothing was computed or drawn. "
        f"Fix: lower epsilon/rho (or delta) to fit the remaining budget {fmt(remaining)}, or use a new budget."
    )


def remaining_of(spent: Mapping[str, float], totals: Mapping[str, float]) -> dict[str, float]:
    return {k: max(0.0, total - spent[k]) for k, total in totals.items()}


__all__ = ["TOLERANCE", "UNITS", "check_totals", "cost_of", "fmt", "kind_of", "refusal", "remaining_of"]
