"""AttackResult: the common return type of every attack in privagg.

Modelled on Anonymeter: a risk is never a bare number. It is a point
estimate with a confidence interval, set against the risk of a naive
adversary who guesses at random, with a statement of what the adversary
knew and a sentence saying what the figure means.

Helpers :func:`wilson_interval` and :func:`clopper_pearson` give intervals
for success rates (``successes`` out of ``n`` independent trials).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from scipy import stats

from privagg.errors import PrivaggInputError

ATTACKS = ("unicity", "trajectory_recovery", "membership_inference", "reconstruction", "differencing")


@dataclass(frozen=True)
class AttackResult:
    """What an attack achieved against one release.

    Attributes
    ----------
    attack
        Which attack: ``"unicity"``, ``"trajectory_recovery"``,
        ``"membership_inference"``, ``"reconstruction"``, ``"differencing"``.
    target
        What was attacked, e.g. the release's method and parameters.
    risk
        Point estimate of the attack's success (a rate, an AUC or a share).
    ci_low, ci_high
        Confidence interval of ``risk`` at ``confidence_level``.
    baseline
        The same figure for a naive adversary who guesses at random.
    n_trials
        Number of independent trials (targets, games, records) behind ``risk``.
    background_knowledge
        What the adversary is assumed to know, in words.
    metrics
        Further figures, e.g. ``{"tpr_at_1pct_fpr": 0.4}``.
    interpretation
        One sentence for a non-specialist saying what the result means.
    confidence_level
        Level of the interval, 0.95 unless stated.
    variant
        The variant of the attack behind ``risk`` (e.g. ``"likelihood ratio"``),
        when several were run: the strongest on training games, measured on
        held-out ones (:func:`strongest_variant`).
    variants
        Every variant's held-out figure, by name (the chosen one included), so
        a reader can see what the others achieved.
    """

    attack: str
    target: str
    risk: float
    ci_low: float
    ci_high: float
    baseline: float
    n_trials: int
    background_knowledge: str
    metrics: dict[str, float] = field(default_factory=dict)
    interpretation: str = ""
    confidence_level: float = 0.95
    variant: str | None = None
    variants: dict[str, float] = field(default_factory=dict)

    @property
    def advantage(self) -> float:
        """Risk above the random-guess baseline (``risk - baseline``)."""
        return self.risk - self.baseline

    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-serialisable dict (``metrics`` kept as a nested dict of floats)."""
        out = asdict(self)
        out["metrics"] = {k: _plain(v) for k, v in self.metrics.items()}
        out["variants"] = {k: _plain(v) for k, v in self.variants.items()}
        for key in ("risk", "ci_low", "ci_high", "baseline", "confidence_level"):
            out[key] = _plain(out[key])
        out["n_trials"] = int(self.n_trials)
        return out

    def __str__(self) -> str:
        pct = round(100 * self.confidence_level)
        return (
            f"{self.attack} vs {self.target}: risk {self.risk:.3f} "
            f"({pct}% CI {self.ci_low:.3f}-{self.ci_high:.3f}; baseline {self.baseline:.3f}; "
            f"n={self.n_trials}). {self.interpretation}"
        )


def strongest_variant(training_risk: Mapping[str, float]) -> str:
    """The variant with the highest risk on *training* games (the first listed wins ties).

    Choosing on training games and reporting the chosen variant's risk on
    held-out games keeps the choice from inflating the figure: the maximum of
    several held-out estimates would be biased upwards.

    Examples
    --------
    >>> strongest_variant({"stats": 0.61, "own keys": 0.93, "likelihood ratio": 0.93})
    'own keys'
    """
    if not training_risk:
        raise PrivaggInputError("no attack variant was run. Fix: pass at least one variant's training risk.")
    best = max(training_risk.values())
    return next(name for name, risk in training_risk.items() if risk == best)


def _plain(value: Any) -> Any:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return value
    return None if math.isnan(value) else value


def _check(successes: int, n: int, level: float) -> None:
    if n < 0 or successes < 0 or successes > n:
        raise PrivaggInputError(
            f"successes={successes}, n={n}: need 0 <= successes <= n. Fix: count successes among the n trials."
        )
    if not 0.0 < level < 1.0:
        raise PrivaggInputError(f"level={level} must lie strictly between 0 and 1. Fix: pass e.g. level=0.95.")


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n``.

    Returns ``(0.0, 1.0)`` when ``n == 0`` (nothing was observed).
    """
    _check(successes, n, level)
    if n == 0:
        return 0.0, 1.0
    z = stats.norm.ppf(0.5 + level / 2.0)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The interval always contains p; at p = 0 or 1 rounding can otherwise put an end a hair inside it.
    return float(min(p, max(0.0, centre - half))), float(max(p, min(1.0, centre + half)))


def clopper_pearson(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval for ``successes / n``, from the beta quantiles.

    Returns ``(0.0, 1.0)`` when ``n == 0``.
    """
    _check(successes, n, level)
    if n == 0:
        return 0.0, 1.0
    alpha = 1.0 - level
    low = 0.0 if successes == 0 else float(stats.beta.ppf(alpha / 2, successes, n - successes + 1))
    high = 1.0 if successes == n else float(stats.beta.ppf(1 - alpha / 2, successes + 1, n - successes))
    return low, high


__all__ = ["ATTACKS", "AttackResult", "clopper_pearson", "strongest_variant", "wilson_interval"]
