"""Engines run contribution bounding and aggregation; see :mod:`privagg.engines.base`."""

from privagg.engines.base import Contributions, Engine, PartitionTotals, UserPartitions
from privagg.engines.local import LocalEngine

__all__ = ["Contributions", "Engine", "LocalEngine", "PartitionTotals", "SparkEngine", "UserPartitions", "default_engine"]


def __getattr__(name: str):
    # The Spark engine imports pyspark lazily; importing it here costs nothing without it.
    if name == "SparkEngine":
        from privagg.engines.spark import SparkEngine

        return SparkEngine
    raise AttributeError(name)


def default_engine() -> Engine:
    """The engine releases use unless given one: :class:`LocalEngine`."""
    return LocalEngine(consume=True)
