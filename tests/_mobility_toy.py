"""A tiny hand-made population for attack tests (no dependency on privagg.synth)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def toy_events(n_users: int = 300, n_cells: int = 30, days: int = 2, seed: int = 0) -> pd.DataFrame:
    """Events (user_id, cell_id, ts): home at night, work by day, random visits now and then."""
    rng = np.random.default_rng(seed)
    home = rng.integers(0, n_cells, n_users)
    work = rng.integers(0, n_cells, n_users)
    hours = np.arange(days * 24)
    hod = hours % 24
    daytime = (hod >= 9) & (hod < 18)
    cell = np.where(daytime[None, :], work[:, None], home[:, None])
    wander = rng.random((n_users, hours.size)) < 0.15
    cell = np.where(wander, rng.integers(0, n_cells, (n_users, hours.size)), cell)
    seen = rng.random((n_users, hours.size)) < 0.7
    users, hh = np.nonzero(seen)
    ts = pd.Timestamp("2026-01-05") + pd.to_timedelta(hh, unit="h") + pd.to_timedelta(rng.integers(0, 3600, users.size), unit="s")
    return pd.DataFrame({"user_id": users.astype(np.int64), "cell_id": cell[users, hh].astype(np.int64), "ts": ts})
