"""Small hand-made tables shared by the DP tests (not a test module)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from privagg.world import World

T = pd.Timestamp
DAY0 = T("2026-01-05")


def tiny_world() -> World:
    cells = pd.DataFrame({
        "cell_id": [1, 2, 3, 4], "zone_id": [10, 10, 20, 20], "district_id": [100, 100, 100, 100],
        "x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 0.0, 0.0, 0.0], "land_use": ["retail"] * 4,
    })
    users = pd.DataFrame({
        "user_id": [1, 2, 3], "age_band": ["18-24", "25-34", "18-24"], "gender": ["female", "male", "male"],
        "contract": ["prepaid"] * 3, "arpu": [10.0, 20.0, 30.0], "home_cell": [1, 2, 3], "work_cell": [1, 2, 3],
        "opt_in": [True, True, False], "tag_commuter": [True, False, True],
    })
    stays = pd.DataFrame({
        "user_id": [1, 1, 2, 3], "cell_id": [1, 2, 1, 1],
        "start": [T("2026-01-05 08:30"), T("2026-01-05 10:00"), T("2026-01-05 08:00"), T("2026-01-05 08:00")],
        "end": [T("2026-01-05 09:30"), T("2026-01-05 10:10"), T("2026-01-05 08:59"), T("2026-01-05 12:00")],
    })
    events = pd.DataFrame({"user_id": [1, 2, 3], "cell_id": [1, 1, 1], "ts": [T("2026-01-05 08:31")] * 3})
    trips = pd.DataFrame({
        "user_id": [1, 3], "origin_cell": [1, 1], "destination_cell": [3, 3],
        "depart": [T("2026-01-05 09:30")] * 2, "arrive": [T("2026-01-05 10:00")] * 2,
    })
    return World.from_tables(cells, users, events, stays, trips,
                             meta={"start": "2026-01-05T00:00:00", "end": "2026-01-06T00:00:00"})


def random_world(n_users: int = 300, n_cells: int = 12, stays_per_user: int = 8, seed: int = 0,
                 opt_out: float = 0.1) -> World:
    """A small random world over one day (test data only; the seed is for reproducible tests)."""
    rng = np.random.default_rng(seed)
    cells = pd.DataFrame({
        "cell_id": np.arange(n_cells, dtype=np.int64), "zone_id": np.arange(n_cells, dtype=np.int64) // 3,
        "district_id": np.arange(n_cells, dtype=np.int64) // 6, "x": rng.random(n_cells) * 1000,
        "y": rng.random(n_cells) * 1000, "land_use": ["retail"] * n_cells,
    })
    users = pd.DataFrame({
        "user_id": np.arange(n_users, dtype=np.int64),
        "age_band": rng.choice(["18-24", "25-34", "35-44"], n_users),
        "gender": rng.choice(["female", "male"], n_users),
        "contract": rng.choice(["prepaid", "postpaid"], n_users),
        "arpu": rng.gamma(2.0, 15.0, n_users),
        "home_cell": rng.integers(0, n_cells, n_users), "work_cell": rng.integers(0, n_cells, n_users),
        "opt_in": rng.random(n_users) >= opt_out,
        "tag_commuter": rng.random(n_users) < 0.4, "tag_student": rng.random(n_users) < 0.2,
    })
    n = n_users * stays_per_user
    uid = np.repeat(users["user_id"].to_numpy(), stays_per_user)
    start = DAY0 + pd.to_timedelta(rng.integers(0, 23 * 60, n), unit="min")
    end = start + pd.to_timedelta(rng.integers(0, 180, n), unit="min")
    stays = pd.DataFrame({"user_id": uid, "cell_id": rng.integers(0, n_cells, n), "start": start, "end": end})
    events = pd.DataFrame({"user_id": uid, "cell_id": stays["cell_id"].to_numpy(), "ts": start})
    trips = pd.DataFrame({
        "user_id": uid, "origin_cell": rng.integers(0, n_cells, n), "destination_cell": rng.integers(0, n_cells, n),
        "depart": start, "arrive": end,
    })
    return World.from_tables(cells, users, events, stays, trips,
                             meta={"start": "2026-01-05T00:00:00", "end": "2026-01-06T00:00:00"})
