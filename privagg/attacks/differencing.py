"""Differencing attack: two overlapping releases that differ by one subscriber.

The oldest attack on aggregate statistics (Denning, Denning and Schwartz
1979; Dinur and Nissim 2003 generalise it). Two published tables whose
populations differ by exactly one person (like-for-like periods before
and after the person joins; a district and the same district without one
cell; a segment with and without one tag) reveal that person's
contribution by subtraction. Small-count suppression does not prevent it
once the counts are above the threshold; differential privacy bounds it.

The game, over ``n_trials`` independent trials:

1. Draw a target subscriber at random, and a key (e.g. a cell and hour)
   at which the target contributes to the exact aggregate.
2. The *reference* release is computed on the World without the target
   (the overlapping release that excludes them).
3. Flip a fair coin ``b``. The *test* release is computed on the World
   with the target (``b = 1``) or without (``b = 0``), with fresh
   randomness.
4. The adversary, knowing the target contributes at the key if present,
   guesses ``b = 1`` when the test value exceeds the reference value by at
   least half the target's contribution. A suppressed (NaN) test value
   with a published reference says "absent"; a published test value with
   a suppressed reference says "present" (the threshold was crossed); two
   suppressed values leave a coin flip.

Two adversaries decide from the same pair of values:

* ``"difference rule"`` (step 4 above);
* ``"likelihood ratio"``: the optimal test for the mechanism. It takes the
  anonymiser's model of its publications
  (:meth:`~privagg.anonymisers.base.Anonymiser.publication_model`: the known
  noise, suppression threshold, rounding) and compares
  ``P(reference, test | b = 1)`` with ``P(reference, test | b = 0)``, the
  unknown count without the target summed out under a flat prior on the
  counts >= 0. Where the difference rule flips a coin (both values
  suppressed) it still decides: a target who would have pushed the count to
  ``k`` would have been seen, so two hidden values favour "absent".

Both run on training games and on as many held-out games; the stronger on
training games is reported with its held-out success (``variant``), and
both held-out figures are in ``variants``.

The success rate is reported with a Wilson interval; the random-guess
baseline is 0.5. For a release that is ``(epsilon, delta)``-DP per
subscriber over its window, no adversary can exceed
``(e^epsilon + delta) / (1 + e^epsilon)`` (the test release alone decides,
the reference being independent of ``b``); that bound is reported as
``metrics['dp_bound']`` (for a release per subscriber-day, epsilon is the
loss over the whole window, since the target is removed on every day).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from scipy import special

from privagg.attacks.result import AttackResult, strongest_variant, wilson_interval
from privagg.errors import PrivaggInputError

ReleaseFn = Callable[[Any, Any], Any]


def _release_fn(anonymiser: Any) -> ReleaseFn:
    if hasattr(anonymiser, "release"):
        return anonymiser.release
    if callable(anonymiser):
        return anonymiser
    raise PrivaggInputError(
        f"anonymiser of type {type(anonymiser).__name__}: expected an Anonymiser (with .release(world, query)) "
        "or a function (world, query) -> Release. Fix: pass e.g. privagg.anonymisers.raw.Raw() or a release function."
    )


def _exact_fn() -> ReleaseFn:
    from privagg.exact import exact_aggregate

    return exact_aggregate


def without_user(world: Any, user_id: Any) -> Any:
    """The World with every row of one subscriber removed (a neighbouring dataset)."""
    def drop(df: pd.DataFrame) -> pd.DataFrame:
        return df.loc[df["user_id"].to_numpy() != user_id].reset_index(drop=True)

    return replace(world, users=drop(world.users), events=drop(world.events), stays=drop(world.stays), trips=drop(world.trips))


def _as_series(release: Any, key_columns: tuple[str, ...] | None = None) -> pd.Series:
    table = release.to_pandas() if hasattr(release, "to_pandas") else release
    keys = list(key_columns or getattr(release, "key_columns", None) or [c for c in table.columns if c not in ("value", "ci_low", "ci_high")])
    return table.set_index(keys)["value"].astype(float)


RULE, LR = "difference rule", "likelihood ratio"


def _lookup(series: pd.Series, key: tuple, absent: float = 0.0) -> float:
    """Released value at ``key``; a key absent from the table was not published: ``absent`` (0: empty)."""
    try:
        value = series.loc[key] if len(key) > 1 else series.loc[key[0]]
    except KeyError:
        return absent
    if isinstance(value, pd.Series):
        value = value.iloc[0]
    return float(value)


def _model(anonymiser: Any, query: Any, key_query: Any, world: Any) -> Any:
    """The anonymiser's publication model for the attacked table, or None (a bare release function)."""
    from privagg.anonymisers.base import PublicationModelUnavailable, model_for_attack

    if not callable(getattr(anonymiser, "publication_model", None)):
        return None
    days = None
    meta = getattr(world, "meta", {}) or {}
    if getattr(key_query, "time_bin", None) is not None:
        from privagg.releases.inputs import window

        start, end = window(key_query, key_query.keys, meta.get("start"), meta.get("end"))
        days = max(1, int(math.ceil((end - start.floor("D")) / pd.Timedelta(days=1))))
    # The target's own contribution stands for the game's; the noise scale comes from the anonymiser's
    # bounds for this query, as in its release.
    try:
        return model_for_attack(anonymiser, world, query, l0=1, linf=1, days=days)
    except PublicationModelUnavailable:
        return None


def likelihood_ratio(model: Any, reference: float, test: float, contribution: float) -> float:
    """``log P(reference, test | present) - log P(reference, test | absent)`` under ``model``.

    The unknown count without the target, ``c``, is summed out under a flat
    prior on the integers ``c >= 0`` near the observed values (wide enough
    that the noise outside is negligible); present means the test value was
    published from ``c + contribution``, absent from ``c``.
    """
    scale = float(model.noise_scale)
    width = int(math.ceil(12 * scale)) + 2
    delta = int(round(contribution))
    shown = [v for v in (reference, test) if not math.isnan(v)]
    lo = min(shown) - width - delta if shown else 0
    hi = max(shown) + width + delta if shown else 0
    if len(shown) < 2:
        hi = max(hi, (model.k or 0) + width + delta)
    cs = np.arange(max(0, int(math.floor(lo))), int(math.ceil(hi)) + 1, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = model.log_likelihood(np.full(cs.shape, reference), cs)
        present = special.logsumexp(ref + model.log_likelihood(np.full(cs.shape, test), cs + delta))
        absent = special.logsumexp(ref + model.log_likelihood(np.full(cs.shape, test), cs))
    if np.isneginf(present) and np.isneginf(absent):
        return 0.0
    return float(present - absent)


def _rule_guess(ref_value: float, test_value: float, contribution: float, coin: int) -> int:
    if math.isnan(test_value) and math.isnan(ref_value):
        return coin
    if math.isnan(test_value):
        return 0
    if math.isnan(ref_value):
        return 1
    return int(test_value - ref_value >= contribution / 2)


def _lr_guess(model: Any, ref_value: float, test_value: float, contribution: float, coin: int) -> int:
    llr = likelihood_ratio(model, ref_value, test_value, contribution)
    if abs(llr) < 1e-9:
        return coin
    return int(llr > 0)


def differencing(
    world: Any,
    query: Any,
    anonymiser: Any,
    *,
    n_trials: int = 200,
    seed: int = 0,
    candidates: Any = None,
    exact: ReleaseFn | None = None,
    level: float = 0.95,
    target: str | None = None,
    n_training: int | None = None,
    variants: Sequence[str] = (LR, RULE),
) -> AttackResult:
    """Success rate of inferring a subscriber's presence from two releases that differ by them.

    Parameters
    ----------
    world
        The World released (opted-in subscribers only are used).
    query
        What is released (a :class:`privagg.queries.Query`).
    anonymiser
        An Anonymiser (``.release(world, query) -> Release``) or a function
        ``(world, query) -> Release``. A fresh release is drawn for every
        trial; pass a function that builds a new anonymiser if yours keeps
        a budget. An anonymiser whose attribute ``deterministic`` is True
        (raw, suppression, coarsening) has its releases reused.
    n_trials
        Number of games (targets); each costs one exact and two anonymised releases.
    seed
        Seed of the target, key and coin draws. Deterministic anonymisers
        then give the same result for the same seed.
    candidates
        User ids eligible as targets (default: every opted-in subscriber).
    exact
        Function ``(world, query)`` giving exact aggregates, used to find the
        keys a target contributes to (default :func:`privagg.exact.exact_aggregate`).
        When the anonymiser answers a different query than asked (coarsening),
        its ``published_query(world, query)`` gives the keys' query.
    level
        Level of the Wilson interval.
    target
        How the result names the attacked release (default: its privacy record).
    n_training
        Games on which the stronger adversary is chosen (default
        ``max(1, n_trials // 2)``), played before the ``n_trials`` held-out
        games that are reported. Without a publication model (a bare release
        function) only the difference rule runs and no training games are played.
    variants
        The adversaries run: ``"likelihood ratio"`` and/or ``"difference rule"``
        (ties on training games go to the first listed).
    """
    if n_trials < 1:
        raise PrivaggInputError(f"n_trials={n_trials}: must be at least 1. Fix: pass e.g. n_trials=200.")
    variants = tuple(variants)
    if not variants or any(v not in (LR, RULE) for v in variants):
        raise PrivaggInputError(f"variants={variants!r}: unknown or none. Fix: use {LR!r} and/or {RULE!r}.")
    release = _release_fn(anonymiser)
    deterministic = bool(getattr(anonymiser, "deterministic", False))
    full_release = None
    exact = exact or _exact_fn()
    world = world.opted_in() if hasattr(world, "opted_in") else world
    rng = np.random.default_rng(seed)
    pool = np.asarray(world.users["user_id"].to_numpy() if candidates is None else candidates)
    # keys are looked up in the query the release actually answers (e.g. coarsened), which is public
    published = getattr(anonymiser, "published_query", None)
    key_query = published(world, query) if callable(published) else query
    full = _as_series(exact(world, key_query))
    full = full[full > 0]
    model = _model(anonymiser, query, key_query, world) if LR in variants else None
    if model is None:
        variants = (RULE,)
    n_train = 0 if len(variants) == 1 else (max(1, n_trials // 2) if n_training is None else int(n_training))
    absent_value = math.nan if model is not None and model.k is not None else 0.0
    # games: (b, (reference, test) as the rule reads them, (reference, test) for the model, contribution, coin);
    # training games first, then the held-out ones. The rule reads a key missing from a table as 0 (not
    # published = empty); the model, when it suppresses, as a hidden value.
    games: list[tuple[int, tuple[float, float], tuple[float, float], float, int]] = []
    privacy = None
    attempts = 0
    while len(games) < n_train + n_trials:
        attempts += 1
        if attempts > 20 * (n_train + n_trials):
            raise PrivaggInputError(
                f"found only {len(games)} targets contributing to the query among {attempts} draws. "
                "Fix: pass candidates= with subscribers present in the released window."
            )
        user = pool[rng.integers(len(pool))]
        rest = without_user(world, user)
        diff = full.sub(_as_series(exact(rest, key_query)).reindex(full.index, fill_value=0.0), fill_value=0.0)
        diff = diff[diff > 0]
        if diff.empty:
            continue
        pick = int(rng.integers(len(diff)))
        key = diff.index[pick]
        key = key if isinstance(key, tuple) else (key,)
        contribution = float(diff.iloc[pick])
        b = int(rng.integers(2))
        reference = release(rest, query)
        if deterministic:
            # the same input gives the same release: reuse it instead of recomputing
            if b and full_release is None:
                full_release = release(world, query)
            test = full_release if b else reference
        else:
            test = release(world if b else rest, query)
        privacy = getattr(test, "privacy", privacy)
        ref_series, test_series = _as_series(reference), _as_series(test)
        games.append((b, (_lookup(ref_series, key), _lookup(test_series, key)),
                      (_lookup(ref_series, key, absent_value), _lookup(test_series, key, absent_value)),
                      contribution, int(rng.integers(2))))

    def guesses(name: str, part: list) -> np.ndarray:
        if name == RULE:
            return np.array([_rule_guess(r, t, c, coin) for _, (r, t), _, c, coin in part], dtype=int)
        return np.array([_lr_guess(model, r, t, c, coin) for _, _, (r, t), c, coin in part], dtype=int)

    training, held_out = games[:n_train], games[n_train:]
    truth = np.array([g[0] for g in held_out], dtype=int)
    held = {name: guesses(name, held_out) for name in variants}
    figures = {name: float((g == truth).mean()) for name, g in held.items()}
    if n_train:
        train_truth = np.array([g[0] for g in training], dtype=int)
        chosen = strongest_variant({name: float((guesses(name, training) == train_truth).mean()) for name in variants})
    else:
        chosen = variants[0]
    guess = held[chosen]
    trials = len(held_out)
    successes = int((guess == truth).sum())
    positives, negatives = int(truth.sum()), int((1 - truth).sum())
    tp, fp = int(((guess == 1) & (truth == 1)).sum()), int(((guess == 1) & (truth == 0)).sum())
    both_hidden = np.array([math.isnan(r) and math.isnan(t) for _, (r, t), _, _, _ in held_out])
    low, high = wilson_interval(successes, trials, level)
    risk = successes / trials
    metrics = {
        "tpr": tp / positives if positives else float("nan"),
        "fpr": fp / negatives if negatives else float("nan"),
        # games where the difference rule has to flip a coin (both values hidden)
        "share_coin_flips": float(both_hidden.mean()),
        "n_training_games": n_train,
    }
    loss = privacy.total_loss() if privacy is not None and hasattr(privacy, "total_loss") else None
    epsilon = loss.epsilon if loss is not None else getattr(privacy, "epsilon", None)
    if getattr(privacy, "formally_private", False) and epsilon is not None and math.isfinite(epsilon):
        delta = (loss.delta if loss is not None else getattr(privacy, "delta", None)) or 0.0
        metrics["dp_bound"] = min(1.0, (math.exp(epsilon) + delta) / (1.0 + math.exp(epsilon)))
        metrics["epsilon"] = float(epsilon)
    if target is None:
        target = privacy.describe() if privacy is not None else "release"
    describe = getattr(query, "describe", None)
    what = describe() if callable(describe) else str(query)
    bound = f" (DP bound {metrics['dp_bound']:.0%})" if "dp_bound" in metrics else ""
    return AttackResult(
        attack="differencing",
        target=target,
        risk=risk,
        ci_low=low,
        ci_high=high,
        baseline=0.5,
        n_trials=trials,
        background_knowledge=(
            f"a second release of '{what}' on the same population without the target, and that the target, "
            "if present, contributes to one known key"
        ),
        metrics=metrics,
        interpretation=(
            f"Subtracting two releases that differ by one subscriber tells whether that subscriber was there "
            f"{risk:.0%} of the time, against 50% by guessing{bound}."
        ),
        confidence_level=level,
        variant=chosen,
        variants=figures,
    )
