"""Hand-made subscriber records for reconstruction tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from privagg.schema import AGE_BANDS, CONTRACTS, GENDERS


def toy_records(n_areas: int = 20, per_area: int = 15, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_areas * per_area
    age_p = np.array([0.12, 0.22, 0.2, 0.18, 0.15, 0.13])
    age = rng.choice(len(AGE_BANDS), n, p=age_p)
    prepaid = rng.random(n) < np.where(age <= 1, 0.5, 0.2)
    return pd.DataFrame({
        "area": np.repeat(np.arange(n_areas), per_area),
        "age_band": np.asarray(AGE_BANDS)[age],
        "gender": np.asarray(GENDERS)[rng.integers(0, 2, n)],
        "contract": np.where(prepaid, CONTRACTS[0], CONTRACTS[1]),
        "tag": rng.random(n) < 0.3,
    })
