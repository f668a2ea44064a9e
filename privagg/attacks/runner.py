"""One attack runner: any attack against any anonymiser's release of any query.

:func:`run_attack` is the single place that maps (attack, anonymiser,
query, settings) to an :class:`~privagg.attacks.result.AttackResult`. The
experiment harness, the regulator's claim audit and the demo all call it, so
an attack means the same thing wherever its figure is shown.

Attacks that replay many releases (membership inference over candidate
groups, reconstruction over candidate tables) get them from the anonymiser's
own model of itself (:meth:`privagg.anonymisers.base.Anonymiser.publication_model`);
differencing asks the anonymiser for fresh releases; unicity and trajectory
recovery attack the published table.

============================  ===========================================  ===============================
attack                        applies to                                   settings (default)
============================  ===========================================  ===============================
``unicity``                   pseudonymised microdata                      points (4), targets (1000)
``trajectory_recovery``       footfall with time bins                      days (3), bootstrap (200)
``membership_inference``      footfall with hourly bins                    group_size (1000), targets (3),
                                                                           n_train (200), n_test (40),
                                                                           days (1), bootstrap (200)
``reconstruction``            any method with a publication model;         bootstrap (200); crossbreaks,
                              crossbreaks of subscribers' attributes       tag
``differencing``              any aggregate                                trials (40), days (1)
============================  ===========================================  ===============================

Examples
--------
>>> sorted(ATTACK_SETTINGS)
['differencing', 'membership_inference', 'reconstruction', 'trajectory_recovery', 'unicity']
>>> canonical_attack("membership")
'membership_inference'
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import numpy as np
import pandas as pd

from privagg.attacks.result import AttackResult
from privagg.errors import PrivaggInputError
from privagg.queries import LEVELS, Query

#: Integer settings of each attack: name -> (default, minimum). Defaults keep one audit of the example
#: claims (2,000 subscribers, 100 cells, 7 days) to a minute or two on a 2-core machine.
ATTACK_SETTINGS: dict[str, dict[str, tuple[int, int]]] = {
    "unicity": {"points": (4, 1), "targets": (1000, 10)},
    "trajectory_recovery": {"days": (3, 1), "bootstrap": (200, 50)},
    # Groups of up to 1,000 (capped by the population): products aggregate whole populations, and
    # suppression hides nearly every count of small groups, which would make it look protective.
    "membership_inference": {"group_size": (1000, 2), "targets": (3, 1), "n_train": (200, 10), "n_test": (40, 10),
                             "days": (1, 1), "bootstrap": (200, 50)},
    "reconstruction": {"bootstrap": (200, 50)},
    "differencing": {"trials": (40, 5), "days": (1, 1)},
}
#: Further (non-integer) options each attack passes on to its function.
ATTACK_OPTIONS: dict[str, tuple[str, ...]] = {
    "unicity": (),
    "trajectory_recovery": ("n_trajectories",),
    "membership_inference": ("features", "classifier", "neighbouring", "prior", "variants"),
    "reconstruction": ("crossbreaks", "tag", "check_uniqueness"),
    "differencing": (),
}
ATTACK_ALIASES = {"membership": "membership_inference"}
#: Other spellings of settings, as the attack functions name their parameters.
SETTING_ALIASES = {"n_bootstrap": "bootstrap", "p": "points", "n_targets": "targets", "n_trials": "trials"}
#: Subscriber attributes the reconstruction attack rebuilds (besides the home area and one tag).
RECORD_COLUMNS = ("age_band", "gender", "contract")


class NotApplicable(PrivaggInputError):
    """The attack does not apply to this release (e.g. unicity on an aggregate table)."""


def canonical_attack(name: str) -> str:
    """The attack's one name (``"membership"`` is read as ``"membership_inference"``)."""
    name = ATTACK_ALIASES.get(name, name)
    if name not in ATTACK_SETTINGS:
        raise PrivaggInputError(f"attack {name!r} is unknown. Fix: use one of {', '.join(ATTACK_SETTINGS)}.")
    return name


def attack_settings(attack: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``settings`` checked and completed with the attack's defaults.

    Raises
    ------
    PrivaggInputError
        For an unknown setting or an integer setting below its minimum.
    """
    attack = canonical_attack(attack)
    given = {SETTING_ALIASES.get(k, k): v for k, v in (settings or {}).items()}
    allowed = (*ATTACK_SETTINGS[attack], *ATTACK_OPTIONS[attack])
    for key in given:
        if key not in allowed:
            raise PrivaggInputError(
                f"attack {attack!r} has no setting {key!r}. Fix: use {', '.join(allowed)}."
            )
    out: dict[str, Any] = {}
    for key, (default, minimum) in ATTACK_SETTINGS[attack].items():
        value = given.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise PrivaggInputError(
                f"attack {attack!r}: {key} = {value!r} is not a whole number >= {minimum}. Fix: e.g. {key} = {default}."
            )
        out[key] = int(value)
    out.update({k: given[k] for k in ATTACK_OPTIONS[attack] if k in given})
    return out


def published_query(anonymiser: Any, world: Any, query: Query) -> Query:
    """The query whose answer the anonymiser actually publishes (coarsening: the coarser one)."""
    if hasattr(anonymiser, "published_query"):
        return anonymiser.published_query(world, query)
    return query


def first_days(world: Any, query: Query, days: int) -> Query:
    """``query`` restricted to the first ``days`` days of the World's window (its own keys dropped)."""
    start = pd.Timestamp(world.meta["start"])
    end = min(pd.Timestamp(world.meta["end"]), start + pd.Timedelta(days=days))
    return replace(query, start=start, end=end, keys=None)


def run_attack(attack: str, world: Any, anonymiser: Any, query: Query, *, release: Any = None,
               settings: Mapping[str, Any] | None = None, seed: int = 0, label: str | None = None) -> AttackResult:
    """Run ``attack`` against ``anonymiser``'s release of ``query`` on ``world``.

    Parameters
    ----------
    attack
        One of :data:`ATTACK_SETTINGS` (``"membership"`` is accepted for ``"membership_inference"``).
    world
        The :class:`~privagg.world.World` released (the adversary's ground truth is taken from it).
    anonymiser
        The release method (an :class:`~privagg.anonymisers.base.Anonymiser`).
    query
        What is released, as asked of the anonymiser.
    release
        The release already made (trajectory recovery and unicity attack it);
        made here when ``None``.
    settings
        The attack's settings (:func:`attack_settings`).
    seed
        Seed of the attack's own randomness (release noise is never seeded).
    label
        What the result calls the attacked release (default: the anonymiser's name).

    Returns
    -------
    AttackResult

    Raises
    ------
    NotApplicable
        When the attack does not apply to this release.
    """
    attack = canonical_attack(attack)
    s = attack_settings(attack, settings)
    label = label or getattr(anonymiser, "name", type(anonymiser).__name__)
    published = published_query(anonymiser, world, query)
    return _RUNNERS[attack](world, anonymiser, query, published, release, s, seed, label)


def _days(days: int) -> str:
    return "first day" if days == 1 else f"first {days} days"


# --------------------------------------------------------------------------- one function per attack


def _unicity(world: Any, anonymiser: Any, query: Query, published: Query, release: Any, s: dict[str, Any],
             seed: int, label: str) -> AttackResult:
    from privagg.attacks.unicity import unicity

    if getattr(anonymiser, "method", None) != "pseudonymised":
        raise NotApplicable("unicity needs pseudonymised microdata, not an aggregate table. "
                            "Fix: run it against the 'pseudonymised' family.")
    micro = release if release is not None else anonymiser.release(world, query)
    return unicity(micro, s["points"], n_targets=s["targets"], seed=seed, target=label)


def _trajectory_recovery(world: Any, anonymiser: Any, query: Query, published: Query, release: Any,
                         s: dict[str, Any], seed: int, label: str) -> AttackResult:
    from privagg.attacks.trajectory_recovery import (
        footfall_grid, location_coordinates, trajectory_recovery, true_locations,
    )

    if published.statistic != "footfall" or published.time_bin is None:
        raise NotApplicable("trajectory recovery needs a footfall release with time bins (counts per area and "
                            "time slot). Fix: attack a footfall query with a time_bin.")
    release = release if release is not None else anonymiser.release(world, query)
    table = release.to_pandas()
    area = LEVELS[published.level]
    times = pd.to_datetime(table["time"])
    table = table.loc[times < times.min().floor("D") + pd.Timedelta(days=s["days"])]
    consenting = world.opted_in()
    stays = consenting.stays
    if area != "cell_id":
        stays = stays.merge(world.cells[["cell_id", area]], on="cell_id", how="left")
    grid = footfall_grid(table, location_col=area)
    _, truth = true_locations(stays, grid.slots, location_col=area)
    # The adversary knows roughly how many subscribers there are (operators publish it); without this,
    # noisy DP counts would make it chase thousands of phantom trajectories.
    n_trajectories = s.get("n_trajectories", int(len(consenting.users)))
    return trajectory_recovery(table, location_coordinates(world.cells, area), truth, location_col=area,
                               n_trajectories=n_trajectories, seed=seed, n_bootstrap=s["bootstrap"],
                               target=f"{label} ({_days(s['days'])})")


def _membership_inference(world: Any, anonymiser: Any, query: Query, published: Query, release: Any,
                          s: dict[str, Any], seed: int, label: str) -> AttackResult:
    from privagg.anonymisers.base import model_for_attack
    from privagg.attacks.membership import hourly_presence, membership_inference

    if (published.statistic != "footfall" or published.time_bin is None
            or pd.Timedelta(published.time_bin) != pd.Timedelta("1h")):
        raise NotApplicable("membership inference needs hourly footfall (the game's groups are published "
                            "hour by hour). Fix: attack a footfall query with time_bin = \"1h\".")
    # Hourly presence: each subscriber in at most one location per hour, 24 keys a day, 1 each.
    # The model's noise and guarantee are those of the anonymiser's own release of the published query.
    model = model_for_attack(anonymiser, world, published, l0=24, linf=1, days=s["days"])
    consenting = world.opted_in()
    area = LEVELS[published.level]
    location_map = None if area == "cell_id" else world.cells.set_index("cell_id")[area]
    presence = hourly_presence(consenting.events, start=world.meta["start"], n_hours=24 * s["days"],
                               locations=np.sort(world.cells[area].unique()), location_map=location_map,
                               user_ids=consenting.users["user_id"].to_numpy())
    group = min(s["group_size"], presence.n_users - 2)
    options = {k: s[k] for k in ATTACK_OPTIONS["membership_inference"] if k in s}
    result = membership_inference(presence, group_size=group, anonymiser=model, targets=s["targets"],
                                  n_train=s["n_train"], n_test=s["n_test"], seed=seed,
                                  n_bootstrap=s["bootstrap"], **options)
    return replace(result, target=f"{label} (groups of {group}, {_days(s['days'])})")


def _reconstruction(world: Any, anonymiser: Any, query: Query, published: Query, release: Any,
                    s: dict[str, Any], seed: int, label: str) -> AttackResult:
    from privagg.attacks.reconstruction import DEFAULT_CROSSBREAKS, reconstruction_attack, records_from_users

    crossbreaks = s.get("crossbreaks")
    tag = s.get("tag")
    if crossbreaks is None:
        if published.by:
            crossbreaks = [tuple(published.by)]
        else:
            crossbreaks = [tuple(c for c in cb if c != "area") for cb in DEFAULT_CROSSBREAKS]
    crossbreaks = [tuple(c for c in cb if c != "area") for cb in crossbreaks]
    if tag is None:
        tag = next((c for cb in crossbreaks for c in cb if c.startswith("tag_")), None)
    usable = [cb for cb in crossbreaks if cb and all(c in RECORD_COLUMNS or c == "tag" or c == tag for c in cb)]
    if not usable:
        raise NotApplicable(f"reconstruction rebuilds records of {', '.join(RECORD_COLUMNS)} and one tag; the "
                            f"crossbreaks {crossbreaks} use none of them. Fix: publish e.g. age_band x gender.")
    # Each crossbreak is its own release, as the claim audit and the demo publish them: every subscriber is
    # counted once in it (1 key, 1 count), and each table gets that release's noise.
    model = anonymiser.publication_model(l0=1, linf=1, days=None)
    area = "home_cell" if published.level == "cell" else LEVELS[published.level]
    records = records_from_users(world.users, area=area, tag=tag, cells=world.cells)
    tables = [("area", *("tag" if c == tag else c for c in cb)) for cb in usable]
    result = reconstruction_attack(records, anonymiser=model, crossbreaks=tables, seed=seed,
                                   n_bootstrap=s["bootstrap"],
                                   **({"check_uniqueness": s["check_uniqueness"]} if "check_uniqueness" in s else {}))
    shown = "; ".join(" x ".join((f"home {published.level}", *cb)) for cb in usable)
    return replace(result, target=f"{label}: crossbreaks {shown}")


def _differencing(world: Any, anonymiser: Any, query: Query, published: Query, release: Any,
                  s: dict[str, Any], seed: int, label: str) -> AttackResult:
    from privagg.attacks.differencing import differencing

    if query.statistic in ("dwell_mean", "segment_mean"):
        raise NotApplicable("differencing attacks count tables. Fix: attack a count statistic.")
    q = first_days(world, query, s["days"]) if query.time_bin else query
    return differencing(world, q, anonymiser, n_trials=s["trials"], seed=seed,
                        target=f"{label} ({_days(s['days'])})")


_RUNNERS = {
    "unicity": _unicity,
    "trajectory_recovery": _trajectory_recovery,
    "membership_inference": _membership_inference,
    "reconstruction": _reconstruction,
    "differencing": _differencing,
}

__all__ = ["ATTACK_OPTIONS", "ATTACK_SETTINGS", "NotApplicable", "attack_settings", "canonical_attack", "run_attack"]
