"""Post-processing of released values: non-negativity, rounding, hierarchical consistency.

Every function here reads only a release's values and its public privacy
record (and, for consistency, the public cells table), returns a new
:class:`~privagg.release.Release` with the same record plus a note of what
was applied, and spends no privacy budget (rule 6 of the design).

Recommended order: :func:`make_consistent` first, then
:func:`clip_nonnegative` and :func:`round_to_integers` (which break exact
sums across levels, but never move a value out of its interval's reach).
"""

from privagg.postprocess.basic import clip_nonnegative, round_to_integers
from privagg.postprocess.borrow import Shrunk, shrink_od, shrink_over_time, shrink_toward
from privagg.postprocess.hierarchy import LEVEL_COLUMNS, LEVELS, consistent_estimates, make_consistent
from privagg.postprocess.noise import NoiseModel, noise_interval, noise_model
from privagg.postprocess.od_hierarchy import top_down

__all__ = [
    "LEVELS",
    "LEVEL_COLUMNS",
    "NoiseModel",
    "clip_nonnegative",
    "consistent_estimates",
    "make_consistent",
    "noise_interval",
    "noise_model",
    "round_to_integers",
    "Shrunk",
    "shrink_od",
    "shrink_over_time",
    "shrink_toward",
    "top_down",
]
