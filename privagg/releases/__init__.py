"""Public release functions: footfall, visits, dwell times, OD flows, segment statistics.

Each takes the table(s) or a World, a privacy loss (``epsilon=`` or ``rho=``),
optional ``delta``, ``bounds``, ``keys`` and ``budget``, and returns a
:class:`~privagg.release.Release`. :func:`release_query` runs any
:class:`~privagg.queries.Query` the same way.
"""

from privagg.releases.core import release_query
from privagg.releases.dwell import dwell_mean, dwell_times
from privagg.releases.footfall import footfall, visits
from privagg.releases.od import od_flows
from privagg.releases.segments import segment_stats

__all__ = ["dwell_mean", "dwell_times", "footfall", "od_flows", "release_query", "segment_stats", "visits"]
