"""Attacks that measure how much a release really protects people.

Every attack returns an :class:`~privagg.attacks.result.AttackResult`: a risk
with a confidence interval, the risk of a random-guess baseline, and the
adversary's background knowledge in words.

=========================  ==================================================
:func:`unicity`            de Montjoye et al. 2013: traces singled out by p points
:func:`trajectory_recovery` Xu et al. 2017: trajectories rebuilt from footfall
:func:`differencing`       two releases differing by one subscriber
=========================  ==================================================
"""

from privagg.attacks.differencing import differencing
from privagg.attacks.result import AttackResult, clopper_pearson, wilson_interval
from privagg.attacks.trajectory_recovery import recover_trajectories, trajectory_recovery
from privagg.attacks.unicity import unicity

__all__ = [
    "AttackResult",
    "clopper_pearson",
    "differencing",
    "recover_trajectories",
    "trajectory_recovery",
    "unicity",
    "wilson_interval",
]
