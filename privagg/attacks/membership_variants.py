"""The membership-inference variants: what each scores, and how.

Every variant turns the releases of a target's groups into one score per
release (higher: more likely a member). Used by
:func:`privagg.attacks.membership.membership_inference`, which runs them
all and picks the strongest on training groups. The variants
(:data:`VARIANTS`):

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

:func:`time_series_features` computes the classifiers' features;
:func:`_applicable` says which variants apply to a prior and a publication.
"""

from __future__ import annotations

import warnings
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from scipy import sparse, special, stats

from privagg.anonymisers.models import Publication
from privagg.errors import PrivaggInputError

__all__ = [
    "CLASSIFIERS",
    "FEATURES",
    "FEATURE_SETS",
    "MLP_MAX_FEATURES",
    "VARIANTS",
    "WHITEN_ALL_KEYS_UP_TO",
    "time_series_features",
]

# ----------------------------------------------------------------------------- features

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


# ----------------------------------------------------------------------------- the variants

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
