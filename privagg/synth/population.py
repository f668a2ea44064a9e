"""Synthetic subscribers: demographics, contract, home and work, consent, segment tags.

Everything is drawn with array operations over all subscribers at once.

- ``age_band`` from an adult population pyramid; ``gender`` 50/50.
- ``contract``: postpaid more likely for working ages; ``arpu`` log-normal,
  higher for postpaid and working ages; ``device_tier`` from ARPU plus noise.
- ``home_cell``: drawn with weights by land use (residential cells hold most
  homes) and region.
- ``work_cell``: a gravity model from home, ``P(j | i) ∝ A_j (1 + t_ij / t0)^-a``
  with attractiveness ``A_j`` by land use (offices most) and shortest-path
  travel time ``t_ij``. Subscribers without a daily routine (part of the
  students, the retired, the unemployed) have ``work_cell == home_cell``.
- ``opt_in``: Bernoulli with a configurable share.
- ``tag_*``: boolean segment tags (interests), each logistic in age, gender,
  contract, ARPU and device tier, so they correlate with demographics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from privagg.errors import PrivaggInputError
from privagg.schema import AGE_BANDS, CONTRACTS, DEVICE_TIERS, GENDERS
from privagg.synth.city import City

AGE_SHARES = np.array([0.12, 0.19, 0.19, 0.18, 0.16, 0.16])
POSTPAID_BY_AGE = np.array([0.45, 0.70, 0.78, 0.78, 0.72, 0.60])
ARPU_AGE_FACTOR = np.array([0.85, 1.05, 1.10, 1.05, 0.95, 0.80])
# Share with a daily routine outside home (work or study), by age band.
ROUTINE_BY_AGE = np.array([0.80, 0.86, 0.87, 0.85, 0.68, 0.12])

# Relative weight of a cell as a home / workplace, by land use
# (residential, office, retail, transport, leisure, stadium).
HOME_WEIGHT = np.array([1.0, 0.08, 0.15, 0.05, 0.10, 0.0])
WORK_WEIGHT = np.array([0.4, 10.0, 3.0, 2.0, 1.5, 0.3])
HOME_REGION_WEIGHT = np.array([1.0, 1.0, 0.6])  # core, town, rural

# Segment tags: name -> (intercept, age, male, postpaid, log-arpu, premium device).
# Features are standardised so coefficients read as log-odds per standard deviation.
_HAND_TAGS: dict[str, tuple[float, ...]] = {
    "sports": (-1.2, -0.4, 1.1, 0.1, 0.2, 0.1),
    "football": (-1.8, -0.3, 1.4, 0.0, 0.1, 0.0),
    "travel": (-1.5, 0.1, 0.0, 0.4, 0.9, 0.5),
    "finance": (-1.9, 0.6, 0.3, 0.4, 0.8, 0.3),
    "gaming": (-1.6, -1.3, 0.9, -0.2, 0.0, 0.4),
    "music": (-1.0, -0.9, 0.0, 0.0, 0.1, 0.2),
    "fashion": (-1.6, -0.6, -1.2, 0.1, 0.4, 0.3),
    "beauty": (-1.8, -0.4, -1.6, 0.0, 0.3, 0.2),
    "parenting": (-2.2, 0.1, -0.5, 0.3, 0.2, 0.0),
    "luxury": (-3.0, 0.2, 0.0, 0.5, 1.4, 0.9),
    "fitness": (-1.4, -0.8, 0.1, 0.2, 0.4, 0.3),
    "tech": (-1.5, -0.5, 0.8, 0.2, 0.5, 0.9),
    "gambling": (-2.6, -0.2, 0.9, -0.4, -0.2, 0.0),
    "news": (-1.2, 1.0, 0.2, 0.2, 0.2, 0.0),
    "health": (-1.6, 1.1, -0.3, 0.1, 0.1, 0.0),
}
_OTHER_TAGS = (
    "pets", "cars", "streaming", "food", "cooking", "home_garden", "diy", "outdoor", "shopping",
    "real_estate", "education", "business", "crypto", "arts", "books", "movies", "sustainability",
)


def _tag_table() -> dict[str, np.ndarray]:
    """Coefficients of every tag; the ones not written out are drawn once from a fixed seed."""
    rng = np.random.default_rng(20260105)
    table = {name: np.array(c) for name, c in _HAND_TAGS.items()}
    for name in _OTHER_TAGS:
        coef = rng.normal(0.0, 0.6, 6)
        coef[0] = rng.uniform(-2.6, -0.8)
        table[name] = coef
    return table


TAG_COEFFICIENTS = _tag_table()
TAG_NAMES = tuple(TAG_COEFFICIENTS)


@dataclass(frozen=True)
class Population:
    """Subscribers as arrays (codes) plus the ``users`` table.

    ``age``, ``gender``, ``contract``, ``device`` are codes into the tuples of
    :mod:`privagg.schema`; ``home``, ``work`` are cell ids; ``routine`` says who
    goes to work or study on weekdays.
    """

    users: pd.DataFrame
    age: np.ndarray
    gender: np.ndarray
    contract: np.ndarray
    device: np.ndarray
    arpu: np.ndarray
    home: np.ndarray
    work: np.ndarray
    routine: np.ndarray
    tags: dict[str, np.ndarray]


def row_sampler(weights: np.ndarray) -> np.ndarray:
    """Flattened, row-offset cumulative distribution for :func:`sample_rows`.

    ``weights`` is ``(n, m)``, non-negative, with a positive sum in every row.
    """
    w = np.asarray(weights, dtype=np.float64)
    cdf = np.cumsum(w, axis=1)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    return (cdf + np.arange(len(w))[:, None]).ravel()


def sample_rows(flat_cdf: np.ndarray, m: int, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For every entry of ``rows``, draw a column from that row's distribution (vectorised)."""
    rows = np.asarray(rows, dtype=np.int64)
    needles = rows + rng.random(len(rows))
    # Searching sorted needles is cache-friendly (each search starts where the last ended).
    order = np.argsort(needles)
    idx = np.empty(len(rows), dtype=np.int64)
    idx[order] = np.searchsorted(flat_cdf, needles[order], side="right")
    return np.clip(idx - rows * m, 0, m - 1)


def labels(codes: np.ndarray, names: tuple[str, ...]) -> pd.Series:
    """A string column holding ``names[code]`` for every code (built through Arrow: fast at millions of rows)."""
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        return pd.Series(np.asarray(names)[codes]).astype(str)
    arr = pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)), pa.array(list(names)))
    return pd.Series(arr.cast(pa.large_string()).to_pandas()).astype(str)


def gumbel_top_k(log_weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a weighted sample of ``k`` items without replacement (Gumbel top-k)."""
    k = int(min(max(k, 0), len(log_weights)))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    keys = log_weights + rng.gumbel(size=len(log_weights))
    return np.sort(np.argpartition(-keys, k - 1)[:k])


def generate_population(
    city: City,
    n_users: int,
    *,
    opt_in_share: float = 0.9,
    work_deterrence_s: float = 600.0,
    work_deterrence_exponent: float = 3.0,
    rng: np.random.Generator,
) -> Population:
    """Draw ``n_users`` subscribers living in ``city``.

    Parameters
    ----------
    city
        The city from :func:`privagg.synth.city.build_city`.
    n_users
        Number of subscribers.
    opt_in_share
        Share of subscribers who consented (``opt_in == True``).
    work_deterrence_s, work_deterrence_exponent
        ``t0`` (seconds) and ``a`` of the gravity model's deterrence ``(1 + t / t0)^-a``.
    rng
        Random generator.
    """
    if not 0.0 <= opt_in_share <= 1.0:
        raise PrivaggInputError(f"opt_in_share={opt_in_share!r}: not a share. Fix: pass a number in [0, 1].")
    n = int(n_users)
    age = rng.choice(len(AGE_BANDS), size=n, p=AGE_SHARES).astype(np.int8)
    gender = (rng.random(n) < 0.5).astype(np.int8)  # 0 female, 1 male
    contract = (rng.random(n) < POSTPAID_BY_AGE[age]).astype(np.int8)  # 0 prepaid, 1 postpaid
    log_arpu = np.where(contract == 1, np.log(32.0), np.log(11.0)) + np.log(ARPU_AGE_FACTOR[age])
    log_arpu = log_arpu + rng.normal(0.0, np.where(contract == 1, 0.35, 0.45))
    arpu = np.round(np.exp(log_arpu), 2)
    device_score = (log_arpu - np.log(20.0)) / 0.6 + rng.normal(0.0, 0.8, n) - 0.3 * (age >= 4)
    device = np.digitize(device_score, [-0.5, 0.9]).astype(np.int8)  # basic, mid, premium

    # Homes by land use and region; workplaces by a gravity model from home.
    n_cells = city.n_cells
    home_w = HOME_WEIGHT[city.land_use] * HOME_REGION_WEIGHT[city.region]
    home = rng.choice(n_cells, size=n, p=home_w / home_w.sum()).astype(np.int64)
    attract = WORK_WEIGHT[city.land_use]
    gravity = attract[None, :] * (1.0 + city.travel_time_s / work_deterrence_s) ** -work_deterrence_exponent
    work_drawn = sample_rows(row_sampler(gravity), n_cells, home, rng)
    routine = rng.random(n) < ROUTINE_BY_AGE[age]
    work = np.where(routine, work_drawn, home).astype(np.int64)

    opt_in = rng.random(n) < opt_in_share

    # Segment tags, logistic in standardised demographics.
    features = np.column_stack([
        np.ones(n),
        (age - 2.5) / 1.7,
        (gender - 0.5) * 2.0,
        (contract - 0.5) * 2.0,
        (log_arpu - log_arpu.mean()) / max(log_arpu.std(), 1e-9),
        (device == 2).astype(float) * 2.0 - 1.0,
    ])
    coef = np.column_stack(list(TAG_COEFFICIENTS.values())).astype(np.float32)  # (6, n_tags)
    # Tag = Bernoulli(sigmoid(logit)), drawn as logit + logistic noise > 0 (float32: millions of rows).
    logit = features.astype(np.float32) @ coef
    u = rng.random(logit.shape, dtype=np.float32)
    np.clip(u, np.float32(1e-7), np.float32(1 - 1e-7), out=u)
    drawn = logit > np.log(1 / u - 1)
    tags = {f"tag_{name}": drawn[:, j] for j, name in enumerate(TAG_NAMES)}

    users = pd.DataFrame({
        "user_id": np.arange(n, dtype=np.int64),
        "age_band": labels(age, AGE_BANDS),
        "gender": labels(gender, GENDERS),
        "contract": labels(contract, CONTRACTS),
        "arpu": arpu.astype(np.float64),
        "device_tier": labels(device, DEVICE_TIERS),
        "home_cell": home,
        "work_cell": work,
        "opt_in": opt_in,
        **tags,
    })
    return Population(
        users=users, age=age, gender=gender, contract=contract, device=device, arpu=arpu,
        home=home, work=work, routine=routine, tags=tags,
    )


__all__ = ["Population", "TAG_NAMES", "generate_population", "gumbel_top_k", "labels", "row_sampler", "sample_rows"]
