"""Top-down consistent OD hierarchies: they add up, are whole and non-negative, and read released values only."""

from __future__ import annotations

import numpy as np
import pytest

import privagg.releases.od_hierarchy as odh
from privagg.dp.bounds import Bounds
from privagg.dp.budget import Budget
from privagg.postprocess.od_hierarchy import integer_split, project_to_sum, top_down


def test_projection_is_the_closest_nonnegative_vector_with_the_sum():
    rng = np.random.default_rng(0)
    y = rng.normal(0, 5, size=40)
    x = project_to_sum(y, 30.0)
    assert x.min() >= 0 and x.sum() == pytest.approx(30.0)
    for _ in range(200):  # no feasible point nearby is closer (a wrong projection fails this)
        z = np.maximum(x + rng.normal(0, 0.3, size=40), 0)
        z *= 30.0 / z.sum()
        assert np.sum((z - y) ** 2) >= np.sum((x - y) ** 2) - 1e-9
    assert integer_split(np.array([0.4, 1.6, 2.0]), 4).tolist() == [0, 2, 2]


def test_top_down_levels_add_up_exactly():
    rng = np.random.default_rng(1)
    fine_parent = np.repeat(np.arange(4), 5)
    levels = [np.array([103.0]), rng.normal(25, 3, 4), rng.normal(5, 2, 20)]
    est = top_down(levels, [4.0, 1.0, 1.0], [np.zeros(1, int), np.zeros(4, int), fine_parent])
    assert est[1].sum() == est[0][0]
    np.testing.assert_array_equal(np.bincount(fine_parent, weights=est[2], minlength=4), est[1])
    assert all(e.dtype == np.int64 and e.min() >= 0 for e in est)


def test_post_processing_never_reads_the_data(small_city, monkeypatch):
    """Once the noisy levels exist the data is destroyed; the consistent estimate is unchanged, and any read
    of the subscribers' tables during post-processing would fail."""
    import copy

    import pandas as pd

    world = copy.copy(small_city)
    budget = Budget(epsilon=2.0, delta=1e-9)
    noisy = odh.release_od_levels(world, epsilon=2.0, delta=1e-9, bounds=Bounds(max_partitions=8), budget=budget)
    assert budget.spent["epsilon"] == pytest.approx(2.0)
    before = odh.consistent_od(noisy)
    for table in ("trips", "events", "users", "stays"):
        monkeypatch.setattr(world, table, None, raising=False)
    monkeypatch.setattr(pd.DataFrame, "merge", lambda *a, **k: (_ for _ in ()).throw(AssertionError("data read")))
    after = odh.consistent_od(noisy)
    for level in before:
        pd.testing.assert_frame_equal(before[level], after[level])
    assert int(after["zone"]["value"].sum()) == int(after["total"]["value"][0]) == int(after["district"]["value"].sum())


def test_each_level_is_noised_for_its_own_bounds(small_city):
    """The total is noised for all of a subscriber's trips in one number (the bound's l1); each pair level for
    its own bounds; OpenDP certifies each level's share of epsilon; a wrong number of shares is refused."""
    from privagg.errors import PrivaggInputError

    noisy = odh.release_od_levels(small_city, epsilon=2.0, delta=1e-9, shares=(1, 1, 2),
                                  bounds=[Bounds(max_partitions=8, max_per_partition=8, max_total=8),
                                          Bounds(max_partitions=4)])
    total, district, zone = noisy.mechanisms
    assert total.sensitivity == pytest.approx(8 if total.kind == "laplace" else 8.0)
    from privagg.dp.bound_choice import rho_for_epsilon

    for mech, eps in zip(noisy.mechanisms, (0.5, 0.5, 1.0)):
        allowed = eps if mech.kind == "laplace" else rho_for_epsilon(eps, 1e-9 / 3)
        assert mech.privacy_map() <= allowed * (1 + 1e-12)
    assert [b.max_partitions for b in noisy.bounds] == [8, 4]
    with pytest.raises(PrivaggInputError, match="shares"):
        odh.release_od_levels(small_city, epsilon=2.0, delta=1e-9, bounds=Bounds(max_partitions=4), shares=(1, 1))
