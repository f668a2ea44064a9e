"""privagg: user-level differentially private aggregation of mobility data.

privagg releases footfall, dwell times, origin-destination flows and segment
statistics with user-level differential privacy (noise from OpenDP), and
measures how much any anonymisation method, DP or not, protects people by
running the field's known attacks against it.
"""

from privagg.errors import BudgetExceededError, PrivaggError, PrivaggInputError
from privagg.release import PrivacyRecord, Release
from privagg.world import World

__version__ = "0.1.0"

__all__ = [
    "BudgetExceededError",
    "PrivacyRecord",
    "PrivaggError",
    "PrivaggInputError",
    "Release",
    "World",
    "__version__",
]
