"""Attacks that measure how much a release really protects people.

Every attack returns an :class:`~privagg.attacks.result.AttackResult`: a risk
with a confidence interval, the risk of a naive baseline, the adversary's
background knowledge in words, and the variant behind the figure.
:func:`run_attack` runs any of them against any anonymiser's release.

============================  ==================================================
:func:`unicity`               de Montjoye et al. 2013: traces singled out by p points
:func:`trajectory_recovery`   Xu et al. 2017: trajectories rebuilt from footfall
:func:`membership_inference`  Pyrgelis et al. 2018: is a target in the aggregated group?
:func:`reconstruction`        Dinur-Nissim; the 2010 US Census: records rebuilt from crossbreaks
:func:`differencing`          two releases differing by one subscriber
============================  ==================================================
"""

from privagg.attacks.differencing import differencing
from privagg.attacks.membership import hourly_presence, membership_inference
from privagg.attacks.reconstruction import reconstruction_attack as reconstruction
from privagg.attacks.result import AttackResult, clopper_pearson, strongest_variant, wilson_interval
from privagg.attacks.runner import ATTACK_SETTINGS, NotApplicable, attack_settings, run_attack
from privagg.attacks.trajectory_recovery import recover_trajectories, trajectory_recovery
from privagg.attacks.unicity import unicity

__all__ = [
    "ATTACK_SETTINGS",
    "AttackResult",
    "NotApplicable",
    "attack_settings",
    "clopper_pearson",
    "differencing",
    "hourly_presence",
    "membership_inference",
    "reconstruction",
    "recover_trajectories",
    "run_attack",
    "strongest_variant",
    "trajectory_recovery",
    "unicity",
    "wilson_interval",
]
