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


def tree_levels(horizon: int) -> int:
    """Levels of complete nodes in a tree over ``horizon`` days: ``floor(log2 horizon) + 1``.

    Examples
    --------
    >>> tree_levels(28), tree_levels(32), tree_levels(1)
    (5, 6, 1)
    """
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise PrivaggInputError(f"horizon={horizon!r} must be a whole number of days >= 1. Fix: pass e.g. horizon=28.")
    return int(math.floor(math.log2(int(horizon)))) + 1


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
        (``"gaussian"``). Each of the ``tree_levels(horizon)`` levels gets ``loss / levels``.
    budget
        The :class:`~privagg.dp.budget.Budget` charged (per subscriber-day) before any node is noised.
    max_partitions
        Keys one subscriber may add per day (the bound the daily vectors were made with).
    horizon
        Days the charge made at construction covers; the counter keeps going past it, charging one
        more node level the day a block of a new size first completes.
    mechanism
        ``"gaussian"`` (discrete Gaussian, zCDP; variance grows with the number of levels, not its
        square) or ``"laplace"`` (discrete Laplace, pure DP).
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
    delta: float = 0.0
    statistic: str = "continual footfall"
    levels_charged: int = field(init=False, default=0)
    days: int = field(init=False, default=0)
    #: (level, index) -> published noisy node vector
    nodes: dict[tuple[int, int], np.ndarray] = field(init=False, default_factory=dict)
    _partial: dict[int, np.ndarray] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.max_partitions, bool) or not isinstance(self.max_partitions, (int, np.integer)) \
                or self.max_partitions < 1:
            raise PrivaggInputError(f"max_partitions={self.max_partitions!r} must be a whole number >= 1. "
                                    "Fix: pass e.g. max_partitions=1.")
        levels = tree_levels(self.horizon)
        self.node_loss = float(self.loss) / levels
        self.noise = node_mechanism(self.mechanism, self.node_loss, int(self.max_partitions))
        self._charge(levels)

    # -- privacy ---------------------------------------------------------------------------------------
    @property
    def level_cost(self) -> Loss:
        """What one node level costs per subscriber-day."""
        return level_loss(self.mechanism, self.node_loss, self.delta)

    @property
    def cost(self) -> Loss:
        """What the tree has been charged so far per subscriber-day: levels x one level's loss."""
        return self.level_cost * self.levels_charged

    def _charge(self, levels: int) -> None:
        """Check and charge ``levels`` more node levels, before any of their nodes is noised."""
        if levels <= 0:
            return
        loss = self.level_cost * levels
        self.budget.check(loss, self.statistic)
        self.budget.charge(loss, statistic=self.statistic, window="subscriber-day", parameters={
            "mechanism": self.mechanism, "levels": levels, "from_level": self.levels_charged,
            "node_loss": self.node_loss, "max_partitions": int(self.max_partitions), "horizon": self.horizon})
        self.levels_charged += levels

    # -- publication -----------------------------------------------------------------------------------
    def add_day(self, counts: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
        """Add one day's bounded counts; noise and return the nodes that complete today.

        ``counts`` must be bounded per subscriber-day to ``max_partitions`` keys (see
        :func:`bounded_daily_footfall`). The exact partial sums are kept only until their node
        completes; published nodes are noised once and never change.
        """
        counts = np.asarray(counts)
        if counts.shape != (self.n_keys,):
            raise PrivaggInputError(f"counts has shape {counts.shape}, expected ({self.n_keys},). "
                                    "Fix: pass one value per key of the counter's key domain, in its order.")
        t = self.days
        top = ((t + 1) & -(t + 1)).bit_length() - 1  # levels 0..top complete today: 2^top divides t + 1
        if top + 1 > self.levels_charged:
            self._charge(top + 1 - self.levels_charged)
        published = {}
        exact = counts.astype(np.int64)
        for h in range(top + 1):
            node = (h, (t + 1) // (1 << h) - 1)
            if h > 0:  # a node is the exact sum of its two children; the left one was kept until now
                exact = self._partial.pop(h - 1) + exact
            self.nodes[node] = self.noise.sample(exact).astype(np.int64)
            published[node] = self.nodes[node]
        # the node completed at level `top` is a left child: keep its exact sum for its parent
        self._partial[top] = exact
        self.days += 1
        return published

    # -- estimates (published nodes only) ---------------------------------------------------------------
    def _check_range(self, start: int, stop: int) -> None:
        if not (0 <= start < stop <= self.days):
            raise PrivaggInputError(f"range [{start}, {stop}) is not within the {self.days} published days. "
                                    f"Fix: pass 0 <= start < stop <= {self.days}.")

    def dyadic_nodes(self, start: int, stop: int) -> list[tuple[int, int]]:
        """The fewest published nodes that tile days ``[start, stop)`` (at most 2 per level)."""
        self._check_range(start, stop)
        out, t = [], start
        while t < stop:
            h = 0
            while t % (1 << (h + 1)) == 0 and t + (1 << (h + 1)) <= stop and (h + 1, t >> (h + 1)) in self.nodes:
                h += 1
            out.append((h, t >> h))
            t += 1 << h
        return out

    def range_total(self, start: int, stop: int) -> np.ndarray:
        """Noisy total per key over days ``[start, stop)``: the sum of its dyadic nodes."""
        return np.sum([self.nodes[n] for n in self.dyadic_nodes(start, stop)], axis=0).astype(float)

    def range_variance(self, start: int, stop: int) -> float:
        """Noise variance of :meth:`range_total` (the same for every key)."""
        return len(self.dyadic_nodes(start, stop)) * self.noise.variance()

    def _design(self) -> tuple[list[tuple[int, int]], np.ndarray]:
        keys = sorted(self.nodes)
        a = np.zeros((len(keys), self.days))
        for i, (h, j) in enumerate(keys):
            a[i, j << h:(j + 1) << h] = 1.0
        return keys, a

    def consistent_days(self) -> tuple[np.ndarray, np.ndarray]:
        """Least-squares daily values (days x keys) from all published nodes, and their covariance (days x days).

        Every node has the same noise variance, so ordinary least squares is the best linear unbiased
        estimate; it reads only published nodes.
        """
        keys, a = self._design()
        y = np.stack([self.nodes[k] for k in keys]).astype(float)
        gram_inv = np.linalg.inv(a.T @ a)
        return gram_inv @ a.T @ y, gram_inv * self.noise.variance()

    def consistent_range_total(self, start: int, stop: int) -> tuple[np.ndarray, float]:
        """Best linear unbiased total per key over ``[start, stop)`` and its noise variance."""
        self._check_range(start, stop)
        days, cov = self.consistent_days()
        w = np.zeros(self.days)
        w[start:stop] = 1.0
        return days[start:stop].sum(axis=0), float(w @ cov @ w)


def range_interval(estimate: np.ndarray, variance: float, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Normal-approximation interval ``estimate +/- z sqrt(variance)`` for the noise of a sum of nodes."""
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
