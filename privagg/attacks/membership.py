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

The variants (all run; :data:`VARIANTS`) are described and implemented in
:mod:`privagg.attacks.membership_variants`; the ROC, AUC, bootstrap
intervals and DP bounds in :mod:`privagg.attacks.roc`; the presence matrix
(:func:`hourly_presence`) in :mod:`privagg.attacks.presence`. This module
plays the game: it draws the groups, publishes them, scores every variant
and reports the strongest.

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
:func:`~privagg.attacks.roc.dp_tpr_bound` at that epsilon.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from privagg.anonymisers.models import Exact, Publication
from privagg.attacks.membership_variants import (  # noqa: F401  (re-exported: importable from here as before)
    CLASSIFIERS,
    FEATURE_SETS,
    FEATURES,
    MLP_MAX_FEATURES,
    VARIANTS,
    WHITEN_ALL_KEYS_UP_TO,
    _STATISTICS,
    _applicable,
    _count_tables,
    _features,
    _fit,
    _Knowledge,
    _population_covariance,
    _statistic,
    _whitened_weights,
    time_series_features,
)
from privagg.attacks.presence import Presence, hourly_presence
from privagg.attacks.result import AttackResult, strongest_variant
from privagg.attacks.roc import (  # noqa: F401  (re-exported: importable from here as before)
    _auc,
    _bootstrap,
    _roc_exceeds_bound,
    _tpr_at,
    _tpr_at_fpr,
    auc_interval,
    dp_auc_bound,
    dp_tpr_bound,
    roc_curve,
)
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

#: Adversary priors (background knowledge), see the module docstring.
PRIORS = ("full", "partial", "past_membership")

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
