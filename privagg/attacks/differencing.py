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

The success rate is reported with a Wilson interval; the random-guess
baseline is 0.5. For a release that is ``(epsilon, delta)``-DP per
subscriber, no adversary can exceed ``(e^epsilon + delta) / (1 + e^epsilon)``
(the test release alone decides, the reference being independent of ``b``);
that bound is reported as ``metrics['dp_bound']``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from privagg.attacks.result import AttackResult, wilson_interval
from privagg.errors import PrivaggInputError

ReleaseFn = Callable[[Any, Any], Any]


def _release_fn(anonymiser: Any) -> ReleaseFn:
    if hasattr(anonymiser, "release"):
        return anonymiser.release
    if callable(anonymiser):
        return anonymiser
    raise PrivaggInputError(
        f"anonymiser of type {type(anonymiser).__name__}: expected an Anonymiser (with .release(world, query)) "
        "or a function (world, query) -> Release."
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


def _lookup(series: pd.Series, key: tuple) -> float:
    """Released value at ``key``; a key absent from the table was not published (empty), i.e. 0."""
    try:
        value = series.loc[key] if len(key) > 1 else series.loc[key[0]]
    except KeyError:
        return 0.0
    if isinstance(value, pd.Series):
        value = value.iloc[0]
    return float(value)


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
    """
    if n_trials < 1:
        raise PrivaggInputError(f"n_trials={n_trials}: must be at least 1.")
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
    successes = 0
    tp = fp = positives = negatives = coin_flips = 0
    privacy = None
    trials = 0
    attempts = 0
    while trials < n_trials:
        attempts += 1
        if attempts > 20 * n_trials:
            raise PrivaggInputError(
                f"found only {trials} targets contributing to the query among {attempts} draws. "
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
        ref_value = _lookup(_as_series(reference), key)
        test_value = _lookup(_as_series(test), key)
        if math.isnan(test_value) and math.isnan(ref_value):
            guess = int(rng.integers(2))
            coin_flips += 1
        elif math.isnan(test_value):
            guess = 0
        elif math.isnan(ref_value):
            guess = 1
        else:
            guess = int(test_value - ref_value >= contribution / 2)
        successes += int(guess == b)
        positives += b
        negatives += 1 - b
        tp += int(guess == 1 and b == 1)
        fp += int(guess == 1 and b == 0)
        trials += 1
    low, high = wilson_interval(successes, trials, level)
    risk = successes / trials
    metrics = {
        "tpr": tp / positives if positives else float("nan"),
        "fpr": fp / negatives if negatives else float("nan"),
        "share_coin_flips": coin_flips / trials,
    }
    epsilon = getattr(privacy, "epsilon", None)
    if getattr(privacy, "formally_private", False) and epsilon is not None:
        delta = getattr(privacy, "delta", None) or 0.0
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
    )
