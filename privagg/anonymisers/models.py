"""Publication models: how an anonymiser publishes a table of counts, for attacks that simulate it.

Attacks such as membership inference (many releases of candidate groups) and
reconstruction (candidate tables) must publish exact counts the way the
attacked anonymiser would, thousands of times. Each anonymiser gives them
its model of itself through :meth:`privagg.anonymisers.base.Anonymiser.publication_model`;
suppression, rounding and noise are implemented here once.

A model is called on exact counts and returns what would be published
(``NaN`` where suppressed). Its noise comes from OpenDP, like a release's;
:meth:`Publication.simulate` draws the same distribution with seeded numpy
for the adversary's own training simulations, which are never published.
:meth:`Publication.log_likelihood` lets a likelihood-ratio attacker score
published values against candidate exact counts.

Examples
--------
>>> import numpy as np
>>> Suppressed(k=5)(np.array([0, 4, 5, 12]))
array([nan, nan,  5., 12.])
>>> Noisy(mechanism="laplace", scale=2.0).noise_scale
2.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from privagg.dp.units import Loss


def _as_counts(values: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(values, dtype=float))


@dataclass(frozen=True, kw_only=True)
class Publication:
    """Base of the publication models: exact counts published as they are.

    Attributes
    ----------
    k
        Suppression threshold: counts below ``k`` are published as NaN (``None``: none).
    rounding
        Published counts are rounded to a multiple of this (``None``: not rounded).
    loss
        The DP guarantee of one publication for one subscriber of the
        attacked game (``None``: no formal guarantee).
    """

    k: int | None = None
    rounding: int | None = None
    loss: Loss | None = None

    kind = "exact"

    @property
    def name(self) -> str:
        return "raw"

    @property
    def noise_kind(self) -> str | None:
        """``"laplace"``, ``"gaussian"`` or ``None`` (no noise)."""
        return None

    @property
    def noise_scale(self) -> float:
        """Laplace ``b`` or Gaussian ``sigma`` of the noise on each value (0 without noise)."""
        return 0.0

    def _finish(self, counts: np.ndarray) -> np.ndarray:
        out = np.asarray(counts, dtype=float).copy()
        if self.k is not None:
            out[out < self.k] = np.nan
        if self.rounding is not None:
            out = np.round(out / self.rounding) * self.rounding
        return out

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """What the anonymiser publishes for exact counts ``values`` (any shape)."""
        return self._finish(_as_counts(values))

    def simulate(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The adversary's simulation of :meth:`__call__`: same distribution, seeded numpy noise."""
        return self._finish(_as_counts(values))

    def noise_log_pmf(self, diff: np.ndarray) -> np.ndarray:
        """log P(noise = ``diff``) for integer ``diff`` (exact publications: 0 at 0, -inf elsewhere)."""
        diff = np.asarray(diff, dtype=float)
        return np.where(diff == 0, 0.0, -np.inf)

    def log_likelihood(self, released: np.ndarray, expected: np.ndarray) -> np.ndarray:
        """Elementwise log P(published value = ``released`` | exact count = ``expected``).

        Suppressed values (NaN) have the probability that the noisy count
        fell below ``k``; rounded values the probability of the rounding
        interval. ``expected`` may be fractional (a mean count): it is
        rounded for exact publications and used as the centre otherwise.
        """
        released = np.asarray(released, dtype=float)
        expected = np.asarray(expected, dtype=float)
        shape = np.broadcast(released, expected).shape
        released, expected = np.broadcast_to(released, shape), np.broadcast_to(expected, shape)
        centre = np.rint(expected)
        out = np.empty(shape)
        hidden = np.isnan(released)
        if self.k is not None:
            out[hidden] = self._log_cdf_below(self.k - 1 - centre[hidden])
        else:
            out[hidden] = 0.0
        shown = ~hidden
        if self.rounding is None:
            out[shown] = self.noise_log_pmf(released[shown] - centre[shown])
        else:
            half = self.rounding / 2
            lo = np.ceil(released[shown] - half) - centre[shown]
            hi = np.ceil(released[shown] + half) - 1 - centre[shown]
            out[shown] = self._log_interval(lo, hi)
        return out

    def _log_cdf_below(self, t: np.ndarray) -> np.ndarray:
        """log P(noise <= t)."""
        t = np.asarray(t, dtype=float)
        return np.where(t >= 0, 0.0, -np.inf)

    def _log_interval(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """log P(lo <= noise <= hi)."""
        lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        return np.where((lo <= 0) & (hi >= 0), 0.0, -np.inf)


@dataclass(frozen=True, kw_only=True)
class Exact(Publication):
    """Exact counts (a raw release), optionally with rounding."""


@dataclass(frozen=True, kw_only=True)
class Suppressed(Publication):
    """Exact counts below ``k`` suppressed (NaN), optionally rounded: what footfall products do.

    Examples
    --------
    >>> Suppressed(k=10, rounding=5).name
    'suppression(k=10, rounding=5)'
    """

    k: int | None = 10

    kind = "suppression"

    @property
    def name(self) -> str:
        return f"suppression(k={self.k}" + (f", rounding={self.rounding})" if self.rounding else ")")


@dataclass(frozen=True, kw_only=True)
class Noisy(Publication):
    """Counts plus integer noise from OpenDP: discrete Laplace (scale ``b``) or discrete Gaussian (``sigma``).

    Attributes
    ----------
    mechanism
        ``"laplace"`` or ``"gaussian"``.
    scale
        Laplace ``b`` (P(z) ~ exp(-|z|/b)) or Gaussian ``sigma``.
    label
        How the model names itself in results, e.g. ``"dp(epsilon=1 per subscriber-day)"``.
    """

    mechanism: str = "laplace"
    scale: float = 1.0
    label: str = ""

    kind = "noise"

    @property
    def name(self) -> str:
        return self.label or f"dp({self.mechanism}, scale={self.scale:g})"

    @property
    def noise_kind(self) -> str | None:
        return self.mechanism

    @property
    def noise_scale(self) -> float:
        return float(self.scale)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        from privagg.dp.mechanisms import NoiseMechanism

        counts = _as_counts(values)
        mech = NoiseMechanism(self.mechanism, float(self.scale), 0.0, 0.0)
        noisy = mech.sample(counts.astype(np.int64).ravel()).reshape(counts.shape)
        return self._finish(noisy)

    def simulate(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        counts = _as_counts(values)
        shape = counts.shape
        if self.mechanism == "laplace":
            p = -np.expm1(-1.0 / self.scale)  # discrete Laplace = difference of two geometrics
            noise = rng.geometric(p, shape) - rng.geometric(p, shape)
        else:
            support, cdf = self._gaussian_table()
            noise = support[np.searchsorted(cdf, rng.random(shape), side="right").clip(max=support.size - 1)]
        return self._finish(counts + noise)

    def _gaussian_table(self) -> tuple[np.ndarray, np.ndarray]:
        reach = int(math.ceil(12 * self.scale)) + 1
        support = np.arange(-reach, reach + 1)
        logp = -(support.astype(float) ** 2) / (2 * self.scale ** 2)
        p = np.exp(logp - special.logsumexp(logp))
        return support, np.cumsum(p)

    def noise_log_pmf(self, diff: np.ndarray) -> np.ndarray:
        diff = np.abs(np.asarray(diff, dtype=float))
        if self.mechanism == "laplace":
            # P(z) = (1 - e^{-1/b}) / (1 + e^{-1/b}) e^{-|z|/b}
            a = 1.0 / self.scale
            return math.log(-math.expm1(-a)) - math.log1p(math.exp(-a)) - a * diff
        support, _ = self._gaussian_table()
        logp = -(support.astype(float) ** 2) / (2 * self.scale ** 2)
        return -(diff ** 2) / (2 * self.scale ** 2) - special.logsumexp(logp)

    def _log_cdf_below(self, t: np.ndarray) -> np.ndarray:
        t = np.floor(np.asarray(t, dtype=float))
        if self.mechanism == "laplace":
            q = math.exp(-1.0 / self.scale)
            # P(Z <= t) = 1 - q^{t+1}/(1+q) for t >= 0; q^{-t}/(1+q) for t < 0
            with np.errstate(over="ignore", divide="ignore"):
                neg = -t * math.log(q) - math.log1p(q)
                pos = np.log1p(-np.exp((np.maximum(t, 0) + 1) * math.log(q) - math.log1p(q)))
            return np.where(t < 0, neg, pos)
        support, cdf = self._gaussian_table()
        idx = np.searchsorted(support, t, side="right") - 1
        vals = np.where(idx < 0, 0.0, cdf[np.clip(idx, 0, support.size - 1)])
        with np.errstate(divide="ignore"):
            return np.log(np.clip(vals, 0.0, 1.0))

    def _log_interval(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        a, b = self._log_cdf_below(hi), self._log_cdf_below(np.asarray(lo, dtype=float) - 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return a + np.log1p(-np.exp(np.minimum(b - a, 0.0)))


@dataclass(frozen=True, kw_only=True)
class FloatLaplace(Publication):
    """Counts plus continuous Laplace noise from numpy, published as floats: the insecure textbook mechanism.

    The model of :class:`~privagg.anonymisers.naive_laplace.NaiveLaplace`.
    Its values are real numbers, so :meth:`log_likelihood` is a log density
    (of the released float given the exact count), not a log probability;
    likelihood ratios between candidate counts are what attacks use, and those
    are exact. ``loss`` is ``None``: the mechanism has no formal guarantee
    (Mironov 2012), whatever its nominal epsilon.

    Attributes
    ----------
    scale
        Laplace ``b`` (density ~ exp(-|z|/b)).
    seed
        Seed of the numpy generator used by :meth:`__call__` (``None``: fresh).
    """

    scale: float = 1.0
    label: str = ""
    seed: int | None = None

    kind = "float_noise"

    @property
    def name(self) -> str:
        return self.label or f"naive_laplace(scale={self.scale:g})"

    @property
    def noise_kind(self) -> str | None:
        return "float_laplace"

    @property
    def noise_scale(self) -> float:
        return float(self.scale)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        import secrets

        # The insecure mechanism itself draws numpy noise; this is what it publishes, not a DP release.
        rng = np.random.default_rng(self.seed if self.seed is not None else secrets.randbits(128))
        return self.simulate(values, rng)

    def simulate(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        counts = _as_counts(values)
        return counts + rng.laplace(0.0, self.scale, counts.shape)

    def log_likelihood(self, released: np.ndarray, expected: np.ndarray) -> np.ndarray:
        """Elementwise log density of the published float ``released`` given exact count ``expected``."""
        released = np.asarray(released, dtype=float)
        centre = np.rint(np.asarray(expected, dtype=float))
        return -np.abs(released - centre) / self.scale - math.log(2 * self.scale)


__all__ = ["Exact", "FloatLaplace", "Noisy", "Publication", "Suppressed"]
