"""Session fixtures shared by the test modules: small synthetic cities, built once per run.

Synthetic data uses fixed seeds, so every module sees the same city; release
noise is never seeded. Tests must not modify these Worlds (their tables are
shared); a test that needs to change one works on a copy.
"""

from __future__ import annotations

import pytest

from privagg.synth import generate_world


@pytest.fixture(scope="session")
def tiny_city():
    """150 subscribers, 20 cells in a handful of zones, one day (seed 4): most zone x 3h counts are above 5."""
    return generate_world(n_users=150, n_cells=20, days=1, seed=4)


@pytest.fixture(scope="session")
def tiny_city_three_days():
    """The tiny city's population over three days (seed 4), for releases per subscriber-day."""
    return generate_world(n_users=150, n_cells=20, days=3, seed=4)


@pytest.fixture(scope="session")
def small_city():
    """300 subscribers, 30 cells, two days (seed 1): big enough for every attack of the claim audit."""
    return generate_world(n_users=300, n_cells=30, days=2, seed=1)


@pytest.fixture(scope="session")
def spark():
    """One Spark session on ``local[2]`` for the whole run (starting one takes seconds).

    Java comes from ``scripts/ensure_java.sh`` (Debian's openjdk-17) when missing; when it
    cannot be installed the Spark tests are skipped, or fail under ``CI=true``.
    """
    import os

    pytest.importorskip("pyspark")
    from privagg.engines.spark import spark_session
    from privagg.errors import PrivaggInputError

    try:
        session = spark_session("local[2]", app="privagg-tests",
                                config={"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"})
    except PrivaggInputError as exc:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"Spark is not available: {exc}")
        pytest.skip(f"Spark is not available: {exc}")
    yield session
    session.stop()
