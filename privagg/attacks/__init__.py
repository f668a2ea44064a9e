"""Attacks that measure how much a release really protects people.

Every attack returns an :class:`~privagg.attacks.result.AttackResult`: a risk
with a confidence interval, the risk of a random-guess baseline, and the
adversary's background knowledge in words.
"""

from privagg.attacks.result import AttackResult, clopper_pearson, wilson_interval

__all__ = ["AttackResult", "clopper_pearson", "wilson_interval"]
