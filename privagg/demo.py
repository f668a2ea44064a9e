"""The demo: privagg's main job, end to end, in under a minute.

:func:`run_demo` builds a synthetic city and releases three products, hourly
footfall per zone, daily origin-destination flows between zones and a daily
age x gender crossbreak per zone, three ways: with small-count suppression
(``k = 10``), as operators' products do, and with user-level differential
privacy at two levels of epsilon per subscriber-day, split over the three
products and charged to a budget ledger. It then attacks every footfall
release (differencing, membership inference) and every crossbreak
(reconstruction) through the one attack runner, measures every release's accuracy and writes
``report.html`` / ``report.json`` and the releases into ``out_dir``, which is
replaced whole only when the demo succeeds.

It uses only privagg's public functions, as a user would.

>>> from privagg.demo import run_demo
>>> report = run_demo("privagg-demo")          # doctest: +SKIP
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from privagg import Budget, Query, __version__
from privagg.anonymisers.factory import make_anonymiser
from privagg.atomic import publish_directory
from privagg.attacks import NotApplicable, run_attack
from privagg.claim_audit import truth_of, utility_of
from privagg.harness.plots import footfall_map_figure, od_flow_map_figure, risk_figure
from privagg.harness.report import finding, write_report
from privagg.synth import generate_world

#: The demo city: zones of several hundred people each, where DP at a published epsilon is as useful as
#: suppression, and small enough for the demo to take well under a minute.
DEFAULTS = {"n_users": 6000, "n_cells": 60, "days": 2, "seed": 1}
#: Privacy levels, epsilon per subscriber-day for the three products together.
EPSILONS = (1.0, 4.0)
#: Share of each level spent on each product (binary fractions, so the ledger sums exactly).
SHARES = {"footfall": 0.5, "od_flows": 0.25, "segments": 0.25}
K = 10
UNIT = "subscriber-day"
#: Attacks on each product's releases, with their settings (sized for the demo). Trajectory recovery is
#: left to the harness and the claim audit: on zone-level footfall it does no better than assuming that
#: everyone stays where they sleep, and it is the slowest attack.
ATTACKS: dict[str, dict[str, dict[str, int]]] = {
    "footfall": {
        "differencing": {"trials": 20, "days": 1},
        "membership_inference": {"group_size": 1000, "targets": 2, "n_train": 100, "n_test": 40, "days": 1,
                                 "bootstrap": 100},
    },
    "segments": {"reconstruction": {"bootstrap": 100}},
}
PRODUCTS = {
    "footfall": Query("footfall", level="zone", time_bin="1h"),
    "od_flows": Query("od_flows", level="zone", time_bin="1D"),
    "segments": Query("segment_counts", level="zone", time_bin="1D", by=("age_band", "gender")),
}


def run_demo(out_dir: str | Path = "privagg-demo", *, n_users: int = DEFAULTS["n_users"],
             n_cells: int = DEFAULTS["n_cells"], days: int = DEFAULTS["days"], seed: int = DEFAULTS["seed"],
             epsilons: tuple[float, ...] = EPSILONS, k: int = K, attacks: dict[str, dict[str, dict[str, int]]] | None = None,
             progress: Callable[[str], None] | None = print) -> Path:
    """Run the demo and return the path of ``report.html``.

    Parameters
    ----------
    out_dir
        Where the report, the releases (``releases/*.parquet``) and the budget ledgers go.
    n_users, n_cells, days, seed
        Size and seed of the synthetic city.
    epsilons
        Privacy levels, epsilon per subscriber-day for the three products together.
    k
        Suppression threshold of the baseline.
    attacks
        Attacks per product, with their settings (default :data:`ATTACKS`).
    progress
        Called with one line per step; ``None`` is silent.
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    publish_directory(out_dir, lambda staging: _demo(staging, say, n_users, n_cells, days, seed, tuple(epsilons), k,
                                                     ATTACKS if attacks is None else attacks, started))
    report = Path(out_dir) / "report.html"
    say(f"done in {time.perf_counter() - started:.0f} s. Open the report: {report.resolve()}")
    return report


def _demo(staging: Path, say: Callable[[str], None], n_users: int, n_cells: int, days: int, seed: int,
          epsilons: tuple[float, ...], k: int, attacks: dict[str, dict[str, dict[str, int]]], started: float) -> Path:
    say(f"building a synthetic city: {n_users:,} subscribers, {n_cells} cells, {days} days (seed {seed})")
    world = generate_world(n_users=n_users, n_cells=n_cells, days=days, seed=seed)
    summary = world.summary()
    say(f"  {summary['opted_in']:,} subscribers opted in; {summary['events']:,} network events, "
        f"{summary['stays']:,} stays, {summary['trips']:,} trips")

    # One anonymiser per (method, product): suppression alike for all, DP with each product's share of epsilon.
    methods: dict[str, dict[str, Any]] = {"suppression": {p: make_anonymiser("suppression", {"k": k}) for p in PRODUCTS}}
    budgets: dict[str, Budget] = {}
    for eps in epsilons:
        name = f"dp_epsilon_{eps:g}"
        budgets[name] = Budget(epsilon=eps * days, ledger=staging / f"budget_{name}.sqlite")
        methods[name] = {p: make_anonymiser("dp", {"epsilon": eps * SHARES[p], "unit": UNIT},
                                            budget=budgets[name]) for p in PRODUCTS}
    (staging / "releases").mkdir()
    truths = {p: truth_of(world, q) for p, q in PRODUCTS.items()}
    releases: dict[tuple[str, str], Any] = {}
    utility: dict[str, dict[str, float]] = {}
    for method, anonymisers in methods.items():
        for product, query in PRODUCTS.items():
            # No bounds are given: each day's release chooses its own privately, from a small share of its epsilon.
            release = anonymisers[product].release(world, query)
            releases[(method, product)] = release
            release.write(staging / "releases" / f"{product}_{method}.parquet")
            utility[f"{product}: {release.privacy.label()}"] = utility_of(truths[product], release, floor=10.0)
        footfall = releases[(method, "footfall")]
        say(f"released the three products with {method}; footfall ({footfall.privacy.label()}): mean relative "
            f"error {utility[f'footfall: {footfall.privacy.label()}']['mean_relative_error']:.3f}")
    for name, budget in budgets.items():
        say(f"  budget {name}: spent epsilon {budget.spent['epsilon']:g} of {budget.totals()['epsilon']:g} per "
            f"subscriber over the {days} days, in {len(budget.entries)} charges")

    rows, labels = [], []
    for product, product_attacks in attacks.items():
        query = PRODUCTS[product]
        for method, anonymisers in methods.items():
            release = releases[(method, product)]
            label = f"{query.describe()}, {release.privacy.label()}"
            # Attacks replay releases to measure risk: their simulated releases are not publications and
            # are not charged to the budget, so they use the same anonymiser without one.
            anonymiser = anonymisers[product]
            attacker_view = anonymiser.unbudgeted() if release.privacy.formally_private else anonymiser
            for attack, settings in product_attacks.items():
                try:
                    result = run_attack(attack, world, attacker_view, query, release=release, settings=settings,
                                        seed=seed, label=label)
                except NotApplicable:
                    continue
                say(f"attack {attack.replace('_', ' ')} on {product}, {release.privacy.label()}: risk "
                    f"{result.risk:.2f} (baseline {result.baseline:.2f})")
                rows.append(finding(result))
                labels.append(f"{attack.replace('_', ' ')}\n{release.privacy.label()}")

    figures: dict[str, Any] = {"risks": (risk_figure(rows, labels, release_label="release"),
                                         "Attack success with 95% intervals, per release; black bars: guessing; "
                                         "hollow diamonds: the simplest attack")}
    maps = {"true": truths["footfall"], **{releases[(m, "footfall")].privacy.label(): releases[(m, "footfall")].to_pandas()
                                            for m in methods}}
    figures["footfall-map"] = (footfall_map_figure(world.cells, maps, title="Hourly footfall per zone, summed over "
                                                                            "the period"),
                               "True footfall and its releases, on one colour scale (hatched: suppressed)")
    figures["od-true"] = (od_flow_map_figure(world.cells, truths["od_flows"], title="OD flows, true"),
                          "True origin-destination flows between zones")
    if epsilons:
        best = releases[(f"dp_epsilon_{max(epsilons):g}", "od_flows")]
        figures["od-dp"] = (od_flow_map_figure(world.cells, best.to_pandas(), title=f"OD flows, {best.privacy.label()}"),
                            f"Origin-destination flows, {best.privacy.label()}")
    claim = {
        "name": "privagg demo",
        "title": "privagg demo: what suppression and differential privacy protect",
        "description": (f"A synthetic city of {n_users:,} subscribers over {days} days. Three products - hourly "
                        f"footfall per zone, daily origin-destination flows between zones, and daily footfall per "
                        f"zone by age band and gender - released with small-count suppression (k = {k}) and with "
                        f"differential privacy at " + " and ".join(f"epsilon = {e:g}" for e in epsilons) +
                        f" per {UNIT} for the three products together (half for footfall, a quarter each for the "
                        "others), then attacked."),
        "releases": {label: rel.privacy.describe() for label, rel in
                     ((f"{p}, {m}", r) for (m, p), r in releases.items())},
        "data": {"n_users": n_users, "n_cells": n_cells, "days": days, "seed": seed},
        "budget_ledgers": [f"budget_{name}.sqlite" for name in budgets],
    }
    notes = [
        f"DP releases: each day is released separately at the loss shown, per {UNIT}; over the {days} days a "
        "subscriber's epsilon is the daily epsilon times the number of days. The ledgers record every charge.",
        "Attacks replay releases many times to measure risk; those simulated releases are not publications and "
        "are not charged to the budget.",
    ]
    provenance = {"privagg_version": __version__, "seeds": {"world": seed, "attacks": seed},
                  "seconds": round(time.perf_counter() - started, 2),
                  "finished": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}
    html, _ = write_report(staging, claim, rows, {"metrics": utility}, figures, provenance=provenance, notes=notes)
    import matplotlib.pyplot as plt

    plt.close("all")
    return html


__all__ = ["ATTACKS", "DEFAULTS", "EPSILONS", "PRODUCTS", "run_demo"]
