"""A release plan: several statistics of one product under one total budget, charged once.

>>> from privagg.queries import Query
>>> p = ReleasePlan([PlanItem("footfall", Query("footfall"), weight=3), PlanItem("od", Query("od_flows"))], epsilon=2.0)
>>> p.shares()
{'footfall': 0.75, 'od': 0.25}

The plan's loss (the sum of its releases' losses, each computed without any
data by :func:`~privagg.releases.core.release_loss`) is checked against the
budget and charged in one ledger entry (statistic ``"plan"``) before any
release reads data or draws noise: a plan that does not fit is refused
whole and spends nothing. Each release then runs without a budget and its
record states its share of the plan.

Splits
------
``"weights"``
    Each statistic gets ``weight / sum(weights)`` of epsilon (or rho) and of delta.
``"equal_error"``
    Shares that equalise the expected relative error of the statistics,
    assuming subscribers fill their contribution bounds alike in every
    statistic (the only public assumption available before the data is
    read): the relative error of a count vector with ``K`` public keys is
    about ``K * sensitivity / (loss * N * l1)``, so shares of epsilon go as
    ``K`` and shares of rho as ``(K * l2 / l1)^2`` (statistic defaults' l1, l2).
    Needs public keys.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from privagg.dp.bounds import Bounds
from privagg.dp.budget import Budget
from privagg.dp.mechanisms import check_delta, check_loss
from privagg.dp.units import Loss
from privagg.engines.base import Engine
from privagg.errors import PrivaggInputError
from privagg.queries import Query
from privagg.release import Release
from privagg.releases.core import default_bounds, effective_bounds, release_loss, release_query

SPLITS = ("weights", "equal_error")


@dataclass(frozen=True)
class PlanItem:
    """One statistic of a plan: a name, its query, its weight, and optional bounds / mechanism.

    Examples
    --------
    >>> import privagg as pa
    >>> item = PlanItem("footfall", pa.Query("footfall", level="zone", time_bin="1D"), weight=2)
    >>> item.name, item.weight, item.mechanism
    ('footfall', 2, 'auto')
    """

    name: str
    query: Query
    weight: float = 1.0
    bounds: Bounds | dict[str, Any] | str | None = None
    mechanism: str = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.query, Query):
            raise PrivaggInputError(f"PlanItem {self.name!r}: query={self.query!r} is not a Query. Fix: pass privagg.Query(...).")
        w = self.weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
            raise PrivaggInputError(f"PlanItem {self.name!r}: weight={w!r} must be > 0. Fix: pass e.g. weight=1.")


class ReleasePlan:
    """Several releases under one total loss ``epsilon`` (or ``rho``) and ``delta`` (see the module docstring).

    Parameters
    ----------
    items
        The statistics, with unique names.
    epsilon, rho
        The plan's total loss (exactly one).
    delta
        The plan's total delta, split like the loss.
    split
        ``"weights"`` or ``"equal_error"``.

    Examples
    --------
    Plan the loss before any data is read, then release under one budget charge:

    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> daily = lambda level: pa.KeySet.areas_by_time(world.cells, level=level, start=world.start, end=world.end,
    ...                                               time_bin="1D")
    >>> plan = ReleasePlan([PlanItem("footfall", pa.Query("footfall", level="zone", time_bin="1D", keys=daily("zone")),
    ...                              weight=3),
    ...                     PlanItem("visits", pa.Query("visits", level="district", time_bin="1D", keys=daily("district")))],
    ...                    epsilon=1.0)
    >>> plan.shares()
    {'footfall': 0.75, 'visits': 0.25}
    >>> plan.total_loss().describe()
    'epsilon=1'
    >>> budget = pa.Budget(epsilon=2.0)
    >>> product = plan.release(world, budget=budget)
    >>> sorted(product), budget.entries[-1]["statistic"], budget.remaining["epsilon"]
    (['footfall', 'visits'], 'plan', 1.0)
    """

    def __init__(self, items: Sequence[PlanItem], *, epsilon: float | None = None, rho: float | None = None,
                 delta: float | None = None, split: str = "weights") -> None:
        if (epsilon is None) == (rho is None):
            raise PrivaggInputError("ReleasePlan needs exactly one of epsilon= or rho=. Fix: e.g. ReleasePlan(items, epsilon=2.0).")
        items = list(items)
        if not items:
            raise PrivaggInputError("ReleasePlan has no items. Fix: pass at least one PlanItem.")
        names = [i.name for i in items]
        if len(set(names)) != len(names):
            raise PrivaggInputError(f"ReleasePlan item names {names} repeat. Fix: give every item its own name.")
        if split not in SPLITS:
            raise PrivaggInputError(f"split={split!r} is unknown. Fix: use one of {', '.join(map(repr, SPLITS))}.")
        self.items = items
        self.epsilon = None if epsilon is None else check_loss("epsilon", epsilon)
        self.rho = None if rho is None else check_loss("rho", rho)
        self.delta = check_delta(delta)
        self.split = split

    def shares(self) -> dict[str, float]:
        """Each item's share of the plan's loss (summing to 1)."""
        if self.split == "weights":
            raw = {i.name: float(i.weight) for i in self.items}
        else:
            raw = {}
            for i in self.items:
                if i.query.keys is None:
                    raise PrivaggInputError(
                        f"split='equal_error' needs public keys; item {i.name!r} has keys=None. Fix: give it keys=KeySet... or use split='weights'."
                    )
                b = effective_bounds(i.query, default_bounds(i.query))
                k = float(len(i.query.keys))
                raw[i.name] = k if self.epsilon is not None else (k * b.l2_sensitivity / b.l1_sensitivity) ** 2
        total = sum(raw.values())
        return {n: v / total for n, v in raw.items()}

    def item_settings(self) -> dict[str, dict[str, Any]]:
        """The loss settings each release gets: ``epsilon`` or ``rho``, and ``delta`` (``None`` when 0)."""
        out = {}
        for name, share in self.shares().items():
            out[name] = {
                "epsilon": None if self.epsilon is None else self.epsilon * share,
                "rho": None if self.rho is None else self.rho * share,
                "delta": self.delta * share or None,
            }
        return out

    def losses(self) -> dict[str, Loss]:
        """Each release's loss, computed without any data."""
        settings = self.item_settings()
        return {i.name: release_loss(i.query, bounds=i.bounds, mechanism=i.mechanism, **settings[i.name]) for i in self.items}

    def total_loss(self) -> Loss:
        """The plan's loss: its releases' losses composed (their sum)."""
        return sum(self.losses().values(), Loss(epsilon=0.0))

    def release(self, data: Any, *, budget: Budget | None = None, users: Any = None, cells: Any = None,
                ci_level: float = 0.95, engine: Engine | None = None) -> dict[str, Release]:
        """Check the whole plan fits ``budget``, charge it once, then run every release (name -> Release)."""
        if budget is not None and not isinstance(budget, Budget):
            raise PrivaggInputError(f"budget={budget!r} is not a privagg Budget. Fix: pass privagg.Budget(epsilon=...) or None.")
        settings = self.item_settings()
        losses = self.losses()
        total = sum(losses.values(), Loss(epsilon=0.0))
        shares = self.shares()
        if budget is not None:
            budget.check(total, "plan")
            budget.charge(total, statistic="plan", parameters={
                "split": self.split,
                "items": [{"name": i.name, "query": i.query.describe(), "share": shares[i.name],
                           "loss": losses[i.name].to_dict()} for i in self.items],
            })
        out: dict[str, Release] = {}
        for item in self.items:
            rel = release_query(data, item.query, bounds=item.bounds, mechanism=item.mechanism, budget=None,
                                users=users, cells=cells, ci_level=ci_level, engine=engine, **settings[item.name])
            rec = rel.privacy
            record = replace(
                rec,
                parameters={**rec.parameters, "plan_share": shares[item.name], "plan_split": self.split,
                            "plan_total": total.to_dict()},
                notes=(*rec.notes, f"Part of a release plan of {len(self.items)} statistics charged once "
                                   f"({total.describe()} in all); this release has {shares[item.name]:.4g} of it "
                                   f"({losses[item.name].describe()}), split by {self.split}."),
            )
            out[item.name] = Release(rel.to_pandas(), rel.key_columns, record)
        return out
