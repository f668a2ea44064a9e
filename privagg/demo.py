"""The demo: privagg's main job, end to end, in a few minutes on a laptop.

:func:`run_demo` builds a small synthetic city, releases three products
(hourly footfall per cell, daily origin-destination flows between zones, and
a daily crossbreak of footfall by age band and gender per zone) three ways:

* with small-count suppression (``k = 10``), as operators' products do;
* with user-level differential privacy at ``epsilon = 0.5`` and at
  ``epsilon = 4`` per subscriber-day, split over the three products
  (half for footfall, a quarter each for flows and the crossbreak), each day
  released separately and charged to a :class:`~privagg.dp.budget.Budget`
  whose JSON ledger is written next to the report;

then attacks them (trajectory recovery from footfall, Xu et al. 2017; the
differencing game; membership inference, Pyrgelis et al. 2018, when this build
has it), measures every release's accuracy, and writes ``report.html`` /
``report.json`` (:func:`privagg.harness.report.write_report`) and every release
as Parquet into ``out_dir``. Nothing is written there unless the whole demo
succeeds.

>>> from privagg.demo import run_demo
>>> report = run_demo("privagg-demo")          # doctest: +SKIP
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from privagg.queries import Query

#: The demo city: small enough for about a minute of CPU, big enough for the attacks to mean something.
DEFAULTS = {"n_users": 1000, "n_cells": 80, "days": 2, "seed": 1}
#: Privacy levels, epsilon per subscriber-day for the three products together.
EPSILONS = (0.5, 4.0)
#: Share of each level spent on each product (binary fractions, so the ledger sums exactly).
SHARES = {"footfall": 0.5, "od_flows": 0.25, "segments": 0.25}
K = 10


def _products() -> dict[str, Query]:
    return {
        "footfall": Query("footfall", level="cell", time_bin="1h"),
        "od_flows": Query("od_flows", level="zone", time_bin="1D"),
        "segments": Query("segment_counts", level="zone", time_bin="1D", by=("age_band", "gender")),
    }


def run_demo(out_dir: str | Path = "privagg-demo", *, n_users: int = DEFAULTS["n_users"],
             n_cells: int = DEFAULTS["n_cells"], days: int = DEFAULTS["days"], seed: int = DEFAULTS["seed"],
             epsilons: tuple[float, ...] = EPSILONS, k: int = K, trajectory_days: int | None = None,
             differencing_trials: int = 20, membership_targets: int = 2,
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
    trajectory_days
        Days of footfall the trajectory-recovery attack uses (all by default).
    differencing_trials
        Games of the differencing attack per release method.
    membership_targets
        Targets of the membership-inference attack per method (0 skips it).
    progress
        Called with one line per step; ``None`` is silent.
    """
    from privagg.regulator_audit import staged

    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    html = staged(out_dir, lambda staging: _demo(
        staging, say, n_users=n_users, n_cells=n_cells, days=days, seed=seed, epsilons=tuple(epsilons), k=k,
        trajectory_days=trajectory_days or days, differencing_trials=differencing_trials,
        membership_targets=membership_targets, started=started))
    report = Path(out_dir) / Path(html).name
    say(f"done in {time.perf_counter() - started:.0f} s. Open the report: {report.resolve()}")
    return report


def _demo(staging: Path, say: Callable[[str], None], *, n_users: int, n_cells: int, days: int, seed: int,
          epsilons: tuple[float, ...], k: int, trajectory_days: int, differencing_trials: int,
          membership_targets: int, started: float) -> Path:
    from privagg.anonymisers.suppression import Suppression
    from privagg.claims import MethodSpec
    from privagg.dp.budget import Budget
    from privagg.harness.plots import footfall_map_figure, od_flow_map_figure
    from privagg.harness.report import write_report
    from privagg.regulator_audit import (
        TRAJECTORY_DP_NOTE, PerDayDP, Target, risk_figure, run_differencing, run_membership, run_trajectory_recovery,
        truth_of, utility_of,
    )
    from privagg.synth import generate_world

    timings: dict[str, float] = {}
    t = time.perf_counter()
    say(f"building a synthetic city: {n_users:,} subscribers, {n_cells} cells, {days} days (seed {seed})")
    world = generate_world(n_users=n_users, n_cells=n_cells, days=days, seed=seed)
    summary = world.summary()
    say(f"  {summary['opted_in']:,} subscribers opted in; {summary['events']:,} network events, "
        f"{summary['stays']:,} stays, {summary['trips']:,} trips")
    timings["world"] = time.perf_counter() - t

    t = time.perf_counter()
    products = _products()
    methods: dict[str, tuple[Any, MethodSpec, float | None]] = {
        f"suppression (k={k})": (Suppression(k=k), MethodSpec("suppression", {"k": k}), None)}
    budgets: dict[float, Budget] = {}
    releases: dict[tuple[str, str], Any] = {}
    for eps in epsilons:
        budgets[eps] = Budget(epsilon=eps * days, ledger=staging / f"budget_epsilon_{eps:g}.json")
        methods[f"DP, epsilon {eps:g}/day"] = (None, MethodSpec("dp", {"epsilon": eps, "privacy_unit": "subscriber-day"}), eps)
    (staging / "releases").mkdir()
    truths = {name: truth_of(world, q) for name, q in products.items()}
    utility: dict[str, dict[str, float]] = {}
    for label, (anonymiser, spec, eps) in methods.items():
        for name, query in products.items():
            if eps is not None:
                share = eps * SHARES[name]
                anonymiser = PerDayDP(share, budget=budgets[eps])
            release = anonymiser.release(world, query)
            releases[(label, name)] = release
            slug = label.split(" (")[0].split(",")[0].lower() + ("" if eps is None else f"_epsilon_{eps:g}")
            release.write(staging / "releases" / f"{name}_{slug}.parquet")
            m = utility_of(truths[name], release, floor=10.0)
            utility[f"{name}: {label}"] = m
        say(f"released footfall, OD flows and the age x gender crossbreak with {label}: footfall mean relative "
            f"error {utility[f'footfall: {label}']['mean_relative_error']:.2f}")
    for eps, budget in budgets.items():
        say(f"  budget at epsilon {eps:g}/day: spent {budget.spent['epsilon']:g} of {eps * days:g} over {days} days "
            f"in {len(budget.entries)} releases (ledger {budget.ledger.name})")
    timings["releases"] = time.perf_counter() - t

    results: list[dict[str, Any]] = []
    footfall_q = products["footfall"]
    for label, (anonymiser, spec, eps) in methods.items():
        # Attacks simulate an adversary: their extra releases are not publications and charge no budget.
        attacker_view = anonymiser if eps is None else PerDayDP(eps * SHARES["footfall"])
        spec = spec if eps is None else MethodSpec("dp", {"epsilon": eps * SHARES["footfall"],
                                                         "privacy_unit": "subscriber-day"})
        target = Target(f"hourly footfall per cell, {label}", attacker_view, footfall_q, footfall_q,
                        releases[(label, "footfall")], spec, eps)
        t = time.perf_counter()
        res = run_trajectory_recovery(world, target, {"days": trajectory_days, "bootstrap": 200}, seed)
        timings[f"trajectory_recovery {label}"] = time.perf_counter() - t
        say(f"attack: trajectory recovery on footfall, {label}: {100 * res['risk']:.0f}% of slots right "
            f"(guessing {100 * res['baseline']:.0f}%)")
        results.append(res)
        t = time.perf_counter()
        res = run_differencing(world, target, {"trials": differencing_trials, "days": 1}, seed)
        timings[f"differencing {label}"] = time.perf_counter() - t
        say(f"attack: differencing on footfall, {label}: presence inferred in {100 * res['risk']:.0f}% of games "
            f"(guessing 50%)")
        results.append(res)
        if membership_targets:
            try:
                t = time.perf_counter()
                res = run_membership(world, target, {"group_size": 100, "targets": membership_targets,
                                                     "n_train": 200, "n_test": 40, "days": 1}, seed)
                timings[f"membership {label}"] = time.perf_counter() - t
            except ImportError:
                res = None
                membership_targets = 0
                say("  (membership inference is not in this build of privagg; skipped)")
            if res is not None:
                say(f"attack: membership inference on footfall, {label}: AUC {res['risk']:.2f} (guessing 0.50)")
                results.append(res)

    labels = [f"{r['attack'].replace('_', ' ')}\n{label}" for label in methods for r in results
              if r["target"].startswith(f"hourly footfall per cell, {label}")]
    figures: dict[str, Any] = {"risks": (risk_figure(results, labels if len(labels) == len(results) else None,
                                                     release_label="release"),
                                         "Attack success with 95% intervals, per release method; black bars: guessing")}
    maps = {"true": truths["footfall"], **{label: releases[(label, "footfall")].to_pandas() for label in methods}}
    figures["footfall-map"] = (footfall_map_figure(world.cells, maps, title="Hourly footfall per cell, summed over the period"),
                               "True footfall and its releases (hatched: suppressed)")
    figures["od-true"] = (od_flow_map_figure(world.cells, truths["od_flows"], title="OD flows, true"),
                          "True origin-destination flows between zones")
    if epsilons:
        label = f"DP, epsilon {max(epsilons):g}/day"
        figures["od-dp"] = (od_flow_map_figure(world.cells, releases[(label, "od_flows")].to_pandas(),
                                               title=f"OD flows, {label}"), f"Origin-destination flows, {label}")
    from privagg import __version__
    from privagg.harness.store import git_commit

    claim = {
        "name": "privagg demo",
        "title": "privagg demo: what suppression and differential privacy protect",
        "description": (f"A synthetic city of {n_users:,} subscribers over {days} days. Three products - hourly "
                        f"footfall per cell, daily origin-destination flows between zones, and daily footfall per "
                        f"zone by age band and gender - released with small-count suppression (k = {k}) and with "
                        f"differential privacy at " + " and ".join(f"epsilon = {e:g}" for e in epsilons) +
                        " per subscriber-day (split over the three products), then attacked."),
        "statistic": "footfall (cell x 1h); od_flows (zone x 1D); segment_counts by age_band, gender (zone x 1D)",
        "method": f"suppression k = {k}; " + "; ".join(f"DP epsilon = {e:g} per subscriber-day" for e in epsilons),
        "data": {"n_users": n_users, "n_cells": n_cells, "days": days, "seed": seed},
        "budget_ledgers": [f"budget_epsilon_{e:g}.json" for e in epsilons],
        "releases": "releases/*.parquet (each with a .privacy.json record)",
    }
    notes = [
        "DP releases: each day is released separately; a subscriber's epsilon over the whole period is the daily "
        "epsilon times the number of days. The ledgers budget_epsilon_*.json record every charge.",
        "Attacks replay releases many times to measure risk; those simulated releases are not publications and "
        "are not charged to the budget.",
        "The verdict above counts the attacks on all three release methods together; each attack's table "
        "separates suppression from the two DP levels.",
        TRAJECTORY_DP_NOTE,
    ]
    timings["total_before_report"] = time.perf_counter() - started
    provenance = {"privagg_version": __version__, "git_commit": git_commit(Path(__file__).parent),
                  "seeds": {"world": seed, "attacks": seed},
                  "seconds": {key: round(v, 2) for key, v in timings.items()},
                  "finished": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}
    html, _ = write_report(staging, claim, results, {"metrics": utility}, figures, provenance=provenance, notes=notes)
    import matplotlib.pyplot as plt

    plt.close("all")
    return html


__all__ = ["DEFAULTS", "EPSILONS", "run_demo"]
