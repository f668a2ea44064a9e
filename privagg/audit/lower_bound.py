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

Events tried (both directions each):

* thresholds on the Laplace likelihood-ratio statistic
  ``sum_i sign(d_i) * clip(y_i - mid_i, -|d_i|/2, |d_i|/2)`` over the
  partitions whose mean output differs between D and D' (d and mid are
  estimated on the selection half), and on its unclipped projection;
* for floating-point outputs, Mironov's events (CCS 2012): "the output in
  partition j is not a double that numpy's textbook Laplace sampler can
  produce from the count x", for integers x near the median output, and the
  union of the best such events over partitions. Under the dataset whose
  true count is x it never happens; under the neighbour it mostly does. The
  noise scale comes from the mechanism's ``noise_scale`` or the releases'
  privacy record. Against a correct mechanism these events are no likelier
  under one dataset than the other, so they only ever help against broken
  ones.

The bound holds with confidence ``1 - alpha`` whatever the mechanism: a
correct mechanism is flagged with probability at most ``alpha``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import stats

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
        Releases drawn per dataset (half chose the event, half measured it).
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


def remove_most_active(dataset: Any) -> tuple[Any, str]:
    """D' = D without its most active subscriber (most rows, ties by smallest id).

    ``dataset`` is a DataFrame with a ``user_id`` column, or a
    :class:`~privagg.world.World` (activity = rows in events, stays and trips;
    only subscribers who opted in, since releases exclude the others).
    """
    from privagg.world import World

    if isinstance(dataset, World):
        # Subscribers who opted out never reach a release: removing one would change nothing.
        consenting = dataset.users.loc[dataset.users["opt_in"].to_numpy(dtype=bool), "user_id"]
        activity = pd.concat(
            [dataset.events["user_id"], dataset.stays["user_id"], dataset.trips["user_id"]], ignore_index=True
        ).value_counts()
        activity = activity.loc[activity.index.isin(consenting)]
        if activity.empty:
            raise PrivaggInputError("the World has no events, stays or trips; no subscriber to remove.")
        user = _top(activity)
        keep = lambda df: df.loc[df["user_id"] != user].reset_index(drop=True)  # noqa: E731
        from dataclasses import replace

        neighbour = replace(
            dataset, users=keep(dataset.users), events=keep(dataset.events), stays=keep(dataset.stays),
            trips=keep(dataset.trips),
        )
        return neighbour, f"removed the most active subscriber (user_id={user}, {int(activity[user])} rows)"
    if isinstance(dataset, pd.DataFrame) and "user_id" in dataset.columns:
        activity = dataset["user_id"].value_counts()
        if activity.empty:
            raise PrivaggInputError("the dataset is empty; no subscriber to remove.")
        user = _top(activity)
        neighbour = dataset.loc[dataset["user_id"] != user].reset_index(drop=True)
        return neighbour, f"removed the most active subscriber (user_id={user}, {int(activity[user])} rows)"
    raise PrivaggInputError(
        "neighbour=None needs a dataset with subscribers: a DataFrame with a 'user_id' column or a World. "
        "Fix: pass neighbour= as the neighbouring dataset or a function making it."
    )


def _top(activity: pd.Series) -> Any:
    top = activity.max()
    return sorted(activity.index[activity.to_numpy() == top])[0]


def _as_vector(output: Any) -> np.ndarray:
    if hasattr(output, "values") and hasattr(output, "privacy"):  # a privagg Release
        return np.asarray(output.values, dtype=float)
    if isinstance(output, pd.DataFrame):
        return output["value"].to_numpy(dtype=float)
    return np.asarray(output, dtype=float).ravel()


def _draw(mechanism: Callable, dataset: Any, n: int, rng: np.random.Generator) -> tuple[np.ndarray, Any]:
    """``n`` releases as an ``(n, k)`` array, and the privacy record of the first (if it is a Release)."""
    if hasattr(mechanism, "sample"):
        out = np.asarray(mechanism.sample(dataset, n, rng=rng), dtype=float)
        return out.reshape(n, -1), None
    outputs = [mechanism(dataset) for _ in range(n)]
    return np.vstack([_as_vector(o) for o in outputs]), getattr(outputs[0], "privacy", None)


class ReleaseMechanism:
    """An :class:`~privagg.anonymisers.base.Anonymiser` answering one query, as a mechanism to audit.

    ``ReleaseMechanism(anonymiser, query)(world)`` is ``anonymiser.release(world, query)``.
    The claimed epsilon is the anonymiser's ``epsilon`` (nominal for
    baselines such as the naive Laplace); the noise scale is read from the
    releases' privacy records. Each release runs the whole pipeline, so
    audits of World-level releases need small worlds or patience.
    """

    def __init__(self, anonymiser: Any, query: Any) -> None:
        self.anonymiser = anonymiser
        self.query = query
        self.claimed_epsilon = getattr(anonymiser, "epsilon", None)
        self.name = getattr(anonymiser, "name", type(anonymiser).__name__)

    def __call__(self, world: Any) -> Any:
        return self.anonymiser.release(world, self.query)


# ----------------------------------------------------------------------------- Mironov's event

_LIBM_LOG = np.frompyfunc(math.log, 1, 1)  # libm's log, the one numpy's C sampler calls


def _log(values: np.ndarray) -> np.ndarray:
    """libm's log, bit for bit. numpy's vectorised log is used when it agrees with libm on a
    sample of the inputs (SIMD builds of numpy may differ in the last bit)."""
    flat = values.ravel()
    sample = flat[:: max(1, flat.size // 512)]
    fast = np.log(flat)
    if np.array_equal(fast[:: max(1, flat.size // 512)], _LIBM_LOG(sample).astype(float)):
        return fast.reshape(values.shape)
    return _LIBM_LOG(flat).astype(float).reshape(values.shape)


def naive_laplace_reachable(y: np.ndarray, x: np.ndarray, scale: float, radius: int = 4) -> np.ndarray:
    """Whether each double ``y`` is an output of numpy's textbook Laplace sampler on input ``x``.

    The sampler draws ``U = k * 2**-53`` and returns
    ``x + scale * log(2U)`` (U < 1/2) or ``x - scale * log(2 - 2U)``, each
    operation rounded to a double. We invert ``y`` to the nearest lattice
    points ``k`` and replay the exact floating-point computation. Outputs the
    sampler produced from ``x`` are always recognised; most outputs produced
    from another integer are not, because their low-order bits come from a
    different rounding (Mironov, CCS 2012).
    """
    y, x = np.broadcast_arrays(np.asarray(y, dtype=float), np.asarray(x, dtype=float))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        t = (y - x) / scale
        ustar = np.where(t < 0, 0.5 * np.exp(np.minimum(t, 0)), 1.0 - 0.5 * np.exp(-np.maximum(t, 0)))
        k = np.rint(ustar * 2.0**53)[..., None] + np.arange(-radius, radius + 1)
        valid = (k > 0) & (k < 2.0**53) & np.isfinite(y)[..., None]
        u = np.where(valid, k, 1.0) * 2.0**-53
        arg = np.where(u < 0.5, u + u, 2.0 - u - u)
        log = _log(arg)
        noise = scale * np.where(u < 0.5, log, -log)
        replay = x[..., None] + noise
    return ((replay == y[..., None]) & valid).any(axis=-1)


# ----------------------------------------------------------------------------- event search


def _mironov_candidates(a0: np.ndarray, a1: np.ndarray, partitions: np.ndarray, scale: float,
                        half: int) -> list[_Candidate]:
    """Events "the output in partition j is not a double the naive sampler can produce from count x".

    Under the dataset whose true count is x this never happens; under the
    other it happens for most outputs. x ranges over integers near the
    median output, so the true counts need not be known.
    """
    out: list[_Candidate] = []
    width = int(min(25, max(3, np.ceil(6 * scale / np.sqrt(half)))))
    best: list[tuple[int, float, np.ndarray, np.ndarray]] = []
    for j in partitions:
        centre = np.rint(np.median(np.r_[a0[:, j], a1[:, j]]))
        xs = np.arange(centre - width, centre + width + 1)
        ex0 = ~naive_laplace_reachable(a0[:, j, None], xs[None, :], scale)
        ex1 = ~naive_laplace_reachable(a1[:, j, None], xs[None, :], scale)
        gap = np.abs(ex0.mean(axis=0) - ex1.mean(axis=0)) * (np.minimum(ex0.sum(axis=0), ex1.sum(axis=0)) == 0)
        for i, x in enumerate(xs):
            desc = (f"output in partition {j} is not a double numpy's float Laplace sampler can produce "
                    f"from the count {x:g}")
            ev = lambda y, j=j, x=x: ~naive_laplace_reachable(y[:, j], x, scale)  # noqa: E731
            out.append(_Candidate(desc, ex0[:, i], ex1[:, i], ev))
        i = int(np.argmax(gap))
        if gap[i] > 0:
            best.append((int(j), float(xs[i]), ex0[:, i], ex1[:, i]))
    # Combine: some partition's output is not reachable from its chosen count, within one side's
    # zero-frequency events (the side is chosen on the selection half like everything else).
    for side in (0, 1):
        chosen = [(j, x, e0, e1) for j, x, e0, e1 in best if (e0.sum() == 0 if side == 0 else e1.sum() == 0)]
        if len(chosen) > 1:
            js = np.array([c[0] for c in chosen])
            xs = np.array([c[1] for c in chosen])
            desc = (f"in one of partitions {js.tolist()} the output is not a double numpy's float Laplace "
                    f"sampler can produce from the counts {xs.tolist()}")
            ev = lambda y, js=js, xs=xs: (~naive_laplace_reachable(y[:, js], xs, scale)).any(axis=1)  # noqa: E731
            out.append(_Candidate(desc, ev(a0), ev(a1), ev))
    return out


@dataclass
class _Candidate:
    description: str
    # event indicators on the selection half (D, D') and a function for the evaluation half
    sel0: np.ndarray
    sel1: np.ndarray
    evaluate: Callable[[np.ndarray], np.ndarray]


def _log_ratio(k_hi: np.ndarray, k_lo: np.ndarray, n: int, alpha: float, delta: float) -> np.ndarray:
    hi_lo, _ = one_sided_clopper_pearson(k_hi, n, alpha / 2)
    _, lo_hi = one_sided_clopper_pearson(k_lo, n, alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.log(np.maximum(hi_lo - delta, 0.0) / lo_hi)
    return np.where(np.isfinite(value), value, -np.inf)


def _threshold_candidates(
    name: str, stat: Callable[[np.ndarray], np.ndarray], a0: np.ndarray, a1: np.ndarray, n_thresholds: int = 256
) -> list[_Candidate]:
    s0, s1 = stat(a0), stat(a1)
    pooled = np.concatenate([s0, s1])
    qs = np.unique(np.quantile(pooled, np.linspace(0, 1, n_thresholds)))
    out = []
    for t in qs:
        t = float(t)
        out.append(_Candidate(f"{name} >= {t:.6g}", s0 >= t, s1 >= t, lambda y, t=t: stat(y) >= t))
        out.append(_Candidate(f"{name} <= {t:.6g}", s0 <= t, s1 <= t, lambda y, t=t: stat(y) <= t))
    return out


def epsilon_lower_bound(
    mechanism: Callable[[Any], Any],
    dataset: Any,
    neighbour: Any = None,
    *,
    n_runs: int = 10_000,
    alpha: float = 0.05,
    seed: int | None = None,
    claimed_epsilon: float | None = None,
    delta: float = 0.0,
    noise_scale: float | None = None,
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
        Releases per dataset. Half choose the event, half measure it.
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
    """
    if int(n_runs) != n_runs or n_runs < 100:
        raise PrivaggInputError(f"n_runs={n_runs!r} is too small. Fix: pass n_runs >= 100 (thousands for a useful bound).")
    if not 0 < alpha < 1:
        raise PrivaggInputError(f"alpha={alpha!r} must lie in (0, 1). Fix: e.g. alpha=0.05 for 95% confidence.")
    n_runs = int(n_runs)
    if claimed_epsilon is None:
        claimed_epsilon = getattr(mechanism, "claimed_epsilon", getattr(mechanism, "epsilon", None))
    if noise_scale is None:
        noise_scale = getattr(mechanism, "noise_scale", None)

    if neighbour is None:
        d1, how = remove_most_active(dataset)
    elif callable(neighbour) and not isinstance(neighbour, pd.DataFrame):
        d1, how = neighbour(dataset), getattr(neighbour, "__name__", "custom neighbour")
    else:
        d1, how = neighbour, "given neighbouring dataset"

    rng = np.random.default_rng(seed)
    y0, record = _draw(mechanism, dataset, n_runs, rng)
    y1, _ = _draw(mechanism, d1, n_runs, rng)
    if record is not None:
        noise_scale = noise_scale or record.noise_scale
        if claimed_epsilon is None:
            claimed_epsilon = record.epsilon if record.epsilon is not None else record.parameters.get("epsilon")
    if y0.shape != y1.shape:
        raise PrivaggInputError(
            f"the mechanism released {y0.shape[1]} values on D but {y1.shape[1]} on D': the set of released keys "
            "itself depends on the data. Fix: release over a public key domain."
        )
    half = n_runs // 2
    p0, p1 = rng.permutation(n_runs), rng.permutation(n_runs)
    a0, b0 = y0[p0[:half]], y0[p0[half:]]
    a1, b1 = y1[p1[:half]], y1[p1[half:]]
    a0 = np.nan_to_num(a0)
    a1 = np.nan_to_num(a1)
    b0 = np.nan_to_num(b0)
    b1 = np.nan_to_num(b1)

    # Where do the two datasets differ? Estimated on the selection half only.
    m0, m1 = a0.mean(axis=0), a1.mean(axis=0)
    se = np.sqrt(a0.var(axis=0) / half + a1.var(axis=0) / half) + 1e-12
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

    candidates = _threshold_candidates("clipped likelihood-ratio statistic", llr, a0, a1)
    candidates += _threshold_candidates("projection on the mean difference", projection, a0, a1)

    floats = not np.all(np.mod(np.concatenate([a0, a1]), 1.0) == 0)
    if floats and noise_scale:
        # Every partition if affordable (the shift of one count is invisible in the means when the
        # noise is wide, but not in the low-order bits); otherwise those whose means differ most.
        width = int(min(25, max(3, np.ceil(6 * float(noise_scale) / np.sqrt(half)))))
        affordable = max(1, int(4e6 // (half * (2 * width + 1) * 9)))
        candidates += _mironov_candidates(a0, a1, np.argsort(-np.abs(z), kind="stable")[:affordable],
                                          float(noise_scale), half)

    # Choose the event and its direction on the selection half.
    k0 = np.array([c.sel0.sum() for c in candidates])
    k1 = np.array([c.sel1.sum() for c in candidates])
    fwd = _log_ratio(k1, k0, half, alpha, delta)  # event likelier under D'
    bwd = _log_ratio(k0, k1, half, alpha, delta)  # event likelier under D
    scores = np.maximum(fwd, bwd)
    best = int(np.argmax(scores))
    forward = bool(fwd[best] >= bwd[best])
    chosen = candidates[best]

    n_eval = n_runs - half
    e0 = int(chosen.evaluate(b0).sum())
    e1 = int(chosen.evaluate(b1).sum())
    k_hi, k_lo = (e1, e0) if forward else (e0, e1)
    hi_lo, _ = one_sided_clopper_pearson(k_hi, n_eval, alpha / 2)
    _, lo_hi = one_sided_clopper_pearson(k_lo, n_eval, alpha / 2)
    lb = float(_log_ratio(np.array([k_hi]), np.array([k_lo]), n_eval, alpha, delta)[0])
    lb = max(lb, 0.0)
    flagged = claimed_epsilon is not None and lb > float(claimed_epsilon)
    direction = "D' (neighbour)" if forward else "D"
    return AuditResult(
        epsilon_lb=lb,
        claimed_epsilon=None if claimed_epsilon is None else float(claimed_epsilon),
        flagged=bool(flagged),
        event=f"{chosen.description} (likelier under {direction})",
        n_runs=n_runs,
        confidence=1 - alpha,
        p_event_d=e0 / n_eval,
        p_event_neighbour=e1 / n_eval,
        p_high_lo=float(hi_lo),
        p_low_hi=float(lo_hi),
        delta=float(delta),
        neighbour=how,
        mechanism=str(getattr(mechanism, "name", type(mechanism).__name__)),
        metrics={"selection_epsilon_lb": float(max(scores[best], 0.0)), "n_candidate_events": len(candidates),
                 "partitions_differing": int(active.sum())},
    )
