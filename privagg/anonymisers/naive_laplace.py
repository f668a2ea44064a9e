"""INSECURE: textbook floating-point Laplace noise, drawn with numpy.

This is the mechanism as it appears in most textbooks and many codebases:
bound contributions exactly as the DP release does, compute the l1
sensitivity ``max_partitions * max_per_partition``, add
``numpy.random.Generator.laplace(0, sensitivity / epsilon)`` to each count
and publish the float. At the correct scale, and still not differentially
private: floating-point arithmetic leaves holes in the set of reachable
outputs that depend on the true value, so an observer of the low-order
bits can tell neighbouring datasets apart (Mironov, "On Significance of
the Least Significant Bits for Differential Privacy", CCS 2012).

It exists so that :mod:`privagg.audit` has something to catch. Its
releases carry ``formally_private=False`` and say so in their notes. Never
publish its output. Released values must otherwise get their noise from
OpenDP's samplers (privacy rule 3).
"""

from __future__ import annotations

import math
import secrets
from typing import Any

import numpy as np

from privagg.anonymisers.base import Anonymiser, check_game
from privagg.anonymisers.models import FloatLaplace
from privagg.anonymisers.raw import baseline_record
from privagg.anonymisers.suppression import check_count_statistic
from privagg.dp.bounds import Bounds, as_bounds
from privagg.engines import LocalEngine
from privagg.errors import PrivaggInputError
from privagg.queries import Query
from privagg.release import Release
from privagg.releases.build import contributions, key_columns
from privagg.releases.inputs import resolve
from privagg.world import World


class NaiveLaplace(Anonymiser):
    """INSECURE baseline: float Laplace noise from numpy at scale ``l1_sensitivity / epsilon``.

    Parameters
    ----------
    epsilon
        The nominal epsilon (the scale is right; the implementation is not).
    bounds
        Contribution bounds, applied as in the DP release (L0 by a random
        subset of partitions, Linf by capping).
    seed
        Seed of the numpy generator (noise and L0 subset); ``None`` draws one from :mod:`secrets`.

    Notes
    -----
    With a public key domain (``query.keys``) every key is released; without
    one the observed keys are released, which leaks their existence too.

    Examples
    --------
    >>> NaiveLaplace(epsilon=1.0).name
    'naive_laplace(epsilon=1.0, max_partitions=24, max_per_partition=1)'
    """

    method = "naive_laplace"
    formally_private = False

    def __init__(self, epsilon: float, bounds: Bounds | dict | None = None, seed: int | None = None) -> None:
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not math.isfinite(epsilon) or epsilon <= 0:
            raise PrivaggInputError(f"epsilon={epsilon!r} is not a positive number. Fix: pass e.g. epsilon=1.0.")
        self.epsilon = float(epsilon)
        self.bounds = as_bounds(bounds, Bounds())
        self.seed = seed

    def params(self) -> dict[str, Any]:
        return {
            "epsilon": self.epsilon,
            "max_partitions": self.bounds.max_partitions,
            "max_per_partition": self.bounds.max_per_partition,
        }

    @property
    def scale(self) -> float:
        """Laplace scale: l1 sensitivity over epsilon."""
        return self.bounds.l1_sensitivity / self.epsilon

    def publication_model(self, *, l0: int, linf: int = 1, days: int | None = None, query: Any = None) -> FloatLaplace:
        """Continuous Laplace noise at :attr:`scale` on each count, published as a float; ``loss`` None.

        The scale comes from the anonymiser's own bounds, as in :meth:`release`.
        Where the game's subscribers touch more keys than ``max_partitions``
        (or contribute more than ``max_per_partition``), the release would drop
        some of their contributions; the model publishes the untruncated counts
        (an attack on it is at least as strong). There is no DP guarantee to
        state either way: the mechanism is not private (Mironov 2012), so
        ``loss`` is ``None`` and attacks report no DP bound for it.
        """
        check_game(l0, linf, days)
        return FloatLaplace(scale=self.scale, label=self.name, seed=self.seed)

    def release(self, world: World, query: Query) -> Release:
        check_count_statistic(query, "naive_laplace")
        rng = np.random.default_rng(self.seed if self.seed is not None else secrets.randbits(128))
        inputs = resolve(world, query, users=None, cells=None, keys=query.keys)
        columns = list(key_columns(query, inputs.users))
        if query.keys is not None:
            query.keys.check_columns(columns)
        engine = LocalEngine(rng=rng)
        contrib = contributions(query, inputs, query.keys, self.bounds)
        domain, n_partitions = contrib.domain, contrib.n_partitions
        dense = query.keys is not None
        totals = engine.bounded_totals(contrib, self.bounds, dense=dense)
        codes = np.arange(n_partitions) if dense else totals.codes
        table = domain.decode(codes)[columns]
        # INSECURE by design (Mironov 2012): float Laplace from numpy, published unrounded.
        noisy = totals.counts.astype(np.float64) + rng.laplace(0.0, self.scale, len(codes))
        table["value"] = noisy
        record = baseline_record(
            world, query, "naive_laplace", self.params(),
            notes=(
                "INSECURE: textbook floating-point Laplace noise drawn with numpy; not differentially private "
                "(Mironov, CCS 2012). Exists to be caught by the privacy audit; never publish it.",
                "Nominal epsilon is in parameters; the scale is l1 sensitivity / epsilon after the DP contribution bounds.",
            ),
            bounds=self.bounds.to_dict(),
            mechanism="floating-point Laplace (numpy), insecure",
            noise_scale=self.scale,
        )
        return Release(table.sort_values(columns, kind="stable"), columns, record)
