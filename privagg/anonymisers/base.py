"""The anonymiser interface: every protection method, DP or not, answers a Query the same way.

An anonymiser is configured in its constructor (method parameters: epsilon,
k, coarsening...) and applied with :meth:`Anonymiser.release`, which returns a
:class:`~privagg.release.Release`. The harness can therefore put any
anonymiser under any query and any attack.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from privagg.anonymisers.models import Publication
from privagg.errors import PrivaggInputError
from privagg.queries import Query
from privagg.release import Release


class PublicationModelUnavailable(PrivaggInputError):
    """An anonymiser cannot describe its publications to an attack (see :meth:`Anonymiser.publication_model`)."""


def check_game(l0: Any, linf: Any = 1, days: Any = None) -> tuple[int, int, int | None]:
    """Validate the contribution a publication model is asked for: whole numbers >= 1 (``days`` may be None)."""
    out = []
    for name, value in (("l0", l0), ("linf", linf), ("days", days)):
        if value is None and name == "days":
            out.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise PrivaggInputError(
                f"{name}={value!r} is not a whole number >= 1. Fix: pass how one subscriber contributes to the "
                "attacked table, e.g. l0=24, linf=1, days=7 for hourly presence over a week."
            )
        out.append(int(value))
    return out[0], out[1], out[2]


class Anonymiser(ABC):
    """Base class of release methods.

    Subclasses set :attr:`method` (the ``PrivacyRecord.method`` they produce)
    and :attr:`formally_private`, and implement :meth:`release`. They must
    exclude subscribers with ``opt_in == False`` (``world.opted_in()``) and must
    not modify ``world``.
    """

    #: Short name recorded as ``PrivacyRecord.method``.
    method: str = "base"
    #: Whether releases carry a proven differential-privacy guarantee.
    formally_private: bool = False

    @abstractmethod
    def release(self, world: Any, query: Query) -> Release:
        """Answer ``query`` on ``world`` (a :class:`~privagg.world.World`) and return the protected release."""

    def publication_model(self, *, l0: int, linf: int = 1, days: int | None = None,
                          query: Query | None = None) -> Publication:
        """The anonymiser's model of itself, for attacks that must simulate many of its releases.

        Parameters
        ----------
        l0, linf
            How one subscriber contributes to the attacked table of counts:
            to at most ``l0`` keys per day (per table when ``days`` is None),
            at most ``linf`` to each (e.g. hourly presence: 24 keys a day, 1 each).
        days
            Days the attacked table covers (None: a table without time, such
            as a crossbreak of subscribers' attributes).
        query
            Optional: the query the attacked table answers. Methods whose
            release depends on it (a DP release's default contribution bounds)
            then model exactly that release; the others ignore it.

        Returns
        -------
        Publication
            Called on exact counts, it returns what this anonymiser would publish
            (:mod:`privagg.anonymisers.models`), with the noise scale and the
            guarantee (``loss``) the anonymiser's own release would have.

        Raises
        ------
        PublicationModelUnavailable
            When the method publishes no table of counts that can be modelled so
            (e.g. pseudonymised microdata).
        """
        raise PublicationModelUnavailable(
            f"{self.name} gives attacks no model of its publications. Fix: use an attack that takes its releases "
            "directly (unicity, differencing, trajectory recovery)."
        )

    def params(self) -> dict[str, Any]:
        """The anonymiser's parameters, JSON-serialisable (for results tables)."""
        return {}

    @property
    def name(self) -> str:
        """A short label, e.g. ``"dp(epsilon=1)"``, for plots and tables."""
        params = ", ".join(f"{k}={v}" for k, v in self.params().items() if v is not None)
        return f"{self.method}({params})" if params else self.method

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"


def model_for_attack(anonymiser: Any, world: Any, query: Query, *, l0: int, linf: int = 1,
                     days: int | None = None) -> Publication:
    """``anonymiser.publication_model(...)`` for ``query``, releasing the query first when the model needs it.

    An anonymiser that chooses its bounds privately reads its model (noise scale,
    bounds, mechanism) from the record of its own release of the query. An
    attack that asks before any release therefore makes one, as the adversary's
    own simulation, so the model is never weaker than the release it stands for.

    Raises
    ------
    PublicationModelUnavailable
        When the anonymiser has no model of its publications.
    """
    try:
        return anonymiser.publication_model(l0=l0, linf=linf, days=days, query=query)
    except PublicationModelUnavailable:
        if not hasattr(anonymiser, "release") or getattr(anonymiser, "method", None) == "pseudonymised":
            raise
        anonymiser.release(world, query)
        return anonymiser.publication_model(l0=l0, linf=linf, days=days, query=query)
