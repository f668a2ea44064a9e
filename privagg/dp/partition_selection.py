"""Private partition selection: releasing keys that are not public.

Without a public :class:`~privagg.queries.KeySet`, which keys exist is itself
private. OpenDP's threshold mechanisms (``make_laplace_threshold`` over
``l01inf_distance``, ``make_gaussian_threshold`` over ``l02inf_distance``;
Rogers 2023) add noise to each observed key's count and release only keys
whose noisy count reaches a threshold, calibrated so that a key held by few
subscribers appears with probability at most ``delta``. The noisy counts are
released too (they are the counts of the release).

A subscriber is bounded to ``L0`` keys with at most ``Linf`` each, so the
input distance is ``(l0, l1 or l2, linf) = (L0, L0*Linf or sqrt(L0)*Linf, Linf)``;
with a total bound ``C`` as well, the l1 / l2 term is that of
:class:`~privagg.dp.bounds.Bounds` (``min(C, L0*Linf)``, and the l2 norm of the
largest vector within all three bounds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from privagg.dp.mechanisms import NoiseMechanism, opendp
from privagg.parallel import default_threads, thread_map

_CHUNK = 10_000  # values per thread below which threading costs more than it saves


@dataclass(frozen=True)
class ThresholdMechanism:
    """A calibrated threshold mechanism.

    Attributes
    ----------
    kind
        ``"laplace"`` (approximate DP: ``(epsilon, delta)``) or ``"gaussian"``
        (approximate zCDP: ``(rho, delta)``).
    scale
        Noise scale of the counts (Laplace ``b`` or Gaussian ``sigma``).
    threshold
        Keys whose noisy count is below this are not released.
    max_partitions, max_per_partition, max_total
        The bounds the mechanism was calibrated for (``max_total=None``: no total bound).
    loss, delta
        epsilon (or rho) and delta certified by OpenDP's privacy map.
    """

    kind: str
    scale: float
    threshold: int
    max_partitions: int
    max_per_partition: int
    loss: float
    delta: float
    max_total: int | None = None

    @property
    def name(self) -> str:
        return ("discrete Laplace" if self.kind == "laplace" else "discrete Gaussian") + " threshold (OpenDP)"

    def d_in(self) -> tuple[int, Any, int]:
        return _d_in(self.kind, self.max_partitions, self.max_per_partition, self.max_total)

    def measurement(self) -> Any:
        return _make(self.kind, self.scale, self.threshold)

    def release(self, codes: np.ndarray, counts: np.ndarray, *, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Noisy counts of the keys that pass the threshold: (codes, noisy counts), sorted by code.

        OpenDP's threshold mechanism adds independent noise of one distribution (discrete Laplace or
        discrete Gaussian at ``scale``) to every candidate's count and keeps the candidates whose noisy
        count is at least ``threshold``. The noise is drawn here by OpenDP's vector sampler of that same
        distribution, on every candidate (all have a count of at least one: keys nobody contributed to
        are never candidates), in shards on every thread, and then thresholded: the output has exactly
        the distribution of :meth:`measurement`, whose privacy map certified ``loss`` and ``delta``,
        without building a map of every candidate (which costs more than the noise).
        """
        codes = np.asarray(codes, dtype=np.int64)
        counts = np.asarray(counts, dtype=np.int64)
        if len(codes) == 0:
            return codes, counts
        noise = NoiseMechanism(self.kind, self.scale, _d_in(self.kind, self.max_partitions, self.max_per_partition)[1],
                               self.loss)
        noisy = noise.sample(counts, threads=threads)
        keep = noisy >= self.threshold  # OpenDP's threshold keeps noisy counts >= threshold
        order = np.argsort(codes[keep], kind="stable")
        return codes[keep][order], noisy[keep][order]

    def release_map(self, codes: np.ndarray, counts: np.ndarray, *, threads: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`release` through OpenDP's threshold measurement itself, on a map of every candidate
        (the reference the vector path is tested against)."""
        codes = np.asarray(codes, dtype=np.int64)
        counts = np.asarray(counts, dtype=np.int64)
        if len(codes) == 0:
            return codes, counts
        measurement = self.measurement()

        def run(sl: slice) -> dict[int, int]:
            return measurement(dict(zip(codes[sl].tolist(), counts[sl].tolist())))

        workers = threads if threads is not None else default_threads()
        n = len(codes)
        if workers <= 1 or n < 2 * _CHUNK:
            outs = [run(slice(0, n))]
        else:
            bounds = np.linspace(0, n, workers + 1).astype(int)
            outs = thread_map(run, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])], workers)
        kept: dict[int, int] = {}
        for out in outs:
            kept.update(out)
        out_codes = np.fromiter(kept.keys(), dtype=np.int64, count=len(kept))
        out_counts = np.fromiter(kept.values(), dtype=np.int64, count=len(kept))
        order = np.argsort(out_codes)
        return out_codes[order], out_counts[order]


def _d_in(kind: str, l0: int, linf: int, total: int | None = None) -> tuple[int, Any, int]:
    if total is not None and total < l0 * linf:  # a total bound C binds: the sensitivities of Bounds
        from privagg.dp.bounds import Bounds

        b = Bounds(max_partitions=l0, max_per_partition=linf, max_total=total)
        l0 = min(l0, total)
        if kind == "laplace":
            return (l0, b.l1_sensitivity, linf)
        return (l0, int(math.ceil(b.l2_sensitivity - 1e-12)), linf)
    if kind == "laplace":
        return (l0, l0 * linf, linf)
    # OpenDP takes the tighter of l2^2 and l0 * linf^2, so the integer ceiling of sqrt(L0) * Linf loses nothing.
    return (l0, int(math.ceil(math.sqrt(l0) * linf)), linf)


def _make(kind: str, scale: float, threshold: int) -> Any:
    dp = opendp()
    domain = dp.map_domain(dp.atom_domain(T=dp.i64), dp.atom_domain(T=dp.i64))
    if kind == "laplace":
        metric = dp.l01inf_distance(dp.absolute_distance(T=dp.i64))
        return dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=int(threshold))
    metric = dp.l02inf_distance(dp.absolute_distance(T=dp.i64))
    return dp.m.make_gaussian_threshold(domain, metric, scale=scale, threshold=int(threshold))


def calibrate(kind: str, loss: float, delta: float, max_partitions: int, max_per_partition: int,
              max_total: int | None = None) -> ThresholdMechanism:
    """Scale from ``loss`` (epsilon or rho), then the smallest threshold whose delta is <= ``delta``.

    ``max_total`` (C, trips or records per subscriber over all keys) tightens the sensitivity when it binds.
    """
    l0, linf = max_partitions, max_per_partition
    d_in = _d_in(kind, l0, linf, max_total)
    l2 = min(float(d_in[1]), math.sqrt(d_in[0]) * linf)  # OpenDP uses the tighter of the two (see _d_in)
    scale = d_in[1] / loss if kind == "laplace" else l2 / math.sqrt(2 * loss)

    def certified(s: float, t: int) -> tuple[float, float]:
        eps, dlt = _make(kind, s, t).map(d_in)
        return float(eps), float(dlt)

    for _ in range(64):
        if certified(scale, linf + 1)[0] <= loss:
            break
        scale = float(np.nextafter(scale, math.inf)) * (1 + 1e-12)
    lo, hi = linf, linf + 1
    while certified(scale, hi)[1] > delta:
        lo, hi = hi, hi * 2
        if hi > 1 << 60:
            raise OverflowError("no threshold reaches the requested delta")  # pragma: no cover
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if certified(scale, mid)[1] > delta:
            lo = mid
        else:
            hi = mid
    eps, dlt = certified(scale, hi)
    return ThresholdMechanism(kind, scale, hi, l0, linf, eps, dlt, max_total)
