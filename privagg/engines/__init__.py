"""Engines run contribution bounding and aggregation; see :mod:`privagg.engines.base`."""

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from privagg.engines.base import Contributions, Engine, PartitionTotals, UserPartitions
from privagg.engines.local import LocalEngine

__all__ = ["Contributions", "Engine", "LocalEngine", "PartitionTotals", "SparkEngine", "UserPartitions", "default_engine", "make_engine", "using"]


def __getattr__(name: str):
    # The Spark engine imports pyspark lazily; importing it here costs nothing without it.
    if name == "SparkEngine":
        from privagg.engines.spark import SparkEngine

        return SparkEngine
    raise AttributeError(name)


_CURRENT: ContextVar[Engine | None] = ContextVar("privagg_engine", default=None)


def default_engine() -> Engine:
    """The engine releases use unless given one: the one set by :func:`using`, else :class:`LocalEngine`."""
    current = _CURRENT.get()
    return current if current is not None else LocalEngine(consume=True)


@contextmanager
def using(engine: Engine) -> Iterator[Engine]:
    """Run every release inside the ``with`` block on ``engine`` unless it is given another
    (how an experiment spec's ``engine = "spark"`` reaches the releases its anonymisers make)."""
    token = _CURRENT.set(engine)
    try:
        yield engine
    finally:
        _CURRENT.reset(token)


ENGINES = ("local", "spark")


def make_engine(name: str, *, spark_master: str | None = None) -> Engine:
    """An engine by name: ``"local"``, or ``"spark"`` (a session on ``spark_master``, default ``local[*]``)."""
    if name == "local":
        return LocalEngine(consume=True)
    if name == "spark":
        from privagg.engines.spark import SparkEngine, spark_session

        return SparkEngine(spark_session(spark_master or "local[*]"))
    from privagg.errors import PrivaggInputError

    raise PrivaggInputError(f"engine={name!r} is unknown. Fix: use one of {', '.join(map(repr, ENGINES))}.")
