"""Empirical lower bounds on the epsilon of a release mechanism.

An epsilon-DP mechanism M satisfies, for neighbouring datasets D and D' and
every event E, ``P[M(D') in E] <= exp(epsilon) * P[M(D) in E] + delta``. So
if we find an event E and show, with confidence 1 - alpha, that
``P[M(D') in E] >= p1_lo`` and ``P[M(D) in E] <= p0_hi``, then

    epsilon >= log((p1_lo - delta) / p0_hi)

with the same confidence. :func:`epsilon_lower_bound` runs the mechanism
many times on D and on D' (one subscriber removed; by default the most active
one), chooses the event on one half of the runs, and evaluates it with
Clopper-Pearson bounds on the other half, so the choice cannot inflate the
bound (Jagielski, Ullman and Oprea, NeurIPS 2020; Ding et al., CCS 2018).
Within the choosing half, a third of the runs fit the events' parameters
(means, medians, per-value frequencies) and the rest choose among them, each
event scored by the bound it would give on the evaluation half.

Runs are added until the claim is refuted or a cap is reached (doubling
from ``min_runs`` to ``max_runs``); ``alpha`` is spent over these looks,
more on the later ones, so the bound stays valid whenever the audit stops.
A discrete Laplace at half its claimed scale (true epsilon 2, claimed 1, ten
partitions shifted by one) needs about 30,000 runs per dataset.

Events tried (both directions each):

* thresholds on the Laplace likelihood-ratio statistic
  ``sum_i sign(d_i) * clip(y_i - mid_i, -|d_i|/2, |d_i|/2)`` over the
  partitions whose mean output differs between D and D' (d and mid from the
  means), on the same statistic with d and mid from the *medians* (for
  integer noise the median is the true count, so this is the exact log
  likelihood ratio of a shifted discrete Laplace), and on the unclipped
  projection;
* for discrete outputs, events on exact output values: "the output in
  partition j equals v", the likelihood-ratio region "the output in
  partition j is one of the values more frequent under D' (or D)", and
  thresholds on the naive-Bayes sum of per-value log ratios;
* for floating-point outputs, Mironov's events (CCS 2012): "the output in
  partition j is not a double that numpy's textbook Laplace sampler can
  produce from the count x", for integers x near the median output, and the
  union of the best such events over partitions. Under the dataset whose
  true count is x it never happens; under the neighbour it mostly does. The
  noise scale comes from the mechanism's ``noise_scale`` or the releases'
  privacy record. Against a correct mechanism these events are no likelier
  under one dataset than the other, so they only ever help against broken
  ones;
* when the *set of released keys* differs between runs on D and D' (a
  release whose key domain depends on the data), events "the key set is
  S": the result is flagged with the differing keys as evidence, rather
  than refused.

The bound holds with confidence ``1 - alpha`` whatever the mechanism: a
correct mechanism is flagged with probability at most ``alpha``.

This module holds the bound (:class:`AuditResult`, the Clopper-Pearson
bounds, choosing and measuring an event) and the adaptive runner
:func:`epsilon_lower_bound`. The candidate events are built in
:mod:`privagg.audit.events`; the neighbouring dataset, the wrapper of an
anonymiser and the releases drawn from each dataset are in
:mod:`privagg.audit.draws`. Their public names are importable from here too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import stats

from privagg.audit.draws import ReleaseMechanism, _describe_keys, _Draws, _key_difference, remove_most_active
from privagg.audit.events import (
    _Candidate, _is_discrete, _mironov_candidates, _threshold_candidates, _value_candidates, naive_laplace_reachable,
)
from privagg.errors import PrivaggInputError

__all__ = [
    "AuditResult",
    "ReleaseMechanism",
    "epsilon_lower_bound",
    "naive_laplace_reachable",
    "one_sided_clopper_pearson",
    "remove_most_active",
]


@dataclass(frozen=True)
class AuditResult:
    """The outcome of an audit.

    Attributes
    ----------
    epsilon_lb
        Lower bound on the mechanism's epsilon, valid with probability
        ``confidence`` (0 when no event separates the two datasets).
    claimed_epsilon
        The epsilon the mechanism claims (None if it claims none).
    flagged
        True when ``epsilon_lb > claimed_epsilon``: the claim is refuted.
    event
        The distinguishing event, in words.
    n_runs
        Releases drawn per dataset, as many as the audit needed (half chose
        the event, half measured it); ``metrics`` hold the schedule.
    confidence
        ``1 - alpha``.
    p_event_d, p_event_neighbour
        Observed frequency of the event on the evaluation half under D and D'.
    p_high_lo, p_low_hi
        The Clopper-Pearson bounds behind the estimate: lower bound of the
        likelier side and upper bound of the rarer side.
    neighbour
        How D' was made from D.
    """

    epsilon_lb: float
    claimed_epsilon: float | None
    flagged: bool
    event: str
    n_runs: int
    confidence: float
    p_event_d: float
    p_event_neighbour: float
    p_high_lo: float
    p_low_hi: float
    delta: float = 0.0
    neighbour: str = ""
    mechanism: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def interpretation(self) -> str:
        bound = f"epsilon >= {self.epsilon_lb:.3g} with {self.confidence:.0%} confidence"
        if self.claimed_epsilon is None:
            return f"{self.mechanism}: {bound} (no epsilon claimed)."
        if self.flagged:
            return (
                f"{self.mechanism}: FLAGGED. {bound}, above the claimed epsilon={self.claimed_epsilon:g}; "
                f"the event '{self.event}' separates the neighbouring datasets more than the claim allows."
            )
        return (
            f"{self.mechanism}: not flagged. {bound}, within the claimed epsilon={self.claimed_epsilon:g}. "
            "An audit can refute a claim, never prove it."
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interpretation"] = self.interpretation
        return out


def one_sided_clopper_pearson(
    successes: np.ndarray | int, trials: int, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided Clopper-Pearson bounds, each at level ``alpha``: (lower, upper).

    The true proportion is >= ``lower`` with probability >= 1 - alpha, and
    <= ``upper`` with probability >= 1 - alpha (vectorised over ``successes``;
    :func:`privagg.attacks.clopper_pearson` is the two-sided interval).
    """
    k = np.asarray(successes, dtype=float)
    with np.errstate(invalid="ignore"):
        lower = np.where(k > 0, stats.beta.ppf(alpha, k, trials - k + 1), 0.0)
        upper = np.where(k < trials, stats.beta.ppf(1 - alpha, k + 1, trials - k), 1.0)
    return np.nan_to_num(lower, nan=0.0), np.nan_to_num(upper, nan=1.0)


# ----------------------------------------------------------------------------- choosing and measuring an event


def _log_ratio(k_hi: np.ndarray, k_lo: np.ndarray, n: int, alpha: float, delta: float) -> np.ndarray:
    hi_lo, _ = one_sided_clopper_pearson(k_hi, n, alpha / 2)
    _, lo_hi = one_sided_clopper_pearson(k_lo, n, alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.log(np.maximum(hi_lo - delta, 0.0) / lo_hi)
    return np.where(np.isfinite(value), value, -np.inf)


def _log_ratio_upper(k_hi: int, k_lo: int, n: int, alpha: float, delta: float) -> float:
    """Upper confidence end of the event's log ratio (how tight the measurement is), at level alpha."""
    _, hi_hi = one_sided_clopper_pearson(k_hi, n, alpha / 2)
    lo_lo, _ = one_sided_clopper_pearson(k_lo, n, alpha / 2)
    if float(lo_lo) <= 0:
        return math.inf
    return float(math.log(max(float(hi_hi) - delta, 1e-300) / float(lo_lo)))


@dataclass
class _Look:
    """One measurement: the event chosen on the selection half and its counts on the evaluation half."""

    lb: float
    ub: float
    event: str
    forward: bool
    e0: int
    e1: int
    n_eval: int
    hi_lo: float
    lo_hi: float
    selection_lb: float
    n_candidates: int
    partitions_differing: int


def _split(n: int, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs for fitting the events' parameters, for choosing the event, and for measuring it."""
    order = rng.permutation(n)
    n_sel = int(round(n * share))
    n_fit = n_sel // 3
    return order[:n_fit], order[n_fit:n_sel], order[n_sel:]


def _choose_and_measure(candidates: list[_Candidate], n_choose: int, b0: np.ndarray, b1: np.ndarray,
                        alpha: float, delta: float) -> tuple[_Candidate, bool, float, int, int]:
    """The candidate with the best bound on the choosing part, and its counts on the evaluation half."""
    # Score each event by the bound it would give on the evaluation half, were its frequencies those seen
    # on the choosing part (shrunk towards 1/2 so that an event never seen is not taken as impossible):
    # this picks events as rare as the evaluation half can measure, not as the smaller choosing part can.
    n_eval = len(b0)
    k0 = (np.array([c.k0 for c in candidates]) + 0.5) / (n_choose + 1) * n_eval
    k1 = (np.array([c.k1 for c in candidates]) + 0.5) / (n_choose + 1) * n_eval
    fwd = _log_ratio(k1, k0, n_eval, alpha, delta)  # event likelier under D'
    bwd = _log_ratio(k0, k1, n_eval, alpha, delta)  # event likelier under D
    scores = np.maximum(fwd, bwd)
    best = int(np.argmax(scores))
    chosen = candidates[best]
    e0 = int(np.asarray(chosen.evaluate(b0)).sum())
    e1 = int(np.asarray(chosen.evaluate(b1)).sum())
    return chosen, bool(fwd[best] >= bwd[best]), float(max(scores[best], 0.0)), e0, e1


def _finish(chosen: _Candidate, forward: bool, selection_lb: float, e0: int, e1: int, n_eval: int,
            alpha: float, delta: float, n_candidates: int, differing: int) -> _Look:
    k_hi, k_lo = (e1, e0) if forward else (e0, e1)
    hi_lo, _ = one_sided_clopper_pearson(k_hi, n_eval, alpha / 2)
    _, lo_hi = one_sided_clopper_pearson(k_lo, n_eval, alpha / 2)
    lb = max(float(_log_ratio(np.array([k_hi]), np.array([k_lo]), n_eval, alpha, delta)[0]), 0.0)
    ub = _log_ratio_upper(k_hi, k_lo, n_eval, alpha, delta)
    direction = "D' (neighbour)" if forward else "D"
    return _Look(lb, max(ub, lb), f"{chosen.description} (likelier under {direction})", forward, e0, e1, n_eval,
                 float(hi_lo), float(lo_hi), selection_lb, n_candidates, differing)


def _value_look(y0: np.ndarray, y1: np.ndarray, alpha: float, delta: float, noise_scale: float | None,
                share: float, rng: np.random.Generator) -> _Look:
    """Choose an event on the released values (fit and choose on the selection runs) and measure it."""
    n = len(y0)
    fit0, ch0, ev0 = _split(n, share, rng)
    fit1, ch1, ev1 = _split(n, share, rng)
    f0, f1 = np.nan_to_num(y0[fit0]), np.nan_to_num(y1[fit1])
    c0, c1 = np.nan_to_num(y0[ch0]), np.nan_to_num(y1[ch1])
    b0, b1 = np.nan_to_num(y0[ev0]), np.nan_to_num(y1[ev1])
    n_fit = len(f0)

    # Where do the two datasets differ? Estimated on the fitting runs only.
    m0, m1 = f0.mean(axis=0), f1.mean(axis=0)
    se = np.sqrt(f0.var(axis=0) / n_fit + f1.var(axis=0) / n_fit) + 1e-12
    z = (m1 - m0) / se
    active = np.abs(z) > 3
    if not active.any():
        active = np.abs(z) == np.abs(z).max()
    d = np.where(active, m1 - m0, 0.0)
    mid = (m0 + m1) / 2
    h = np.abs(d) / 2

    def llr(y: np.ndarray) -> np.ndarray:
        return (np.sign(d) * np.clip(y - mid, -h, h)).sum(axis=1)

    def projection(y: np.ndarray) -> np.ndarray:
        return ((y - mid) * d).sum(axis=1)

    candidates = _threshold_candidates("clipped likelihood-ratio statistic", llr, c0, c1)
    candidates += _threshold_candidates("projection on the mean difference", projection, c0, c1)

    # Medians locate a shift exactly for integer noise (the discrete Laplace's median is the true count),
    # where means are still noisy: sum_j sign(dm_j) clip(y_j - mid_j, -|dm_j|/2, |dm_j|/2) is then the
    # exact log likelihood ratio of a discrete Laplace shifted by dm_j, up to its scale.
    med0, med1 = np.median(f0, axis=0), np.median(f1, axis=0)
    dm = med1 - med0
    if np.any(dm != 0):
        mmid, mh = (med0 + med1) / 2, np.abs(dm) / 2

        def median_llr(y: np.ndarray) -> np.ndarray:
            return (np.sign(dm) * np.clip(y - mmid, -mh, mh)).sum(axis=1)

        candidates += _threshold_candidates("likelihood-ratio statistic on the median shift", median_llr, c0, c1)

    ranked = np.argsort(-np.abs(z), kind="stable")
    if _is_discrete(np.r_[f0, f1]):
        chosen_parts = np.union1d(np.flatnonzero(active | (dm != 0)), ranked[:4])[:64]
        candidates += _value_candidates(f0, f1, c0, c1, chosen_parts)
    elif noise_scale:
        # Every partition if affordable (the shift of one count is invisible in the means when the
        # noise is wide, but not in the low-order bits); otherwise those whose means differ most.
        width = int(min(25, max(3, np.ceil(6 * float(noise_scale) / np.sqrt(n_fit)))))
        affordable = max(1, int(4e6 // ((len(f0) + len(c0)) * (2 * width + 1) * 9)))
        candidates += _mironov_candidates(f0, f1, c0, c1, ranked[:affordable], float(noise_scale))

    chosen, forward, sel_lb, e0, e1 = _choose_and_measure(candidates, len(c0), b0, b1, alpha, delta)
    return _finish(chosen, forward, sel_lb, e0, e1, len(b0), alpha, delta, len(candidates),
                   int((active | (dm != 0)).sum()))


def _keyset_look(d0: _Draws, d1: _Draws, alpha: float, delta: float, share: float,
                 rng: np.random.Generator) -> tuple[_Look, dict[str, Any]]:
    """Audit the *set of released keys*: events "the key set is S", chosen and measured like the others."""
    n = d0.n
    codes = {sig: i for i, sig in enumerate(dict.fromkeys(d0.signatures + d1.signatures))}
    s0 = np.array([codes[s] for s in d0.signatures])
    s1 = np.array([codes[s] for s in d1.signatures])
    fit0, ch0, ev0 = _split(n, share, rng)
    fit1, ch1, ev1 = _split(n, share, rng)
    sel0, sel1 = s0[np.r_[fit0, ch0]], s1[np.r_[fit1, ch1]]
    inverse = {i: sig for sig, i in codes.items()}
    candidates = []
    for code in np.unique(np.r_[sel0, sel1]):
        size = inverse[int(code)][0]
        ev = lambda y, code=code: y == code  # noqa: E731
        candidates.append(_Candidate(f"the release has the key set #{code} ({size} keys)",
                                     int((sel0 == code).sum()), int((sel1 == code).sum()), ev))
    chosen, forward, sel_lb, e0, e1 = _choose_and_measure(candidates, len(sel0), s0[ev0], s1[ev1], alpha, delta)
    look = _finish(chosen, forward, sel_lb, e0, e1, len(ev0), alpha, delta, len(candidates), 0)
    common0 = max(set(d0.signatures), key=d0.signatures.count)
    common1 = max(set(d1.signatures), key=d1.signatures.count)
    only0, only1 = _key_difference(d0.keys[common0], d1.keys[common1])
    evidence = {
        "key_set_depends_on_data": True,
        "n_key_sets_d": len(set(d0.signatures)),
        "n_key_sets_neighbour": len(set(d1.signatures)),
        "n_keys_d": int(common0[0]),
        "n_keys_neighbour": int(common1[0]),
        "keys_only_on_d": (_describe_keys(only0) if isinstance(only0, pd.DataFrame)
                           else f"unknown (releases on D have {common0[0]} values)"),
        "keys_only_on_neighbour": (_describe_keys(only1) if isinstance(only1, pd.DataFrame)
                                   else f"unknown (releases on D' have {common1[0]} values)"),
    }
    return look, evidence


def _schedule(n_runs: int | None, min_runs: int, max_runs: int) -> list[int]:
    if n_runs is not None:
        return [int(n_runs)]
    looks = [int(min_runs)]
    while looks[-1] < max_runs:
        looks.append(min(2 * looks[-1], int(max_runs)))
    return looks


def _check_runs(name: str, value: Any) -> None:
    if value is None:
        return
    if int(value) != value or value < 100:
        raise PrivaggInputError(
            f"{name}={value!r} is too small. Fix: pass {name} >= 100 (thousands for a useful bound)."
        )


def epsilon_lower_bound(
    mechanism: Callable[[Any], Any],
    dataset: Any,
    neighbour: Any = None,
    *,
    n_runs: int | None = None,
    alpha: float = 0.05,
    seed: int | None = None,
    claimed_epsilon: float | None = None,
    delta: float = 0.0,
    noise_scale: float | None = None,
    min_runs: int = 4_000,
    max_runs: int = 128_000,
    tolerance: float = 0.1,
    selection_share: float = 0.5,
) -> AuditResult:
    """A lower bound on the mechanism's epsilon, valid with probability ``1 - alpha``.

    Parameters
    ----------
    mechanism
        Callable ``dataset -> release`` (a vector of released values, a
        DataFrame with ``value``, or a :class:`~privagg.release.Release`;
        wrap an anonymiser and a query with :class:`ReleaseMechanism`). If
        it has ``sample(dataset, n, rng=...)`` returning ``n`` releases at
        once, that is used instead (much faster).
    dataset
        D: a contributions DataFrame with ``user_id``, a World, or anything
        the mechanism accepts when ``neighbour`` is given.
    neighbour
        D': a dataset, a function ``D -> D'``, or None to remove the most
        active subscriber (:func:`remove_most_active`).
    n_runs
        Releases per dataset, fixed. None (default): runs are added, doubling
        from ``min_runs``, until the claim is refuted, the chosen event's
        interval is narrower than ``tolerance``, or ``max_runs`` is reached
        (a correct mechanism runs to the cap); ``alpha`` is spent over these looks
        (look i of L gets ``alpha * 2**i / (2**L - 1)``), so stopping early
        does not inflate the confidence.
    alpha
        1 - confidence. A mechanism that keeps its claim is flagged with
        probability at most ``alpha``.
    seed
        Seeds the split and any numpy-based mechanism; OpenDP's noise is
        cryptographically random and cannot be seeded.
    claimed_epsilon
        Defaults to the mechanism's ``claimed_epsilon`` or ``epsilon``.
    delta
        The mechanism's claimed delta (0 for pure DP).
    noise_scale
        Noise scale for Mironov's floating-point event; defaults to the
        mechanism's ``noise_scale``. Without it that event is not tried.
    min_runs, max_runs
        First and last number of runs per dataset of the adaptive schedule.
    tolerance
        Width of the chosen event's log-ratio interval at which more runs
        are not worth drawing.
    selection_share
        Share of the runs that choose the event (a third of them fit the
        events' parameters, the rest choose among the events); the others
        measure it.

    Returns
    -------
    AuditResult
        ``n_runs`` is the number of runs per dataset the audit needed;
        ``metrics`` hold the schedule, the look it stopped at and why. When
        the set of released keys differs between D and D' (a release over a
        key domain that depends on the data), the result is flagged with the
        key-set event and the differing keys as evidence.
    """
    _check_runs("n_runs", n_runs)
    _check_runs("min_runs", min_runs)
    _check_runs("max_runs", max_runs)
    if not 0 < alpha < 1:
        raise PrivaggInputError(f"alpha={alpha!r} must lie in (0, 1). Fix: e.g. alpha=0.05 for 95% confidence.")
    if not 0.1 <= selection_share <= 0.9:
        raise PrivaggInputError(f"selection_share={selection_share!r} must lie in [0.1, 0.9]. Fix: e.g. 0.5.")
    if claimed_epsilon is None:
        claimed_epsilon = getattr(mechanism, "claimed_epsilon", getattr(mechanism, "epsilon", None))
    if noise_scale is None:
        noise_scale = getattr(mechanism, "noise_scale", None)

    if neighbour is None:
        d1_data, how = remove_most_active(dataset)
    elif callable(neighbour) and not isinstance(neighbour, pd.DataFrame):
        d1_data, how = neighbour(dataset), getattr(neighbour, "__name__", "custom neighbour")
    else:
        d1_data, how = neighbour, "given neighbouring dataset"

    schedule = _schedule(n_runs, min_runs, max(max_runs, min_runs))
    weights = 2.0 ** np.arange(len(schedule))
    alphas = alpha * weights / weights.sum()
    rng = np.random.default_rng(seed)
    d0, d1 = _Draws(), _Draws()
    evidence: dict[str, Any] = {}
    stopped = "cap"
    for i, (runs, a) in enumerate(zip(schedule, alphas)):
        d0.add(mechanism, dataset, runs - d0.n, rng)
        d1.add(mechanism, d1_data, runs - d1.n, rng)
        if i == 0 and d0.record is not None:
            noise_scale = noise_scale or d0.record.noise_scale
            if claimed_epsilon is None:
                claimed_epsilon = (d0.record.epsilon if d0.record.epsilon is not None
                                   else d0.record.parameters.get("epsilon"))
        if len(set(d0.signatures) | set(d1.signatures)) > 1:
            look, evidence = _keyset_look(d0, d1, float(a), delta, selection_share, rng)
        else:
            look = _value_look(np.vstack(d0.values), np.vstack(d1.values), float(a), delta, noise_scale,
                               selection_share, rng)
        if claimed_epsilon is not None and look.lb > float(claimed_epsilon):
            stopped = "claim refuted"
            break
        if look.ub - look.lb <= tolerance:
            stopped = "interval narrower than the tolerance"
            break
        if i == len(schedule) - 1:
            stopped = "fixed number of runs" if n_runs is not None else "cap on runs reached"
    flagged = claimed_epsilon is not None and look.lb > float(claimed_epsilon)
    event = look.event
    if evidence:
        event = (f"the set of released keys depends on the data: {event}; keys only on D: "
                 f"{evidence['keys_only_on_d']}; keys only on D': {evidence['keys_only_on_neighbour']}")
    metrics: dict[str, Any] = {
        "selection_epsilon_lb": look.selection_lb, "n_candidate_events": look.n_candidates,
        "partitions_differing": look.partitions_differing,
        "epsilon_ub_of_event": look.ub if math.isfinite(look.ub) else None,
        "looks": i + 1, "schedule": schedule[: i + 1], "alpha_of_look": float(alphas[i]), "stopped": stopped,
        "runs_needed": d0.n,
    }
    metrics.update(evidence)
    return AuditResult(
        epsilon_lb=look.lb,
        claimed_epsilon=None if claimed_epsilon is None else float(claimed_epsilon),
        flagged=bool(flagged),
        event=event,
        n_runs=d0.n,
        confidence=1 - alpha,
        p_event_d=look.e0 / look.n_eval,
        p_event_neighbour=look.e1 / look.n_eval,
        p_high_lo=look.hi_lo,
        p_low_hi=look.lo_hi,
        delta=float(delta),
        neighbour=how,
        mechanism=str(getattr(mechanism, "name", type(mechanism).__name__)),
        metrics=metrics,
    )
