"""Segment means over categorical users tables: consent as a row mask, the binned path end to end, and the
duplicate-id check of the users table on every thread."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import privagg as pa
from privagg.engines import LocalEngine
from privagg.errors import PrivaggInputError
from privagg.queries import Query
from privagg.releases import build
from privagg.releases.core import effective_bounds, resolution
from privagg.releases.inputs import resolve
from privagg.schema import _unique_compact_ints, validate_table, validated_id_range

AGES = ["18-24", "25-34", "35-44"]


def _users(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "user_id": np.arange(n, dtype=np.int64) * 3 + 10,
        "age_band": pd.Categorical(rng.choice(AGES, n), categories=AGES),
        "gender": pd.Categorical(rng.choice(["female", "male"], n)),
        "arpu": rng.gamma(2.0, 15.0, n),
        "opt_in": rng.random(n) >= 0.25,
    })


def _totals(users: pd.DataFrame, keys: pa.KeySet):
    query = Query("segment_mean", level=None, by=("age_band", "gender"), column="arpu", keys=keys)
    eff = effective_bounds(query, pa.Bounds(lower=0, upper=100))
    inputs = resolve(users, query, users=users, cells=None, keys=keys)
    contrib = build.contributions(query, inputs, keys, eff)
    return inputs, LocalEngine().bounded_totals(contrib, eff, dense=True, sum_unit=resolution(0, 100))


def test_opted_out_subscribers_change_nothing(monkeypatch):
    """What opted-out subscribers hold (segments, values) changes no total, and the users table is not copied:
    consent reaches the engine as a mask over its rows."""
    monkeypatch.setattr(build, "CHUNK_ROWS", 50)
    users = _users(600, seed=1)
    keys = pa.KeySet.from_values(age_band=AGES, gender=["female", "male"])
    inputs, before = _totals(users, keys)
    assert inputs.user_mask is not None and np.shares_memory(inputs.users["arpu"].to_numpy(), users["arpu"].to_numpy())
    changed = users.copy()
    out = ~changed["opt_in"].to_numpy()
    changed.loc[out, "arpu"] = 1e6
    changed.loc[out, "age_band"] = "18-24"
    _, after = _totals(changed, keys)
    assert np.array_equal(before.counts, after.counts) and np.array_equal(before.sums, after.sums)
    assert before.counts.sum() == int(users["opt_in"].sum())
    # The check is not vacuous: the same change to consenting subscribers moves the totals.
    moved = users.copy()
    moved.loc[~out, "arpu"] = 1e6
    _, wrong = _totals(moved, keys)
    assert not np.array_equal(before.sums, wrong.sums)


def test_segment_stats_on_a_categorical_users_table(monkeypatch):
    """The public function releases every public key over the binned path, with its usual record."""
    monkeypatch.setattr(build, "CHUNK_ROWS", 50)
    users = _users(400, seed=2)
    keys = pa.KeySet.from_values(age_band=AGES, gender=["female", "male"])
    rel = pa.segment_stats(users, by=["age_band", "gender"], measure="mean", column="arpu", epsilon=1.0,
                           keys=keys, bounds=pa.Bounds(lower=0, upper=100))
    table = rel.to_pandas()
    assert len(table) == 6 and table["value"].between(0, 100).all()
    assert rel.privacy.parameters["sum_unit"] == resolution(0, 100)


@pytest.mark.parametrize("offset", [0, 10**12, -(10**12)], ids=["from-zero", "large", "negative"])
def test_duplicate_ids_found_on_every_thread(offset):
    """The uniqueness check marks ids in blocks on two threads; a duplicate in either block, or one id
    repeated across the two, is found with the schema's error message, wherever the id range lies."""
    n = (1 << 21) + 5  # two blocks of rows
    ids = np.random.default_rng(3).permutation(n).astype(np.int64) + offset
    assert _unique_compact_ints(ids, int(ids.min()), int(ids.max()))
    for where in (7, n - 3):
        dup = ids.copy()
        dup[where] = dup[n // 2 if where < n // 2 else 0]
        assert not _unique_compact_ints(dup, int(dup.min()), int(dup.max()))
    users = pd.DataFrame({"user_id": dup, "opt_in": np.ones(n, dtype=bool)})
    with pytest.raises(PrivaggInputError, match=re.escape("table 'users', column 'user_id': has duplicate ids, e.g. ")):
        validate_table(users, "users")


def test_validated_id_range_is_the_range_the_uniqueness_check_read():
    """The schema check hands its id range on (a release reads it instead of passing over the ids again):
    it is the exact (min, max) of every row, opted out or not, and ``validate_table`` still returns the table."""
    rng = np.random.default_rng(5)
    ids = rng.permutation(3 * (1 << 20)).astype(np.int64) + 7_000_000
    users = pd.DataFrame({"user_id": ids, "opt_in": rng.random(len(ids)) < 0.5})
    assert validated_id_range(users, "users") == (7_000_000, 7_000_000 + len(ids) - 1)
    assert validate_table(users, "users") is users
    users.loc[3, "user_id"] = users.loc[4, "user_id"]
    with pytest.raises(PrivaggInputError, match="has duplicate ids"):
        validated_id_range(users, "users")
