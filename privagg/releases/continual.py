"""Continual release: daily footfall published for an open-ended period with a tree-based counter.

The binary mechanism (Dwork, Naor, Pitassi, Rothblum 2010; Chan, Shi, Song
2011): day ``t`` (0-based) is a leaf; every dyadic block of days
``[j 2^h, (j+1) 2^h)`` is a node of level ``h``, and a node is noised and
published the day its block completes. Any range of days is the sum of at
most ``2 log2(T)`` complete nodes, so its noise grows with ``log T``, not
with the length of the range.

Privacy unit: **one subscriber-day** (the unit the per-day bounds protect).
Each day a subscriber adds at most ``max_partitions`` distinct keys, 1 each
(``bounded_daily_footfall``). Within one level the nodes cover disjoint
days, so one subscriber-day changes exactly one node per level by at most
that bound; across levels the releases compose sequentially. A subscriber-day
of a tree with ``L`` levels therefore costs ``L x`` the loss of one node
level. With horizon ``T`` a day lies in ``floor(log2 T) + 1`` nodes.

Ledger: the counter charges its budget once per level, *before* the first
node of that level exists: at construction for the levels that the stated
``horizon`` needs, then one more node-level loss the day a block of a new
size first completes (day ``2^h``) if the period runs past the horizon. A
refused charge (:class:`~privagg.errors.BudgetExceededError`) draws nothing,
so publication stops and nothing already published changes.

Estimates (post-processing of published nodes only):

* :meth:`TreeCounter.range_total` — the sum of the O(log T) dyadic nodes that
  tile the range (unbiased; variance = the sum of their noise variances);
* :meth:`TreeCounter.consistent_range_total` — the best linear unbiased
  estimate from *all* published nodes (least squares over the tree, as
  Hay et al. 2010 / Honaker 2015), never worse than the dyadic sum.

Both come with noise-only intervals (a normal approximation to the sum of
independent discrete noises; they cover the bounded aggregate, not the
bias of bounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from privagg.dp.budget import Budget
from privagg.dp.mechanisms import NoiseMechanism, check_loss, gaussian, laplace, zcdp_epsilon
from privagg.dp.units import Loss
from privagg.errors import PrivaggInputError


def block_sizes(branching: tuple[int, ...], levels: int) -> list[int]:
    """Days covered by one node of each level: 1, then times each branching factor (the last repeats)."""
    sizes = [1]
    for h in range(1, levels):
        sizes.append(sizes[-1] * branching[min(h - 1, len(branching) - 1)])
    return sizes


def tree_levels(horizon: int, branching: tuple[int, ...] = (2,)) -> int:
    """Levels of complete nodes in a tree over ``horizon`` days (binary: ``floor(log2 horizon) + 1``).

    Examples
    --------
    >>> tree_levels(28), tree_levels(32), tree_levels(1), tree_levels(28, (7, 4))
    (5, 6, 1, 3)
    """
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise PrivaggInputError(f"horizon={horizon!r} must be a whole number of days >= 1. Fix: pass e.g. horizon=28.")
    levels = 1
    while block_sizes(branching, levels + 1)[-1] <= horizon:
        levels += 1
    return levels


def node_mechanism(kind: str, node_loss: float, max_partitions: int) -> NoiseMechanism:
    """The OpenDP noise of one node level: a subscriber-day moves one node of the level by at most
    ``max_partitions`` keys, 1 each (l1 = L0, l2 = sqrt(L0))."""
    if kind == "laplace":
        return laplace(check_loss("epsilon", node_loss), int(max_partitions))
    if kind == "gaussian":
        return gaussian(check_loss("rho", node_loss), math.sqrt(max_partitions))
    raise PrivaggInputError(f"mechanism={kind!r} is unknown. Fix: use 'laplace' or 'gaussian'.")


def level_loss(kind: str, node_loss: float, delta: float = 0.0) -> Loss:
    """The :class:`Loss` of one node level per subscriber-day (Laplace: epsilon; Gaussian: rho)."""
    if kind == "laplace":
        return Loss(epsilon=node_loss)
    return Loss(epsilon=zcdp_epsilon(node_loss, delta) if delta > 0 else math.inf, delta=delta, rho=node_loss)


@dataclass
class TreeCounter:
    """A tree-based continual counter of a vector of keys (e.g. footfall per zone), one leaf per day.

    Parameters
    ----------
    n_keys
        Length of each day's vector (the public key domain, fixed for the period).
    loss
        Total loss per subscriber-day over ``horizon`` days: epsilon (``mechanism="laplace"``) or rho
        (``"gaussian"``), split over the ``tree_levels(horizon, branching)`` levels by ``level_shares``.
    budget
        The :class:`~privagg.dp.budget.Budget` charged (per subscriber-day) before any node is noised.
    max_partitions
        Keys one subscriber may add per day (the bound the daily vectors were made with).
    horizon
        Days the charge made at construction covers; the counter keeps going past it, charging one
        more level (at ``loss / levels``) the day a block of a new size first completes.
    mechanism
        ``"gaussian"`` (discrete Gaussian, zCDP; variance grows with the number of levels, not its
        square) or ``"laplace"`` (discrete Laplace, pure DP).
    branching
        Children per node, level by level (the last factor repeats): ``(2,)`` is the binary mechanism;
        ``(7, 4)`` a calendar tree of days, weeks and 4-week blocks, whose week nodes answer weekly totals
        with one node.
    level_shares
        Share of ``loss`` per level, bottom (days) first (default: equal). Normalised to sum to 1.
    delta
        Only for reporting a Gaussian level's epsilon in the ledger entry (zCDP budgets charge rho).

    Examples
    --------
    >>> b = Budget(rho=1.0)
    >>> c = TreeCounter(n_keys=2, loss=0.5, budget=b, horizon=4)
    >>> for day in range(4):
    ...     _ = c.add_day(np.array([100, 50]))
    >>> round(b.spent["rho"], 6)
    0.5
    >>> c.range_total(0, 4).shape
    (2,)
    """

    n_keys: int
    loss: float
    budget: Budget
    max_partitions: int = 1
    horizon: int = 28
    mechanism: str = "gaussian"
    branching: tuple[int, ...] = (2,)
    level_shares: tuple[float, ...] | None = None
    delta: float = 0.0
    statistic: str = "continual footfall"
    days: int = field(init=False, default=0)
    #: (level, index) -> published noisy node vector
    nodes: dict[tuple[int, int], np.ndarray] = field(init=False, default_factory=dict)
    _pending: dict[int, list[np.ndarray]] = field(init=False, default_factory=dict)
    _level_losses: list[float] = field(init=False, default_factory=list)
    _mechanisms: list[NoiseMechanism] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.max_partitions, bool) or not isinstance(self.max_partitions, (int, np.integer)) \
                or self.max_partitions < 1:
            raise PrivaggInputError(f"max_partitions={self.max_partitions!r} must be a whole number >= 1. "
                                    "Fix: pass e.g. max_partitions=1.")
        self.branching = tuple(int(b) for b in self.branching)
        if not self.branching or any(b < 2 for b in self.branching):
            raise PrivaggInputError(f"branching={self.branching!r} needs factors >= 2. Fix: pass e.g. (2,) or (7, 4).")
        levels = tree_levels(self.horizon, self.branching)
        shares = np.ones(levels) if self.level_shares is None else np.asarray(self.level_shares, dtype=float)
        if shares.shape != (levels,) or (shares <= 0).any():
            raise PrivaggInputError(f"level_shares={self.level_shares!r} must give {levels} positive shares (one "
                                    f"per level over horizon={self.horizon}). Fix: pass {levels} numbers > 0.")
        self.node_loss = float(self.loss) / levels  # the loss of a level added past the horizon
        self._charge([float(self.loss) * s / shares.sum() for s in shares])

    # -- privacy ---------------------------------------------------------------------------------------
    @property
    def levels_charged(self) -> int:
        return len(self._level_losses)

    @property
    def cost(self) -> Loss:
        """What the tree has been charged so far per subscriber-day: the sum of its levels' losses."""
        return sum(level_loss(self.mechanism, x, self.delta) for x in self._level_losses)

    @property
    def noise(self) -> NoiseMechanism:
        """The bottom (daily) level's noise."""
        return self._mechanisms[0]

    def level_noise(self, level: int) -> NoiseMechanism:
        return self._mechanisms[level]

    def block(self, level: int) -> int:
        """Days covered by one node of ``level``."""
        return block_sizes(self.branching, level + 1)[-1]

    def _charge(self, losses: list[float]) -> None:
        """Check and charge more node levels, before any of their nodes is noised."""
        mechanisms = [node_mechanism(self.mechanism, x, int(self.max_partitions)) for x in losses]
        loss = sum(level_loss(self.mechanism, x, self.delta) for x in losses)
        self.budget.check(loss, self.statistic)
        self.budget.charge(loss, statistic=self.statistic, window="subscriber-day", parameters={
            "mechanism": self.mechanism, "levels": len(losses), "from_level": self.levels_charged,
            "level_losses": losses, "max_partitions": int(self.max_partitions), "branching": list(self.branching),
            "horizon": self.horizon})
        self._level_losses.extend(losses)
        self._mechanisms.extend(mechanisms)

    # -- publication -----------------------------------------------------------------------------------
    def add_day(self, counts: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
        """Add one day's bounded counts; noise and return the nodes that complete today.

        ``counts`` must be bounded per subscriber-day to ``max_partitions`` keys (see
        :func:`bounded_daily_footfall`). Exact sums of completed children are kept only until their
        parent completes; published nodes are noised once and never change.
        """
        counts = np.asarray(counts)
        if counts.shape != (self.n_keys,):
            raise PrivaggInputError(f"counts has shape {counts.shape}, expected ({self.n_keys},). "
                                    "Fix: pass one value per key of the counter's key domain, in its order.")
        t = self.days
        top = 0  # highest level whose block completes today
        while (t + 1) % self.block(top + 1) == 0:
            top += 1
        if top + 1 > self.levels_charged:
            self._charge([self.node_loss] * (top + 1 - self.levels_charged))
        published = {}
        exact = counts.astype(np.int64)
        for h in range(top + 1):
            if h > 0:  # a node is the exact sum of its children, kept until now
                exact = np.sum(self._pending.pop(h - 1), axis=0)
            node = (h, (t + 1) // self.block(h) - 1)
            self.nodes[node] = self._mechanisms[h].sample(exact).astype(np.int64)
            published[node] = self.nodes[node]
            self._pending.setdefault(h, []).append(exact)
        self.days += 1
        return published

    # -- estimates (published nodes only) ---------------------------------------------------------------
    def _check_range(self, start: int, stop: int) -> None:
        if not (0 <= start < stop <= self.days):
            raise PrivaggInputError(f"range [{start}, {stop}) is not within the {self.days} published days. "
                                    f"Fix: pass 0 <= start < stop <= {self.days}.")

    def dyadic_nodes(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The fewest published nodes that tile days ``[start, stop)`` (the canonical decomposition)."""
        self._check_range(start, stop)
        out, t = [], start
        while t < stop:
            h = 0
            while (t % self.block(h + 1) == 0 and t + self.block(h + 1) <= stop
                   and (h + 1, t // self.block(h + 1)) in self.nodes):
                h += 1
            out.append((h, t // self.block(h)))
            t += self.block(h)
        return out

    def range_total(self, start: int, stop: int) -> np.ndarray:
        """Noisy total per key over days ``[start, stop)``: the sum of its canonical nodes."""
        return np.sum([self.nodes[n] for n in self.dyadic_nodes(start, stop)], axis=0).astype(float)

    def range_variance(self, start: int, stop: int) -> float:
        """Noise variance of :meth:`range_total` (the same for every key)."""
        return float(sum(self._mechanisms[h].variance() for h, _ in self.dyadic_nodes(start, stop)))

    def _design(self) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
        keys = sorted(self.nodes)
        a = np.zeros((len(keys), self.days))
        for i, (h, j) in enumerate(keys):
            a[i, j * self.block(h):(j + 1) * self.block(h)] = 1.0
        var = np.array([self._mechanisms[h].variance() for h, _ in keys])
        return keys, a, var

    def consistent_days(self) -> tuple[np.ndarray, np.ndarray]:
        """Generalised least-squares daily values (days x keys) from all published nodes, and their covariance.

        The best linear unbiased estimate, each node weighted by the inverse of its level's noise
        variance; it reads only published nodes.
        """
        keys, a, var = self._design()
        y = np.stack([self.nodes[k] for k in keys]).astype(float)
        w = 1.0 / var
        cov = np.linalg.inv(a.T @ (a * w[:, None]))
        return cov @ a.T @ (y * w[:, None]), cov

    def consistent_range_total(self, start: int, stop: int) -> tuple[np.ndarray, float]:
        """Best linear unbiased total per key over ``[start, stop)`` and its noise variance."""
        self._check_range(start, stop)
        days, cov = self.consistent_days()
        w = np.zeros(self.days)
        w[start:stop] = 1.0
        return days[start:stop].sum(axis=0), float(w @ cov @ w)


def range_interval(estimate: np.ndarray, variance: float, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Normal-approximation interval ``estimate +/- z sqrt(variance)`` for the noise of a sum of nodes.

    Examples
    --------
    >>> import numpy as np
    >>> low, high = range_interval(np.array([100.0]), variance=25.0)
    >>> round(float(low[0]), 1), round(float(high[0]), 1)
    (90.2, 109.8)
    """
    from scipy.stats import norm

    half = float(norm.ppf(0.5 + level / 2)) * math.sqrt(variance)
    return estimate - half, estimate + half


def bounded_daily_footfall(events: pd.DataFrame, key_of_cell: pd.Series, keys: np.ndarray, day_start: Any,
                           max_partitions: int = 1, seed: int = 0) -> np.ndarray:
    """Distinct subscribers per key on one day, each subscriber kept in at most ``max_partitions`` keys.

    Which keys a subscriber keeps depends only on that subscriber's own events and a per-row hash
    (no other subscriber's data), so one subscriber-day changes at most ``max_partitions`` counts by 1.

    Parameters
    ----------
    events
        ``user_id``, ``cell_id``, ``ts`` (opted-out subscribers already removed).
    key_of_cell
        Maps ``cell_id`` to the key (cell, zone or district id).
    keys
        The public key domain, in the counter's order.
    day_start
        Midnight of the day.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> events = pd.DataFrame({"user_id": [1, 1, 2], "cell_id": [10, 11, 10],
    ...                        "ts": pd.to_datetime(["2026-01-05 08:00", "2026-01-05 18:00", "2026-01-05 09:00"])})
    >>> bounded_daily_footfall(events, pd.Series({10: 0, 11: 1}), np.array([0, 1]), "2026-01-05", max_partitions=2)
    array([2, 1])
    """
    day_start = pd.Timestamp(day_start)
    day = events[(events["ts"] >= day_start) & (events["ts"] < day_start + pd.Timedelta(days=1))]
    pairs = pd.DataFrame({"user_id": day["user_id"].to_numpy(),
                          "key": key_of_cell.reindex(day["cell_id"].to_numpy()).to_numpy()}).drop_duplicates()
    rank = pd.util.hash_pandas_object(pairs, index=False, hash_key=f"privagg{seed:08d}".ljust(16)[:16]).to_numpy()
    pairs = pairs.assign(rank=rank).sort_values(["user_id", "rank"])
    kept = pairs[pairs.groupby("user_id").cumcount() < max_partitions]
    counts = kept.groupby("key").size()
    return counts.reindex(keys, fill_value=0).to_numpy(dtype=np.int64)
