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


def _keys_of(output: Any) -> pd.DataFrame | None:
    """The released keys of one output (a Release or a DataFrame), or None for a bare vector."""
    if hasattr(output, "to_pandas") and hasattr(output, "key_columns"):
        return output.to_pandas().loc[:, list(output.key_columns)]
    if isinstance(output, pd.DataFrame):
        return output.loc[:, [c for c in output.columns if c not in ("value", "ci_low", "ci_high")]]
    return None


def _signature(keys: pd.DataFrame | None, n_values: int) -> tuple:
    """A hashable fingerprint of a release's key set: its size and a hash of the key rows."""
    if keys is None or keys.shape[1] == 0:
        return (n_values,)
    hashed = pd.util.hash_pandas_object(keys, index=False).to_numpy()
    return (n_values, hash(np.sort(hashed).tobytes()))


@dataclass
class _Draws:
    """Releases drawn so far from one dataset: values (when every key set is the same), key fingerprints,
    and one key table per fingerprint (the evidence when key sets differ)."""

    values: list[np.ndarray] = field(default_factory=list)
    signatures: list[tuple] = field(default_factory=list)
    keys: dict[tuple, Any] = field(default_factory=dict)
    record: Any = None

    @property
    def n(self) -> int:
        return len(self.signatures)

    def add(self, mechanism: Callable, dataset: Any, n: int, rng: np.random.Generator) -> None:
        if hasattr(mechanism, "sample"):
            out = mechanism.sample(dataset, n, rng=rng)
            rows = list(out) if isinstance(out, list) else list(np.asarray(out, dtype=float).reshape(n, -1))
            # a mechanism may say which keys its releases carry (the evidence when they depend on the data)
            keys = mechanism.released_keys(dataset) if hasattr(mechanism, "released_keys") else None
            outputs = [(np.asarray(r, dtype=float).ravel(), keys) for r in rows]
        else:
            outputs = []
            for _ in range(n):
                o = mechanism(dataset)
                if self.record is None:
                    self.record = getattr(o, "privacy", None)
                outputs.append((_as_vector(o), _keys_of(o)))
        for vector, keys in outputs:
            sig = _signature(keys, len(vector))
            if sig not in self.keys:
                self.keys[sig] = keys if keys is not None else np.arange(len(vector))
            self.signatures.append(sig)
            self.values.append(vector)


def _draw(mechanism: Callable, dataset: Any, n: int, rng: np.random.Generator) -> tuple[np.ndarray, Any]:
    """``n`` releases as an ``(n, k)`` array, and the privacy record of the first (if it is a Release)."""
    draws = _Draws()
    draws.add(mechanism, dataset, n, rng)
    return np.vstack(draws.values), draws.record


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


@dataclass
class _Candidate:
    description: str
    # how often the event happened on the choosing part under D and D', and a function for the evaluation half
    k0: int
    k1: int
    evaluate: Callable[[np.ndarray], np.ndarray]


def _mironov_candidates(f0: np.ndarray, f1: np.ndarray, c0: np.ndarray, c1: np.ndarray, partitions: np.ndarray,
                        scale: float) -> list[_Candidate]:
    """Events "the output in partition j is not a double the naive sampler can produce from count x".

    Under the dataset whose true count is x this never happens; under the
    other it happens for most outputs. x ranges over integers near the
    median output, so the true counts need not be known. The counts x are
    chosen on the fitting part (``f0``, ``f1``), the events counted on the
    choosing part (``c0``, ``c1``).
    """
    out: list[_Candidate] = []
    n_fit = len(f0)
    width = int(min(25, max(3, np.ceil(6 * scale / np.sqrt(max(n_fit, 1))))))
    best: list[tuple[int, float, bool]] = []
    for j in partitions:
        centre = np.rint(np.median(np.r_[f0[:, j], f1[:, j]]))
        xs = np.arange(centre - width, centre + width + 1)
        fx0 = ~naive_laplace_reachable(f0[:, j, None], xs[None, :], scale)
        fx1 = ~naive_laplace_reachable(f1[:, j, None], xs[None, :], scale)
        gap = np.abs(fx0.mean(axis=0) - fx1.mean(axis=0)) * (np.minimum(fx0.sum(axis=0), fx1.sum(axis=0)) == 0)
        cx0 = (~naive_laplace_reachable(c0[:, j, None], xs[None, :], scale)).sum(axis=0)
        cx1 = (~naive_laplace_reachable(c1[:, j, None], xs[None, :], scale)).sum(axis=0)
        for i, x in enumerate(xs):
            desc = (f"output in partition {j} is not a double numpy's float Laplace sampler can produce "
                    f"from the count {x:g}")
            ev = lambda y, j=j, x=x: ~naive_laplace_reachable(y[:, j], x, scale)  # noqa: E731
            out.append(_Candidate(desc, int(cx0[i]), int(cx1[i]), ev))
        i = int(np.argmax(gap))
        if gap[i] > 0:
            best.append((int(j), float(xs[i]), bool(fx0[:, i].sum() == 0)))
    # Combine: some partition's output is not reachable from its chosen count, within one side's
    # zero-frequency events (the side is chosen on the fitting part like everything else).
    for side in (True, False):
        chosen = [(j, x) for j, x, never_on_d in best if never_on_d == side]
        if len(chosen) > 1:
            js = np.array([c[0] for c in chosen])
            xs = np.array([c[1] for c in chosen])
            desc = (f"in one of partitions {js.tolist()} the output is not a double numpy's float Laplace "
                    f"sampler can produce from the counts {xs.tolist()}")
            ev = lambda y, js=js, xs=xs: (~naive_laplace_reachable(y[:, js], xs, scale)).any(axis=1)  # noqa: E731
            out.append(_Candidate(desc, int(ev(c0).sum()), int(ev(c1).sum()), ev))
    return out


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


def _threshold_candidates(
    name: str, stat: Callable[[np.ndarray], np.ndarray], c0: np.ndarray, c1: np.ndarray, n_thresholds: int = 256
) -> list[_Candidate]:
    """Events ``stat >= t`` and ``stat <= t``, counted on the choosing part without storing indicators."""
    s0, s1 = np.sort(stat(c0)), np.sort(stat(c1))
    pooled = np.concatenate([s0, s1])
    distinct = np.unique(pooled)
    # a discrete statistic gets every value it takes as a threshold; a continuous one, quantiles
    qs = distinct if len(distinct) <= n_thresholds else np.unique(np.quantile(pooled, np.linspace(0, 1, n_thresholds)))
    ge0 = len(s0) - np.searchsorted(s0, qs, side="left")
    ge1 = len(s1) - np.searchsorted(s1, qs, side="left")
    le0 = np.searchsorted(s0, qs, side="right")
    le1 = np.searchsorted(s1, qs, side="right")
    out = []
    for i, t in enumerate(qs):
        t = float(t)
        out.append(_Candidate(f"{name} >= {t:.6g}", int(ge0[i]), int(ge1[i]), lambda y, t=t: stat(y) >= t))
        out.append(_Candidate(f"{name} <= {t:.6g}", int(le0[i]), int(le1[i]), lambda y, t=t: stat(y) <= t))
    return out


def _value_candidates(f0: np.ndarray, f1: np.ndarray, c0: np.ndarray, c1: np.ndarray, partitions: np.ndarray,
                      max_values: int = 64) -> list[_Candidate]:
    """Events on exact output values, for discrete outputs.

    Per partition: "the output equals v" for its most frequent values, and
    the likelihood-ratio region "the output is one of the values seen more
    often under D' than under D" (and the reverse), the values chosen on the
    fitting part. Together with a naive-Bayes sum of per-value log ratios
    over the partitions (a threshold statistic), these catch mechanisms
    whose outputs take values with very different probabilities on the two
    datasets, including values impossible on one of them.
    """
    out: list[_Candidate] = []
    tables = []
    for j in partitions:
        values, inverse = np.unique(np.r_[f0[:, j], f1[:, j]], return_inverse=True)
        n0 = np.bincount(inverse[: len(f0)], minlength=len(values))
        n1 = np.bincount(inverse[len(f0):], minlength=len(values))
        ratio = np.log((n1 + 0.5) / (n0 + 0.5)) + math.log((len(f0) + 0.5) / (len(f1) + 0.5))
        tables.append((int(j), values, ratio))
        for v in values[np.argsort(-(n0 + n1), kind="stable")[:max_values]]:
            ev = lambda y, j=j, v=v: y[:, j] == v  # noqa: E731
            out.append(_Candidate(f"output in partition {j} equals {v:g}", int((c0[:, j] == v).sum()),
                                  int((c1[:, j] == v).sum()), ev))
        for sign, word in ((1, "D'"), (-1, "D")):
            region = values[sign * ratio > 0]
            if 0 < len(region) < len(values):
                ev = lambda y, j=j, region=region: np.isin(y[:, j], region)  # noqa: E731
                shown = ", ".join(f"{v:g}" for v in region[:8]) + (", ..." if len(region) > 8 else "")
                out.append(_Candidate(f"output in partition {j} is one of the values more frequent under {word} "
                                      f"({shown})", int(ev(c0).sum()), int(ev(c1).sum()), ev))

    def naive_bayes(y: np.ndarray) -> np.ndarray:
        total = np.zeros(len(y))
        for j, values, ratio in tables:
            idx = np.clip(np.searchsorted(values, y[:, j]), 0, len(values) - 1)
            total += np.where(values[idx] == y[:, j], ratio[idx], 0.0)
        return total

    if tables:
        out += _threshold_candidates("sum of per-value log likelihood ratios", naive_bayes, c0, c1)
    return out


def _is_discrete(y: np.ndarray) -> bool:
    """Integer-valued outputs, or so few distinct values per partition that exact-value events make sense."""
    if not len(y):
        return False
    if np.all(np.mod(y, 1.0) == 0):
        return True
    distinct = max(len(np.unique(y[:, j])) for j in range(min(y.shape[1], 32)))
    return distinct <= max(16, len(y) // 20)


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


def _describe_keys(keys: Any, limit: int = 10) -> str:
    if isinstance(keys, pd.DataFrame) and keys.empty:
        return "none"
    if isinstance(keys, pd.DataFrame):
        rows = [", ".join(f"{c}={v}" for c, v in zip(keys.columns, row)) for row in keys.head(limit).itertuples(index=False)]
        more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
        return "; ".join(f"({r})" for r in rows) + more
    return f"{len(keys)} values"


def _key_difference(a: Any, b: Any) -> tuple[Any, Any]:
    """Keys in ``a`` but not ``b`` and the reverse (DataFrames), or the two lengths for bare vectors."""
    if isinstance(a, pd.DataFrame) and isinstance(b, pd.DataFrame) and list(a.columns) == list(b.columns):
        both = a.merge(b.drop_duplicates(), how="outer", indicator=True)
        return (both.loc[both["_merge"] == "left_only", list(a.columns)],
                both.loc[both["_merge"] == "right_only", list(a.columns)])
    return a, b


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
