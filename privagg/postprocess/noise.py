"""The noise distribution of a released value, read from its privacy record.

Post-processing and comparisons need to know how the released values were
perturbed: a release's :class:`~privagg.release.PrivacyRecord` names the
mechanism and its ``noise_scale``, and that is public. :func:`noise_model`
turns the record into a :class:`NoiseModel` with the distribution's
variance, exact quantiles, the exact distribution of a difference of two
independent noises, and a sampler.

The sampler uses ``numpy.random``. That is allowed here because it never
produces a released value: it only simulates the *known* noise distribution
to compute intervals after the fact (rule 6 of the design: post-processing
touches only released values). Release noise always comes from OpenDP.

Supported mechanisms (matched case-insensitively on ``PrivacyRecord.mechanism``):

==========================  ===============================================
mechanism contains          distribution, ``noise_scale`` meaning
==========================  ===============================================
"gaussian"                  discrete Gaussian on the integers, sigma = scale
"laplace" (and "discrete"   discrete Laplace on the integers,
or "opendp")                P(k) proportional to exp(-|k| / scale)
"laplace" otherwise         continuous Laplace, b = scale (e.g. the naive
                            floating-point baseline)
==========================  ===============================================

A record without a mechanism and a scale (raw, suppression, coarsening ...)
gives ``None``: no noise, the released values are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from privagg.errors import PrivaggInputError
from privagg.release import PrivacyRecord, Release

# Tail mass ignored when a discrete distribution is tabulated on a finite support.
_TAIL = 1e-16


@dataclass(frozen=True)
class NoiseModel:
    """A zero-mean noise distribution added independently to each released value.

    Attributes
    ----------
    kind
        ``"discrete_laplace"``, ``"discrete_gaussian"`` or ``"laplace"``.
    scale
        The mechanism's scale: Laplace scale or Gaussian sigma.
    factor
        Released values are ``factor`` times the noisy counts (a release whose privately
        chosen bounds are corrected by the estimated kept share), so the noise on them is
        ``factor`` times a draw of the mechanism; 1 for the mechanism's own values.
    """

    kind: str
    scale: float
    factor: float = 1.0

    @property
    def discrete(self) -> bool:
        """Whether the noise takes integer values."""
        return self.kind != "laplace" and self.factor == 1.0

    @property
    def variance(self) -> float:
        """Exact variance of one noise draw."""
        if self.kind == "laplace":
            return 2.0 * (self.factor * self.scale) ** 2
        support, pmf = _tabulate(self.kind, float(self.scale))
        return self.factor ** 2 * float(np.sum(pmf * support.astype(float) ** 2))

    def pmf(self) -> tuple[np.ndarray, np.ndarray]:
        """Support (integers, symmetric around 0) and probabilities; discrete kinds only."""
        if not self.discrete:
            raise ValueError("continuous noise has no probability mass function")
        return _tabulate(self.kind, float(self.scale))

    def sample(self, size: int | tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Simulated draws of the noise (for post-processing only, never for a release)."""
        if self.kind == "laplace":
            return self.factor * rng.laplace(0.0, self.scale, size=size)
        if self.kind == "discrete_laplace":
            # A discrete Laplace is the difference of two i.i.d. geometric variables.
            p = -math.expm1(-1.0 / self.scale)
            return self.factor * (rng.geometric(p, size=size) - rng.geometric(p, size=size)).astype(float)
        support, pmf = _tabulate(self.kind, float(self.scale))
        return self.factor * support[rng.choice(len(support), size=size, p=pmf)].astype(float)

    def interval(self, level: float) -> tuple[float, float]:
        """Quantiles ``(q_lo, q_hi)`` with ``P(q_lo <= noise <= q_hi) >= level``, tails balanced."""
        return noise_interval([self], level)


def noise_model(privacy: PrivacyRecord | Release) -> NoiseModel | None:
    """The noise distribution of the values of a release, or ``None`` if they carry no noise.

    Raises
    ------
    PrivaggInputError
        If the record names a mechanism privagg cannot model, or a scale that
        is not a positive finite number.

    Examples
    --------
    >>> from privagg.synth import generate_world
    >>> import privagg as pa
    >>> world = generate_world(n_users=300, n_cells=30, days=1, seed=1)
    >>> keys = pa.KeySet.areas_by_time(world.cells, level="zone", start=world.start, end=world.end, time_bin="6h")
    >>> rel = pa.footfall(world, epsilon=1.0, level="zone", time_bin="6h", keys=keys, bounds=pa.Bounds(max_partitions=4))
    >>> noise_model(rel).kind, noise_model(rel).scale == rel.privacy.noise_scale
    ('discrete_laplace', True)
    """
    record = privacy.privacy if isinstance(privacy, Release) else privacy
    mechanism = (record.mechanism or "").lower()
    scale = record.noise_scale
    if scale is None or not mechanism or mechanism in ("none", "no noise"):
        return None
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        scale = float("nan")
    if not math.isfinite(scale) or scale < 0:
        raise PrivaggInputError(
            f"privacy record of '{record.statistic}' has noise_scale={record.noise_scale!r}. "
            "Fix: the record must state a finite non-negative noise scale."
        )
    if scale == 0:
        return None
    factor = 1.0 / float(record.parameters.get("kept_share", 1.0) or 1.0)
    if "gaussian" in mechanism:
        return NoiseModel("discrete_gaussian", scale, factor)
    if "laplace" in mechanism:
        if "discrete" in mechanism or "opendp" in mechanism:
            return NoiseModel("discrete_laplace", scale, factor)
        return NoiseModel("laplace", scale, factor)
    raise PrivaggInputError(
        f"privacy record of '{record.statistic}' names mechanism {record.mechanism!r}, whose noise "
        "distribution privagg does not know. Fix: use a release made with discrete Laplace, "
        "discrete Gaussian or Laplace noise."
    )


@lru_cache(maxsize=64)
def _tabulate(kind: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    if kind == "discrete_laplace":
        # P(k) = (1 - a) / (1 + a) * a^|k|, a = exp(-1/scale); tail beyond m is ~ a^m.
        a = math.exp(-1.0 / scale)
        m = int(math.ceil(math.log(_TAIL) / math.log(a))) if a > 0 else 1
        support = np.arange(-m, m + 1)
        logp = np.abs(support) * (-1.0 / scale)
    elif kind == "discrete_gaussian":
        m = int(math.ceil(scale * math.sqrt(-2.0 * math.log(_TAIL)))) + 1
        support = np.arange(-m, m + 1)
        logp = -(support.astype(float) ** 2) / (2.0 * scale**2)
    else:  # pragma: no cover - guarded by the caller
        raise ValueError(kind)
    pmf = np.exp(logp - logp.max())
    pmf /= pmf.sum()
    support.setflags(write=False)
    pmf.setflags(write=False)
    return support, pmf


def _convolve(pmf_a: np.ndarray, pmf_b: np.ndarray) -> np.ndarray:
    if min(len(pmf_a), len(pmf_b)) < 512:
        out = np.convolve(pmf_a, pmf_b)
    else:
        from scipy.signal import fftconvolve

        out = fftconvolve(pmf_a, pmf_b)
    out = np.clip(out, 0.0, None)
    return out / out.sum()


def noise_interval(
    models: list[NoiseModel | None], level: float, *, signs: list[int] | None = None, seed: int = 0
) -> tuple[float, float]:
    """Quantiles of a signed sum of independent noises, ``sum(sign_i * noise_i)``.

    Returns ``(q_lo, q_hi)`` with ``P(q_lo <= total <= q_hi) >= level`` and at
    most ``(1 - level) / 2`` of the mass on either side. For discrete noises
    the distribution of the sum is computed exactly (by convolution of the
    probability mass functions, ignoring a tail of 1e-16); a sum involving
    continuous Laplace noise is simulated with 400,000 draws (fixed seed).
    ``None`` entries are exact values and contribute nothing.
    """
    if not 0 < level < 1:
        raise PrivaggInputError(f"level={level!r} must be strictly between 0 and 1. Fix: e.g. level=0.95.")
    present = [(m, s) for m, s in zip(models, signs or [1] * len(models)) if m is not None]
    if not present:
        return 0.0, 0.0
    alpha = (1.0 - level) / 2.0
    if all(m.discrete for m, _ in present):
        # Every noise here is symmetric, so the sign does not change its distribution.
        support, pmf = present[0][0].pmf()
        lo = int(support[0])
        for m, _ in present[1:]:
            s2, p2 = m.pmf()
            pmf = _convolve(pmf, p2)
            lo += int(s2[0])
        cdf = np.cumsum(pmf)
        # q_lo: the largest k with P(total < k) <= alpha; q_hi: the smallest k with P(total > k) <= alpha.
        below = np.concatenate(([0.0], cdf[:-1]))
        i_lo = int(np.searchsorted(below, alpha * (1 + 1e-12), side="right")) - 1
        i_hi = int(np.searchsorted(cdf, 1.0 - alpha * (1 + 1e-12), side="left"))
        i_hi = min(i_hi, len(cdf) - 1)
        return float(lo + max(i_lo, 0)), float(lo + i_hi)
    rng = np.random.default_rng(seed)
    total = np.zeros(400_000)
    for m, s in present:
        total += s * m.sample(total.shape, rng)
    return float(np.quantile(total, alpha)), float(np.quantile(total, 1.0 - alpha))
