"""Contribution bounds and noise mechanism chosen privately, to minimise the expected error.

When a release is given no bounds, a small stated share of its budget buys a
differentially private picture of how much subscribers contribute, and the
bounds (and the mechanism) with the smallest expected error are used.

The rule
--------
1. **Profiles.** Each subscriber is summarised by a few numbers computed from
   their own contributions only: ``n`` (records over all keys: presences,
   visits, trips) and, for count statistics where a subscriber can add
   several records to a key, ``u(l)`` = records left when each key is capped
   at ``l`` (``l`` in :data:`LINF_GRID`).
2. **Noisy histograms.** Each profile is counted in a public grid of bins
   (:func:`bin_edges`: 1, 2, ... 10, then steps of about 20%). A subscriber
   falls in exactly one bin of each histogram (l1 sensitivity 1 each);
   OpenDP's discrete Laplace noises each with its part of ``epsilon_choice``
   (70% for the records histogram, the rest shared by the capped ones; the
   parts sum to ``epsilon_choice``). That is the only access to the data;
   everything below is post-processing. Bins whose noisy count is below a
   threshold are set to zero (a noisy empty bin far out would otherwise
   look like a heavy tail) and the rest rescaled to the estimated number of
   subscribers (:func:`noisy_histograms`).
3. **Candidates.** Total-contribution bounds ``C`` at every bin edge, with a
   per-key cap ``l`` (or none), i.e. ``Bounds(max_partitions=C,
   max_per_partition=l, max_total=C)``. For distinct-subscriber statistics
   (footfall, subscriber counts) a record is a key, so ``C`` is ``L0``. A
   box ``L0 x Linf`` is never better than the total bound ``C = L0 * Linf``
   with the same cap: it has the same l1 and l2 sensitivity and keeps a
   subset of what the total bound keeps, so boxes are not searched.
4. **Expected error** of a candidate: the expected truncation bias (records
   subscribers lose, ``n - min(C, u(l))``, summed over the histogram; values
   taken as uniform within a bin) is spread over the ``K`` public keys in
   proportion to key sizes assumed exponentially distributed (bias grows
   with a key's count), and each key's ``E|bias + Z|`` is computed for the
   noise ``Z`` of the lower-variance mechanism at the candidate's
   sensitivities (:func:`expected_error`, :func:`choose_mechanism`), with
   the released count clipped at 0 (key sizes from the same histograms). The
   candidate with the smallest sum over keys is used. Candidates are about
   7% apart. If the histograms show nothing above their noise (too little
   budget), public fallback bounds derived from the query's structure
   (window and time bin, :func:`privagg.releases.core.structural_bounds`)
   are used; for record counts the total bound is then the one of least
   expected error under a public prior (exponential records per subscriber
   of that mean, the noisy number of subscribers; :func:`prior_choice`).
5. **Kept share** (record counts only: visits, trips, OD flows). Released
   values are divided by the chosen candidate's estimated share of records
   kept (:attr:`BoundChoice.kept_share`, from the same histograms), which
   removes the average truncation bias, so the search weighs each candidate's
   noise divided by that share against the bias a global factor leaves,
   taken as ``(1 - share)`` times the truncation bias plus the uncertainty of
   the estimated loss (a value's position within its bin taken as uniform).
   Candidates with a per-key cap are not rescaled (what a cap cuts
   concentrates on the keys subscribers return to). Distinct-subscriber
   statistics are not rescaled: the presences a subscriber over L0 loses
   concentrate on some keys (the days and hours they are most active), and a
   global factor moves the other keys away from the truth (measured in
   ``benchmarks/bench_accuracy.py``).

Privacy: the histograms are an ``epsilon_choice``-DP release (pure DP) of
the subscribers' profiles; the chosen bounds are a function of them only;
the release noise is then calibrated to the chosen bounds with the rest of
the budget, and sequential composition gives the total. The chosen bounds
are public (they are in the release record); the histograms are not
published (nothing forbids it, they just are not needed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from privagg.dp.bounds import Bounds
from privagg.dp.mechanisms import NoiseMechanism, gaussian, laplace, noise_variance

LINF_GRID = (1, 2, 4)  # per-key caps searched for statistics counting records
MAX_BOUND = 4096  # the largest total bound searched (a public cap on one subscriber's records)
DEFAULT_SHARE = 0.03  # share of the release's loss spent on choosing the bounds
MECHANISMS = ("auto", "laplace", "gaussian")


def bin_edges(cap: int = MAX_BOUND, ratio: float = 1.2) -> np.ndarray:
    """Public lower edges of the profile bins: 1..10, then about 20% apart, up to ``cap``."""
    edges = list(range(1, 11))
    while edges[-1] < cap:
        edges.append(min(cap, max(edges[-1] + 1, int(round(edges[-1] * ratio)))))
    return np.asarray(edges, dtype=np.int64)


@dataclass(frozen=True)
class Budgets:
    """What the release noise may spend once the choice is paid for.

    ``epsilon`` (pure DP, discrete Laplace) is always given; ``rho`` (zCDP,
    discrete Gaussian) is ``None`` when the Gaussian is not allowed (pure
    epsilon request without delta, or private keys).
    """

    epsilon: float
    rho: float | None


def calibrated(kind: str, budgets: Budgets, bounds: Bounds) -> NoiseMechanism:
    """The count noise of ``kind`` for ``bounds`` under ``budgets``."""
    if kind == "laplace":
        return laplace(budgets.epsilon, bounds.l1_sensitivity)
    assert budgets.rho is not None
    return gaussian(budgets.rho, float(bounds.l2_sensitivity))


def choose_mechanism(budgets: Budgets, bounds: Bounds, mechanism: str = "auto") -> NoiseMechanism:
    """The noise for ``bounds``: the requested kind, or with ``"auto"`` the one of smaller variance.

    >>> choose_mechanism(Budgets(epsilon=1.0, rho=None), Bounds(max_partitions=100)).kind
    'laplace'
    >>> choose_mechanism(Budgets(epsilon=1.0, rho=0.5), Bounds(max_partitions=100)).kind
    'gaussian'
    """
    if mechanism != "auto":
        return calibrated(mechanism, budgets, bounds)
    options = [calibrated("laplace", budgets, bounds)]
    if budgets.rho is not None:
        options.append(calibrated("gaussian", budgets, bounds))
    return min(options, key=lambda m: m.variance())


def mean_abs_noise(kind: str, scale: float) -> float:
    """E|Z| of the noise: discrete Laplace ``2a / (1 - a^2)``; discrete Gaussian about ``sigma sqrt(2/pi)``."""
    if kind == "laplace":
        a = math.exp(-1.0 / scale)
        return 2 * a / (1 - a * a)
    return math.sqrt(noise_variance(kind, scale) * 2 / math.pi)


@lru_cache(maxsize=4096)
def _noise_term(kind: str, budgets: Budgets, bounds: Bounds) -> tuple[str, float]:
    m = choose_mechanism(budgets, bounds, kind)
    return m.kind, mean_abs_noise(m.kind, m.scale)


# ---------------------------------------------------------------------- profiles
def profiles(ids: np.ndarray, counts: np.ndarray, distinct: bool) -> dict[str, np.ndarray]:
    """Per-subscriber profiles from one row per (subscriber, key) with the subscriber's count there.

    ``ids`` must be sorted (as :class:`~privagg.engines.base.UserPartitions` are).
    Returns ``{"n": records}`` and, unless ``distinct``, ``{"u1": ..., "u2": ..., "u4": ...}``
    (records left after capping each key at 1, 2, 4).
    """
    if len(ids) == 0:
        out = {"n": np.zeros(0, dtype=np.int64)}
        if not distinct:
            out.update({f"u{l}": np.zeros(0, dtype=np.int64) for l in LINF_GRID})
        return out
    change = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    starts = np.concatenate(([0], change))
    counts = np.asarray(counts, dtype=np.int64)
    if distinct:
        return {"n": np.diff(np.append(starts, len(ids))).astype(np.int64)}
    out = {"n": np.add.reduceat(counts, starts)}
    for l in LINF_GRID:
        out[f"u{l}"] = np.add.reduceat(np.minimum(counts, l), starts)
    return out


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Subscribers per bin ``[edges[b], edges[b + 1])`` (values at or above the last edge in the last bin)."""
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 1)
    which = which[values >= 1]
    return np.bincount(which, minlength=len(edges)).astype(np.int64)


def bin_means(edges: np.ndarray) -> np.ndarray:
    """Mean of the integers in each bin (the last bin: its edge)."""
    upper = np.append(edges[1:] - 1, edges[-1])
    return (edges + upper) / 2.0


# ---------------------------------------------------------------------- the choice
@dataclass(frozen=True)
class BoundChoice:
    """The outcome of the private choice (all of it public: it is post-processing of DP histograms).

    Attributes
    ----------
    bounds
        The chosen bounds.
    mechanism
        The noise calibrated for them with the release's remaining budget.
    epsilon
        Pure-DP epsilon the noisy histograms spent.
    expected_bias, expected_noise
        The chosen candidate's estimated truncation bias (records dropped) and
        expected absolute noise summed over the keys (from the noisy histograms).
    candidates
        How many candidates were compared.
    kept_share
        With ``rescale``: the estimated share of the records the chosen bounds keep,
        by which released values are divided; 1.0 otherwise (and on the fallback).
    """

    bounds: Bounds
    mechanism: NoiseMechanism
    epsilon: float
    expected_bias: float
    expected_noise: float
    candidates: int
    kept_share: float = 1.0

    @property
    def fell_back(self) -> bool:
        """True when the histograms were too noisy and the public fallback bounds were used."""
        return self.candidates == 0

    def describe(self) -> str:
        b = self.bounds
        if self.fell_back:
            return (f"Contribution bounds: the noisy histograms of per-subscriber contributions (discrete Laplace, "
                    f"epsilon={self.epsilon:.4g}) showed too little above their noise, so public fallback "
                    f"bounds derived from the query's window and time bin were used (for record counts, the total "
                    f"bound of least expected error under a public prior of that mean); {self.mechanism.name} chosen as the lower-variance mechanism for them.")
        shape = (f"at most {b.max_total} records per subscriber in all, at most {b.max_per_partition} per key"
                 if b.max_total is not None else f"at most {b.max_partitions} keys per subscriber")
        text = (f"Contribution bounds chosen privately ({shape}): noisy histograms of per-subscriber contributions "
                f"(discrete Laplace, epsilon={self.epsilon:.4g}) and the bound minimising expected truncation bias "
                f"plus noise over the keys (estimated bias {self.expected_bias:,.0f}, noise {self.expected_noise:,.0f}); "
                f"{self.mechanism.name} chosen as the lower-variance mechanism for these bounds.")
        if self.kept_share < 1.0:
            text += (f" Released values and intervals are divided by {self.kept_share:.4f}, the share of the records "
                     "the bounds keep as estimated from the same histograms (post-processing), which removes the "
                     "average truncation bias; the intervals cover the noise, not what remains of that bias "
                     "where a key's subscribers are truncated more or less than the average.")
        return text


def candidates(distinct: bool, n_keys: int, linf_grid: Sequence[int] = LINF_GRID) -> list[tuple[str, int, int | None]]:
    """``(profile, C, l)`` candidates: distinct statistics ``("n", L0, None)``; counts also per-key caps."""
    # Candidates about 7% apart (finer than the bins: within a bin values are taken as uniform).
    edges = bin_edges(int(min(MAX_BOUND, max(n_keys, 2))) if distinct else MAX_BOUND, ratio=1.07)
    out: list[tuple[str, int, int | None]] = []
    for c in edges:
        c = int(c)
        out.append(("n", c, None))
        if not distinct:
            out.extend((f"u{l}", c, l) for l in linf_grid if l < c)
    return out


def candidate_bounds(profile: str, c: int, l: int | None, distinct: bool) -> Bounds:
    if distinct:
        return Bounds(max_partitions=c, max_per_partition=1)
    cap = c if l is None else l
    return Bounds(max_partitions=c, max_per_partition=cap, max_total=c)


FALSE_BIN = 1e-3  # chance that some empty bin survives the cleaning threshold
RECORDS_WEIGHT = 0.7  # share of the choice's epsilon for the records histogram (the rest: the capped ones)
MAX_BLOCK = 4  # widest block of bins merged to find a signal; beyond, the choice falls back to the defaults


class _TooNoisy(Exception):
    """The noisy histograms show no bin or block of bins above the noise (``people``: the noisy count of
    subscribers, the records histogram's sum, when known)."""

    def __init__(self, people: float | None = None) -> None:
        super().__init__()
        self.people = people


def noisy_histograms(profile: dict[str, np.ndarray], epsilon: float, edges: np.ndarray) -> dict[str, np.ndarray]:
    """One noisy histogram per profile, each its own discrete Laplace draw (l1 sensitivity 1: a subscriber
    is in one bin of each), their epsilons summing to ``epsilon`` (sequential composition): the records
    histogram ``n`` gets :data:`RECORDS_WEIGHT` of it (it decides the total bound, which matters most), the
    capped profiles share the rest equally.

    Post-processing, per histogram: bins below ``scale * ln(bins / (2 * FALSE_BIN))`` are set to zero,
    so that with probability >= 99.9% no empty bin far out passes as a heavy tail (one such bin would
    dominate the estimated bias); if no bin passes, blocks of adjacent bins are tried
    (:func:`_significant`). The kept bins are then rescaled to the number of subscribers estimated from
    the records histogram (an unbiased sum; all histograms count the same subscribers), so that thin bins
    lost to the threshold do not make the subscribers look fewer than they are. A capped profile whose
    histogram shows nothing above its noise is left out (its candidates are not compared); only the
    records histogram showing nothing raises (then the fallback bounds are used).
    """
    names = sorted(profile)
    capped = [n for n in names if n != "n"]
    weights = {"n": 1.0 if not capped else RECORDS_WEIGHT}
    weights.update({n: (1 - RECORDS_WEIGHT) / len(capped) for n in capped})
    noisy: dict[str, np.ndarray] = {}
    scales: dict[str, float] = {}
    for n in names:
        noise = laplace(epsilon * weights[n], 1)
        noisy[n] = noise.sample(histogram(profile[n], edges)).astype(float)
        scales[n] = noise.scale
    people = max(float(noisy["n"].sum()), 0.0)
    out = {}
    for n in names:
        floor = scales[n] * math.log(len(edges) * len(names) / (2 * FALSE_BIN))
        try:
            cleaned = _significant(noisy[n], floor)
        except _TooNoisy:
            if n == "n":
                raise _TooNoisy(people) from None
            continue  # a capped profile too noisy to read: its candidates are not compared
        cleaned *= people / cleaned.sum()
        out[n] = cleaned
    return out


def _significant(h: np.ndarray, floor: float) -> np.ndarray:
    """The bins of ``h`` that stand out of the noise: bins at or above ``floor``; if none, blocks of
    2, 4, 8... adjacent bins at or above ``floor * sqrt(block)`` (a block sums that many noises),
    their mass spread over their bins in proportion to the bins' positive noisy counts."""
    m = 1
    while True:
        starts = np.arange(0, len(h), m)
        blocks = np.add.reduceat(h, starts)
        strong = np.flatnonzero(blocks >= floor * math.sqrt(m))
        if len(strong):
            break
        if m >= MAX_BLOCK:
            raise _TooNoisy()
        m *= 2
    out = np.zeros_like(h, dtype=float)
    for j in strong:
        lo, hi = int(starts[j]), int(min(starts[j] + m, len(h)))
        part = np.maximum(h[lo:hi], 0.0)
        weights = part / part.sum() if part.sum() > 0 else np.full(hi - lo, 1.0 / (hi - lo))
        out[lo:hi] = max(float(blocks[j]), 1.0) * weights
    return out


def choose_bounds(profile: dict[str, np.ndarray], *, distinct: bool, n_keys: int, choice_epsilon: float,
                  budgets: Budgets, mechanism: str = "auto", fallback: Bounds | None = None,
                  rescale: bool = False) -> BoundChoice:
    """Choose bounds (and the mechanism) privately from per-subscriber ``profile`` (see the module docstring).

    Parameters
    ----------
    profile
        From :func:`profiles` (subscribers' own contributions only).
    distinct
        Distinct-subscriber statistic (a subscriber adds at most 1 per key).
    n_keys
        Size of the public key domain (each key gets noise).
    choice_epsilon
        Pure-DP epsilon spent on the noisy histograms.
    budgets
        What the release noise may spend afterwards.
    mechanism
        ``"auto"``, ``"laplace"`` or ``"gaussian"``.
    fallback
        Public bounds used when the histograms show nothing above their noise
        (no bin, nor block of up to :data:`MAX_BLOCK` bins, passes the threshold).
    rescale
        Released values will be divided by the candidate's estimated kept share
        ``k`` (:attr:`BoundChoice.kept_share`): a candidate's error is then that of
        noise ``Z / k`` plus the bias rescaling leaves, taken as ``(1 - k)`` times
        the truncation bias (a global factor corrects the average loss, not its
        spread across keys; the more is dropped, the more of it remains) plus
        the uncertainty of the estimated loss (a value's position within its bin
        taken as uniform). Candidates with a per-key cap are not rescaled.
    """
    # Distinct statistics: a subscriber touches at most every key, a public cap on the bins.
    cap = int(min(MAX_BOUND, max(n_keys, 2))) if distinct else MAX_BOUND
    edges = bin_edges(cap)
    try:
        hists = noisy_histograms(profile, choice_epsilon, edges)
    except _TooNoisy as too_noisy:
        # Too little budget to see the contributions: the public fallback (spent budget is not refunded).
        assert fallback is not None
        if not distinct and too_noisy.people is not None and too_noisy.people >= 1:
            bounds = prior_choice(fallback, too_noisy.people, n_keys, budgets, mechanism)
        else:
            bounds = fallback
        return BoundChoice(bounds, choose_mechanism(budgets, bounds, mechanism), choice_epsilon, math.nan, math.nan, 0)
    total = float((hists["n"] * bin_means(edges)).sum())
    best: tuple[float, float, float, Bounds, float] | None = None
    cands = [x for x in candidates(distinct, n_keys) if x[0] in hists]
    kept_by_bin = {c: mean_clipped(edges, c) for c in {c for _, c, _ in cands}}
    # Kept records per candidate. A per-key cap can only drop records, so capped candidates keep at most
    # what the uncapped one with the same C keeps, and a lower cap at most what a higher one keeps: the
    # histograms carry independent noise, and without this the least expected error would often be a
    # capped candidate whose histogram happened to draw light noise (a winner's curse across histograms).
    kept_of: dict[tuple[str, int], float] = {}
    for name, c, l in sorted(cands, key=lambda x: (x[1], -(x[2] or MAX_BOUND + 1))):
        kept = float((hists[name] * kept_by_bin[c]).sum())
        if l is not None:
            higher = [kept_of[(f"u{h}", c)] for h in LINF_GRID if h > l and (f"u{h}", c) in kept_of]
            kept = min([kept, kept_of[("n", c)], *higher])
        kept_of[(name, c)] = kept
    lo_edge = edges.astype(float)
    hi_edge = np.append(edges[1:] - 1, edges[-1]).astype(float)
    for name, c, l in cands:
        kept = kept_of[(name, c)]
        bias = max(total - kept, 0.0)
        left = bias
        share = 1.0
        if rescale and total > 0 and l is None:
            share = min(max(kept / total, 1e-3), 1.0)
            # What a global factor leaves: the spread of the loss across keys, taken as (1 - share) of it,
            # plus the uncertainty of the estimated loss itself (the standard deviation of a value placed
            # uniformly within its bin). Per-key caps are not rescaled: what they cut concentrates on the
            # keys subscribers return to (home, work), which a global factor cannot restore.
            unsure = float((hists[name] * (np.maximum(hi_edge - c, 0) - np.maximum(lo_edge - c, 0))).sum()) / math.sqrt(12)
            left = bias * (1 - share) + unsure
        bounds = candidate_bounds(name, c, l, distinct)
        kind, per_key = _noise_term(mechanism, budgets, bounds)
        scale = choose_mechanism(budgets, bounds, mechanism).scale
        error = expected_error(left / max(n_keys, 1), kind, scale / share, mean_size=total / max(n_keys, 1)) * n_keys
        if best is None or error < best[2]:
            best = (bias, n_keys * per_key, error, bounds, share)
    assert best is not None
    bias, noise, _, bounds, share = best
    return BoundChoice(bounds, choose_mechanism(budgets, bounds, mechanism), choice_epsilon, bias, noise, len(cands),
                       kept_share=share)


def prior_choice(fallback: Bounds, people: float, n_keys: int, budgets: Budgets, mechanism: str = "auto") -> Bounds:
    """The total bound of least expected error under a public prior, for record counts whose histograms
    showed nothing: records per subscriber taken as exponential with mean ``fallback.max_total`` (the
    structural bound), ``people`` subscribers (the records histogram's noisy sum, a DP output), the
    fallback's per-key cap. Post-processing only; it lets the bound shrink where the noise dwarfs the
    keys (many keys, little budget) instead of keeping the structural bound whatever the noise.
    """
    m = float(fallback.max_total or fallback.max_partitions * fallback.max_per_partition)
    edges = bin_edges(MAX_BOUND)
    lo = edges.astype(float)
    hi = np.append(edges[1:], edges[-1] + 1).astype(float)
    mass = np.exp(-(lo - 1) / m) - np.exp(-(hi - 1) / m)
    mass[-1] = math.exp(-(lo[-1] - 1) / m)
    h = people * mass
    total = float((h * bin_means(edges)).sum())
    best: tuple[float, Bounds] | None = None
    for c in bin_edges(int(min(MAX_BOUND, 8 * m)), ratio=1.07):
        c = int(c)
        bias = max(total - float((h * mean_clipped(edges, c)).sum()), 0.0)
        bounds = Bounds(max_partitions=c, max_per_partition=min(fallback.max_per_partition, c), max_total=c)
        noise = choose_mechanism(budgets, bounds, mechanism)
        error = expected_error(bias / max(n_keys, 1), noise.kind, noise.scale, mean_size=total / max(n_keys, 1))
        if best is None or error < best[0]:
            best = (error, bounds)
    assert best is not None
    return best[1]


def mean_clipped(edges: np.ndarray, c: int) -> np.ndarray:
    """Per bin, the mean of ``min(c, v)`` over the integers ``v`` of the bin (the last bin: its edge)."""
    lo = edges.astype(float)
    hi = np.append(edges[1:] - 1, edges[-1]).astype(float)
    width = hi - lo + 1
    below = np.clip(np.minimum(hi, c) - lo + 1, 0, None)  # integers v <= c
    top = np.minimum(hi, c)
    sum_below = np.where(below > 0, (lo + top) * below / 2, 0.0)
    return (sum_below + (width - below) * c) / width


# Relative key sizes assumed when spreading the truncation bias over keys: quantiles of Exp(1)
# (mean 1), i.e. keys as unequal as an exponential law of counts, the public assumption.
_SPREAD = -np.log1p(-(np.arange(16) + 0.5) / 16)


def expected_error(mean_bias: float, kind: str, scale: float, mean_size: float | None = None) -> float:
    """E|b + Z| for one key, averaged over keys whose bias ``b`` is ``mean_bias`` times an Exp(1) key size.

    The truncation bias of a key grows with its count; this spreads the
    estimated total bias over keys of unequal (exponentially distributed)
    sizes, between the two simple extremes (equal keys: the least error;
    bias and noise added key by key: the most).

    With ``mean_size`` (the mean true count of a key, estimated from the same
    noisy histograms) the error is that of the released count clipped at 0,
    ``E|max(t - b + Z, 0) - t|`` for a key of size ``t`` (counts are never
    negative, so users clip; where the noise is large against the counts this
    is much less than ``E|b + Z|`` and favours bounds with less bias), by
    quadrature over 64 quantiles of the noise.
    """
    b = mean_bias * _SPREAD
    if mean_size is not None and mean_size > 0:
        t = mean_size * _SPREAD
        z = _noise_quantiles(kind, scale)
        released = np.maximum((t - b)[:, None] + z[None, :], 0.0)
        return float(np.abs(released - t[:, None]).mean())
    if kind == "laplace":
        lam = scale  # continuous approximation of the discrete Laplace of this scale
        values = b + lam * np.exp(-b / lam)
    else:
        from scipy.stats import norm

        sigma = math.sqrt(noise_variance(kind, scale))
        z = b / sigma
        values = b * (1 - 2 * norm.cdf(-z)) + 2 * sigma * norm.pdf(z)
    return float(values.mean())


_Q = (np.arange(64) + 0.5) / 64


@lru_cache(maxsize=4096)
def _noise_quantiles(kind: str, scale: float) -> np.ndarray:
    """64 equally likely points of the noise (continuous approximation): Laplace of scale ``scale``, or the
    Gaussian of the discrete Gaussian's variance."""
    if kind == "laplace":
        return -np.sign(_Q - 0.5) * scale * np.log1p(-2 * np.abs(_Q - 0.5))
    from scipy.stats import norm

    return math.sqrt(noise_variance(kind, scale)) * norm.ppf(_Q)


# ---------------------------------------------------------------------- conversions
@lru_cache(maxsize=256)
def rho_for_epsilon(epsilon: float, delta: float) -> float:
    """The largest rho (to 1e-6 relative) whose (epsilon, delta)-DP conversion (OpenDP's,
    Canonne, Kamath, Steinke 2020) is at most ``epsilon``: the Gaussian an (epsilon, delta) request may use."""
    from privagg.dp.mechanisms import zcdp_epsilon

    lo, hi = 0.0, epsilon  # rho <= epsilon always suffices as an upper bracket (eps >= rho)
    while zcdp_epsilon(hi, delta) <= epsilon:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if mid > 0 and zcdp_epsilon(mid, delta) <= epsilon:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-6 * hi:
            break
    if lo <= 0:
        raise ValueError("no rho fits (epsilon, delta)")  # pragma: no cover - epsilon > 0, delta > 0
    assert zcdp_epsilon(lo, delta) <= epsilon
    return lo
