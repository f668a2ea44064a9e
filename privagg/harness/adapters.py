"""Adapters connecting the harness registries to the library's releases and attacks.

Every function here is the default entry of a registry in
:mod:`privagg.harness.registry`; it translates the spec's vocabulary
(statistic, level, time bin, family parameters, attack parameters) into the
library's calls. Each carries ``requires``: the ``module:attribute`` names it
needs, checked before a run starts so that a missing piece fails early with
a clear message.

INTEGRATION: the names below are those agreed in the brief; where a branch
lands with a different signature, adjust only this module.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import pandas as pd

from privagg.harness.registry import AttackContext, MissingComponentError, NotApplicable


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


def _first(*entries: str) -> Any:
    """The first of several candidate ``module:attribute`` names that exists."""
    errors = []
    for entry in entries:
        try:
            return _load(entry)
        except MissingComponentError as exc:
            errors.append(str(exc))
    raise MissingComponentError(" / ".join(errors))


def _requires(*entries: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(func: Callable[..., Any]) -> Callable[..., Any]:
        func.requires = entries  # type: ignore[attr-defined]
        return func

    return mark


# --------------------------------------------------------------------------- query and truth


@_requires("privagg.queries:Query")
def build_query(world: Any, statistic: Any) -> Any:
    """The library Query for a spec statistic (public key domain: all areas x all time bins)."""
    Query = _load("privagg.queries:Query")
    kwargs: dict[str, Any] = {"statistic": statistic.statistic, "level": statistic.level,
                              "time_bin": statistic.time_bin}
    if statistic.by:
        kwargs["by"] = list(statistic.by)
    kwargs.update(statistic.options)
    if hasattr(Query, "for_world"):
        return Query.for_world(world, **kwargs)
    return Query(**kwargs)


@_requires("privagg.exact:exact_aggregate")
def exact_aggregate(world: Any, query: Any) -> pd.DataFrame:
    """The exact (non-private) aggregate of ``query``: key columns and ``value``."""
    table = _load("privagg.exact:exact_aggregate")(world, query)
    return table.to_pandas() if hasattr(table, "to_pandas") else table


# --------------------------------------------------------------------------- anonymisers


@_requires("privagg.anonymisers:DPAnonymiser")
def dp_anonymiser(**params: Any) -> Any:
    """``DPAnonymiser(epsilon=..., delta=..., bounds=Bounds(max_partitions, max_per_partition), ...)``."""
    cls = _first("privagg.anonymisers:DPAnonymiser", "privagg.anonymisers.dp:DPAnonymiser")
    bound_keys = {k: params.pop(k) for k in ("max_partitions", "max_per_partition") if k in params}
    if bound_keys:
        try:
            Bounds = _first("privagg:Bounds", "privagg.dp:Bounds")
            params["bounds"] = Bounds(**bound_keys)
        except MissingComponentError:
            params.update(bound_keys)
    return cls(**params)


def _baseline(family: str, *names: str) -> Callable[..., Any]:
    candidates = [f"privagg.anonymisers:{n}" for n in names] + [f"privagg.anonymisers.{family}:{n}" for n in names]

    @_requires(candidates[0])
    def factory(**params: Any) -> Any:
        return _first(*candidates)(**params)

    factory.__name__ = f"{family}_anonymiser"
    factory.__doc__ = f"The {family!r} baseline anonymiser (one of {', '.join(names)})."
    factory.requires = ()  # type: ignore[attr-defined]  # found among several candidates: checked at first use
    return factory


raw_anonymiser = _baseline("raw", "RawAnonymiser", "Raw")
suppression_anonymiser = _baseline("suppression", "SuppressionAnonymiser", "Suppression")
coarsening_anonymiser = _baseline("coarsening", "CoarseningAnonymiser", "Coarsening")
pseudonymised_anonymiser = _baseline("pseudonymised", "PseudonymisedAnonymiser", "Pseudonymised")
naive_laplace_anonymiser = _baseline("naive_laplace", "NaiveLaplaceAnonymiser", "NaiveLaplace")


# --------------------------------------------------------------------------- attacks


def _attack(name: str, entry: str) -> Callable[[AttackContext], Any]:
    @_requires(entry)
    def run(ctx: AttackContext) -> Any:
        func = _load(entry)
        return func(ctx.release, world=ctx.world, anonymiser=ctx.anonymiser, query=ctx.query,
                    seed=ctx.seed, **ctx.attack_params)

    run.__name__ = f"run_{name}"
    run.__doc__ = f"Run the {name!r} attack ({entry}) on the cell's release."
    return run


run_unicity = _attack("unicity", "privagg.attacks.unicity:attack")
run_trajectory_recovery = _attack("trajectory_recovery", "privagg.attacks.trajectory_recovery:attack")
run_membership = _attack("membership", "privagg.attacks.membership:attack")
run_reconstruction = _attack("reconstruction", "privagg.attacks.reconstruction:attack")
run_differencing = _attack("differencing", "privagg.attacks.differencing:attack")

__all__ = [
    "NotApplicable", "build_query", "coarsening_anonymiser", "dp_anonymiser", "exact_aggregate",
    "naive_laplace_anonymiser", "pseudonymised_anonymiser", "raw_anonymiser", "run_differencing",
    "run_membership", "run_reconstruction", "run_trajectory_recovery", "run_unicity", "suppression_anonymiser",
]
