"""Empirical privacy audit: lower bounds on the epsilon a mechanism really has.

>>> from privagg.audit import epsilon_lower_bound, MiscalibratedCounts, example_contributions
>>> data = example_contributions(seed=0)
>>> result = epsilon_lower_bound(MiscalibratedCounts(1.0, 20, max_partitions=10), data, n_runs=4000, seed=0)
>>> result.flagged
True

See :mod:`privagg.audit.lower_bound` for the method and :mod:`privagg.audit.mechanisms`
for the mechanisms shipped to be audited (one correct, four broken on purpose).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from privagg.audit.lower_bound import (
    AuditResult,
    ReleaseMechanism,
    one_sided_clopper_pearson,
    epsilon_lower_bound,
    naive_laplace_reachable,
    remove_most_active,
)
from privagg.audit.mechanisms import (
    COUNT_MECHANISMS,
    DataDependentKeysCounts,
    DiscreteLaplaceCounts,
    HalfScaleCounts,
    MiscalibratedCounts,
    NaiveLaplaceCounts,
    bounded_counts,
    discrete_laplace_mechanism,
    miscalibrated_mechanism,
    naive_laplace_mechanism,
)

__all__ = [
    "AuditResult",
    "COUNT_MECHANISMS",
    "DataDependentKeysCounts",
    "DiscreteLaplaceCounts",
    "HalfScaleCounts",
    "MiscalibratedCounts",
    "NaiveLaplaceCounts",
    "ReleaseMechanism",
    "bounded_counts",
    "one_sided_clopper_pearson",
    "discrete_laplace_mechanism",
    "epsilon_lower_bound",
    "example_contributions",
    "miscalibrated_mechanism",
    "naive_laplace_mechanism",
    "naive_laplace_reachable",
    "remove_most_active",
]


def example_contributions(
    n_users: int = 200, n_partitions: int = 20, *, heavy_partitions: int = 10, seed: int | None = 0,
    own_partition: bool = False,
) -> pd.DataFrame:
    """A small contributions table (``user_id``, ``partition``) for audits.

    Ordinary subscribers visit one to three partitions; subscriber 0 is the
    most active and visits ``heavy_partitions`` distinct partitions three
    times each, so removing them changes many counts at once. With
    ``own_partition`` the last partition is one of theirs and nobody else
    visits it (so a release whose keys come from the data loses a key
    without them).
    """
    rng = np.random.default_rng(seed)
    visits = rng.integers(1, 4, size=n_users - 1)
    users = np.repeat(np.arange(1, n_users), visits)
    parts = rng.integers(0, n_partitions - 1 if own_partition else n_partitions, size=users.size)
    mine = np.arange(min(heavy_partitions, n_partitions))
    if own_partition:
        mine = np.r_[mine[: len(mine) - 1], n_partitions - 1]
    heavy = np.repeat(mine, 3)
    return pd.DataFrame(
        {"user_id": np.concatenate([np.zeros(heavy.size, dtype=np.int64), users]).astype(np.int64),
         "partition": np.concatenate([heavy, parts]).astype(np.int64)}
    )
