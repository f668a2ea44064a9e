"""Registries mapping spec names to the code that runs them.

The harness never imports anonymisers, attacks or the world generator at
module import time. Each registry entry is either a callable or a string
``"module:attribute"`` resolved on first use, so a missing piece gives a
clear error naming what is missing instead of breaking the whole package.

=====================  ======================================================
registry               entry called as
=====================  ======================================================
``ANONYMISERS[family]``  ``factory(**params[, seed=...])`` -> object with
                       ``release(world, query) -> Release``
``ATTACKS[name]``      ``runner(ctx: AttackContext)`` -> an AttackResult-like
                       object (``to_dict()``), a dict, or a list of them;
                       raise :class:`NotApplicable` to skip a combination
``HOOKS["world"]``     ``generate_world(n_users, n_cells, days, seed, **options) -> World``
``HOOKS["query"]``     ``build_query(world, statistic: StatisticSpec) -> query``
``HOOKS["truth"]``     ``exact_aggregate(world, query) -> DataFrame`` (keys + value)
=====================  ======================================================

Tests and plug-ins register their own entries with :func:`register_anonymiser`
and :func:`register_attack` (which also allow the names in specs).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from privagg.anonymisers.factory import FAMILY_PARAMETERS
from privagg.attacks.runner import ATTACK_SETTINGS, NotApplicable
from privagg.errors import PrivaggError
from privagg.harness import spec as spec_module

Entry = str | Callable[..., Any]


class MissingComponentError(PrivaggError):
    """A registry entry names code that is not installed or not yet written."""


# Anonymiser families -> factories, and attack names -> runners taking an AttackContext. The library's
# entries all go through the one factory and the one attack runner (privagg.harness.adapters).
def _default_entries() -> tuple[dict[str, Entry], dict[str, Entry]]:
    from privagg.harness.adapters import anonymiser_factory as family_entry
    from privagg.harness.adapters import attack_entry

    return ({family: family_entry(family) for family in FAMILY_PARAMETERS},
            {name: attack_entry(name) for name in ATTACK_SETTINGS})


ANONYMISERS: dict[str, Entry]
ATTACKS: dict[str, Entry]
ANONYMISERS, ATTACKS = _default_entries()

HOOKS: dict[str, Entry] = {
    "world": "privagg.synth:generate_world",
    "query": "privagg.harness.adapters:build_query",
    "truth": "privagg.harness.adapters:exact_aggregate",
}


@dataclass
class AttackContext:
    """Everything an attack runner may need about one cell of the grid.

    Attributes
    ----------
    world
        The World the release was made from (the adversary's ground truth is
        taken from it; what the adversary *knows* is the runner's business).
    query
        The query released.
    statistic
        The spec's statistic (statistic, level, time_bin, by, options).
    family, params
        The anonymiser family and its parameters for this cell.
    anonymiser
        The anonymiser object, so attacks can make further releases (e.g.
        membership inference trains on releases of the same anonymiser).
    release
        The release made in this cell.
    truth
        The exact aggregate of ``query`` (keys + value).
    seed
        Seed for the attack's randomness.
    attack_params
        The ``[attacks.params]`` table of the spec.
    """

    world: Any
    query: Any
    statistic: Any
    family: str
    params: dict[str, Any]
    anonymiser: Any
    release: Any
    truth: pd.DataFrame | None
    seed: int
    attack_params: dict[str, Any] = field(default_factory=dict)


def _resolve(kind: str, name: str, entry: Entry) -> Callable[..., Any]:
    if callable(entry):
        return entry
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingComponentError(
            f"{kind} {name!r} needs {entry}, which cannot be imported ({exc}). "
            "Fix: install or merge the branch that provides it, or remove it from the spec."
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise MissingComponentError(
            f"{kind} {name!r} needs {entry}, but {module_name} has no {attr!r}. "
            "Fix: connect it in privagg/harness/registry.py, or remove it from the spec."
        ) from None


def anonymiser_factory(family: str) -> Callable[..., Any]:
    """The factory of anonymiser ``family``, imported now."""
    if family not in ANONYMISERS:
        raise MissingComponentError(
            f"anonymiser family {family!r} has no factory. Fix: register it with "
            "privagg.harness.registry.register_anonymiser, or use one of " + ", ".join(ANONYMISERS) + "."
        )
    return _resolve("anonymiser family", family, ANONYMISERS[family])


def attack_runner(name: str) -> Callable[..., Any]:
    """The runner of attack ``name``, imported now."""
    if name not in ATTACKS:
        raise MissingComponentError(
            f"attack {name!r} has no runner. Fix: register it with "
            "privagg.harness.registry.register_attack, or use one of " + ", ".join(ATTACKS) + "."
        )
    return _resolve("attack", name, ATTACKS[name])


def hook(name: str) -> Callable[..., Any]:
    """The ``world``, ``query`` or ``truth`` hook, imported now."""
    return _resolve("harness step", name, HOOKS[name])


def make_anonymiser(family: str, params: dict[str, Any], seed: int | None = None) -> Any:
    """Build an anonymiser; ``seed`` is passed only when the factory names a ``seed`` parameter."""
    factory = anonymiser_factory(family)
    kwargs = dict(params)
    if seed is not None and _accepts(factory, "seed"):
        kwargs["seed"] = seed
    return factory(**kwargs)


def _accepts(func: Callable[..., Any], name: str) -> bool:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return False
    return name in sig.parameters


def register_anonymiser(family: str, factory: Entry, parameters: tuple[str, ...] | list[str] = ()) -> None:
    """Register an anonymiser family and allow it, with ``parameters``, in specs."""
    ANONYMISERS[family] = factory
    spec_module.register_family(family, parameters)


def register_attack(name: str, runner: Entry) -> None:
    """Register an attack runner and allow ``name`` in specs."""
    ATTACKS[name] = runner
    spec_module.register_attack_name(name)


__all__ = [
    "ANONYMISERS", "ATTACKS", "AttackContext", "HOOKS", "MissingComponentError", "NotApplicable",
    "anonymiser_factory", "attack_runner", "hook", "make_anonymiser", "register_anonymiser", "register_attack",
]
