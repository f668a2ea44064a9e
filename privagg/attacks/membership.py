"""Membership inference on aggregate location time series.

Re-implements Pyrgelis, Troncoso and De Cristofaro, "Knock Knock, Who's
There? Membership Inference on Aggregate Location Data" (NDSS 2018), and
runs it at full strength: several attack variants, the strongest chosen on
training groups and its risk measured on held-out ones.

The game. A release is the footfall of a group of ``m`` subscribers: for
every location and hour, how many of them were there, published through a
publication model (:mod:`privagg.anonymisers.models`: exact, suppressed
below ``k``, rounded, or with OpenDP noise). The adversary wants to tell
whether a target is in the group. Per target, ``n_train`` training groups
and ``n_test`` test groups are drawn, half with the target; test releases
are published by the model itself (OpenDP noise), the adversary's training
releases by its seeded simulation (:meth:`Publication.simulate`).

Variants (all run; :data:`VARIANTS`):

``own keys``
    Sum of the released values over the keys (location, hour) where the
    target was: the target adds 1 to each. Suppressed values count as 0;
    ``own keys (suppressed as k/2)`` counts them as ``k / 2`` instead.
``whitened``
    Fisher's linear discriminant computed from the population (no
    training): the released values weighted by the inverse covariance of a
    group's counts (plus the noise variance) times the difference of the
    mean counts in and out. Keys the same members fill hour after hour
    count once, not several times over, and under substitution the
    substitute's extra presence elsewhere counts too. Over every key up to
    :data:`WHITEN_ALL_KEYS_UP_TO` keys, over the target's beyond.
``likelihood ratio``
    The noise-aware test. The adversary knows the population groups are
    drawn from, so at each of the target's keys the count of the other
    members is hypergeometric; convolved with the mechanism
    (:meth:`Publication.log_likelihood`: noise, suppression, rounding) this
    gives P(released | in) and P(released | out). The score is the sum over
    the target's keys of the log ratio (keys treated as independent). For
    publications without noise or rounding under substitution, every other
    key counts too: the substitute is one more member somewhere.
``likelihood ratio (mean counts)``
    For noisy releases: per key ``log P(released | mean count with the
    target) - log P(released | mean count without)``.
``mean difference``
    A linear score learned on training releases: each key weighted by the
    difference of its mean in and out, over its variance.
``<features>/<classifier>``
    Pyrgelis's attack: features ``stats`` (mean, standard deviation,
    minimum, maximum, median of each location's series), ``raw`` (the
    series) or ``stats+raw``, and classifier ``logistic`` (logistic
    regression on standardised features; ``stats/logistic`` was privagg's
    former default), ``forest`` (a small random forest) or ``mlp`` (a small
    multi-layer perceptron), from scikit-learn.

Choosing honestly. Each variant's training risk is its mean AUC over the
targets on the training groups: statistics have nothing to fit, learned
variants are scored out of fold (two folds of training pairs) and then
refit on all training groups. :func:`~privagg.attacks.result.strongest_variant`
picks the variant with the highest training risk; the result reports that
variant's AUC on the test groups, which played no part in the choice.

Priors (the adversary's background knowledge, after Pyrgelis et al.):

``"full"``
    The target's full hourly trace over the window, and the population.
``"partial"``
    A random ``known_fraction`` of the target's (location, hour) points. The
    adversary's simulated "in" groups hold the target's known points only;
    the statistics use only the known keys.
``"past_membership"``
    No trace of the target: the adversary saw ``n_train`` earlier releases
    of groups from the same population, each labelled with whether the
    target was in it, and learns from those (learned variants only; the
    statistics need the trace). The earlier period is ``past_presence``
    (e.g. the previous week, same subscribers and locations) or, by
    default, the attacked window itself: the target's behaviour repeats,
    the best case for the adversary. Those releases were published, so
    their noise is the model's own (OpenDP).

Neighbouring groups. By default (``neighbouring="substitute"``, as in the
paper) an "out" group has the target replaced by a random other subscriber,
so both have ``m`` members; under add/remove DP at epsilon this is a
2-epsilon pair. With ``neighbouring="add_remove"`` the "out" group is the
same group without the target (``m - 1`` members) and the pair is exactly
epsilon apart. For a DP release, every test's ROC must lie under
:func:`dp_tpr_bound` at that epsilon.

Data. :func:`hourly_presence` turns an ``events`` table into a sparse
subscriber x (location, hour) matrix holding 1 where the subscriber was
there, at most one location per subscriber and hour (the one with most
events). That bounds each subscriber to 24 partitions per day and 1 per
partition: a DP footfall release with those bounds has noise scale
``24 / epsilon`` per subscriber-day.
"""

from __future__ import annotations

import warnings
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from scipy import sparse, special, stats

from privagg.anonymisers.models import Exact, Publication
from privagg.attacks.result import AttackResult, strongest_variant
from privagg.errors import PrivaggInputError

__all__ = [
    "PRIORS",
    "Presence",
    "VARIANTS",
    "auc_interval",
    "dp_auc_bound",
    "dp_tpr_bound",
    "hourly_presence",
    "membership_inference",
    "roc_curve",
    "time_series_features",
]

# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Presence:
    """Who was where, hour by hour.

    Attributes
    ----------
    matrix
        Sparse ``(n_users, n_locations * n_hours)`` 0/1 matrix; column
        ``loc * n_hours + hour``.
    user_ids
        ``user_id`` of each row.
    locations
        Location id (cell or zone) of each location index.
    n_hours
        Length of the time series.
    """

    matrix: sparse.csr_matrix
    user_ids: np.ndarray
    locations: np.ndarray
    n_hours: int

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_locations(self) -> int:
        return len(self.locations)

    def aggregate(self, groups: sparse.spmatrix | np.ndarray) -> np.ndarray:
        """Footfall of each group: ``(n_groups, n_locations, n_hours)`` counts.

        ``groups`` is an ``(n_groups, n_users)`` 0/1 membership matrix (rows index users as in ``user_ids``).
        """
        counts = sparse.csr_matrix(groups, dtype=np.float64) @ self.matrix
        return np.asarray(counts.todense()).reshape(-1, self.n_locations, self.n_hours)


def hourly_presence(
    events: pd.DataFrame,
    *,
    start: str | pd.Timestamp,
    n_hours: int,
    locations: Sequence[int] | None = None,
    location_column: str = "cell_id",
    location_map: pd.Series | None = None,
    user_ids: Sequence[int] | None = None,
) -> Presence:
    """Build the hourly presence matrix from network events.

    Parameters
    ----------
    events
        Table with ``user_id``, ``ts`` and the location column.
    start, n_hours
        The window: hours ``start`` to ``start + n_hours``; events outside are dropped.
    locations
        Public domain of locations (every one gets a time series, empty or
        not). Defaults to the locations present in ``events``.
    location_column
        Column holding the location, ``cell_id`` by default.
    location_map
        Optional mapping (e.g. cell_id -> zone_id, a Series indexed by cell)
        applied to the location column first, for coarser locations.
    user_ids
        Subscribers to include (rows), defaulting to those with events.
    """
    missing = [c for c in ("user_id", "ts", location_column) if c not in events.columns]
    if missing:
        raise PrivaggInputError(f"events lacks column(s) {missing}. Fix: pass the 'events' table of a World.")
    if int(n_hours) != n_hours or n_hours < 1:
        raise PrivaggInputError(f"n_hours={n_hours!r} is not a positive whole number. Fix: pass e.g. n_hours=24.")
    start = pd.Timestamp(start)
    hour = ((events["ts"] - start) // pd.Timedelta(hours=1)).to_numpy()
    loc = events[location_column]
    if location_map is not None:
        loc = loc.map(location_map)
    loc = loc.to_numpy()
    keep = (hour >= 0) & (hour < n_hours)
    uid = events["user_id"].to_numpy()[keep]
    hour, loc = hour[keep].astype(np.int64), loc[keep]
    locations = np.unique(loc) if locations is None else np.asarray(locations)
    user_ids = np.unique(uid) if user_ids is None else np.asarray(user_ids)
    loc_idx = pd.Index(locations).get_indexer(loc)
    row = pd.Index(user_ids).get_indexer(uid)
    ok = (loc_idx >= 0) & (row >= 0)
    frame = pd.DataFrame({"row": row[ok], "hour": hour[ok], "loc": loc_idx[ok]})
    # One location per subscriber and hour: the one with most events (ties: lowest index).
    frame = frame.groupby(["row", "hour", "loc"], sort=True).size().rename("n").reset_index()
    frame = frame.sort_values(["row", "hour", "n", "loc"], ascending=[True, True, False, True], kind="stable")
    frame = frame.drop_duplicates(["row", "hour"])
    col = frame["loc"].to_numpy() * n_hours + frame["hour"].to_numpy()
    matrix = sparse.csr_matrix(
        (np.ones(len(frame), dtype=np.float64), (frame["row"].to_numpy(), col)),
        shape=(len(user_ids), len(locations) * n_hours),
    )
    return Presence(matrix, user_ids, locations, int(n_hours))


# ----------------------------------------------------------------------------- features and classifier

FEATURES = ("mean", "std", "min", "max", "median")


def time_series_features(released: np.ndarray, kind: str = "stats") -> np.ndarray:
    """Per-location features of released aggregates ``(n, n_locations, n_hours)``.

    ``"stats"``: mean, standard deviation, minimum, maximum and median of each
    location's series (Pyrgelis et al.); ``"raw"``: the series themselves;
    ``"stats+raw"``: both. Suppressed values (NaN) count as 0.
    """
    x = np.nan_to_num(np.asarray(released, dtype=float), nan=0.0)
    parts = []
    if kind in ("stats", "stats+raw"):
        parts += [x.mean(axis=2), x.std(axis=2), x.min(axis=2), x.max(axis=2), np.median(x, axis=2)]
    if kind in ("raw", "stats+raw"):
        parts.append(x.reshape(x.shape[0], -1))
    if not parts:
        raise PrivaggInputError(f"features={kind!r} is unknown. Fix: use 'stats', 'raw' or 'stats+raw'.")
    return np.concatenate(parts, axis=1)


# ----------------------------------------------------------------------------- ROC, AUC, DP bound


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every threshold, from (0, 0) to (1, 1); ties handled as one step."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels).astype(bool)
    order = np.argsort(-scores, kind="stable")
    s, lab = scores[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tp = np.cumsum(lab)[distinct]
    fp = np.cumsum(~lab)[distinct]
    tpr = np.r_[0.0, tp / max(lab.sum(), 1)]
    fpr = np.r_[0.0, fp / max((~lab).sum(), 1)]
    return fpr, tpr


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from scipy.stats import rankdata

    labels = np.asarray(labels).astype(bool)
    n1, n0 = labels.sum(), (~labels).sum()
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _tpr_at(fpr_target: float, fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(tpr[fpr <= fpr_target + 1e-12].max())


def dp_tpr_bound(fpr: np.ndarray | float, epsilon: float, delta: float = 0.0) -> np.ndarray | float:
    """Largest TPR any test can reach at false-positive rate ``fpr`` against an (epsilon, delta)-DP release.

    From ``P[S | in] <= e^eps P[S | out] + delta`` applied to the rejection
    region and its complement (Kairouz, Oh and Viswanath 2015):
    ``TPR <= min(1, e^eps FPR + delta, 1 - e^-eps (1 - FPR - delta))``.
    """
    fpr = np.asarray(fpr, dtype=float)
    bound = np.minimum.reduce([
        np.ones_like(fpr),
        np.exp(epsilon) * fpr + delta,
        1.0 - np.exp(-epsilon) * (1.0 - fpr - delta),
    ])
    bound = np.clip(bound, 0.0, 1.0)
    return float(bound) if bound.ndim == 0 else bound


def dp_auc_bound(epsilon: float, delta: float = 0.0) -> float:
    """Largest AUC reachable against an (epsilon, delta)-DP release (area under :func:`dp_tpr_bound`)."""
    grid = np.linspace(0.0, 1.0, 100_001)
    return float(np.trapezoid(dp_tpr_bound(grid, epsilon, delta), grid))




def _roc_exceeds_bound(scores: np.ndarray, labels: np.ndarray, epsilon: float, delta: float,
                       alpha: float = 0.05) -> float:
    """Largest amount by which the ROC exceeds the DP bound beyond sampling error (<= 0: within it).

    The margins are uniform over thresholds, from the one-sided
    Dvoretzky-Kiefer-Wolfowitz inequality with Massart's constant: with
    probability at least ``1 - alpha``, at every threshold at once the true
    TPR is at least the empirical one minus ``sqrt(ln(2/alpha) / (2 n_in))``
    and the true FPR at most the empirical one plus ``sqrt(ln(2/alpha) / (2 n_out))``.
    Against a release that honours its guarantee the excess is therefore
    positive with probability at most ``alpha``, however the threshold was
    chosen (pointwise intervals at data-chosen thresholds would not say that).
    """
    labels = np.asarray(labels).astype(bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    fpr, tpr = roc_curve(scores, labels)
    m1 = np.sqrt(np.log(2 / alpha) / (2 * n1))
    m0 = np.sqrt(np.log(2 / alpha) / (2 * n0))
    return float(np.max((tpr - m1) - dp_tpr_bound(np.minimum(fpr + m0, 1.0), epsilon, delta)))


def _tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    """TPR at the ROC point with the largest TPR among those with FPR <= ``fpr`` (ties as one step).

    That point accepts every score above the ``(floor(fpr * n_out) + 1)``-th
    largest "out" score; the same figure as :func:`roc_curve` gives.
    """
    allowed = int(np.floor(fpr * neg.size + 1e-9))
    if allowed >= neg.size:
        return 1.0
    v = np.partition(neg, neg.size - 1 - allowed)[neg.size - 1 - allowed]
    return float(np.mean(pos > v))


def _auc_pn(pos: np.ndarray, neg: np.ndarray) -> float:
    """AUC from the "in" and "out" scores (ties count one half), as :func:`_auc`."""
    neg = np.sort(neg)
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below.sum() + 0.5 * ties.sum()) / (pos.size * neg.size))


def _bootstrap(scored: Sequence[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator, n_bootstrap: int,
               level: float, fprs: Sequence[float] = ()) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the mean AUC and of the mean TPR at each of ``fprs``, over targets.

    Two levels: targets are resampled, then each drawn target's test groups
    (stratified by label), the same resamples for every figure.
    """
    split = []
    for scores, labels in scored:
        labels = np.asarray(labels).astype(bool)
        split.append((np.asarray(scores, dtype=float)[labels], np.asarray(scores, dtype=float)[~labels]))
    names = ["auc"] + [f"tpr_at_{f:g}_fpr" for f in fprs]
    boot = np.empty((n_bootstrap, len(names)))
    n = len(split)
    for b in range(n_bootstrap):
        vals = np.zeros(len(names))
        for t in rng.integers(0, n, n):
            pos, neg = split[t]
            p, q = pos[rng.integers(0, pos.size, pos.size)], neg[rng.integers(0, neg.size, neg.size)]
            vals[0] += _auc_pn(p, q)
            for i, f in enumerate(fprs, start=1):
                vals[i] += _tpr_at_fpr(p, q, f)
        boot[b] = vals / n
    alpha = 1 - level
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
    return {name: (float(low[i]), float(high[i])) for i, name in enumerate(names)}


def auc_interval(scored: Sequence[tuple[np.ndarray, np.ndarray]], rng: np.random.Generator,
                 n_bootstrap: int = 500, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean AUC over targets.

    Two levels: targets are resampled, then each drawn target's test groups
    (stratified by label). Resampling targets carries the spread between
    targets, and with it the variance of training a classifier per target,
    which resampling test groups alone would leave out.

    Parameters
    ----------
    scored
        Per target: the attack's scores on the test groups and their labels (True = member).
    rng
        Generator for the resampling.
    n_bootstrap, level
        Resamples and confidence level.
    """
    return _bootstrap(scored, rng, n_bootstrap, level)["auc"]


# ----------------------------------------------------------------------------- the variants

#: Adversary priors (background knowledge), see the module docstring.
PRIORS = ("full", "partial", "past_membership")
CLASSIFIERS = ("logistic", "forest", "mlp")
FEATURE_SETS = ("stats", "raw", "stats+raw")
#: Above this many (location, hour) keys the default run leaves out the networks on raw series: they
#: cannot be trained on a few hundred groups in seconds, and the linear classifiers cover those features.
MLP_MAX_FEATURES = 5000
#: Every variant, in the order ties are broken (simplest first).
VARIANTS = (
    "own keys", "own keys (suppressed as k/2)", "whitened", "likelihood ratio",
    "likelihood ratio (mean counts)", "mean difference",
) + tuple(f"{f}/{c}" for c in CLASSIFIERS for f in FEATURE_SETS)
# Variants that need the target's trace (the statistics of the full and partial priors).
_TRACE_ONLY = ("own keys", "own keys (suppressed as k/2)", "whitened", "likelihood ratio")
# Variants that fit nothing under the full and partial priors.
_STATISTICS = _TRACE_ONLY + ("likelihood ratio (mean counts)",)


def _classifier(name: str, seed: int) -> Any:
    """A small scikit-learn classifier: cheap enough for thousands of fits on two cores."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "logistic":  # L2, C = 1, on standardised features: privagg's former built-in classifier
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=300))
    if name == "forest":
        return RandomForestClassifier(n_estimators=30, min_samples_leaf=2, max_features="sqrt",
                                      random_state=seed, n_jobs=1)
    if name == "mlp":
        mlp = MLPClassifier(hidden_layer_sizes=(8,), alpha=1e-1, solver="lbfgs", max_iter=40, random_state=seed)
        return make_pipeline(StandardScaler(), mlp)
    raise PrivaggInputError(f"classifier={name!r} is unknown. Fix: use one of {', '.join(CLASSIFIERS)}.")


def _scores(model: Any, x: np.ndarray) -> np.ndarray:
    if hasattr(model, "decision_function"):
        return np.asarray(model.decision_function(x), dtype=float)
    proba = np.asarray(model.predict_proba(x), dtype=float)
    return proba[:, -1] if proba.shape[1] > 1 else np.zeros(len(x))


@dataclass
class _Knowledge:
    """What one target's adversary knows, and the tables the likelihood-ratio variants need."""

    model: Publication  # the adversary's model of the publication
    shape: tuple[int, int]  # (n_locations, n_hours)
    keys: np.ndarray | None = None  # flat (location, hour) columns of the target's known points
    grid: np.ndarray | None = None  # (n_keys, G) candidate exact counts per key
    logp_in: np.ndarray | None = None  # log P(count | in) on the grid
    logp_out: np.ndarray | None = None
    mean_in: np.ndarray | None = None  # mean count per key with / without the target
    mean_out: np.ndarray | None = None
    # Exact-count publications under substitution: the keys the target is not known at also differ in
    # (one more member out), with ``other_present`` pool members at each of ``other_keys``.
    other_keys: np.ndarray | None = None
    other_present: np.ndarray | None = None
    n_pool: int = 0
    draws: tuple[int, int] = (0, 0)
    delta: np.ndarray | None = None  # mean in - mean out, at the known keys or at every key
    weights: np.ndarray | None = None  # the whitened statistic's weight per key (all keys, or the known ones)


def _noise_variance(model: Publication) -> float:
    """Variance of the noise (and rounding) the model adds to each value."""
    var = 0.0
    if model.noise_kind == "laplace":
        q = np.exp(-1.0 / model.noise_scale)
        var = 2 * q / (1 - q) ** 2  # discrete Laplace
    elif model.noise_kind == "gaussian":
        var = model.noise_scale ** 2
    if model.rounding:
        var += model.rounding ** 2 / 12
    return float(var)


#: Above this many (location, hour) keys the whitened statistic uses the target's keys only (memory).
WHITEN_ALL_KEYS_UP_TO = 2500


def _population_covariance(matrix: sparse.csr_matrix, draws: tuple[int, int], model: Publication) -> np.ndarray:
    """Covariance of a group's released values over every key, from the population (Cholesky factor).

    A group's counts are a sum of draws without replacement, so their
    covariance is the population's times the number of draws (with the
    finite-population correction); the noise adds its variance to the diagonal.
    """
    n = matrix.shape[0]
    mu = np.asarray(matrix.mean(axis=0)).ravel()
    cov = np.asarray((matrix.T @ matrix).todense()) / n - np.outer(mu, mu)
    d_in, d_out = draws
    scale = 0.5 * (d_in * (n - d_in) + d_out * (n - d_out)) / max(n - 1, 1)
    sigma = scale * cov + (_noise_variance(model) + 1e-3) * np.eye(mu.size)
    return np.linalg.cholesky(sigma)


def _whitened_weights(know: _Knowledge, chol: np.ndarray) -> np.ndarray:
    """Fisher's linear discriminant: ``Sigma^-1 (mean in - mean out)``, from the population.

    Keys the same members fill hour after hour (a home at night) are
    correlated, and under substitution the substitute adds one member
    somewhere: the plain sum counts the first several times over and misses
    the second.
    """
    from scipy.linalg import cho_solve

    return cho_solve((chol, True), know.delta)


def _count_tables(know: _Knowledge, present: np.ndarray, n_pool: int, draws_in: int, draws_out: int) -> None:
    """Distribution of each known key's count in and out of the group (hypergeometric draws from the pool).

    ``present[j]`` pool members (the target excluded) are at key ``j``; an
    "in" group holds the target (1 at each known key) plus ``draws_in``
    others, an "out" group ``draws_out`` others.
    """
    tail = 1e-10
    hyp_in, hyp_out = stats.hypergeom(n_pool, present, draws_in), stats.hypergeom(n_pool, present, draws_out)
    lo = np.minimum(hyp_in.ppf(tail) + 1, hyp_out.ppf(tail)).astype(int)
    hi = np.maximum(hyp_in.isf(tail) + 1, hyp_out.isf(tail)).astype(int)
    width = int((hi - lo).max(initial=0)) + 1
    grid = lo[:, None] + np.arange(width)[None, :]
    with np.errstate(divide="ignore"):
        know.logp_in = stats.hypergeom.logpmf(grid - 1, n_pool, present[:, None], draws_in)
        know.logp_out = stats.hypergeom.logpmf(grid, n_pool, present[:, None], draws_out)
    know.grid = grid.astype(float)
    know.n_pool, know.draws = n_pool, (draws_in, draws_out)
    know.mean_in = 1.0 + draws_in * present / n_pool
    know.mean_out = draws_out * present / n_pool
    know.delta = know.mean_in - know.mean_out


def _clip_log_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a - b`` per key, clipped to +-50 so one impossible value ranks but does not swamp the sum."""
    with np.errstate(invalid="ignore"):
        d = a - b
    return np.clip(np.nan_to_num(d, nan=0.0, posinf=50.0, neginf=-50.0), -50.0, 50.0)


def _likelihood_ratio(released: np.ndarray, know: _Knowledge) -> np.ndarray:
    """Sum over the known keys of log P(released | in) - log P(released | out), counts marginalised."""
    r = released[:, know.keys]
    out = np.zeros(len(r))
    for start in range(0, len(r), 64):  # chunks bound the (rows, keys, grid) temporaries
        ll = know.model.log_likelihood(r[start:start + 64, :, None], know.grid[None, :, :])
        a = special.logsumexp(ll + know.logp_in[None], axis=2)
        b = special.logsumexp(ll + know.logp_out[None], axis=2)
        out[start:start + 64] = _clip_log_ratio(a, b).sum(axis=1)
    if know.other_keys is not None and know.other_keys.size:
        out += _other_keys_ratio(released[:, know.other_keys], know)
    return out


def _other_keys_ratio(r: np.ndarray, know: _Knowledge) -> np.ndarray:
    """Exact log ratio at the keys the target is not known at: ``draws_in`` vs ``draws_out`` others there.

    Only for publications without noise or rounding (the counts are the
    published values, or below ``k`` when suppressed), where the ratio has a
    closed form; with noise the one extra member is lost in it anyway.
    """
    (d_in, d_out), n, c = know.draws, know.n_pool, know.other_present[:, None]
    hidden = np.isnan(r)
    v = np.clip(np.nan_to_num(r, nan=0.0), 0, None).astype(np.int64)
    values = np.arange(int(v.max(initial=0)) + 1)[None, :]
    with np.errstate(divide="ignore"):  # one table per key over the values seen, then look up
        table = _clip_log_ratio(stats.hypergeom.logpmf(values, n, c, d_in), stats.hypergeom.logpmf(values, n, c, d_out))
        cols = np.arange(r.shape[1])[None, :]
        out = table[cols, v]
        if know.model.k is not None and hidden.any():
            cut = know.model.k - 1
            below = _clip_log_ratio(stats.hypergeom.logcdf(cut, n, c[:, 0], d_in),
                                    stats.hypergeom.logcdf(cut, n, c[:, 0], d_out))
            out = np.where(hidden, below[None, :], out)
    return out.sum(axis=1)


def _mean_count_ratio(released: np.ndarray, mean_in: np.ndarray, mean_out: np.ndarray,
                      model: Publication) -> np.ndarray:
    """Sum over keys of log P(released | mean count in) - log P(released | mean count out)."""
    ok = np.isfinite(mean_in) & np.isfinite(mean_out) & (np.rint(mean_in) != np.rint(mean_out))
    if not ok.any():
        return np.zeros(len(released))
    r = released[:, ok]
    a = model.log_likelihood(r, mean_in[ok][None, :])
    b = model.log_likelihood(r, mean_out[ok][None, :])
    return _clip_log_ratio(a, b).sum(axis=1)


def _statistic(name: str, know: _Knowledge) -> Callable[[np.ndarray], np.ndarray]:
    """Score function of a variant that fits nothing."""
    if name == "own keys":
        return lambda rel: np.nan_to_num(rel[:, know.keys], nan=0.0).sum(axis=1)
    if name == "own keys (suppressed as k/2)":
        return lambda rel: np.nan_to_num(rel[:, know.keys], nan=know.model.k / 2).sum(axis=1)
    if name == "whitened":
        cols = slice(None) if know.weights.size == know.shape[0] * know.shape[1] else know.keys
        return lambda rel: np.nan_to_num(rel[:, cols], nan=0.0) @ know.weights
    if name == "likelihood ratio":
        return lambda rel: _likelihood_ratio(rel, know)
    if name == "likelihood ratio (mean counts)":
        return lambda rel: _mean_count_ratio(rel[:, know.keys], know.mean_in, know.mean_out, know.model)
    raise PrivaggInputError(f"membership variant {name!r} is unknown. Fix: use some of {', '.join(VARIANTS)}.")


def _fit(name: str, know: _Knowledge, released: np.ndarray, labels: np.ndarray, feats: dict[str, np.ndarray],
         seed: int, classifier: Any = None) -> Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray]:
    """Fit a learned variant on training releases (and their features); return its score function."""
    if name == "mean difference":
        x = np.nan_to_num(released, nan=0.0)
        mu1, mu0 = x[labels].mean(axis=0), x[~labels].mean(axis=0)
        var = 0.5 * (x[labels].var(axis=0) + x[~labels].var(axis=0))
        w = (mu1 - mu0) / (var + 1e-9)
        return lambda rel, _: np.nan_to_num(rel, nan=0.0) @ w
    if name == "likelihood ratio (mean counts)":  # means learned from past releases (no trace)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # keys suppressed in every release: NaN mean
            mean_in, mean_out = np.nanmean(released[labels], axis=0), np.nanmean(released[~labels], axis=0)
        return lambda rel, _: _mean_count_ratio(rel, mean_in, mean_out, know.model)
    kind, clf = name.split("/", 1)
    model = deepcopy(classifier) if classifier is not None else _classifier(clf, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few MLP iterations do not converge: by design, for speed
        model.fit(feats[kind], labels)
    return lambda _, f: _scores(model, f[kind])


def _features(released: np.ndarray, shape: tuple[int, int], kinds: set[str]) -> dict[str, np.ndarray]:
    """The feature sets the classifiers need, each computed once per set of releases."""
    out: dict[str, np.ndarray] = {}
    cube = released.reshape((-1,) + shape)
    if kinds & {"stats", "stats+raw"}:
        out["stats"] = time_series_features(cube, "stats")
    if kinds & {"raw", "stats+raw"}:
        out["raw"] = time_series_features(cube, "raw")
    if "stats+raw" in kinds:
        out["stats+raw"] = np.concatenate([out["stats"], out["raw"]], axis=1)
    return out


def _applicable(prior: str, model: Publication) -> list[str]:
    names = []
    for name in VARIANTS:
        if prior == "past_membership" and name in _TRACE_ONLY:
            continue
        if name == "own keys (suppressed as k/2)" and model.k is None:
            continue
        if name == "likelihood ratio (mean counts)" and model.noise_kind is None:
            continue
        names.append(name)
    return names


# ----------------------------------------------------------------------------- the attack


def _groups(rng: np.random.Generator, pool: np.ndarray, n_pairs: int, m: int, neighbouring: str,
            n_users: int) -> tuple[sparse.csr_matrix, np.ndarray]:
    """The other members of paired groups, rows 0..n-1 "in" (the target is added), n..2n-1 "out".

    An "in" group is ``m - 1`` others plus the target; its "out" pair has
    the target replaced by one more subscriber (substitute) or dropped
    (add/remove).
    """
    members = pool[np.argsort(rng.random((n_pairs, pool.size)), axis=1)[:, :m]]  # m distinct per row
    in_rows = members[:, :-1]
    out_rows = members if neighbouring == "substitute" else members[:, :-1]
    rows = np.r_[np.repeat(np.arange(n_pairs), m - 1), np.repeat(np.arange(n_pairs, 2 * n_pairs), out_rows.shape[1])]
    cols = np.r_[in_rows.ravel(), out_rows.ravel()]
    matrix = sparse.csr_matrix((np.ones(cols.size), (rows, cols)), shape=(2 * n_pairs, n_users))
    labels = np.r_[np.ones(n_pairs, dtype=bool), np.zeros(n_pairs, dtype=bool)]
    return matrix, labels


def _publish(model: Publication, aggregates: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    out = model(aggregates) if rng is None else model.simulate(aggregates, rng)
    return np.asarray(out, dtype=float)


def _knowledge_text(prior: str, known_fraction: float, n_train: int, past: bool) -> str:
    model = "the publication model (mechanism, noise scale, suppression threshold, rounding)"
    if prior == "full":
        return (f"the target's full hourly trace over the window, the traces of the population groups are drawn "
                f"from, and {model}")
    if prior == "partial":
        return (f"{known_fraction:.0%} of the target's (location, hour) points, the traces of the population groups "
                f"are drawn from, and {model}")
    period = "an earlier period" if past else "an earlier period like the attacked one (modelled by the same window)"
    return (f"not the target's trace: {n_train} releases of groups from the same population over {period}, each "
            f"labelled with whether the target was in it, and {model}")


def _play(presence, past_presence, anonymiser, attacker, names, custom, target_rows, pool_rows, rng, m, n_train,
          n_test, prior, known_fraction, neighbouring, train_on_releases):
    """Run every variant against every target: training AUCs and held-out (scores, labels), by variant."""
    substitute = neighbouring == "substitute"
    shape = (presence.n_locations, presence.n_hours)
    past = past_presence is not None
    train_source = past_presence.matrix if past else presence.matrix
    train_scored: dict[str, list[float]] = {n: [] for n in names}
    test_scored: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {n: [] for n in names}
    pool_counts = np.asarray(presence.matrix[pool_rows].sum(axis=0)).ravel()
    pool_set = set(pool_rows.tolist())
    all_keys, chol_all = presence.matrix.shape[1] <= WHITEN_ALL_KEYS_UP_TO, None
    for target in target_rows:
        pool = pool_rows[pool_rows != target]
        true_row = presence.matrix[target].toarray().ravel()
        know = _Knowledge(attacker, shape)
        if prior != "past_membership":
            keys = np.flatnonzero(true_row)
            if prior == "partial" and keys.size:
                keys = np.sort(rng.choice(keys, max(1, int(round(known_fraction * keys.size))), replace=False))
            know.keys = keys
            adv_row = np.zeros_like(true_row)
            adv_row[keys] = 1.0
            present = np.asarray(presence.matrix[pool][:, keys].sum(axis=0)).ravel()
            if any(n in ("whitened", "likelihood ratio", "likelihood ratio (mean counts)") for n in names):
                _count_tables(know, present, pool.size, m - 1, m if substitute else m - 1)
                if "whitened" in names:
                    draws = (m - 1, m if substitute else m - 1)
                    if all_keys:
                        if chol_all is None:  # the same for every target, up to one member of the pool
                            chol_all = _population_covariance(presence.matrix[pool_rows], draws, attacker)
                        mu = pool_counts / pool_rows.size
                        know.delta = adv_row + (draws[0] - draws[1]) * mu
                        know.weights = _whitened_weights(know, chol_all)
                    else:
                        know.weights = _whitened_weights(
                            know, _population_covariance(presence.matrix[pool][:, keys], draws, attacker))
                if substitute and attacker.noise_kind is None and attacker.rounding is None:
                    others = np.setdiff1d(np.arange(true_row.size), keys)
                    counts = pool_counts[others] - (true_row[others] if target in pool_set else 0.0)
                    keep = counts > 0  # nobody there: 0 in and out
                    know.other_keys, know.other_present = others[keep], counts[keep]
            train_row = adv_row
        else:
            train_row = (past_presence.matrix[target].toarray().ravel() if past else true_row)
        g_train, y_train = _groups(rng, pool, n_train // 2, m, neighbouring, presence.n_users)
        g_test, y_test = _groups(rng, pool, n_test // 2, m, neighbouring, presence.n_users)
        agg_train = np.asarray((g_train @ train_source).todense()) + y_train[:, None] * train_row[None, :]
        agg_test = np.asarray((g_test @ presence.matrix).todense()) + y_test[:, None] * true_row[None, :]
        if prior == "past_membership":
            rel_train = _publish(anonymiser, agg_train)  # earlier releases the adversary saw: published
        elif train_on_releases:
            rel_train = _publish(attacker, agg_train, rng)
        else:
            rel_train = agg_train
        rel_test = _publish(anonymiser, agg_test)
        fold = np.r_[np.arange(n_train // 2), np.arange(n_train // 2)] % 2  # pairs share members: same fold
        kinds = {n.split("/", 1)[0] for n in names if "/" in n}
        f_train, f_test = _features(rel_train, shape, kinds), _features(rel_test, shape, kinds)
        for name in names:
            learned = prior == "past_membership" or name not in _STATISTICS
            if not learned:
                score = _statistic(name, know)
                train_scored[name].append(_auc(score(rel_train), y_train))
                test_scored[name].append((score(rel_test), y_test))
                continue
            fold_aucs = []
            for f in (0, 1):
                fit, val = fold != f, fold == f
                score = _fit(name, know, rel_train[fit], y_train[fit], {k: v[fit] for k, v in f_train.items()},
                             int(rng.integers(2**31)), custom.get(name) if custom else None)
                fold_aucs.append(_auc(score(rel_train[val], {k: v[val] for k, v in f_train.items()}), y_train[val]))
            train_scored[name].append(float(np.mean(fold_aucs)))
            score = _fit(name, know, rel_train, y_train, f_train, int(rng.integers(2**31)),
                         custom.get(name) if custom else None)
            test_scored[name].append((score(rel_test, f_test), y_test))

    return train_scored, test_scored


def membership_inference(
    presence: Presence,
    *,
    group_size: int,
    anonymiser: Publication | None = None,
    targets: Sequence[int] | int = 5,
    population: Sequence[int] | None = None,
    n_train: int = 400,
    n_test: int = 200,
    prior: str = "full",
    known_fraction: float = 0.5,
    past_presence: Presence | None = None,
    variants: Sequence[str] | None = None,
    attacker_model: Publication | None = None,
    features: str | None = None,
    classifier: Any = None,
    train_on_releases: bool = True,
    neighbouring: str = "substitute",
    dp_epsilon: float | None = None,
    dp_delta: float | None = None,
    fpr: float | Sequence[float] = (0.01, 0.001),
    bound_alpha: float = 0.05,
    n_bootstrap: int = 500,
    seed: int | None = None,
) -> AttackResult:
    """Knock-Knock membership inference against released group footfall, at its strongest variant.

    Parameters
    ----------
    presence
        Hourly presence of the population (:func:`hourly_presence`).
    group_size
        ``m``, subscribers per aggregated group.
    anonymiser
        The publication model of the attacked release
        (:class:`~privagg.anonymisers.models.Exact` by default,
        ``Suppressed``, ``Noisy``; e.g. from ``Anonymiser.publication_model``).
        Test releases are published by it (OpenDP noise).
    targets
        ``user_id`` values of the targets, or how many to draw at random.
    population
        ``user_id`` values groups are drawn from (default: all rows).
    n_train, n_test
        Groups per target for training and for testing, half with the target.
    prior
        The adversary's background knowledge: ``"full"`` (the target's
        trace), ``"partial"`` (``known_fraction`` of its points) or
        ``"past_membership"`` (labelled earlier releases, no trace); see the
        module docstring.
    known_fraction
        Share of the target's points known under ``prior="partial"``.
    past_presence
        Under ``prior="past_membership"``: the presence of the earlier
        period (same subscribers and locations). Default: the attacked window.
    variants
        Names from :data:`VARIANTS` to run (default: every one that applies
        to the prior and the publication; beyond :data:`MLP_MAX_FEATURES`
        keys, without ``raw/mlp`` and ``stats+raw/mlp``).
    attacker_model
        The adversary's belief about the publication, for its simulations
        and likelihoods (default: ``anonymiser``, i.e. the adversary knows
        the mechanism). A wrong one models a misinformed adversary.
    features, classifier
        The former interface: given, only the variant ``"<features>/<classifier>"``
        runs (``features`` default ``"stats"``, ``classifier`` default
        ``"logistic"``), or it runs beside ``variants`` when those are given.
        ``classifier`` may also be a scikit-learn-style object with ``fit``
        and ``decision_function`` or ``predict_proba`` (the variant is then
        named after its class).
    train_on_releases
        Learned variants train on simulated releases (True) or on exact
        aggregates (False). Under ``"past_membership"`` they always train on
        the earlier releases.
    neighbouring
        ``"substitute"`` (paper; out-group has another subscriber in the
        target's place) or ``"add_remove"`` (out-group lacks the target).
    dp_epsilon, dp_delta
        Privacy loss per subscriber over the whole release, for the DP bound.
        Default: the publication model's ``loss``.
    fpr
        False-positive rate(s) at which the TPR is reported (1% and 0.1%):
        per target, the ROC point with the largest TPR at most that FPR,
        averaged over targets. With ``n_test / 2`` out-groups per target, a
        rate below ``2 / n_test`` is measured at zero false positives.
    bound_alpha
        Probability that a release honouring its DP guarantee is reported
        above the bound (family-wise over targets; :func:`_roc_exceeds_bound`).
    n_bootstrap
        Bootstrap resamples of targets and test groups for the intervals.
    seed
        Seeds group sampling, target choice, the adversary's simulations, the
        classifiers and the bootstrap. The noise of published (test) releases
        comes from OpenDP and is not seeded.

    Returns
    -------
    AttackResult
        ``risk`` = mean held-out AUC over targets of the variant with the
        highest training AUC (``variant``), with a bootstrap 95% interval
        over targets and their test groups; ``variants`` = every variant's
        held-out AUC; ``baseline`` = 0.5. ``metrics`` hold the TPR at each
        ``fpr`` with intervals, the chosen variant's training AUC, the
        per-target AUCs and, for DP, the bound on AUC and on TPR at each
        ``fpr`` and whether every ROC stays under the bound.
    """
    anonymiser = Exact() if anonymiser is None else anonymiser
    if not isinstance(anonymiser, Publication):
        raise PrivaggInputError(
            f"anonymiser={anonymiser!r} is not a publication model. Fix: pass a privagg.anonymisers.models "
            "Publication (Exact(), Suppressed(k=...), Noisy(...)), e.g. from Anonymiser.publication_model(l0=24)."
        )
    attacker = anonymiser if attacker_model is None else attacker_model
    if prior not in PRIORS:
        raise PrivaggInputError(f"prior={prior!r} is unknown. Fix: use one of {', '.join(map(repr, PRIORS))}.")
    if neighbouring not in ("substitute", "add_remove"):
        raise PrivaggInputError(
            f"neighbouring={neighbouring!r} is unknown. Fix: use 'substitute' or 'add_remove'."
        )
    for name, value, low in (("group_size", group_size, 2), ("n_train", n_train, 8), ("n_test", n_test, 4)):
        if int(value) != value or value < low:
            raise PrivaggInputError(f"{name}={value!r} is not a whole number >= {low}. Fix: pass {name} of at least {low}.")
    if not 0 < known_fraction <= 1:
        raise PrivaggInputError(f"known_fraction={known_fraction!r} must lie in (0, 1]. Fix: e.g. 0.5.")
    fprs = (float(fpr),) if np.isscalar(fpr) else tuple(float(f) for f in fpr)
    if past_presence is not None and (past_presence.matrix.shape != presence.matrix.shape
                                      or not np.array_equal(past_presence.user_ids, presence.user_ids)):
        raise PrivaggInputError(
            "past_presence does not have presence's subscribers and (location, hour) columns. Fix: build both with "
            "hourly_presence(..., locations=..., user_ids=...) and the same n_hours."
        )

    # Which variants run.
    custom = None
    names = _applicable(prior, attacker) if variants is None else list(dict.fromkeys(variants))
    if variants is None and presence.matrix.shape[1] > MLP_MAX_FEATURES:
        names = [n for n in names if n not in ("raw/mlp", "stats+raw/mlp")]
    if features is not None or classifier is not None:
        clf_name = classifier if isinstance(classifier, str) or classifier is None else type(classifier).__name__
        single = f"{features or 'stats'}/{clf_name or 'logistic'}"
        names = [single] if variants is None else names + [single]
        custom = None if isinstance(classifier, str) or classifier is None else {single: classifier}
    for name in names:
        f, _, c = name.partition("/")
        known = name in VARIANTS or (custom is not None and f in FEATURE_SETS)
        if not known:
            raise PrivaggInputError(
                f"variant {name!r} is unknown. Fix: use names from VARIANTS: {', '.join(VARIANTS)}.")
        if name not in _applicable(prior, attacker) and name in VARIANTS:
            raise PrivaggInputError(
                f"variant {name!r} does not apply to prior={prior!r} and a {attacker.name} publication. "
                f"Fix: use some of {', '.join(_applicable(prior, attacker))}."
            )

    rng = np.random.default_rng(seed)
    index = pd.Index(presence.user_ids)
    pool_rows = np.arange(presence.n_users) if population is None else index.get_indexer(np.asarray(population))
    if (pool_rows < 0).any():
        raise PrivaggInputError("population holds user_id values absent from presence. Fix: use presence.user_ids.")
    if isinstance(targets, (int, np.integer)):
        active = pool_rows[np.asarray(presence.matrix[pool_rows].sum(axis=1)).ravel() > 0]
        target_rows = rng.choice(active, size=min(int(targets), active.size), replace=False)
    else:
        target_rows = index.get_indexer(np.asarray(targets))
        if (target_rows < 0).any():
            raise PrivaggInputError("targets hold user_id values absent from presence. Fix: use presence.user_ids.")
    if pool_rows.size - 1 < group_size:
        raise PrivaggInputError(
            f"group_size={group_size} needs a population of more than {group_size} subscribers; "
            f"there are {pool_rows.size}. Fix: use smaller groups or a larger population."
        )
    loss = getattr(anonymiser, "loss", None)
    if dp_epsilon is None and loss is not None:
        dp_epsilon, dp_delta = float(loss.epsilon), float(loss.delta) if dp_delta is None else dp_delta
    dp_delta = 0.0 if dp_delta is None else float(dp_delta)
    substitute = neighbouring == "substitute"
    bound_epsilon = None if dp_epsilon is None else dp_epsilon * (2 if substitute else 1)
    bound_delta = min(1.0, dp_delta * (1 + np.exp(dp_epsilon)) if (dp_epsilon is not None and substitute) else dp_delta)

    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # many small fits: threaded BLAS only oversubscribes the cores
        train_scored, test_scored = _play(
            presence, past_presence, anonymiser, attacker, names, custom, target_rows, pool_rows, rng,
            int(group_size), n_train, n_test, prior, known_fraction, neighbouring, train_on_releases)
    m = int(group_size)
    past = past_presence is not None
    training_risk = {n: float(np.mean(train_scored[n])) for n in names}
    held_out = {n: float(np.mean([_auc(s, y) for s, y in test_scored[n]])) for n in names}
    chosen = strongest_variant(training_risk)
    scored = test_scored[chosen]
    aucs = [_auc(s, y) for s, y in scored]
    auc = float(np.mean(aucs))
    intervals = _bootstrap(scored, rng, n_bootstrap, 0.95, fprs)
    ci_low, ci_high = intervals["auc"]
    metrics: dict[str, Any] = {"auc": auc}
    tpr = {}
    for f in fprs:
        key = f"tpr_at_{f:g}_fpr"
        tpr[f] = float(np.mean([_tpr_at_fpr(np.asarray(s)[y], np.asarray(s)[~y], f) for s, y in scored]))
        metrics[key] = tpr[f]
        metrics[f"{key}_ci_low"], metrics[f"{key}_ci_high"] = intervals[key]
    metrics.update({
        "training_auc": training_risk[chosen],
        "group_size": m,
        "n_targets": int(len(target_rows)),
        "auc_per_target": [float(a) for a in aucs],
    })
    name = anonymiser.name
    f0 = fprs[0]
    interpretation = (
        f"Given {'part of ' if prior == 'partial' else ''}a target's "
        f"{'past group memberships' if prior == 'past_membership' else 'trace'}, the strongest attack "
        f"({chosen}) tells whether they are in a group of {m} from its {name} footfall with AUC {auc:.2f} "
        f"(0.5 = guessing); at {f0:.1%} false positives it catches {tpr[f0]:.0%} of members."
    )
    if bound_epsilon is not None:
        excess = [_roc_exceeds_bound(s, y, bound_epsilon, bound_delta, bound_alpha / len(scored)) for s, y in scored]
        metrics.update({
            "dp_epsilon": float(dp_epsilon),
            "dp_delta": float(dp_delta),
            "bound_epsilon": float(bound_epsilon),
            "bound_delta": float(bound_delta),
            "dp_auc_bound": dp_auc_bound(bound_epsilon, bound_delta),
            "roc_max_excess_over_bound": float(max(excess)),
            "within_dp_bound": bool(max(excess) <= 0),
        })
        for f in fprs:
            metrics[f"dp_tpr_bound_at_{f:g}_fpr"] = float(dp_tpr_bound(f, bound_epsilon, bound_delta))
        interpretation += (
            f" The DP guarantee (epsilon {bound_epsilon:g} for this game) caps AUC at "
            f"{metrics['dp_auc_bound']:.2f} and TPR at {f0:.1%} false positives at "
            f"{metrics[f'dp_tpr_bound_at_{f0:g}_fpr']:.1%}; the ROC is "
            f"{'within' if max(excess) <= 0 else 'ABOVE'} the bound."
        )
    return AttackResult(
        attack="membership_inference",
        target=f"{name} hourly footfall of groups of {m}",
        risk=auc,
        ci_low=ci_low,
        ci_high=ci_high,
        baseline=0.5,
        n_trials=int(len(target_rows) * (n_test // 2) * 2),
        background_knowledge=_knowledge_text(prior, known_fraction, n_train, past),
        metrics=metrics,
        interpretation=interpretation,
        variant=chosen,
        variants=held_out,
    )
