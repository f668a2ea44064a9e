"""Benchmark: accuracy from structure, each method beside independent releases at the same budget.

    python benchmarks/bench_structure.py                    # every part
    python benchmarks/bench_structure.py --parts continual  # one part (continual, od, od_cells, od_selected, footfall)

Parts
-----
continual
    Daily footfall per zone over 28 days (``generate_world(n_users=5000, n_cells=600, days=28, seed=0)``),
    per-day bound: each subscriber in at most 6 zones a day (99% of subscriber-days) (public choice), privacy unit one
    subscriber-day, epsilon 1 per subscriber-day at delta 1e-9 (as rho). Independent daily releases
    (the whole rho every day, weekly totals as sums of 7 days) against the tree counter at the same
    rho per subscriber-day: the binary mechanism and a calendar tree (days, weeks, 4 weeks). RMSE of
    the 4 weekly totals, of the daily values and of the 28-day totals, per zone, against the true
    (unbounded) distinct-subscriber counts.
od
    OD flows per zone pair over the week on the issue's world (20,000 subscribers, 600 cells, 7 days,
    seed 0) at epsilon 1 and 10 per subscriber-week (delta 1e-9): independent release of the zone
    pairs (``release_query`` with automatic bounds and mechanism, negatives clipped) against the
    top-down hierarchy (total, district pairs, zone pairs; same bounds, same budget) and against the
    independent release shrunk toward a gravity model fitted to it (``shrink_od``: origin and destination
    margins and distance bands between the zones' public centres; post-processing, no extra budget).
od_cells
    OD flows per cell pair (360,000 public keys) at epsilon 1 and 10: independent against the top-down
    hierarchy down to cell pairs, with the zone-pair bound choice at every level.
od_selected
    OD flows per cell pair WITHOUT public cell-pair keys at epsilon 1 and 10: independent private partition
    selection (``release_query`` on cell pairs with ``keys=None``, its public default bounds 8 pairs x 1 trip,
    the whole epsilon) against the top-down hierarchy with selected cell pairs (``release_od_selected``:
    total, district and zone pairs public with the zone-pair bound choice, cell pairs selected under the
    surviving zone pairs with the same default bounds; shares 2/8/30/60%, 95% of epsilon). Released total,
    SMAPE, top-100 recall, false positives (released pairs that are truly empty), and the zone-pair flows
    each release implies.
footfall
    Zone x hour and cell x day footfall at epsilon 2 per subscriber-week: ``release_query`` (auto)
    against its structured estimate (shrinkage toward the key's profile over time and toward its
    coarser level); WRE, bias and the coverage of the 95% intervals.

Results: ``benchmarks/results/structure-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(ROOT))

from privagg.dp.bound_choice import rho_for_epsilon  # noqa: E402
from privagg.dp.budget import Budget  # noqa: E402
from privagg.dp.mechanisms import gaussian  # noqa: E402
from privagg.releases.continual import TreeCounter, bounded_daily_footfall  # noqa: E402

DELTA = 1e-9


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------------- continual release
def bench_continual(repeats: int, epsilon_day: float = 1.0, l0: int = 6) -> dict[str, Any]:
    from privagg.synth import generate_world

    world = generate_world(n_users=5000, n_cells=600, days=28, seed=0)
    events = world.events.merge(world.users[["user_id", "opt_in"]], on="user_id")
    events = events[events["opt_in"]]
    key_of_cell = world.cells.set_index("cell_id")["zone_id"]
    zones = np.sort(world.cells["zone_id"].unique())
    start = pd.Timestamp(world.meta["start"])
    days = 28
    bounded = np.stack([bounded_daily_footfall(events, key_of_cell, zones, start + pd.Timedelta(days=d), l0)
                        for d in range(days)])
    true = np.stack([bounded_daily_footfall(events, key_of_cell, zones, start + pd.Timedelta(days=d), 10 ** 6)
                     for d in range(days)]).astype(float)
    rho = rho_for_epsilon(epsilon_day, DELTA)
    weeks = [(7 * i, 7 * i + 7) for i in range(4)]

    def rmse(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(np.square(x))))

    out: dict[str, Any] = {"world": "generate_world(n_users=5000, n_cells=600, days=28, seed=0)",
                           "keys": len(zones), "max_zones_per_day": l0, "epsilon_per_subscriber_day": epsilon_day,
                           "rho_per_subscriber_day": rho, "methods": {}}
    methods = {
        "independent daily": None,
        "binary tree": dict(branching=(2,)),
        "calendar tree (days, weeks, 4 weeks; shares 0.2/0.75/0.05)": dict(branching=(7, 4),
                                                                           level_shares=(0.2, 0.75, 0.05)),
    }
    for name, options in methods.items():
        weekly, daily, month, weekly_noise = [], [], [], []
        for _ in range(repeats):
            if options is None:
                budget = Budget(rho=rho)
                noise = gaussian(rho, math.sqrt(l0))
                budget.charge(noise_loss(rho), statistic="daily footfall", window="subscriber-day")
                est_days = np.stack([noise.sample(row) for row in bounded]).astype(float)
                week_est = [est_days[a:b].sum(0) for a, b in weeks]
                month_est = est_days.sum(0)
                spent = budget.spent["rho"]
            else:
                budget = Budget(rho=rho)
                counter = TreeCounter(n_keys=len(zones), loss=rho, budget=budget, max_partitions=l0, horizon=days,
                                      **options)
                for row in bounded:
                    counter.add_day(row)
                est_days, _ = counter.consistent_days()
                week_est = [counter.consistent_range_total(a, b)[0] for a, b in weeks]
                month_est = counter.consistent_range_total(0, days)[0]
                spent = budget.spent["rho"]
            weekly.append(rmse(np.stack(week_est) - np.stack([true[a:b].sum(0) for a, b in weeks])))
            weekly_noise.append(rmse(np.stack(week_est) - np.stack([bounded[a:b].sum(0) for a, b in weeks])))
            daily.append(rmse(est_days - true))
            month.append(rmse(month_est - true.sum(0)))
        out["methods"][name] = {"weekly_rmse": float(np.mean(weekly)),
                                "weekly_rmse_vs_bounded": float(np.mean(weekly_noise)), "daily_rmse": float(np.mean(daily)),
                                "total_28d_rmse": float(np.mean(month)), "rho_charged_per_subscriber_day": spent}
        log(f"  continual {name:60s} weekly RMSE {np.mean(weekly):8.2f} (vs bounded {np.mean(weekly_noise):7.2f})  daily {np.mean(daily):7.2f}  "
            f"28-day {np.mean(month):8.2f}  rho charged {spent:.4f}")
    base = out["methods"]["independent daily"]["weekly_rmse"]
    for name, row in out["methods"].items():
        row["weekly_rmse_ratio_vs_independent"] = base / row["weekly_rmse"]
        row["weekly_rmse_vs_bounded_ratio"] = (out["methods"]["independent daily"]["weekly_rmse_vs_bounded"]
                                               / row["weekly_rmse_vs_bounded"])
        log(f"  {name}: independent / this, weekly RMSE: {row['weekly_rmse_ratio_vs_independent']:.2f} "
            f"(noise only: {row['weekly_rmse_vs_bounded_ratio']:.2f})")
    return out


def noise_loss(rho: float) -> Any:
    from privagg.dp.units import Loss

    return Loss(epsilon=math.inf, rho=rho)


# ---------------------------------------------------------------------- OD hierarchy
def smape(released: np.ndarray, true: np.ndarray) -> float:
    """Mean |r - t| / ((|r| + |t|) / 2) over keys where r or t is non-zero (r clipped at 0)."""
    r = np.maximum(released, 0).astype(float)
    t = true.astype(float)
    live = (r + t) > 0
    return float(np.mean(np.abs(r - t)[live] / ((r + t)[live] / 2))) if live.any() else 0.0


def top_recall(released: np.ndarray, true: np.ndarray, k: int = 100) -> float:
    return len(set(np.argsort(-true, kind="stable")[:k]) & set(np.argsort(-released, kind="stable")[:k])) / k


def issue_world() -> Any:
    from privagg.synth import generate_world

    return generate_world(n_users=20000, n_cells=600, days=7, seed=0)


def bench_od(repeats: int, world: Any = None) -> dict[str, Any]:
    from privagg.dp.bounds import Bounds
    from privagg.exact import exact_aggregate
    from privagg.queries import Query
    from privagg.releases.core import DEFAULT_SHARE, release_query
    from privagg.postprocess.borrow import shrink_od
    from privagg.postprocess.noise import noise_model
    from privagg.releases.od_hierarchy import consistent_od, release_od_levels

    world = world if world is not None else issue_world()
    from dataclasses import replace

    from privagg.queries import public_keys

    start, end = world.meta["start"], world.meta["end"]
    query = Query("od_flows", level="zone", time_bin=None, start=start, end=end)
    query = replace(query, keys=public_keys(query, world.cells, start=start, end=end))  # zones x zones: public
    cols = ["origin_zone", "destination_zone"]
    out: dict[str, Any] = {}
    for eps in (1.0, 10.0):
        rows: dict[str, list[tuple[float, float, float]]] = {"independent (auto)": [], "top-down hierarchy": [],
                                                             "gravity shrinkage": []}
        for _ in range(repeats):
            rel = release_query(world, query, epsilon=eps, delta=DELTA)
            table = rel.to_pandas()
            true_t = exact_aggregate(world, query)
            keys = table[cols]
            true = keys.merge(true_t, on=cols, how="left")["value"].fillna(0).to_numpy(float)
            indep = np.maximum(table["value"].to_numpy(float), 0)
            # the same privately chosen bounds; the choice's share of epsilon is spent by the hierarchy too
            noisy = release_od_levels(world, epsilon=eps * (1 - DEFAULT_SHARE), delta=DELTA,
                                      bounds=Bounds(**rel.privacy.bounds))
            # the choice's estimate of the kept share, where the release records one (post-processing)
            zone = consistent_od(noisy, kept_share=float(rel.privacy.parameters.get("kept_share", 1.0)))["zone"]
            hier = keys.merge(zone, on=cols, how="left")["value"].fillna(0).to_numpy(float)
            grid = table.pivot(index=cols[0], columns=cols[1], values="value")
            centre = world.cells.groupby("zone_id")[["x", "y"]].mean().reindex(grid.index)  # public geometry
            dist = np.hypot(centre.x.to_numpy()[:, None] - centre.x.to_numpy()[None, :],
                            centre.y.to_numpy()[:, None] - centre.y.to_numpy()[None, :])
            shrunk = shrink_od(grid.to_numpy(float), noise_model(rel).variance, distance=dist)
            flat = pd.DataFrame(np.round(np.maximum(shrunk.value, 0)), index=grid.index, columns=grid.columns)
            flat = flat.stack().rename("value").reset_index()
            grav = keys.merge(flat, on=cols, how="left")["value"].to_numpy(float)
            for name, est in (("independent (auto)", indep), ("top-down hierarchy", hier), ("gravity shrinkage", grav)):
                rows[name].append((est.sum() / true.sum() - 1, smape(est, true), top_recall(est, true)))
        out[f"epsilon={eps:g}"] = {name: {"total_rel_error": float(np.mean([r[0] for r in v])),
                                          "smape": float(np.mean([r[1] for r in v])),
                                          "top100_recall": float(np.mean([r[2] for r in v]))}
                                   for name, v in rows.items()}
        out[f"epsilon={eps:g}"]["bounds"] = rel.privacy.bounds
        for name, v in out[f"epsilon={eps:g}"].items():
            if name != "bounds":
                log(f"  od zone pairs eps {eps:>4g} {name:20s} total {v['total_rel_error']:+7.1%}  "
                    f"SMAPE {v['smape']:.3f}  top-100 recall {v['top100_recall']:.0%}")
    return out


def bench_od_cells(repeats: int, world: Any = None) -> dict[str, Any]:
    """OD per cell pair (360,000 public keys, 27% non-empty): independent against the top-down hierarchy
    (total, district, zone and cell pairs; shares 2/8/30/60%) with the bounds ``release_query`` chooses
    for zone pairs at the same epsilon (its 5% share of epsilon spent by the hierarchy too)."""
    from dataclasses import replace

    from privagg.dp.bounds import Bounds
    from privagg.exact import exact_aggregate
    from privagg.queries import Query, public_keys
    from privagg.releases.core import DEFAULT_SHARE, release_query
    from privagg.releases.od_hierarchy import consistent_od, release_od_levels

    world = world if world is not None else issue_world()
    start, end = world.meta["start"], world.meta["end"]

    def keyed(level: str) -> Any:
        q = Query("od_flows", level=level, time_bin=None, start=start, end=end)
        return replace(q, keys=public_keys(q, world.cells, start=start, end=end))

    cells, zones = keyed("cell"), keyed("zone")
    cols = ["origin_cell", "destination_cell"]
    keys = cells.keys.to_pandas()
    true = keys.merge(exact_aggregate(world, cells), on=cols, how="left")["value"].fillna(0).to_numpy(float)
    out: dict[str, Any] = {}
    for eps in (1.0, 10.0):
        rows: dict[str, list[tuple[float, ...]]] = {"independent (auto)": [], "top-down hierarchy": []}
        for _ in range(max(1, repeats // 2)):
            rel = release_query(world, cells, epsilon=eps, delta=DELTA)
            indep = keys.merge(rel.to_pandas(), on=cols, how="left")["value"].to_numpy(float)
            zone_rel = release_query(world, zones, epsilon=eps, delta=DELTA)
            choice, kept = Bounds(**zone_rel.privacy.bounds), float(zone_rel.privacy.parameters.get("kept_share", 1.0))
            noisy = release_od_levels(world, epsilon=eps * (1 - DEFAULT_SHARE), delta=DELTA, bounds=choice,
                                      levels=("district", "zone", "cell"), shares=(0.02, 0.08, 0.3, 0.6))
            hier = keys.merge(consistent_od(noisy, kept_share=kept)["cell"], on=cols, how="left")["value"].to_numpy(float)
            for name, est in (("independent (auto)", np.maximum(indep, 0)), ("top-down hierarchy", hier)):
                rows[name].append((est.sum() / true.sum() - 1, smape(est, true), top_recall(est, true),
                                   float(((est > 0) & (true == 0)).sum())))
        out[f"epsilon={eps:g}"] = {name: {"total_rel_error": float(np.mean([r[0] for r in v])),
                                          "smape": float(np.mean([r[1] for r in v])),
                                          "top100_recall": float(np.mean([r[2] for r in v])),
                                          "false_positives": float(np.mean([r[3] for r in v]))}
                                   for name, v in rows.items()}
        out[f"epsilon={eps:g}"]["bounds"] = {"independent": rel.privacy.bounds, "hierarchy": choice.to_dict()}
        for name, v in rows.items():
            r = out[f"epsilon={eps:g}"][name]
            log(f"  od cell pairs eps {eps:>4g} {name:20s} total {r['total_rel_error']:+7.1%}  "
                f"SMAPE {r['smape']:.3f}  top-100 recall {r['top100_recall']:.0%}  "
                f"false positives {r['false_positives']:.0f}")
    return out


def mean_defined(values: list[float]) -> float:
    """Mean over the defined values (NaN when none is, e.g. SMAPE on released pairs when none was released)."""
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


def bench_od_selected(repeats: int, world: Any = None) -> dict[str, Any]:
    """OD per cell pair without public cell-pair keys: independent partition selection against the top-down
    hierarchy whose cell pairs are selected under the released zone pairs (see the module docstring)."""
    from dataclasses import replace

    from privagg.dp.bounds import Bounds
    from privagg.exact import exact_aggregate
    from privagg.queries import Query, public_keys
    from privagg.releases.core import DEFAULT_SHARE, release_query
    from privagg.releases.od_hierarchy import consistent_od, release_od_selected

    world = world if world is not None else issue_world()
    start, end = world.meta["start"], world.meta["end"]
    cells_q = Query("od_flows", level="cell", time_bin=None, start=start, end=end)  # keys=None: selected
    zones_q = Query("od_flows", level="zone", time_bin=None, start=start, end=end)
    zones_q = replace(zones_q, keys=public_keys(zones_q, world.cells, start=start, end=end))
    cols, zcols = ["origin_cell", "destination_cell"], ["origin_zone", "destination_zone"]
    true_cells = exact_aggregate(world, replace(cells_q, keys=public_keys(cells_q, world.cells, start=start, end=end)))
    true_cells = true_cells[true_cells["value"] > 0][cols + ["value"]]
    true_zones = zones_q.keys.to_pandas().merge(exact_aggregate(world, zones_q), on=zcols, how="left").fillna(0)
    zone_of = world.cells.set_index("cell_id")["zone_id"]
    truth_total = float(true_cells["value"].sum())

    def scores(released: pd.DataFrame) -> dict[str, float]:
        rel = released[released["value"] > 0][cols + ["value"]]
        both = true_cells.merge(rel, on=cols, how="outer", suffixes=("_true", "_rel")).fillna(0)
        t, r = both["value_true"].to_numpy(float), both["value_rel"].to_numpy(float)
        on_released = both["value_rel"] > 0
        zone = rel.assign(origin_zone=zone_of.reindex(rel[cols[0]]).to_numpy(),
                          destination_zone=zone_of.reindex(rel[cols[1]]).to_numpy()).groupby(zcols)["value"].sum()
        zone = true_zones[zcols].merge(zone.rename("rel").reset_index(), on=zcols, how="left")["rel"].fillna(0)
        return {"released_pairs": float(len(rel)), "total_rel_error": float(rel["value"].sum() / truth_total - 1),
                "smape": smape(r, t), "smape_on_released": smape(r[on_released], t[on_released]) if on_released.any()
                else float("nan"), "top100_recall": top_recall(r, t),
                "false_positives": float(((t == 0) & (r > 0)).sum()),
                "zone_pair_smape": smape(zone.to_numpy(float), true_zones["value"].to_numpy(float))}

    out: dict[str, Any] = {"true_nonempty_cell_pairs": len(true_cells), "cell_pairs": len(world.cells) ** 2}
    for eps in (1.0, 10.0):
        rows: dict[str, list[dict[str, float]]] = {"independent selection": [], "top-down, selected cell pairs": []}
        thresholds: dict[str, int] = {}
        for _ in range(repeats):
            indep = release_query(world, cells_q, epsilon=eps, delta=DELTA)
            thresholds["independent selection"] = int(indep.privacy.parameters.get("threshold", -1))
            rows["independent selection"].append(scores(indep.to_pandas()))
            zone_rel = release_query(world, zones_q, epsilon=eps, delta=DELTA)
            choice, kept = Bounds(**zone_rel.privacy.bounds), float(zone_rel.privacy.parameters.get("kept_share", 1.0))
            noisy = release_od_selected(world, epsilon=eps * (1 - DEFAULT_SHARE), delta=DELTA, bounds=choice)
            thresholds["top-down, selected cell pairs"] = int(noisy.selected.mechanism.threshold)
            flows = consistent_od(noisy, kept_share=kept)
            row = scores(flows["cell"])
            with_rest = float(flows["cell"]["value"].sum() + flows["cell_unselected"]["value"].sum())
            row["total_with_unselected_rel_error"] = with_rest / truth_total - 1
            row["zone_pair_smape"] = smape(true_zones[zcols].merge(flows["zone"], on=zcols)["value"].to_numpy(float),
                                           true_zones["value"].to_numpy(float))
            row["candidates"] = float(noisy.selected.n_candidates)
            rows["top-down, selected cell pairs"].append(row)
        res: dict[str, Any] = {}
        for name, v in rows.items():
            res[name] = {k: mean_defined([r[k] for r in v]) for k in v[0]}
            res[name]["threshold"] = thresholds[name]
            r = res[name]
            extra = (f"  with unselected {r['total_with_unselected_rel_error']:+.1%}  candidates {r['candidates']:.0f}"
                     if "candidates" in r else "")
            log(f"  od cell pairs, no keys, eps {eps:>4g} {name:30s} released {r['released_pairs']:6.0f} pairs "
                f"(threshold {r['threshold']})  total {r['total_rel_error']:+7.1%}  SMAPE {r['smape']:.3f} "
                f"(on released {r['smape_on_released']:.3f})  top-100 recall {r['top100_recall']:.0%}  "
                f"false positives {r['false_positives']:.0f}  zone-pair SMAPE {r['zone_pair_smape']:.3f}{extra}")
        res["bounds"] = {"zone choice": choice.to_dict(), "selection": noisy.selected.bounds.to_dict()}
        out[f"epsilon={eps:g}"] = res
    return out


# ---------------------------------------------------------------------- footfall: borrowing strength
def bounded_truth(world: Any, query: Any, bounds: dict[str, Any]) -> np.ndarray:
    """The bounded aggregate the noise was added to, over ``query.keys`` (what noise-only intervals cover)."""
    from privagg.dp.bounds import Bounds
    from privagg.engines import default_engine
    from privagg.releases.build import contributions
    from privagg.releases.core import effective_bounds
    from privagg.releases.inputs import resolve

    eff = effective_bounds(query, Bounds(**bounds))
    inputs = resolve(world, query, users=None, cells=None, keys=query.keys)
    return np.asarray(default_engine().bounded_totals(contributions(query, inputs, query.keys, eff), eff,
                                                      dense=True).counts, dtype=float)


def bench_footfall(repeats: int, world: Any = None) -> dict[str, Any]:
    from dataclasses import replace

    from privagg.exact import exact_aggregate
    from privagg.postprocess.borrow import shrink_over_time
    from privagg.postprocess.noise import noise_model
    from privagg.queries import Query, public_keys
    from privagg.releases.core import release_query

    world = world if world is not None else issue_world()
    start, end = world.meta["start"], world.meta["end"]
    out: dict[str, Any] = {}
    for level, time_bin, period in (("zone", "1h", 24), ("cell", "1D", None)):
        query = Query("footfall", level=level, time_bin=time_bin, start=start, end=end)
        query = replace(query, keys=public_keys(query, world.cells, start=start, end=end))
        area, when = list(query.key_columns())[:2]
        keys = query.keys.to_pandas()
        true = keys.merge(exact_aggregate(world, query), on=[area, when], how="left")["value"].fillna(0).to_numpy(float)
        labels = None
        if area == "cell_id":  # the cells' land use is public: each gets its own day-of-week profile
            labels = world.cells.drop_duplicates(area).set_index(area)["land_use"]
        rows: list[dict[str, float]] = []
        for _ in range(repeats):
            rel = release_query(world, query, epsilon=2.0, delta=DELTA)
            table = keys.merge(rel.to_pandas(), on=[area, when], how="left")
            bounded = bounded_truth(world, query, rel.privacy.bounds)
            grid = lambda v: pd.DataFrame({"a": table[area], "t": table[when], "v": v}).pivot(  # noqa: E731
                index="a", columns="t", values="v")
            y = grid(table["value"].to_numpy(float))
            t, b = grid(true).to_numpy(), grid(bounded).to_numpy()
            noise = noise_model(rel)
            est = shrink_over_time(y.to_numpy(), noise.variance, period=period,
                                   key_groups=None if labels is None else labels.reindex(y.index).to_numpy())
            x = np.maximum(est.value, 0)
            raw = np.maximum(y.to_numpy(), 0)
            extra = {}
            if area == "cell_id":  # toward the zone (siblings' share) and the profile, weighted by their misfit
                from privagg.postprocess.borrow import shrink_toward_parent

                zone = world.cells.drop_duplicates(area).set_index(area)["zone_id"].reindex(y.index).to_numpy()
                sp = shrink_toward_parent(y.to_numpy(), noise.variance, zone)
                extra = {"toward_zone_and_time_wre": float(np.abs(np.maximum(sp.value, 0) - t).sum() / t.sum()),
                         "toward_zone_and_time_coverage_vs_bounded": float(((sp.low <= b) & (b <= sp.high)).mean())}
            rows.append({**extra,
                "independent_wre": float(np.abs(raw - t).sum() / t.sum()),
                "structured_wre": float(np.abs(x - t).sum() / t.sum()),
                "structured_bias": float((x - t).sum() / t.sum()),
                "bounding_bias": float((b - t).sum() / t.sum()),
                "structured_bias_vs_bounded": float((est.value - b).sum() / b.sum()),
                "bias_bound_rel": float(est.bias_bound.sum() / t.sum()),  # sum of per-key bounds at 2 prior sd
                "coverage_vs_bounded": float(((est.low <= b) & (b <= est.high)).mean()),
                "coverage_vs_truth": float(((est.low <= t) & (t <= est.high)).mean()),
                "independent_coverage_vs_bounded": float(((table["ci_low"].to_numpy() <= bounded)
                                                           & (bounded <= table["ci_high"].to_numpy())).mean()),
                "mean_weight_on_released": float(est.weight.mean()),
            })
        name = f"footfall {level} x {'day' if time_bin == '1D' else 'hour'}"
        out[name] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        out[name]["bounds"] = rel.privacy.bounds
        out[name]["mechanism"] = rel.privacy.parameters.get("mechanism")
        v = out[name]
        log(f"  {name}: WRE independent {v['independent_wre']:.1%} -> structured {v['structured_wre']:.1%} "
            f"(bias {v['structured_bias']:+.1%}, of which bounding {v['bounding_bias']:+.1%}); 95% intervals cover "
            f"the bounded aggregate {v['coverage_vs_bounded']:.1%}, the truth {v['coverage_vs_truth']:.1%}")
    return out


PARTS = {"continual": bench_continual, "od": bench_od, "od_cells": bench_od_cells, "od_selected": bench_od_selected,
         "footfall": bench_footfall}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", nargs="*", default=list(PARTS))
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    results: dict[str, Any] = {}
    for part in args.parts:
        log(f"[{part}]")
        t0 = time.time()
        results[part] = PARTS[part](args.repeats)
        log(f"  ({time.time() - t0:.0f} s)")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"structure-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    log(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
