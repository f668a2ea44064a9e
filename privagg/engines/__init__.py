"""Engines run contribution bounding and aggregation; see :mod:`privagg.engines.base`."""

from privagg.engines.base import Contributions, Engine, PartitionTotals, UserPartitions
from privagg.engines.local import LocalEngine

__all__ = ["Contributions", "Engine", "LocalEngine", "PartitionTotals", "UserPartitions", "default_engine"]


def default_engine() -> Engine:
    """The engine releases use unless given one: :class:`LocalEngine`."""
    return LocalEngine(consume=True)
