"""Unicity of mobility traces (de Montjoye, Hidalgo, Verleysen, Blondel, Sci. Rep. 2013).

"Unique in the Crowd: The privacy bounds of human mobility" showed that
four spatio-temporal points (antenna, hour) single out 95% of 1.5 million
subscribers in pseudonymised call-detail records, and that coarsening space
and time lowers this only slowly.

The attack here follows the paper. A *point* is a (location, time bin) pair
at which a subscriber was seen: the location is a cell or a coarser area,
the time bin an hour or a coarser bin of the observed window. For each
sampled target the adversary knows ``p`` of the target's points, drawn at
random from the target's trace (as the paper does); the target is *unique*
if no other trace in the released microdata contains all ``p`` points. This
random-points figure is the share of unique targets, with a Wilson interval;
the headline ``risk`` is the worst case below, which is never lower.

Implementation: traces are a sparse users x points incidence matrix ``M``;
a target's ``p`` points are a column of a sparse selector ``S`` (points x
targets, ``p`` ones per column) and ``(M @ S)[u, t] == p`` exactly when
trace ``u`` contains all of target ``t``'s points. Targets are processed in
batches, so 20,000 subscribers x 7 days take seconds.

Background knowledge: ``p`` random points of the target's own trace, at
the resolution of the release. The random-guess baseline is an adversary
who picks one trace uniformly at random: success ``1 / n_users``.

**Worst case.** De Montjoye's figure is an average over which ``p`` points
the adversary happens to know. The worst case, which scikit-mobility's
``LocationTimeAttack`` reports, is the share of subscribers singled out by
*some* ``p`` of their points: an adversary who knows the right ``p`` (a home
at night, a workplace by day, one rare visit) does at least this well. A
set ``S`` of the target's points singles them out when no other trace
contains all of ``S``, i.e. when ``S`` hits every other trace's complement
within the target's trace: the smallest such ``S`` is a minimum hitting set.
:func:`singling_out_sizes` computes it exactly up to ``p`` for every target:
size 1 from the points' degrees (a point nobody else has), size 2 from the
co-occurrence matrix of the target's points among the traces that overlap it
(a pair no other trace has), sizes 3 and more by a bounded search tree that
branches on the points missing from the most similar remaining trace. A
target whose search exceeds ``node_budget`` nodes is *undecided*: the
worst-case figure then counts them as not singled out (a lower bound) and
``worst_case_upper`` counts them as singled out (an upper bound). Any
superset of a singling-out set singles out too, so the figure never falls as
``p`` grows.

Treatment of repeated points and short traces (both figures): a trace is
the *set* of its distinct points, so a point observed several times counts
once; subscribers with fewer than ``p`` distinct points are not targets (an
adversary cannot know ``p`` distinct points of theirs) and are excluded from
both shares, their number reported as ``n_users - n_eligible``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from privagg.attacks.result import AttackResult, wilson_interval
from privagg.errors import PrivaggInputError

USER_COLUMNS = ("pseudonym", "user_id")
LOCATION_COLUMNS = ("cell_id", "zone_id", "district_id")
TIME_COLUMNS = ("ts", "start", "time")
WORST_CASE = "some k points"
# Above this many (trace, pair of its points) products the size-2 step runs target by target instead of
# through the whole population's co-occurrence matrix (memory).
PAIR_WORK_LIMIT = 3e7
RANDOM_POINTS = "random k points"


def _pick(table: pd.DataFrame, given: str | None, candidates: tuple[str, ...], what: str) -> str:
    if given is not None:
        if given not in table.columns:
            raise PrivaggInputError(
                f"{what}_col={given!r} is not a column of the microdata (columns: {list(table.columns)}). "
                f"Fix: pass one of its columns."
            )
        return given
    for name in candidates:
        if name in table.columns:
            return name
    raise PrivaggInputError(
        f"the microdata has none of the {what} columns {list(candidates)}. Fix: pass {what}_col=..."
    )


def trace_points(
    table: pd.DataFrame,
    *,
    user_col: str | None = None,
    location_col: str | None = None,
    time_col: str | None = None,
    time_bin: str = "1h",
    max_bins_per_stay: int = 48,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Encode microdata as distinct (user, point) pairs.

    A point is ``(location, floor(time, time_bin))``. Rows with an ``end``
    column (stays) contribute every bin they overlap, at most
    ``max_bins_per_stay`` of them.

    Returns
    -------
    user_codes, point_codes, n_users, n_points
        Parallel integer arrays of the distinct pairs, and the sizes of the two code spaces.
    """
    user_col = _pick(table, user_col, USER_COLUMNS, "user")
    location_col = _pick(table, location_col, LOCATION_COLUMNS, "location")
    time_col = _pick(table, time_col, TIME_COLUMNS, "time")
    step = pd.Timedelta(time_bin)
    if step <= pd.Timedelta(0):
        raise PrivaggInputError(f"time_bin={time_bin!r}: must be a positive duration such as '1h'.")
    users = table[user_col].to_numpy()
    locations = table[location_col].to_numpy()
    # bins are aligned to the epoch (so to midnight for bins dividing a day), not to the first record
    start = pd.to_datetime(table[time_col]).to_numpy("datetime64[ns]").astype(np.int64)
    step_ns = step.value
    origin = (start.min() // step_ns) * step_ns if len(start) else 0
    first_bin = (start - origin) // step_ns
    if "end" in table.columns and time_col == "start":
        end = pd.to_datetime(table["end"]).to_numpy("datetime64[ns]").astype(np.int64)
        # a stay ending exactly on a bin edge does not reach into the next bin
        last_bin = np.maximum((end - origin - 1) // step_ns, first_bin)
        n_bins = np.minimum(last_bin - first_bin + 1, max_bins_per_stay)
        repeat = np.repeat(np.arange(len(n_bins)), n_bins)
        offsets = np.arange(len(repeat)) - np.repeat(np.cumsum(n_bins) - n_bins, n_bins)
        users, locations, bins = users[repeat], locations[repeat], first_bin[repeat] + offsets
    else:
        bins = first_bin
    user_codes, user_index = np.unique(users, return_inverse=True)
    loc_codes, loc_index = np.unique(locations, return_inverse=True)
    n_bins_total = int(bins.max()) + 1 if len(bins) else 1
    point = loc_index.astype(np.int64) * n_bins_total + bins.astype(np.int64)
    point_codes, point_index = np.unique(point, return_inverse=True)
    pairs = np.sort(user_index.astype(np.int64) * len(point_codes) + point_index)
    # distinct pairs by sort-and-compare: numpy's hash-based unique is slower on millions of int64
    pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))] if len(pairs) else pairs
    return pairs // len(point_codes), pairs % len(point_codes), len(user_codes), len(point_codes)


def unicity(
    microdata: Any,
    p: int = 4,
    *,
    user_col: str | None = None,
    location_col: str | None = None,
    time_col: str | None = None,
    time_bin: str | None = None,
    n_targets: int | None = 10_000,
    seed: int = 0,
    batch_size: int = 2_000,
    level: float = 0.95,
    target: str | None = None,
    node_budget: int = 20_000,
) -> AttackResult:
    """Share of subscribers singled out by ``p`` known spatio-temporal points: the best ``p`` and random ``p``.

    Parameters
    ----------
    microdata
        A DataFrame of events (``ts``) or stays (``start``, ``end``) with a
        user column (``pseudonym`` or ``user_id``) and a location column
        (``cell_id``, ``zone_id`` or ``district_id``), or an object with a
        ``.table`` DataFrame (e.g. a pseudonymised release), whose
        ``privacy.parameters['time_bin']`` is used when ``time_bin`` is None.
    p
        Number of points the adversary knows about the target.
    time_bin
        Temporal resolution of a point; default the release's own bin, else ``"1h"``.
    n_targets
        Number of targets sampled (without replacement) among subscribers
        with at least ``p`` distinct points; None attacks all of them.
    seed
        Seed of the target and point sampling; the same seed gives the same result.
    batch_size
        Targets per sparse product (bounds memory).
    level
        Confidence level of the Wilson interval.
    target
        Description of the release attacked, for the result.
    node_budget
        Search-tree nodes per target for the worst case at sizes 3 and more
        (see :func:`singling_out_sizes`).

    Returns
    -------
    AttackResult
        ``risk`` is the worst case (variant ``"some k points"``): the share
        of targets singled out by some ``p`` of their points;
        ``variants`` also hold de Montjoye's figure (``"random k points"``).
        ``metrics`` keep the random-points figures (anonymity sets,
        ``random_points_risk`` and its interval), the worst case by size
        (``worst_case_k1`` ... ``worst_case_k{p}``), its upper bound
        ``worst_case_upper`` (undecided targets counted as singled out) and
        how many targets were undecided.
    """
    if int(p) != p or p < 1:
        raise PrivaggInputError(f"p={p!r}: must be a positive integer number of known points, e.g. 4.")
    p = int(p)
    table = microdata.table if hasattr(microdata, "table") else microdata
    if not isinstance(table, pd.DataFrame):
        raise PrivaggInputError(
            f"microdata of type {type(microdata).__name__}: expected a DataFrame or a pseudonymised release with .table."
        )
    privacy = getattr(microdata, "privacy", None)
    if time_bin is None:
        time_bin = (getattr(privacy, "parameters", None) or {}).get("time_bin") or "1h"
    if target is None:
        target = privacy.describe() if privacy is not None else "microdata"
    users, points, n_users, n_points = trace_points(
        table, user_col=user_col, location_col=location_col, time_col=time_col, time_bin=time_bin
    )
    if n_users == 0:
        raise PrivaggInputError("the microdata has no rows. Fix: attack a non-empty release.")
    incidence = sp.csr_matrix(
        (np.ones(len(users), dtype=np.int32), (users, points)), shape=(n_users, n_points)
    )
    degree = np.diff(incidence.indptr)
    eligible = np.flatnonzero(degree >= p)
    rng = np.random.default_rng(seed)
    if n_targets is not None and n_targets < len(eligible):
        targets = np.sort(rng.choice(eligible, size=int(n_targets), replace=False))
    else:
        targets = eligible
    _, counts = anonymity_sets(incidence, targets, p, rng, batch_size)
    n = len(targets)
    unique = int((counts == 1).sum())
    low, high = wilson_interval(unique, n, level)
    random_risk = unique / n if n else float("nan")
    baseline = 1.0 / n_users
    sizes, undecided = singling_out_sizes(incidence, targets, p, node_budget=node_budget)
    worst = int((sizes <= p).sum())
    worst_risk = worst / n if n else float("nan")
    worst_low, worst_high = wilson_interval(worst, n, level)
    upper = (worst + int(undecided.sum())) / n if n else float("nan")
    metrics = {
        "p": float(p),
        "n_users": float(n_users),
        "n_eligible": float(len(eligible)),
        "mean_reidentification_probability": float(np.mean(1.0 / counts)) if n else float("nan"),
        "median_anonymity_set": float(np.median(counts)) if n else float("nan"),
        "share_anonymity_set_le_5": float(np.mean(counts <= 5)) if n else float("nan"),
        "median_points_per_user": float(np.median(degree)),
        "random_points_risk": float(random_risk),
        "random_points_ci_low": low,
        "random_points_ci_high": high,
        "worst_case_risk": float(worst_risk),
        "worst_case_ci_low": worst_low,
        "worst_case_ci_high": worst_high,
        "worst_case_upper": float(upper),
        "worst_case_undecided": float(undecided.sum()),
        "n_excluded_fewer_than_p_points": float(n_users - len(eligible)),
    }
    for k in range(1, p + 1):
        # share of the targets singled out by some k of their points (every target has >= p >= k points)
        metrics[f"worst_case_k{k}"] = float(np.mean(sizes <= k)) if n else float("nan")
    variants = {WORST_CASE: float(worst_risk), RANDOM_POINTS: float(random_risk)}
    return AttackResult(
        attack="unicity",
        target=target,
        risk=float(worst_risk),
        ci_low=worst_low,
        ci_high=worst_high,
        baseline=baseline,
        n_trials=n,
        background_knowledge=(
            f"{p} (location, {time_bin} time bin) points of the target's own trace, at the resolution of "
            f"the released microdata: the best {p} for the headline figure (worst case), {p} random ones for "
            "de Montjoye's figure; a trace is its set of distinct points, and subscribers with fewer than "
            f"{p} distinct points are not targets"
        ),
        metrics=metrics,
        interpretation=(
            f"Some {p} places and times at which a subscriber was seen single out their whole trace for "
            f"{worst_risk:.0%} of subscribers; {p} random ones do for {random_risk:.0%} (a random guess "
            f"succeeds for {baseline:.2%})."
        ),
        confidence_level=level,
        variant=WORST_CASE,
        variants=variants,
    )


def singling_out_sizes(
    incidence: sp.csr_matrix, targets: np.ndarray, k_max: int, *, node_budget: int = 20_000
) -> tuple[np.ndarray, np.ndarray]:
    """For each target, the fewest of their points that no other trace contains all of, up to ``k_max``.

    Parameters
    ----------
    incidence
        Users x points 0/1 matrix (distinct points per user).
    targets
        Row indices of the targets.
    k_max
        Largest size searched.
    node_budget
        Search-tree nodes allowed per target and size (sizes 3 and more).

    Returns
    -------
    sizes, undecided
        ``sizes[i]`` is the minimum size (``k_max + 1`` when no set of at
        most ``k_max`` points singles the target out, or when undecided, or
        when another trace contains the whole of the target's);
        ``undecided[i]`` is True when the search ran out of budget.
    """
    incidence = sp.csr_matrix(incidence)
    incidence.sum_duplicates()
    incidence.data[:] = 1
    csc = incidence.tocsc()
    point_degree = np.diff(csc.indptr)
    targets = np.asarray(targets, dtype=np.int64)
    sizes = np.full(len(targets), k_max + 1, dtype=np.int64)
    undecided = np.zeros(len(targets), dtype=bool)
    # size 1, for everyone at once: a point nobody else has
    unique_point = np.asarray((incidence @ sp.csr_matrix((point_degree == 1).astype(np.int64)[:, None])).todense()).ravel()
    sizes[unique_point[targets] > 0] = 1
    settled = sizes <= 1
    row_degree = np.diff(incidence.indptr)
    if k_max >= 2 and float((row_degree.astype(float) ** 2).sum()) <= PAIR_WORK_LIMIT:
        # size 2, for everyone at once when the co-occurrence matrix is affordable: a pair of points that
        # only one trace has (C[p, q] == 1) singles out that trace's owner
        together = (csc.T @ csc).tocsr()
        together.data = (together.data == 1).astype(np.int64)
        together.eliminate_zeros()
        pair_hits = np.asarray((incidence @ together).multiply(incidence).sum(axis=1)).ravel()
        two = ~settled & (pair_hits[targets] > 0)
        sizes[two] = 2
        settled |= two
        if k_max == 2:
            return sizes, undecided
    for i, u in enumerate(targets):
        if settled[i]:
            continue
        pts = incidence.indices[incidence.indptr[u]: incidence.indptr[u + 1]]
        if len(pts) == 0 or k_max < 2:
            continue
        sub = csc[:, pts].tocsr()
        rows = np.flatnonzero(np.diff(sub.indptr) > 0)
        rows = rows[rows != u]
        overlap = sub[rows]  # the traces that overlap the target's, within it
        if (np.diff(overlap.indptr) == len(pts)).any():  # another trace contains all of the target's
            continue
        # a pair of the target's points no other trace has: a zero in their co-occurrence matrix (sparse
        # product, single-threaded: small dense products thrash a multithreaded BLAS on a busy machine)
        if (overlap.T @ overlap).nnz < len(pts) * len(pts):
            sizes[i] = 2
            continue
        others = overlap.toarray().astype(bool)
        others = _distinct_rows(others)  # duplicate traces change nothing but the search's cost
        exhausted = False
        for k in range(3, k_max + 1):
            budget = [node_budget]
            if _hitting_set(others, np.arange(len(others)), k, budget):
                sizes[i] = k  # if a smaller size ran out of budget, k is an upper bound on the minimum
                exhausted = False
                break
            exhausted = exhausted or budget[0] <= 0
        undecided[i] = exhausted
    return sizes, undecided


def _distinct_rows(rows: np.ndarray) -> np.ndarray:
    """The distinct rows of a boolean matrix (packed into bytes, so the sort is one-dimensional)."""
    packed = np.ascontiguousarray(np.packbits(rows, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first = np.unique(keys, return_index=True)
    return rows[np.sort(first)]


def _hitting_set(others: np.ndarray, unhit: np.ndarray, depth: int, budget: list[int]) -> bool:
    """Whether ``depth`` more points leave no trace in ``unhit`` containing all the chosen points.

    ``unhit`` are the traces (rows of ``others``, restricted to the target's
    points) that contain every point chosen so far. One of the new points
    must be missing from the unhit trace with most points (else that trace
    contains them all), so the search branches on its missing points only.
    """
    sub = others[unhit]
    if depth == 1:
        return bool((~sub.any(axis=0)).any())
    budget[0] -= 1
    if budget[0] <= 0:
        return False
    widest = sub[int(np.argmax(sub.sum(axis=1)))]
    for j in np.flatnonzero(~widest):
        rest = unhit[sub[:, j]]
        if len(rest) == 0 or _hitting_set(others, rest, depth - 1, budget):
            return True
        if budget[0] <= 0:
            return False
    return False


def anonymity_sets(
    incidence: sp.csr_matrix, targets: np.ndarray, p: int, rng: np.random.Generator, batch_size: int = 2_000
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``p`` points of each target and count the traces containing all of them.

    Returns the chosen point indices, shape ``(len(targets), p)``, and the
    anonymity-set sizes (>= 1, the target's own trace included).
    """
    chosen = np.empty((len(targets), p), dtype=np.int64)
    counts = np.empty(len(targets), dtype=np.int64)
    incidence_csc = incidence.tocsc()
    n_points = incidence.shape[1]
    for lo in range(0, len(targets), batch_size):
        batch = targets[lo: lo + batch_size]
        picked = _choose_points(incidence, batch, p, rng)
        chosen[lo: lo + len(batch)] = picked
        selector = sp.csc_matrix(
            (np.ones(picked.size, dtype=np.int32), picked.ravel(), np.arange(0, picked.size + 1, p)),
            shape=(n_points, len(batch)),
        )
        hits = (incidence_csc @ selector).tocsc()
        full = hits.data == p
        columns = np.repeat(np.arange(len(batch)), np.diff(hits.indptr))
        counts[lo: lo + len(batch)] = np.bincount(columns[full], minlength=len(batch))
    return chosen, counts


def _choose_points(incidence: sp.csr_matrix, rows: np.ndarray, p: int, rng: np.random.Generator) -> np.ndarray:
    """``p`` distinct random column indices from each of ``rows`` of a CSR matrix, as a (len(rows), p) array."""
    starts = incidence.indptr[rows]
    lengths = incidence.indptr[rows + 1] - starts
    owner = np.repeat(np.arange(len(rows)), lengths)
    positions = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths) + np.repeat(starts, lengths)
    keys = rng.random(len(owner))
    order = np.lexsort((keys, owner))
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    take = order[rank < p]
    return incidence.indices[positions[take]].reshape(len(rows), p)
