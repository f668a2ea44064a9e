"""Trajectory recovery from aggregated footfall (Xu et al., WWW 2017).

"Trajectory Recovery From Ash: User Privacy Is NOT Preserved in Aggregated
Mobility Data" (Xu, Tu, Li, Zhang, Fu, Jin) showed that from counts of
people per location and time slot alone an adversary recovers individual
trajectories with 73-91% accuracy, and that the recovered trajectories are
unique enough to be linked to people by their top locations.

This module runs every adversary on the same counts, scores them against
the true trajectories and reports the strongest. The adversaries live
apart: Xu et al.'s attack in :mod:`privagg.attacks.trajectory_xu`, the
simple ones it must beat in :mod:`privagg.attacks.trajectory_baselines`,
the footfall grid and the true locations in
:mod:`privagg.attacks.trajectory_data`. Every public name of those modules
is importable from here too.

Success is measured as in the paper: recovered trajectories are paired
with true ones by the assignment maximising the number of slots at which
they agree, and the *recovery accuracy* is the mean, over true
subscribers, of the share of their slots at which the paired recovered
trajectory is at the true location. Re-identification: a subscriber is
re-identified by their top-``k`` locations (known to the adversary) when
exactly one recovered trajectory has the same top-``k`` set and it is the
one paired with them; ``unique_top{k}`` is the share of recovered
trajectories whose top-``k`` set no other recovered trajectory shares (the
uniqueness figure of the paper).

**Risk = the strongest adversary.** :func:`trajectory_recovery` runs four
adversaries on the same counts and reports the strongest: ``"Xu et al."``
(:func:`recover_trajectories`), ``"stay put (night cell)"``,
``"home/work prior"`` and ``"stay put (denoised night counts)"``
(:func:`baseline_trajectories`). The strongest is chosen on a random half
of the subscribers and its accuracy reported on the other half (so the
choice does not inflate it); ``variants`` hold every adversary's held-out
figure and ``stay_put_accuracy`` the stay-put one. The random-guess
``baseline`` runs Xu's pipeline with random instead of optimal
assignments (same counts). ``release_free_accuracy`` is the accuracy of an
adversary who never saw the release (:func:`release_free_trajectories`):
the yardstick for DP releases (no formal DP bound applies to a
pairing-scored accuracy).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from privagg.attacks.result import AttackResult, wilson_interval
from privagg.attacks.trajectory_baselines import (  # noqa: F401  (_link_by: imported from here by tests)
    _link_by,
    baseline_trajectories,
    release_free_trajectories,
)
from privagg.attacks.trajectory_data import (  # noqa: F401  (re-exported: importable from here as before)
    DEFAULT_NIGHT_HOURS,
    DEFAULT_WORK_HOURS,
    TIME_COLUMNS,
    Footfall,
    Recovery,
    footfall_grid,
    location_coordinates,
    true_locations,
)
from privagg.attacks.trajectory_xu import _histograms, information_gain, recover_trajectories  # noqa: F401
from privagg.errors import PrivaggInputError

XU, STAY_PUT, HOME_WORK = "Xu et al.", "stay put (night cell)", "home/work prior"
DENOISED = "stay put (denoised night counts)"


def _pair(recovered: np.ndarray, truth: np.ndarray, n_locations: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair recovered with true trajectories maximising agreements; returns (pair_of_true, agreements)."""
    n_slots = truth.shape[1]

    def onehot(traj: np.ndarray) -> sp.csr_matrix:
        rows = np.repeat(np.arange(len(traj)), n_slots)
        cols = np.tile(np.arange(n_slots), len(traj)) * n_locations + traj.ravel()
        ok = traj.ravel() >= 0
        return sp.csr_matrix(
            (np.ones(ok.sum(), dtype=np.int32), (rows[ok], cols[ok])), shape=(len(traj), n_slots * n_locations)
        )

    overlap = (onehot(truth) @ onehot(recovered).T).toarray()
    r, c = linear_sum_assignment(overlap, maximize=True)
    pair = np.full(len(truth), -1, dtype=np.int64)
    agree = np.zeros(len(truth))
    pair[r] = c
    agree[r] = overlap[r, c]
    return pair, agree


def _top_sets(traj: np.ndarray, k: int, n_locations: int) -> np.ndarray:
    """Each row's ``k`` most frequent locations (ties to the lower index), as a sorted (n, k) array, -1 padded."""
    hist = _histograms(traj, n_locations).toarray()
    order = np.argsort(-hist, axis=1, kind="stable")[:, :k]
    counts = np.take_along_axis(hist, order, axis=1)
    order = np.where(counts > 0, order, -1)
    return np.sort(order, axis=1)


def _reidentified(recovered: np.ndarray, truth: np.ndarray, pair: np.ndarray, k: int, n_locations: int) -> np.ndarray:
    """Whether each true subscriber's top-k set picks out exactly their paired recovered trajectory."""
    rec_sets = _top_sets(recovered, k, n_locations)
    true_sets = _top_sets(truth, k, n_locations)
    keys, inverse, counts = np.unique(rec_sets, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    lookup = {tuple(key): i for i, key in enumerate(keys)}
    hit = np.zeros(len(truth), dtype=bool)
    for u, key in enumerate(map(tuple, true_sets)):
        i = lookup.get(key)
        if i is None or counts[i] != 1 or pair[u] < 0:
            continue
        hit[u] = inverse[pair[u]] == i
    return hit


def _day_start_slots(slots: pd.DatetimeIndex) -> np.ndarray:
    """For every slot, the index of the first slot of its day."""
    days = np.asarray(slots.normalize().asi8)
    first = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    return first[np.searchsorted(first, np.arange(len(slots)), side="right") - 1]


def trajectory_recovery(
    footfall: Any,
    coordinates: pd.DataFrame,
    truth: np.ndarray,
    *,
    location_col: str = "cell_id",
    time_col: str | None = None,
    value_col: str = "value",
    night_hours: Iterable[int] = DEFAULT_NIGHT_HOURS,
    n_trajectories: int | None = None,
    top_k: Sequence[int] = (2, 3),
    seed: int = 0,
    n_bootstrap: int = 1000,
    level: float = 0.95,
    target: str | None = None,
    work_hours: Iterable[int] = DEFAULT_WORK_HOURS,
    training_share: float = 0.5,
) -> AttackResult:
    """Run Xu et al.'s attack and the simple adversaries on a footfall release; report the strongest.

    Three adversaries rebuild trajectories from the counts: Xu et al.'s
    attack (``"Xu et al."``), the stay-put adversary linking days by the
    night cell (``"stay put (night cell)"``) and the home/work adversary
    (``"home/work prior"``); see :func:`recover_trajectories` and
    :func:`baseline_trajectories`. Each is scored against the true
    trajectories; the strongest is chosen on a random ``training_share`` of
    the subscribers and its accuracy measured on the others, so the choice
    does not inflate the figure.

    Parameters
    ----------
    footfall
        Release or DataFrame of counts by location and time slot.
    coordinates
        Location id with ``x``, ``y``; see :func:`location_coordinates`.
    truth
        ``(n_users, n_slots)`` true location ids on the release's slot grid
        (see :func:`true_locations`); used only to score the attack.
    top_k
        Numbers of top locations used for the re-identification figures.
    seed
        Seed of the baseline's random assignments, of the training split and of the bootstrap.
    n_bootstrap
        Bootstrap resamples (over held-out subscribers) for the accuracy interval.
    work_hours
        Hours of the day in which the home/work adversary expects people at work.
    training_share
        Share of the subscribers on which the strongest adversary is chosen.

    Returns
    -------
    AttackResult
        ``risk`` is the held-out recovery accuracy of the strongest
        adversary, named in ``variant``; ``variants`` hold every adversary's
        held-out accuracy; ``baseline`` is random assignment of the same
        counts. ``metrics`` hold ``stay_put_accuracy`` (the independent
        stay-put yardstick), ``xu_accuracy``, ``home_work_accuracy``, each
        adversary's training figure, the release-free yardstick
        (``release_free_accuracy``), the shares re-identified by their top-k
        locations (``reidentified_top{k}``: the adversary that re-identifies
        most; ``xu_reidentified_top{k}``: Xu et al.'s) with Wilson bounds,
        and the running time.
    """
    import time

    from privagg.attacks.result import strongest_variant

    if not 0.0 < training_share < 1.0:
        raise PrivaggInputError(f"training_share={training_share!r} is not strictly between 0 and 1. Fix: pass e.g. training_share=0.5.")
    started = time.perf_counter()
    grid = footfall_grid(
        footfall, locations=np.sort(coordinates[location_col].to_numpy()), location_col=location_col,
        time_col=time_col, value_col=value_col,
    )
    common = dict(location_col=location_col, night_hours=night_hours, n_trajectories=n_trajectories)
    recovered = {
        XU: recover_trajectories(grid, coordinates, seed=seed, **common),
        STAY_PUT: baseline_trajectories(grid, coordinates, kind="stay_put", **common),
        HOME_WORK: baseline_trajectories(grid, coordinates, kind="home_work", work_hours=work_hours, **common),
        DENOISED: baseline_trajectories(grid, coordinates, kind="denoised_stay_put", **common),
    }
    elapsed = time.perf_counter() - started
    random_recovery = recover_trajectories(grid, coordinates, random_assignment=True, seed=seed, **common)
    truth = np.asarray(truth)
    slots = recovered[XU].slots
    if truth.ndim != 2 or truth.shape[1] != len(slots):
        raise PrivaggInputError(
            f"truth has shape {truth.shape}; the footfall has {len(slots)} slots. "
            "Fix: pass true locations on the release's slot grid (true_locations(stays, slots))."
        )
    locations = recovered[XU].locations
    idx = np.searchsorted(locations, truth)
    idx = np.where((idx < len(locations)) & (locations[np.minimum(idx, len(locations) - 1)] == truth), idx, -1)
    valid = (idx >= 0).sum(axis=1)

    def score(rec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pair, agree = _pair(rec, idx, len(locations))
        return pair, np.divide(agree, valid, out=np.zeros(len(agree)), where=valid > 0)

    scored = {name: score(r.trajectories) for name, r in recovered.items()}
    _, random_scores = score(random_recovery.trajectories)
    # What holds for everyone, without the release: the yardstick for DP releases (what DP allows).
    _, release_free = score(release_free_trajectories(grid, n_trajectories).trajectories)
    # the old yardstick: the attack's own chains kept all day at each day's first location
    _, own_stay = score(recovered[XU].trajectories[:, _day_start_slots(slots)])

    n_users = len(truth)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_users)
    n_train = min(max(1, int(round(training_share * n_users))), n_users - 1) if n_users > 1 else 0
    train, held = np.sort(order[:n_train]), np.sort(order[n_train:])
    if len(held) == 0:
        held = train
    training = {name: float(per_user[train].mean()) if len(train) else 0.0 for name, (_, per_user) in scored.items()}
    held_out = {name: float(per_user[held].mean()) for name, (_, per_user) in scored.items()}
    chosen = strongest_variant(training)
    per_user = scored[chosen][1][held]
    accuracy = held_out[chosen]
    boot = per_user[rng.integers(0, len(per_user), (n_bootstrap, len(per_user)))].mean(axis=1)
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    baseline = float(random_scores[held].mean())

    metrics: dict[str, float] = {}
    random_pair, _ = _pair(random_recovery.trajectories, idx, len(locations))
    reid_by = {}
    for k in top_k:
        # re-identification by top-k locations: the adversary whose trajectories re-identify most
        hits = {name: _reidentified(recovered[name].trajectories, idx, scored[name][0], k, len(locations))
                for name in recovered}
        best = max(hits, key=lambda name: hits[name].mean())
        reid_by[k] = best
        hit = hits[best]
        rec = recovered[best].trajectories
        metrics[f"reidentified_top{k}"] = float(hit.mean())
        metrics[f"xu_reidentified_top{k}"] = float(hits[XU].mean())
        _, counts = np.unique(_top_sets(rec, k, len(locations)), axis=0, return_counts=True)
        metrics[f"unique_top{k}"] = float((counts == 1).sum() / len(rec)) if len(rec) else float("nan")
        lo, hi = wilson_interval(int(hit.sum()), len(hit), level)
        metrics[f"reidentified_top{k}_ci_low"], metrics[f"reidentified_top{k}_ci_high"] = lo, hi
        metrics[f"baseline_reidentified_top{k}"] = float(
            _reidentified(random_recovery.trajectories, idx, random_pair, k, len(locations)).mean())
    grid_totals = grid.counts.sum(axis=1)
    metrics.update(
        stay_put_accuracy=held_out[STAY_PUT],
        xu_accuracy=held_out[XU],
        home_work_accuracy=held_out[HOME_WORK],
        denoised_stay_put_accuracy=held_out[DENOISED],
        stay_put_attack_linking_accuracy=float(own_stay[held].mean()),
        release_free_accuracy=float(release_free[held].mean()),
        **{f"training_{key}": training[name] for key, name in
           (("xu_accuracy", XU), ("stay_put_accuracy", STAY_PUT), ("home_work_accuracy", HOME_WORK),
            ("denoised_stay_put_accuracy", DENOISED))},
        n_users=float(n_users),
        n_training=float(len(train)),
        n_held_out=float(len(held)),
        n_recovered=float(len(recovered[chosen].trajectories)),
        n_slots=float(len(slots)),
        mean_slot_total=float(grid_totals.mean()),
        seconds=float(elapsed),
    )
    if target is None:
        privacy = getattr(footfall, "privacy", None)
        target = privacy.describe() if privacy is not None else "footfall counts"
    top = ", ".join(f"top-{k}: {metrics[f'reidentified_top{k}']:.0%} ({reid_by[k]})" for k in top_k)
    others = "; ".join(f"{name}: {value:.0%}" for name, value in held_out.items() if name != chosen)
    return AttackResult(
        attack="trajectory_recovery",
        target=target,
        risk=accuracy,
        ci_low=float(low),
        ci_high=float(high),
        baseline=baseline,
        n_trials=len(held),
        background_knowledge=(
            "the released counts per location and slot, the locations' coordinates, that people sleep at home "
            "and work by day, and (for re-identification) each target's top locations, e.g. home and work"
        ),
        metrics=metrics,
        interpretation=(
            f"From counts alone the strongest adversary ({chosen}) rebuilt individual trajectories that are at "
            f"the right place {accuracy:.0%} of the time (random assignment: {baseline:.0%}; {others}; "
            f"an adversary who never saw the release, spreading people evenly: "
            f"{metrics['release_free_accuracy']:.0%}); subscribers re-identified by their top locations: {top}."
        ),
        confidence_level=level,
        variant=chosen,
        variants=held_out,
    )
