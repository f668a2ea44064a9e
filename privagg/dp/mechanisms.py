"""Noise mechanisms from OpenDP: discrete Laplace (pure DP) and discrete Gaussian (zCDP).

Released values get their noise only from OpenDP's exact samplers (privacy
rule 3): the aggregated integer vector goes through
``vector_domain(atom_domain(i64)) >> then_laplace`` (``l1_distance``) or
``>> then_gaussian`` (``l2_distance``). The scale is calibrated from the
requested loss and the contribution bounds, then checked with OpenDP's own
privacy map (``measurement.map(sensitivity) <= loss``).

Noising many values: OpenDP's samplers cost ~13 us per value and release the
GIL, so long vectors are split into chunks noised in parallel threads. Each
coordinate gets independent noise of the same scale either way, so the
output distribution is exactly that of the single-vector measurement whose
privacy map was checked.

Confidence intervals are exact quantiles of the noise distribution: the
interval ``value +/- t`` holds the noiseless (bounded) aggregate with
probability at least ``level``. They say nothing about bounding bias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from privagg.errors import PrivaggInputError
from privagg.parallel import default_threads, thread_map

_CHUNK = 10_000  # values per thread below which threading costs more than it saves


@lru_cache(maxsize=1)
def opendp() -> Any:
    """``opendp.prelude`` with the ``contrib`` feature enabled."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


#: The losses one release may spend: beyond them the noise scale under- or overflows the samplers
#: and their exact tails (and an epsilon above 100 protects nobody).
LOSS_RANGE = {"epsilon": (1e-6, 100.0), "rho": (1e-12, 100.0)}


def check_loss(name: str, value: Any) -> float:
    """Validate a privacy parameter (``epsilon`` or ``rho``): a finite number in :data:`LOSS_RANGE`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise PrivaggInputError(f"{name}={value!r} is not a number. Fix: pass a finite {name} > 0, e.g. {name}=1.0.")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise PrivaggInputError(f"{name}={value!r} must be finite and > 0. Fix: pass e.g. {name}=1.0.")
    low, high = LOSS_RANGE.get(name, (0.0, math.inf))
    if not low <= value <= high:
        raise PrivaggInputError(
            f"{name}={value!r} is outside [{low:g}, {high:g}], the range the noise mechanisms can honour. "
            f"Fix: pass {name} between {low:g} and {high:g}, e.g. {name}=1.0."
        )
    return value


def check_delta(value: Any, *, required: bool = False, why: str = "") -> float:
    """Validate ``delta``: 0 <= delta < 1 (> 0 when ``required``)."""
    if value is None:
        value = 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(float(value)):
        raise PrivaggInputError(f"delta={value!r} is not a finite number. Fix: pass e.g. delta=1e-9.")
    value = float(value)
    if value < 0 or value >= 1:
        raise PrivaggInputError(f"delta={value!r} must be in [0, 1). Fix: pass e.g. delta=1e-9.")
    if required and value == 0:
        raise PrivaggInputError(f"delta must be > 0 {why}. Fix: pass e.g. delta=1e-9.")
    return value


@dataclass(frozen=True)
class NoiseMechanism:
    """Calibrated additive integer noise.

    Attributes
    ----------
    kind
        ``"laplace"`` (discrete Laplace, pure epsilon-DP) or ``"gaussian"``
        (discrete Gaussian, rho-zCDP).
    scale
        Laplace scale ``b`` (P(k) ~ exp(-|k|/b)) or Gaussian ``sigma``
        (P(k) ~ exp(-k^2 / 2 sigma^2)).
    sensitivity
        l1 (Laplace) or l2 (Gaussian) sensitivity the scale was calibrated for.
    loss
        epsilon (Laplace) or rho (Gaussian) that OpenDP's privacy map gives at ``sensitivity``.
    """

    kind: str
    scale: float
    sensitivity: float
    loss: float

    @property
    def name(self) -> str:
        return "discrete Laplace (OpenDP)" if self.kind == "laplace" else "discrete Gaussian (OpenDP)"

    def measurement(self) -> Any:
        return _measurement(self.kind, self.scale)

    def privacy_map(self) -> float:
        """The loss OpenDP's map certifies at ``sensitivity``."""
        d_in = int(self.sensitivity) if self.kind == "laplace" else float(self.sensitivity)
        return float(self.measurement().map(d_in))

    def sample(self, values: np.ndarray, *, threads: int | None = None) -> np.ndarray:
        """``values`` + noise, as int64 (a new array; ``values`` is not modified)."""
        values = np.ascontiguousarray(values, dtype=np.int64)
        n = len(values)
        if n == 0:
            return values.copy()
        measurement = self.measurement()

        def run(chunk: np.ndarray) -> np.ndarray:
            return np.asarray(measurement(np.array(chunk, dtype=np.int64, copy=True)), dtype=np.int64)

        workers = threads if threads is not None else default_threads()
        if workers <= 1 or n < 2 * _CHUNK:
            return run(values)
        return np.concatenate(thread_map(run, np.array_split(values, workers), workers))

    def half_width(self, level: float = 0.95) -> float:
        """Smallest integer ``t`` with ``P(|Z| <= t) >= level`` for this noise ``Z``."""
        return float(noise_half_width(self.kind, self.scale, level))

    def variance(self) -> float:
        return noise_variance(self.kind, self.scale)


@lru_cache(maxsize=64)
def _measurement(kind: str, scale: float) -> Any:
    """OpenDP's vector measurement for ``kind`` at ``scale`` (immutable, so built once and shared)."""
    dp = opendp()
    if kind == "laplace":
        space = dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l1_distance(T=dp.i64)
        return space >> dp.m.then_laplace(scale=scale)
    space = dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.l2_distance(T=dp.f64)
    return space >> dp.m.then_gaussian(scale=scale)


def _calibrated(kind: str, scale: float, sensitivity: float, loss: float) -> NoiseMechanism:
    """The smallest scale from ``scale`` up at which OpenDP's privacy map certifies ``loss`` at ``sensitivity``.

    The closed-form scale can miss by a rounding error in OpenDP's map, so it is
    nudged up by one float step at a time until the map certifies the loss.
    """
    mech = NoiseMechanism(kind, scale, sensitivity, loss)
    for _ in range(64):
        certified = mech.privacy_map()
        if certified <= loss:
            return NoiseMechanism(kind, mech.scale, sensitivity, certified)
        mech = NoiseMechanism(kind, float(np.nextafter(mech.scale, math.inf)) * (1 + 1e-12), sensitivity, loss)
    raise PrivaggInputError(  # pragma: no cover - the map is monotone in the scale
        f"could not calibrate the discrete {kind} noise for loss {loss:g}. Fix: report this as a bug."
    )


@lru_cache(maxsize=256)
def laplace(epsilon: float, l1_sensitivity: int) -> NoiseMechanism:
    """Discrete Laplace calibrated so OpenDP certifies ``epsilon`` at ``l1_sensitivity``: ``scale = l1/epsilon``."""
    return _calibrated("laplace", l1_sensitivity / epsilon, l1_sensitivity, epsilon)


@lru_cache(maxsize=256)
def gaussian(rho: float, l2_sensitivity: float) -> NoiseMechanism:
    """Discrete Gaussian calibrated so OpenDP certifies ``rho`` at ``l2_sensitivity``: ``sigma = l2/sqrt(2 rho)``."""
    return _calibrated("gaussian", l2_sensitivity / math.sqrt(2 * rho), l2_sensitivity, rho)


@lru_cache(maxsize=256)
def zcdp_epsilon(rho: float, delta: float) -> float:
    """epsilon such that rho-zCDP implies (epsilon, delta)-DP, by OpenDP's conversion (Canonne, Kamath, Steinke 2020)."""
    if rho == 0:
        return 0.0
    if delta <= 0:
        return math.inf
    dp = opendp()
    space = dp.atom_domain(T=dp.f64, nan=False), dp.absolute_distance(T=dp.f64)
    meas = space >> dp.m.then_gaussian(scale=1.0 / math.sqrt(2 * rho))
    profile = dp.c.make_zCDP_to_approxDP(meas).map(1.0)
    return float(profile.epsilon(delta))


# ---------------------------------------------------------------------- distributions
def laplace_pmf_ratio(scale: float) -> float:
    """``a = exp(-1/scale)``: P(Z = k) = (1 - a) / (1 + a) * a^|k|."""
    return math.exp(-1.0 / scale)


def laplace_tail(scale: float, t: np.ndarray | int) -> np.ndarray:
    """P(|Z| >= t) of the discrete Laplace: 1 for t <= 0, else 2 a^t / (1 + a)."""
    a = laplace_pmf_ratio(scale)
    t = np.asarray(t, dtype=float)
    return np.where(t <= 0, 1.0, 2.0 * np.exp(t * math.log(a)) / (1 + a))


_GAUSS_EXACT_MAX = 2e5


def _gaussian_support(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Support 0..K and P(|Z| = k) of the discrete Gaussian, computed exactly (normalised numerically)."""
    k_max = int(math.ceil(sigma * 14 + 20))
    k = np.arange(k_max + 1, dtype=float)
    w = np.exp(-(k * k) / (2 * sigma * sigma))
    mass = np.where(k == 0, w, 2 * w)
    return k, mass / mass.sum()


def gaussian_tail(sigma: float, t: np.ndarray | int) -> np.ndarray:
    """P(|Z| >= t) of the discrete Gaussian (exact sum for sigma <= 2e5, else the normal tail, which agrees to < 1e-12)."""
    t = np.asarray(t, dtype=float)
    if sigma > _GAUSS_EXACT_MAX:
        from scipy.special import erfc

        return np.where(t <= 0, 1.0, erfc((np.ceil(t) - 0.5) / (sigma * math.sqrt(2))))
    k, p = _gaussian_support(sigma)
    tail = np.concatenate((np.cumsum(p[::-1])[::-1], [0.0]))  # tail[j] = P(|Z| >= j)
    idx = np.clip(np.ceil(t).astype(np.int64), 0, len(tail) - 1)
    return np.where(t <= 0, 1.0, tail[idx])


def noise_half_width(kind: str, scale: float, level: float) -> int:
    """Smallest integer t with P(|Z| <= t) >= level."""
    if not 0 < level < 1:
        raise PrivaggInputError(f"ci_level={level!r} must be in (0, 1). Fix: pass e.g. ci_level=0.95.")
    alpha = 1 - level
    if kind == "laplace":
        a = laplace_pmf_ratio(scale)
        # P(|Z| > t) = P(|Z| >= t + 1) = 2 a^(t+1) / (1 + a) <= alpha
        t = math.ceil(math.log(alpha * (1 + a) / 2) / math.log(a)) - 1
        t = max(t, 0)
        while t > 0 and float(laplace_tail(scale, t)) <= alpha:  # guard against rounding up
            t -= 1
        while float(laplace_tail(scale, t + 1)) > alpha:
            t += 1
        return int(t)
    if scale > _GAUSS_EXACT_MAX:
        from scipy.stats import norm

        return int(math.ceil(norm.ppf(1 - alpha / 2) * scale))
    k, p = _gaussian_support(scale)
    cdf = np.cumsum(p)  # P(|Z| <= k)
    return int(np.searchsorted(cdf, level - 1e-15))


def noise_variance(kind: str, scale: float) -> float:
    """Variance of the noise: discrete Laplace 2a/(1-a)^2; discrete Gaussian (computed, <= sigma^2)."""
    if kind == "laplace":
        a = laplace_pmf_ratio(scale)
        return 2 * a / (1 - a) ** 2
    if scale > _GAUSS_EXACT_MAX:
        return scale * scale
    k, p = _gaussian_support(scale)
    return float((k * k * p).sum())
