"""The experiment harness's report: the results table of a sweep, rendered like every other report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from privagg.harness.report import write_report

def experiment_results(results: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Attack results and utility, averaged over repetitions, from an experiment's results table.

    For each non-DP result, ``dp_comparison`` is the DP configuration whose
    primary utility error is closest to (and not worse than, when possible) its own.
    """
    import pandas as pd

    from privagg.harness.plots import DP_BOUNDS, frontier_table

    df: pd.DataFrame = results
    util = df[(df["kind"] == "utility") & (df["status"] == "ok")]
    utility_metrics = list(dict.fromkeys(util["metric"]))
    primary = "mean_relative_error" if "mean_relative_error" in utility_metrics else (utility_metrics or [None])[0]
    out: list[dict[str, Any]] = []
    risk = df[(df["kind"] == "risk") & (df["metric"] == "risk") & (df["status"] == "ok")]
    for attack in dict.fromkeys(risk["attack"]):
        table = frontier_table(df, attack, primary) if primary else pd.DataFrame()
        if table.empty:
            continue
        dp = table[table["family"] == "dp"]
        for row in table.itertuples(index=False):
            item: dict[str, Any] = {
                "attack": attack, "target": row.config, "risk": row.risk, "ci_low": row.ci_low,
                "ci_high": row.ci_high, "baseline": row.baseline, "n_trials": None,
                "metrics": {} if row.microdata else {primary: row.utility}, "statistic": row.statistic,
            }
            bound = DP_BOUNDS.get((attack, "risk"))
            if row.family == "dp" and pd.notna(row.bound):
                item["dp_bound"] = float(row.bound)
            elif row.family == "dp" and bound is not None and pd.notna(row.epsilon):
                item["dp_bound"] = bound(float(row.epsilon), 0.0)
            if row.family != "dp" and len(dp):
                better = dp[dp["utility"] <= row.utility]
                pick = (better.sort_values("utility", ascending=False) if len(better)
                        else dp.sort_values("utility")).iloc[0]
                item["dp_comparison"] = {"target": pick["config"], "risk": pick["risk"], "ci_low": pick["ci_low"],
                                         "ci_high": pick["ci_high"], "baseline": pick["baseline"],
                                         "epsilon": pick["epsilon"], "similar": bool(len(better)),
                                         "utility": f"{primary.replace('_', ' ')} {pick['utility']:.3g} vs {row.utility:.3g}"}
            bk = df[(df["attack"] == attack) & (df["config"] == row.config) & (df["metric"] == "risk")]["detail"]
            try:
                detail = json.loads(bk.dropna().iloc[0]) if len(bk.dropna()) else {}
            except (ValueError, TypeError):
                detail = {}
            item["background_knowledge"] = detail.get("background_knowledge", "")
            out.append(item)
    metrics = {
        cfg: {m: float(g[g["metric"] == m]["value"].mean()) for m in utility_metrics}
        for cfg, g in util.groupby("config", sort=False)
    }
    return out, {"metrics": metrics}


def write_experiment_report(directory: str | Path, figures: Mapping[str, Sequence[Path]] | None = None) -> tuple[Path, Path]:
    """``report.html`` / ``report.json`` of an experiment directory, with its PNG figures embedded."""
    from privagg.harness.store import ResultStore

    store = ResultStore(directory)
    results = store.read_results()
    provenance = store.read_provenance()
    spec = provenance.get("spec", {})
    rows, utility = experiment_results(results)
    pngs = {name: next(p for p in paths if str(p).endswith(".png")) for name, paths in (figures or {}).items()
            if any(str(p).endswith(".png") for p in paths)}
    claim = {"name": spec.get("name", store.dir.name), "description": spec.get("description", ""),
             "statistics": [s.get("statistic") + f" by {s.get('level')} x {s.get('time_bin')}" for s in spec.get("statistics", [])],
             "anonymisers": [a.get("family") for a in spec.get("anonymisers", [])],
             "repetitions": len(spec.get("seeds", [])) or None, "world": spec.get("world", {})}
    return write_report(store.dir, claim, rows, utility, pngs,
                        title=f"Experiment report: {claim['name']}", provenance=provenance,
                        notes=["Each risk is averaged over the repetitions; the interval shown is the mean of the "
                               "per-repetition intervals."])


__all__ = ["experiment_results", "write_experiment_report"]
