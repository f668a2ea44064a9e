"""Adapters connecting the harness registries to the library's releases and attacks.

Every function here is the default entry of a registry in
:mod:`privagg.harness.registry`; it translates the spec's vocabulary
(statistic, level, time bin, family parameters, attack parameters) into the
library's calls. Each carries ``requires``: the ``module:attribute`` names it
needs, checked before a run starts so that a missing piece fails early with
a clear message.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import pandas as pd

from privagg.harness.registry import AttackContext, MissingComponentError, NotApplicable

#: Spec statistic names -> library statistic names (the library's own names are accepted too).
STATISTIC_ALIASES = {"dwell": "dwell_times", "od": "od_flows", "segments": "segment_counts"}


def _load(entry: str) -> Any:
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingComponentError(
            f"{entry} cannot be imported ({exc}). Fix: merge or install the part of privagg that provides it."
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise MissingComponentError(
            f"{module_name} has no {attr!r}. Fix: connect it in privagg/harness/adapters.py."
        ) from None


def _requires(*entries: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        func.requires = entries  # type: ignore[attr-defined]
        return func

    return mark


def _none(value: Any) -> Any:
    """TOML has no null: the strings "none" / "auto" stand for None / the library default."""
    if isinstance(value, str) and value.lower() == "none":
        return None
    return value


# --------------------------------------------------------------------------- query and truth


@_requires("privagg.queries:Query", "privagg.queries:public_keys")
def build_query(world: Any, statistic: Any) -> Any:
    """The library Query for a spec statistic, with the public key domain of the World's window.

    Every key (all areas x all time bins, or all segments) is in the query,
    so the true table lists empty keys too and every anonymiser answers the
    same keys.
    """
    from privagg.queries import Query, public_keys

    name = STATISTIC_ALIASES.get(statistic.statistic, statistic.statistic)
    kwargs: dict[str, Any] = {"statistic": name, "level": _none(statistic.level)}
    if statistic.time_bin is not None:
        kwargs["time_bin"] = _none(statistic.time_bin)
    if statistic.by:
        kwargs["by"] = tuple(statistic.by)
    kwargs.update({k: _none(v) for k, v in statistic.options.items()})
    if "dwell_edges" in kwargs:
        kwargs["dwell_edges"] = tuple(kwargs["dwell_edges"])
    query = Query(**kwargs)
    start, end = world.start, world.end
    keys = public_keys(query, world.cells, start=start, end=end, users_columns=list(world.users.columns))
    timed = query.time_bin is not None
    return replace(query, keys=keys, start=query.start if query.start is not None else (start if timed else None),
                   end=query.end if query.end is not None else (end if timed else None))


@_requires("privagg.exact:exact_aggregate")
def exact_aggregate(world: Any, query: Any) -> pd.DataFrame:
    """The exact (non-private) aggregate of ``query``, every key of its domain included (0 where empty)."""
    from privagg.exact import exact_aggregate as exact

    return exact(world, query, include_empty=query.keys is not None)


# --------------------------------------------------------------------------- anonymisers


@_requires("privagg.anonymisers.dp:DPAnonymiser", "privagg.dp.bounds:Bounds")
def dp_anonymiser(**params: Any) -> Any:
    """``DPAnonymiser(epsilon | rho, delta, bounds=Bounds(max_partitions, max_per_partition), public_keys)``."""
    from privagg.anonymisers.dp import DPAnonymiser
    from privagg.dp.bounds import Bounds

    params = {k: _none(v) for k, v in params.items()}
    bound_keys = {k: params.pop(k) for k in ("max_partitions", "max_per_partition", "lower", "upper") if k in params}
    if bound_keys:
        params["bounds"] = Bounds(**bound_keys)
    return DPAnonymiser(**params)


@_requires("privagg.anonymisers.raw:Raw")
def raw_anonymiser(**params: Any) -> Any:
    """Exact aggregates (``Raw``)."""
    from privagg.anonymisers.raw import Raw

    return Raw(**params)


@_requires("privagg.anonymisers.suppression:Suppression")
def suppression_anonymiser(**params: Any) -> Any:
    """Counts below ``k`` suppressed (``Suppression(k, rounding)``)."""
    from privagg.anonymisers.suppression import Suppression

    return Suppression(**params)


@_requires("privagg.anonymisers.coarsening:Coarsening")
def coarsening_anonymiser(**params: Any) -> Any:
    """Coarser level and/or time bin (``Coarsening``); the time bin is kept unless the spec sets one."""
    from privagg.anonymisers.coarsening import Coarsening

    params = {k: _none(v) for k, v in params.items()}
    params.setdefault("time_bin", None)
    return Coarsening(**params)


@_requires("privagg.anonymisers.pseudonymised:Pseudonymised")
def pseudonymised_anonymiser(seed: int | None = None, **params: Any) -> Any:
    """Pseudonymised microdata (``Pseudonymised``), pseudonyms seeded by the cell's seed."""
    from privagg.anonymisers.pseudonymised import Pseudonymised

    params = {k: _none(v) for k, v in params.items()}
    if "attributes" in params:
        params["attributes"] = tuple(params["attributes"])
    return Pseudonymised(seed=seed, **params)


@_requires("privagg.anonymisers.naive_laplace:NaiveLaplace", "privagg.dp.bounds:Bounds")
def naive_laplace_anonymiser(seed: int | None = None, **params: Any) -> Any:
    """Textbook floating-point Laplace (insecure by construction), seeded by the cell's seed."""
    from privagg.anonymisers.naive_laplace import NaiveLaplace
    from privagg.dp.bounds import Bounds

    bound_keys = {k: params.pop(k) for k in ("max_partitions", "max_per_partition") if k in params}
    if bound_keys:
        params["bounds"] = Bounds(**bound_keys)
    return NaiveLaplace(seed=seed, **params)


# --------------------------------------------------------------------------- attacks


def _target(ctx: AttackContext) -> str:
    params = " ".join(f"{k}={v}" for k, v in ctx.params.items())
    return f"{ctx.family} {params}".strip()


@_requires("privagg.attacks.unicity:unicity")
def run_unicity(ctx: AttackContext) -> Any:
    """Unicity (de Montjoye et al. 2013) on pseudonymised microdata; ``points`` known points (default 4)."""
    from privagg.attacks.unicity import unicity

    if not hasattr(ctx.release, "table") or "value" in getattr(ctx.release, "table", pd.DataFrame()).columns:
        raise NotApplicable("unicity needs microdata (a pseudonymised release), not an aggregate table")
    params = dict(ctx.attack_params)
    p = int(params.pop("points", params.pop("p", 4)))
    return unicity(ctx.release, p, seed=ctx.seed, target=_target(ctx), **params)


@_requires("privagg.attacks.trajectory_recovery:trajectory_recovery")
def run_trajectory_recovery(ctx: AttackContext) -> Any:
    """Trajectory recovery (Xu et al. 2017) from a footfall release.

    Attack parameters: ``days`` limits the days attacked (from the first);
    ``n_trajectories`` defaults to the number of opted-in subscribers (the
    adversary knows how many subscribers there are); the rest go to
    :func:`privagg.attacks.trajectory_recovery.trajectory_recovery`.
    """
    from privagg.attacks.trajectory_recovery import (
        footfall_grid, location_coordinates, trajectory_recovery, true_locations,
    )

    query = ctx.query
    if getattr(query, "statistic", None) != "footfall" or not hasattr(ctx.release, "to_pandas"):
        raise NotApplicable("trajectory recovery needs a footfall release (counts per area and time bin)")
    table = ctx.release.to_pandas()
    location_col = next((c for c in ("cell_id", "zone_id", "district_id") if c in table.columns), None)
    if location_col is None or "time" not in table.columns:
        raise NotApplicable("trajectory recovery needs area and time keys in the release")
    params = dict(ctx.attack_params)
    days = params.pop("days", None)
    if days is not None:
        first = pd.to_datetime(table["time"]).min().floor("D")
        table = table.loc[pd.to_datetime(table["time"]) < first + pd.Timedelta(days=int(days))]
    world = ctx.world.opted_in()
    # The adversary knows roughly how many subscribers there are (operators publish it); without this,
    # noisy DP counts would make it chase thousands of phantom trajectories.
    params.setdefault("n_trajectories", int(len(world.users)))
    cells = world.cells
    grid = footfall_grid(table, location_col=location_col)
    stays = world.stays
    if location_col != "cell_id":
        stays = stays.merge(cells[["cell_id", location_col]], on="cell_id", how="left")
    _, truth = true_locations(stays, grid.slots, location_col=location_col)
    return trajectory_recovery(table, location_coordinates(cells, location_col), truth,
                               location_col=location_col, seed=ctx.seed, target=_target(ctx), **params)


def _window_days(world: Any) -> int:
    return max(1, int(round((world.end - world.start) / pd.Timedelta(days=1))))


def _dp_scale_per_day(params: dict[str, Any], days: int) -> tuple[float, int]:
    """(epsilon per subscriber-day, max partitions per day) with the same noise scale as the cell's DP release.

    The DP release spends ``epsilon`` per subscriber over the World's window
    with L0 = ``max_partitions`` (default one partition per hour of the
    window), so its noise scale is ``max_partitions / epsilon``; an
    aggregate-level DP publication with 24 partitions per day gets the same
    scale at ``24 * epsilon / max_partitions`` per subscriber-day.
    """
    epsilon = float(params["epsilon"])
    max_partitions = int(params.get("max_partitions", 24 * days))
    return 24.0 * epsilon / max_partitions, 24


@_requires("privagg.attacks.membership:membership_inference", "privagg.attacks.membership:hourly_presence")
def run_membership(ctx: AttackContext) -> Any:
    """Membership inference on aggregate location time series (Pyrgelis et al. 2018).

    The attack plays its own game (groups of ``group_size`` subscribers,
    releases of their hourly footfall), so the cell's anonymiser is mapped to
    the attack's aggregate-level publication with the same parameters: raw,
    suppression (``k``), coarsening (presence at the coarser ``level``) or DP
    (discrete Laplace at the DP release's noise scale). Attack parameters:
    ``days`` (window attacked, from the first day; default 1), ``group_size``
    (default 100) and the rest of
    :func:`privagg.attacks.membership.membership_inference`'s options.
    """
    from privagg.attacks.membership import aggregate_publication, hourly_presence, membership_inference

    params = dict(ctx.attack_params)
    days = int(params.pop("days", 1))
    group_size = int(params.pop("group_size", 100))
    world = ctx.world.opted_in()
    level = {"cell": "cell_id", "zone": "zone_id", "district": "district_id"}.get(
        getattr(ctx.query, "level", None) or "cell", "cell_id")
    family_params = dict(ctx.params)
    if ctx.family == "coarsening":
        level = {"cell": "cell_id", "zone": "zone_id", "district": "district_id"}[_none(family_params.get("level", "zone")) or "cell"]
    if ctx.family == "dp" and family_params.get("epsilon") is not None:
        per_day, per_day_partitions = _dp_scale_per_day(family_params, _window_days(world))
        family_params.update(epsilon=per_day, max_partitions=per_day_partitions)
    publish = aggregate_publication(ctx.family, family_params)
    if publish is None:
        raise NotApplicable(f"membership inference has no aggregate-level model of {ctx.family!r} releases")
    cells = world.cells
    location_map = None if level == "cell_id" else cells.set_index("cell_id")[level]
    presence = hourly_presence(world.events, start=world.start, n_hours=24 * days,
                               locations=np.unique(cells[level].to_numpy()),
                               location_map=location_map, user_ids=world.users["user_id"].to_numpy())
    result = membership_inference(presence, group_size=group_size, anonymiser=publish, seed=ctx.seed, **params)
    return replace(result, target=_target(ctx)) if hasattr(result, "__dataclass_fields__") else result


@_requires("privagg.attacks.reconstruction:reconstruction_attack",
           "privagg.attacks.reconstruction:records_from_users")
def run_reconstruction(ctx: AttackContext) -> Any:
    """Reconstruction of subscriber records from published crossbreaks (Dinur-Nissim; 2010 US Census).

    The cell's anonymiser is mapped to the attack's table-level publication
    (:func:`privagg.attacks.reconstruction.table_publication`): raw,
    suppression (``k``) or DP (``epsilon`` for all tables together).
    Attack parameters: ``area`` (default ``home_cell``; or ``zone_id`` /
    ``district_id``), ``tag`` and the options of
    :func:`privagg.attacks.reconstruction.reconstruction_attack`.
    """
    from privagg.attacks.reconstruction import reconstruction_attack, records_from_users, table_publication

    params = dict(ctx.attack_params)
    area = params.pop("area", "home_cell")
    tag = params.pop("tag", None)
    # A coarsened release changes the area; the attack's own ``area`` parameter models that instead.
    publish = None if ctx.family == "coarsening" else table_publication(ctx.family, ctx.params)
    if publish is None:
        raise NotApplicable(f"reconstruction has no table-level model of {ctx.family!r} releases")
    if "crossbreaks" in params:
        params["crossbreaks"] = [tuple(c) for c in params["crossbreaks"]]
    records = records_from_users(ctx.world.users, area=area, tag=tag, cells=ctx.world.cells)
    result = reconstruction_attack(records, anonymiser=publish, seed=ctx.seed, **params)
    return replace(result, target=_target(ctx)) if hasattr(result, "__dataclass_fields__") else result


@_requires("privagg.attacks.differencing:differencing")
def run_differencing(ctx: AttackContext) -> Any:
    """Differencing game: two releases differing by one subscriber."""
    from privagg.attacks.differencing import differencing

    if not hasattr(ctx.release, "to_pandas") or "value" not in ctx.release.to_pandas().columns:
        raise NotApplicable("differencing needs an aggregate release")
    return differencing(ctx.world, ctx.query, ctx.anonymiser, seed=ctx.seed, target=_target(ctx), **ctx.attack_params)


__all__ = [
    "NotApplicable", "STATISTIC_ALIASES", "build_query", "coarsening_anonymiser", "dp_anonymiser",
    "exact_aggregate", "naive_laplace_anonymiser", "pseudonymised_anonymiser", "raw_anonymiser",
    "run_differencing", "run_membership", "run_reconstruction", "run_trajectory_recovery", "run_unicity",
    "suppression_anonymiser",
]
