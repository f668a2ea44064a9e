"""The differentially private anonymiser: contribution bounds + OpenDP noise + budget."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from privagg.anonymisers.base import Anonymiser
from privagg.dp.bounds import Bounds, as_bounds
from privagg.dp.budget import Budget
from privagg.dp.mechanisms import check_delta, check_loss
from privagg.errors import PrivaggInputError
from privagg.queries import Query, public_keys
from privagg.release import Release
from privagg.releases.core import release_query
from privagg.releases.inputs import window
from privagg.world import World


class DPAnonymiser(Anonymiser):
    """User-level DP releases of any :class:`~privagg.queries.Query`.

    Parameters
    ----------
    epsilon, rho
        Privacy loss per release (exactly one): pure DP with discrete
        Laplace noise, or zCDP with discrete Gaussian noise.
    delta
        For private partition selection (``public_keys=False``) and for
        reporting rho as epsilon.
    bounds
        Contribution bounds; ``None`` uses each statistic's defaults.
    public_keys
        ``True``: when the query has no keys, release every key of the public
        domain built from the World's cells, window and the schema's category
        lists (:func:`privagg.queries.public_keys`). ``False``: select keys
        privately (needs ``delta > 0``).
    budget
        Optional :class:`~privagg.dp.budget.Budget` charged by every release.
    ci_level
        Coverage of the noise intervals.
    """

    method = "dp"
    formally_private = True

    def __init__(self, epsilon: float | None = None, *, rho: float | None = None, delta: float | None = None,
                 bounds: Bounds | dict[str, Any] | None = None, public_keys: bool = True,
                 budget: Budget | None = None, ci_level: float = 0.95) -> None:
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

    def params(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon, "rho": self.rho, "delta": self.delta or None,
            "bounds": None if self.bounds is None else self.bounds.to_dict(),
            "public_keys": self.public_keys,
        }

    @property
    def name(self) -> str:
        loss = f"epsilon={self.epsilon:g}" if self.epsilon is not None else f"rho={self.rho:g}"
        return f"dp({loss})"

    def release(self, world: Any, query: Query) -> Release:
        """Release ``query`` on ``world`` with user-level DP (opted-out subscribers excluded)."""
        if not isinstance(world, World):
            raise PrivaggInputError(f"DPAnonymiser.release needs a World, got {type(world).__name__}. Fix: pass a privagg World.")
        if query.keys is None and self.public_keys:
            start, end = window(query, None, world.meta.get("start"), world.meta.get("end"))
            keys = public_keys(query, world.cells, start=start, end=end, users_columns=list(world.users.columns))
            query = replace(query, keys=keys, start=query.start if query.start is not None else (start if query.time_bin else None),
                            end=query.end if query.end is not None else (end if query.time_bin else None))
        return release_query(world, query, epsilon=self.epsilon, rho=self.rho, delta=self.delta or None,
                             bounds=self.bounds, budget=self.budget, ci_level=self.ci_level)
