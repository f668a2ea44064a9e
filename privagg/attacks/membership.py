"""Membership inference on aggregate location time series.

Re-implements Pyrgelis, Troncoso and De Cristofaro, "Knock Knock, Who's
There? Membership Inference on Aggregate Location Data" (NDSS 2018).

The game. A release is the footfall of a group of ``m`` subscribers: for
every location and hour, how many of them were there. The adversary knows
one target's trace and a reference population the group is drawn from, and
wants to tell whether the target is in the group. They simulate the release
themselves: many groups with the target and as many without, aggregated and
(with ``train_on_releases=True``) passed through the same anonymiser; they
summarise each location's time series by statistics (mean, standard
deviation, minimum, maximum, median; the paper's features) and train a
classifier (logistic regression here) to separate "in" from "out". On fresh
groups the classifier's scores give the ROC curve: AUC (0.5 = guessing) and
the true-positive rate at 1% false positives.

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
partition, the contribution bounds behind :class:`DPAggregate`'s noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, sparse
from scipy.special import expit

from privagg.attacks.result import AttackResult
from privagg.errors import PrivaggInputError

__all__ = [
    "DPAggregate",
    "Presence",
    "RawAggregate",
    "SuppressedAggregate",
    "aggregate_publication",
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
        raise PrivaggInputError(f"n_hours={n_hours!r} must be a positive integer.")
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


# ----------------------------------------------------------------------------- anonymisers of aggregates


@dataclass(frozen=True)
class RawAggregate:
    """Publish the exact footfall."""

    name = "raw"
    epsilon = None

    def __call__(self, aggregate: np.ndarray) -> np.ndarray:
        return np.asarray(aggregate, dtype=float)


@dataclass(frozen=True)
class SuppressedAggregate:
    """Publish counts of at least ``k``; smaller ones (zeros included) are suppressed (NaN)."""

    k: int

    @property
    def name(self) -> str:
        return f"suppression(k={self.k})"

    epsilon = None

    def __call__(self, aggregate: np.ndarray) -> np.ndarray:
        from privagg.anonymisers.suppression import suppress_table

        return suppress_table(aggregate, self.k, None)


@dataclass(frozen=True)
class DPAggregate:
    """Discrete Laplace noise from OpenDP, at ``epsilon_per_day`` per subscriber-day.

    Each subscriber contributes to at most ``max_partitions_per_day``
    (location, hour) cells per day, 1 to each (:func:`hourly_presence`
    guarantees 24), so the daily L1 sensitivity is that number and each value
    gets noise of scale ``max_partitions_per_day / epsilon_per_day``. A
    release of ``d`` days costs ``d * epsilon_per_day`` per subscriber.
    """

    epsilon_per_day: float
    max_partitions_per_day: int = 24

    @property
    def name(self) -> str:
        return f"dp(epsilon={self.epsilon_per_day:g}/subscriber-day)"

    @property
    def noise_scale(self) -> float:
        return self.max_partitions_per_day / self.epsilon_per_day

    def epsilon_total(self, n_hours: int) -> float:
        """Epsilon per subscriber over a release of ``n_hours`` hours (whole days)."""
        return self.epsilon_per_day * int(np.ceil(n_hours / 24))

    def __call__(self, aggregate: np.ndarray) -> np.ndarray:
        from privagg.dp.mechanisms import laplace

        counts = np.rint(np.asarray(aggregate)).astype(np.int64)
        noisy = laplace(self.epsilon_per_day, self.max_partitions_per_day).sample(counts.ravel())
        return noisy.reshape(counts.shape).astype(float)

    def simulate(self, aggregate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The adversary's own simulation of releases, for training: same distribution, numpy noise.

        Nothing simulated is ever published, so it may use (seeded) numpy;
        published values always come from :meth:`__call__` (OpenDP).
        """
        p = -np.expm1(-1.0 / self.noise_scale)  # discrete Laplace = difference of two geometrics
        shape = np.shape(aggregate)
        return np.rint(aggregate) + (rng.geometric(p, shape) - rng.geometric(p, shape))


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


class _Logistic:
    """L2-regularised logistic regression on standardised features (L-BFGS)."""

    def __init__(self, c: float = 1.0) -> None:
        self.c = c

    def fit(self, x: np.ndarray, y: np.ndarray) -> _Logistic:
        self.mu = x.mean(axis=0)
        self.sd = x.std(axis=0)
        self.sd[self.sd == 0] = 1.0
        z = (x - self.mu) / self.sd
        s = np.where(np.asarray(y) > 0, 1.0, -1.0)
        c = self.c

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            margin = s * (z @ w[:-1] + w[-1])
            g = -s * expit(-margin)
            value = np.logaddexp(0.0, -margin).sum() + 0.5 / c * w[:-1] @ w[:-1]
            return value, np.append(z.T @ g + w[:-1] / c, g.sum())

        w0 = np.zeros(z.shape[1] + 1)
        self.w = optimize.minimize(loss, w0, jac=True, method="L-BFGS-B", options={"maxiter": 500}).x
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mu) / self.sd) @ self.w[:-1] + self.w[-1]


def _scores(classifier: Any, x: np.ndarray) -> np.ndarray:
    if hasattr(classifier, "decision_function"):
        return np.asarray(classifier.decision_function(x), dtype=float)
    return np.asarray(classifier.predict_proba(x), dtype=float)[:, 1]


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


def _roc_exceeds_bound(scores, labels, epsilon, delta, alpha=0.05) -> float:
    """Largest amount by which the ROC exceeds the DP bound beyond sampling error (<= 0: within it).

    At each threshold, the one-sided Clopper-Pearson lower bound on TPR is
    compared with the bound evaluated at the upper bound on FPR.
    """
    from privagg.audit.lower_bound import one_sided_clopper_pearson as one_sided

    labels = np.asarray(labels).astype(bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    fpr, tpr = roc_curve(scores, labels)
    tpr_lo, _ = one_sided(np.rint(tpr * n1), n1, alpha / 2)
    _, fpr_hi = one_sided(np.rint(fpr * n0), n0, alpha / 2)
    return float(np.max(tpr_lo - dp_tpr_bound(fpr_hi, epsilon, delta)))


# ----------------------------------------------------------------------------- the attack


def _groups(rng, pool: np.ndarray, target_row: int, n_pairs: int, m: int, neighbouring: str, n_users: int):
    """Paired in/out membership matrices: rows 0..n-1 "in", n..2n-1 "out"."""
    others = np.argsort(rng.random((n_pairs, pool.size)), axis=1)[:, :m]  # m distinct per row
    members = pool[others]
    in_rows = members.copy()
    in_rows[:, -1] = target_row  # m-1 others + the target
    rows_in = np.repeat(np.arange(n_pairs), m)
    if neighbouring == "substitute":
        out_rows, size_out = members, m  # the target replaced by another subscriber
    else:
        out_rows, size_out = members[:, :-1], m - 1  # the same group without the target
    rows_out = np.repeat(np.arange(n_pairs, 2 * n_pairs), size_out)
    cols = np.concatenate([in_rows.ravel(), out_rows.ravel()])
    rows = np.concatenate([rows_in, rows_out])
    matrix = sparse.csr_matrix((np.ones(cols.size), (rows, cols)), shape=(2 * n_pairs, n_users))
    labels = np.r_[np.ones(n_pairs, dtype=bool), np.zeros(n_pairs, dtype=bool)]
    return matrix, labels


def aggregate_publication(method: str, params: Mapping[str, Any]) -> RawAggregate | SuppressedAggregate | DPAggregate | None:
    """The attack's model of a release method, or None when it has none.

    ``raw``; ``suppression`` (``k``, default 10); ``coarsening`` (raw, or
    suppressed when it has ``k``: the coarser level is the caller's choice
    of locations); ``dp`` with ``epsilon`` per subscriber-day and
    ``max_partitions`` per day (default 24).
    """
    if method == "raw":
        return RawAggregate()
    if method == "suppression":
        return SuppressedAggregate(int(params.get("k") or 10))
    if method == "coarsening":
        return SuppressedAggregate(int(params["k"])) if params.get("k") else RawAggregate()
    if method == "dp" and params.get("epsilon") is not None:
        return DPAggregate(float(params["epsilon"]), int(params.get("max_partitions") or 24))
    return None


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
        Per target: the classifier's scores on the test groups and their labels (True = member).
    rng
        Generator for the resampling.
    """
    boot = np.empty(n_bootstrap)
    n = len(scored)
    for b in range(n_bootstrap):
        vals = []
        for t in rng.integers(0, n, n):
            scores, labels = scored[t]
            pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
            idx = np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)]
            vals.append(_auc(scores[idx], labels[idx]))
        boot[b] = np.mean(vals)
    alpha = 1 - level
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def membership_inference(
    presence: Presence,
    *,
    group_size: int,
    anonymiser: Callable[[np.ndarray], np.ndarray] | None = None,
    targets: Sequence[int] | int = 5,
    population: Sequence[int] | None = None,
    n_train: int = 400,
    n_test: int = 200,
    features: str = "stats",
    classifier: Any = "logistic",
    train_on_releases: bool = True,
    neighbouring: str = "substitute",
    dp_epsilon: float | None = None,
    dp_delta: float = 0.0,
    fpr: float = 0.01,
    n_bootstrap: int = 500,
    seed: int | None = None,
) -> AttackResult:
    """Knock-Knock membership inference against released group footfall.

    Parameters
    ----------
    presence
        Hourly presence of the population (:func:`hourly_presence`).
    group_size
        ``m``, subscribers per aggregated group.
    anonymiser
        Callable mapping aggregates ``(n, n_locations, n_hours)`` to released
        ones (NaN = suppressed): :class:`RawAggregate` (default),
        :class:`SuppressedAggregate`, :class:`DPAggregate`, or any function.
        If it has ``simulate(aggregates, rng)``, the adversary's training
        releases come from that (same distribution, cheaper, seeded); test
        releases always come from the anonymiser itself.
    targets
        ``user_id`` values of the targets, or how many to draw at random.
    population
        ``user_id`` values groups are drawn from (default: all rows).
    n_train, n_test
        Groups per target for training and for testing, half with the target.
    features
        ``"stats"`` (the paper's per-location statistics), ``"raw"`` or ``"stats+raw"``.
    classifier
        ``"logistic"`` (built in) or any object with ``fit`` and
        ``decision_function`` or ``predict_proba`` (e.g. a scikit-learn model).
    train_on_releases
        Train on releases of the same anonymiser (True), or on raw aggregates.
    neighbouring
        ``"substitute"`` (paper; out-group has another subscriber in the
        target's place) or ``"add_remove"`` (out-group lacks the target).
    dp_epsilon, dp_delta
        Privacy loss per subscriber over the whole release, for the DP bound
        check. Taken from the anonymiser's ``epsilon_total`` if it has one.
    fpr
        False-positive rate at which the TPR is reported (1%).
    n_bootstrap
        Bootstrap resamples of the test groups for the AUC interval.
    seed
        Seeds group sampling, target choice and the bootstrap. The noise of
        DP releases comes from OpenDP and is not seeded.

    Returns
    -------
    AttackResult
        ``risk`` = mean AUC over targets with a bootstrap 95% interval
        (:func:`auc_interval`: over targets and their test groups),
        ``baseline`` = 0.5; ``metrics`` hold the TPR at ``fpr``, the per-target
        AUCs and, for DP, the bound and whether the ROC stays under it.
    """
    anonymiser = anonymiser or RawAggregate()
    if neighbouring not in ("substitute", "add_remove"):
        raise PrivaggInputError(
            f"neighbouring={neighbouring!r} is unknown. Fix: use 'substitute' or 'add_remove'."
        )
    for name, value, low in (("group_size", group_size, 2), ("n_train", n_train, 4), ("n_test", n_test, 4)):
        if int(value) != value or value < low:
            raise PrivaggInputError(f"{name}={value!r} must be an integer >= {low}.")
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
    if dp_epsilon is None and hasattr(anonymiser, "epsilon_total"):
        dp_epsilon = anonymiser.epsilon_total(presence.n_hours)
    bound_epsilon = None if dp_epsilon is None else dp_epsilon * (2 if neighbouring == "substitute" else 1)
    bound_delta = dp_delta * (1 + np.exp(dp_epsilon)) if (dp_epsilon is not None and neighbouring == "substitute") else dp_delta

    aucs, tprs, excess, all_scores = [], [], [], []
    for target in target_rows:
        pool = pool_rows[pool_rows != target]
        g_train, y_train = _groups(rng, pool, target, n_train // 2, group_size, neighbouring, presence.n_users)
        g_test, y_test = _groups(rng, pool, target, n_test // 2, group_size, neighbouring, presence.n_users)
        agg_train = presence.aggregate(g_train)
        if not train_on_releases:
            released_train = agg_train
        elif hasattr(anonymiser, "simulate"):
            released_train = anonymiser.simulate(agg_train, rng)
        else:
            released_train = anonymiser(agg_train)
        released_test = anonymiser(presence.aggregate(g_test))
        x_train = time_series_features(released_train, features)
        x_test = time_series_features(released_test, features)
        if classifier == "logistic":
            model = _Logistic()
        else:
            from copy import deepcopy

            model = deepcopy(classifier)
        model.fit(x_train, y_train)
        scores = _scores(model, x_test)
        all_scores.append((scores, y_test))
        aucs.append(_auc(scores, y_test))
        f, t = roc_curve(scores, y_test)
        tprs.append(_tpr_at(fpr, f, t))
        if bound_epsilon is not None:
            excess.append(_roc_exceeds_bound(scores, y_test, bound_epsilon, bound_delta))

    auc = float(np.mean(aucs))
    ci_low, ci_high = auc_interval(all_scores, rng, n_bootstrap)
    metrics: dict[str, Any] = {
        "auc": auc,
        f"tpr_at_{fpr:g}_fpr": float(np.mean(tprs)),
        "group_size": int(group_size),
        "n_targets": int(len(target_rows)),
        "auc_per_target": [float(a) for a in aucs],
    }
    name = getattr(anonymiser, "name", getattr(anonymiser, "__name__", "anonymiser"))
    interpretation = (
        f"Given a target's trace, the adversary tells whether they are in a group of {group_size} from its "
        f"{name} footfall with AUC {auc:.2f} (0.5 = guessing); at {fpr:.0%} false positives they catch "
        f"{np.mean(tprs):.0%} of members."
    )
    if bound_epsilon is not None:
        metrics.update({
            "dp_epsilon": float(dp_epsilon),
            "bound_epsilon": float(bound_epsilon),
            "dp_auc_bound": dp_auc_bound(bound_epsilon, min(bound_delta, 1.0)),
            f"dp_tpr_bound_at_{fpr:g}_fpr": float(dp_tpr_bound(fpr, bound_epsilon, min(bound_delta, 1.0))),
            "roc_max_excess_over_bound": float(max(excess)),
            "within_dp_bound": bool(max(excess) <= 0),
        })
        interpretation += (
            f" The DP guarantee (epsilon {bound_epsilon:g} for this game) caps AUC at "
            f"{metrics['dp_auc_bound']:.2f}; the ROC is {'within' if max(excess) <= 0 else 'ABOVE'} the bound."
        )
    return AttackResult(
        attack="membership_inference",
        target=f"{name} hourly footfall of groups of {group_size}",
        risk=auc,
        ci_low=ci_low,
        ci_high=ci_high,
        baseline=0.5,
        n_trials=int(len(target_rows) * (n_test // 2) * 2),
        background_knowledge=(
            "the target's hourly trace, the population groups are drawn from, and the anonymiser "
            f"({'trained on its releases' if train_on_releases else 'trained on raw aggregates'})"
        ),
        metrics=metrics,
        interpretation=interpretation,
    )
