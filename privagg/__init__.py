"""privagg: user-level differentially private aggregation of mobility data.

privagg releases footfall, dwell times, origin-destination flows and segment
statistics with user-level differential privacy (noise from OpenDP), and
measures how much any anonymisation method, DP or not, protects people by
running the field's known attacks against it.
"""

from privagg.errors import BudgetExceededError, PrivaggError, PrivaggInputError
from privagg.release import PrivacyRecord, Release
from privagg.world import World
from privagg.queries import KeySet, Query
from privagg.dp.bounds import Bounds
from privagg.exact import exact_aggregate
from privagg.dp.budget import Budget
from privagg.dp.units import Loss, PrivacyUnit, UnitLoss
from privagg.engines import Engine, LocalEngine
from privagg.releases import dwell_mean, dwell_times, footfall, od_flows, release_query, segment_stats, visits
from privagg.postprocess import clip_nonnegative, make_consistent, round_to_integers
from privagg.compare import compare
# Accuracy from structure: continual release, consistent OD hierarchies, shrinkage (post-processing).
from privagg.releases.continual import TreeCounter, bounded_daily_footfall, range_interval
from privagg.releases.od_hierarchy import consistent_od, release_od_levels, release_od_selected
from privagg.postprocess.borrow import Shrunk, shrink_od, shrink_over_time, shrink_toward_parent
from privagg.postprocess.noise import noise_model

__version__ = "0.1.0"

__all__ = [
    "Bounds",
    "Budget",
    "BudgetExceededError",
    "Engine",
    "LocalEngine",
    "Loss",
    "clip_nonnegative",
    "compare",
    "make_consistent",
    "round_to_integers",
    "dwell_mean",
    "dwell_times",
    "footfall",
    "od_flows",
    "release_query",
    "segment_stats",
    "visits",
    "KeySet",
    "PrivacyRecord",
    "PrivacyUnit",
    "UnitLoss",
    "PrivaggError",
    "PrivaggInputError",
    "Query",
    "Release",
    "World",
    "__version__",
    "exact_aggregate",
    "Shrunk",
    "TreeCounter",
    "bounded_daily_footfall",
    "consistent_od",
    "noise_model",
    "range_interval",
    "release_od_levels",
    "release_od_selected",
    "shrink_od",
    "shrink_over_time",
    "shrink_toward_parent",
]
