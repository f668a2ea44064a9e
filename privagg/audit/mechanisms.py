"""Count mechanisms to audit: one correct, four broken on purpose.

Each mechanism releases a vector of counts, one per partition of a public
domain, from a *contributions* table (one row per contribution, columns
``user_id`` and ``partition``, an integer in ``0..n_partitions-1``). Every
subscriber's contribution is bounded first: at most ``max_partitions``
partitions (L0), at most ``max_per_partition`` in each (Linf). The L1
sensitivity of the bounded count vector under adding or removing one
subscriber is therefore ``max_partitions * max_per_partition``.

==================================  =============================================
mechanism                           noise
==================================  =============================================
:class:`DiscreteLaplaceCounts`      discrete Laplace from OpenDP, scale
                                    ``L0 * Linf / epsilon``: epsilon-DP.
:class:`MiscalibratedCounts`        discrete Laplace from OpenDP, scale
                                    ``Linf / epsilon``: the sensitivity forgets
                                    L0, so the real loss is ``L0 * epsilon``.
                                    **Broken on purpose.**
:class:`NaiveLaplaceCounts`         textbook floating-point Laplace from numpy
                                    at the right scale. **Insecure**: its
                                    low-order bits reveal the input (Mironov,
                                    CCS 2012).
:class:`HalfScaleCounts`            discrete Laplace from OpenDP at half the
                                    claimed scale: the real loss is
                                    ``2 * epsilon``. **Broken on purpose** (the
                                    audit's sensitivity floor).
:class:`DataDependentKeysCounts`    correct discrete Laplace, but only the
                                    partitions with a non-zero true count are
                                    released: the key set itself reveals who is
                                    in the data. **Broken on purpose.**
==================================  =============================================

The raw noise functions (:func:`discrete_laplace_mechanism`,
:func:`miscalibrated_mechanism`, :func:`naive_laplace_mechanism`) take a count
vector directly. Every class has ``sample(dataset, n, rng)`` returning ``n``
independent releases as an ``(n, n_partitions)`` array, which the audit uses
to draw thousands of releases in one OpenDP call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from privagg.errors import PrivaggInputError

__all__ = [
    "COUNT_MECHANISMS",
    "DataDependentKeysCounts",
    "DiscreteLaplaceCounts",
    "HalfScaleCounts",
    "MiscalibratedCounts",
    "NaiveLaplaceCounts",
    "bounded_counts",
    "discrete_laplace_mechanism",
    "miscalibrated_mechanism",
    "naive_laplace_mechanism",
]


def _check_positive(name: str, value: float) -> None:
    if not (np.isfinite(value) and value > 0):
        raise PrivaggInputError(f"{name}={value!r} must be a positive finite number. Fix: pass e.g. {name}=1.")


def discrete_laplace_mechanism(counts: np.ndarray, epsilon: float, sensitivity: int) -> np.ndarray:
    """Integer counts plus discrete Laplace noise of scale ``sensitivity / epsilon``, from OpenDP.

    Uses privagg's own mechanism (:func:`privagg.dp.mechanisms.laplace`, whose
    scale OpenDP's privacy map certifies). ``counts`` may have any shape; every
    entry gets independent noise. This is epsilon-DP when ``sensitivity``
    bounds the L1 change of ``counts`` caused by one privacy unit.
    """
    from privagg.dp.mechanisms import laplace

    _check_positive("epsilon", epsilon)
    _check_positive("sensitivity", sensitivity)
    counts = np.asarray(counts)
    flat = np.rint(counts).astype(np.int64).ravel()
    if not flat.size:
        return flat.reshape(counts.shape)
    return laplace(float(epsilon), int(sensitivity)).sample(flat).reshape(counts.shape)


def miscalibrated_mechanism(
    counts: np.ndarray, epsilon: float, max_partitions: int, max_per_partition: int
) -> np.ndarray:
    """**Broken on purpose.** Discrete Laplace (OpenDP) whose scale uses Linf instead of L0 * Linf.

    It claims epsilon but loses up to ``max_partitions * epsilon`` for a
    subscriber who touches ``max_partitions`` partitions. The audit must flag it.
    """
    del max_partitions  # the bug: the number of partitions a subscriber touches is ignored
    return discrete_laplace_mechanism(counts, epsilon, max_per_partition)


def naive_laplace_mechanism(
    counts: np.ndarray, epsilon: float, sensitivity: float, *, rng: np.random.Generator | None = None
) -> np.ndarray:
    """**Insecure.** Textbook floating-point Laplace: ``count + scale * numpy_laplace()``.

    The noise has the right scale, but the double it produces keeps traces of
    the input in its low-order bits, so outputs from neighbouring inputs are
    distinguishable (Mironov, CCS 2012). Kept only as a baseline for the audit
    to catch; never use it to release data.
    """
    _check_positive("epsilon", epsilon)
    _check_positive("sensitivity", sensitivity)
    rng = np.random.default_rng() if rng is None else rng
    counts = np.asarray(counts, dtype=float)
    scale = float(sensitivity) / float(epsilon)
    noise = rng.laplace(0.0, 1.0, size=counts.shape)  # insecure naive float Laplace, labelled baseline
    return counts + scale * noise


def bounded_counts(
    contributions: pd.DataFrame, n_partitions: int, *, max_partitions: int, max_per_partition: int
) -> np.ndarray:
    """Count contributions per partition after bounding each subscriber.

    Each subscriber keeps the ``max_partitions`` partitions where they
    contribute most (ties broken by partition number; the choice depends on
    their own rows only) and at most ``max_per_partition`` in each.
    """
    missing = [c for c in ("user_id", "partition") if c not in contributions.columns]
    if missing:
        raise PrivaggInputError(
            f"contributions table lacks column(s) {missing}. Fix: pass one row per contribution with "
            "'user_id' and 'partition' (an integer partition index)."
        )
    part = contributions["partition"].to_numpy()
    if len(part) and (part.min() < 0 or part.max() >= n_partitions):
        raise PrivaggInputError(
            f"contributions: partition values must lie in 0..{n_partitions - 1}; got {part.min()}..{part.max()}. "
            "Fix: map partitions to indices of the public domain first."
        )
    per = contributions.groupby(["user_id", "partition"], sort=True).size().rename("n").reset_index()
    per["n"] = per["n"].clip(upper=max_per_partition)
    per = per.sort_values(["user_id", "n", "partition"], ascending=[True, False, True], kind="stable")
    per = per.loc[per.groupby("user_id").cumcount() < max_partitions]
    return np.bincount(per["partition"].to_numpy(), weights=per["n"].to_numpy(), minlength=n_partitions).astype(
        np.int64
    )


@dataclass(frozen=True)
class _CountMechanism:
    """Common part: bounding, the public partition domain, the claimed epsilon."""

    epsilon: float
    n_partitions: int
    max_partitions: int = 1
    max_per_partition: int = 1

    name = "counts"
    insecure = False

    def __post_init__(self) -> None:
        _check_positive("epsilon", self.epsilon)
        for field_name in ("n_partitions", "max_partitions", "max_per_partition"):
            value = getattr(self, field_name)
            if int(value) != value or value < 1:
                raise PrivaggInputError(f"{field_name}={value!r} must be a positive integer.")

    @property
    def claimed_epsilon(self) -> float:
        """The epsilon per subscriber the mechanism claims."""
        return float(self.epsilon)

    @property
    def sensitivity(self) -> int:
        """L1 sensitivity of the bounded counts: L0 * Linf."""
        return self.max_partitions * self.max_per_partition

    def counts(self, contributions: pd.DataFrame) -> np.ndarray:
        return bounded_counts(
            contributions, self.n_partitions, max_partitions=self.max_partitions,
            max_per_partition=self.max_per_partition,
        )

    def _noise(self, counts: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        raise NotImplementedError

    def sample(self, contributions: pd.DataFrame, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``n`` independent releases, as an ``(n, n_partitions)`` array."""
        counts = self.counts(contributions)
        return self._noise(np.broadcast_to(counts, (int(n), counts.size)), rng)

    def __call__(self, contributions: pd.DataFrame, rng: np.random.Generator | None = None) -> np.ndarray:
        return self.sample(contributions, 1, rng)[0]


@dataclass(frozen=True)
class DiscreteLaplaceCounts(_CountMechanism):
    """Correct: discrete Laplace (OpenDP) at scale ``L0 * Linf / epsilon``; epsilon-DP per subscriber."""

    name = "dp"

    @property
    def noise_scale(self) -> float:
        return self.sensitivity / self.epsilon

    def _noise(self, counts, rng):
        return discrete_laplace_mechanism(counts, self.epsilon, self.sensitivity)


@dataclass(frozen=True)
class MiscalibratedCounts(_CountMechanism):
    """**Broken on purpose**: discrete Laplace at scale ``Linf / epsilon`` (sensitivity ignores L0)."""

    name = "miscalibrated"

    @property
    def noise_scale(self) -> float:
        return self.max_per_partition / self.epsilon

    def _noise(self, counts, rng):
        return miscalibrated_mechanism(counts, self.epsilon, self.max_partitions, self.max_per_partition)


@dataclass(frozen=True)
class NaiveLaplaceCounts(_CountMechanism):
    """**Insecure**: numpy floating-point Laplace at the right scale (Mironov's attack applies)."""

    name = "naive_laplace"
    insecure = True

    @property
    def noise_scale(self) -> float:
        return self.sensitivity / self.epsilon

    def _noise(self, counts, rng):
        return naive_laplace_mechanism(counts, self.epsilon, self.sensitivity, rng=rng)


@dataclass(frozen=True)
class HalfScaleCounts(_CountMechanism):
    """**Broken on purpose**: discrete Laplace (OpenDP) at half the claimed scale, so its real epsilon is twice the claim.

    The smallest miscalibration the audit is required to catch at its default number of runs.
    """

    name = "half_scale"

    @property
    def noise_scale(self) -> float:
        return self.sensitivity / (2 * self.epsilon)

    def _noise(self, counts, rng):
        return discrete_laplace_mechanism(counts, 2 * self.epsilon, self.sensitivity)


@dataclass(frozen=True)
class DataDependentKeysCounts(_CountMechanism):
    """**Broken on purpose**: correctly noised counts, but only for the partitions whose true count is non-zero.

    The noise is right; the *key set* is not public: a partition that only
    one subscriber visits disappears when they are removed. ``sample``
    returns an ``(n, n_released)`` array whose width depends on the data.
    """

    name = "data_dependent_keys"

    @property
    def noise_scale(self) -> float:
        return self.sensitivity / self.epsilon

    def released_keys(self, contributions: pd.DataFrame) -> pd.DataFrame:
        """The partitions this mechanism releases on ``contributions`` (those with a non-zero true count)."""
        return pd.DataFrame({"partition": np.flatnonzero(self.counts(contributions) > 0)})

    def sample(self, contributions: pd.DataFrame, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        counts = self.counts(contributions)
        kept = counts[counts > 0]
        return discrete_laplace_mechanism(np.broadcast_to(kept, (int(n), kept.size)), self.epsilon, self.sensitivity)


#: The count mechanisms the audit command and the audit experiment run, by their command-line names.
COUNT_MECHANISMS: dict[str, type[_CountMechanism]] = {
    "dp": DiscreteLaplaceCounts,
    "half_scale": HalfScaleCounts,
    "miscalibrated": MiscalibratedCounts,
    "naive_laplace": NaiveLaplaceCounts,
    "data_keys": DataDependentKeysCounts,
}
