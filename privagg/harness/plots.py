"""Figures of an experiment, drawn with matplotlib (Agg) to PNG and SVG.

* :func:`frontier_figure`: the utility-risk frontier of one attack: x =
  utility error, y = risk, one curve per anonymiser family, bands from the
  risk's confidence interval, the random-guess baseline and, for DP, the
  bound the guarantee implies.
* :func:`error_vs_epsilon_figure`: a utility metric of the DP releases
  against epsilon, with the baselines' errors as reference lines.
* :func:`footfall_map_figure`: footfall over the city, one panel per table
  (truth and releases), cells at their x/y coloured by value.
* :func:`od_flow_map_figure`: origin-destination flows as lines between
  area centroids, width by flow.
* :func:`plot_experiment`: every figure that applies to an experiment
  directory, written to ``DIR/figures``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from privagg.attacks.roc import dp_auc_bound, dp_tpr_bound
from privagg.errors import PrivaggInputError
from privagg.metrics import LOWER_IS_BETTER

FAMILY_STYLE: dict[str, dict[str, Any]] = {
    "raw": {"color": "#d62728", "marker": "X", "label": "raw aggregates"},
    "suppression": {"color": "#ff7f0e", "marker": "s", "label": "small-count suppression (k)"},
    "coarsening": {"color": "#8c564b", "marker": "D", "label": "coarsening"},
    "pseudonymised": {"color": "#e377c2", "marker": "P", "label": "pseudonymised microdata"},
    "naive_laplace": {"color": "#7f7f7f", "marker": "v", "label": "naive Laplace (insecure)"},
    "dp": {"color": "#1f77b4", "marker": "o", "label": "user-level DP (epsilon)"},
}

METRIC_LABELS: dict[str, str] = {
    "mae": "mean absolute error",
    "rmse": "root mean squared error",
    "mean_relative_error": "mean relative error",
    "share_within_10pct": "share of keys within 10%",
    "hotspot_spearman": "hotspot rank correlation (Spearman)",
    "top_k_recall": "top-k recall",
    "false_positive_keys": "false-positive keys",
    "false_negative_keys": "false-negative keys",
}


def _tradeoff_auc_bound(epsilon: float, delta: float = 0.0) -> float:
    """Largest AUC of any membership test against an (epsilon, delta)-DP release.

    :func:`~privagg.attacks.roc.dp_auc_bound`, with epsilon capped where ``e^epsilon`` would overflow.
    """
    return dp_auc_bound(min(epsilon, 700.0), delta)


def _accuracy_bound(epsilon: float, delta: float = 0.0) -> float:
    """Largest success rate of guessing one subscriber's presence (prior 1/2) under (epsilon, delta)-DP."""
    e = math.exp(min(epsilon, 700))
    return min(1.0, e / (1.0 + e) + delta / 2.0)


def _tpr_at_1pct_bound(epsilon: float, delta: float = 0.0) -> float:
    """Largest TPR at FPR = 1% of any membership test against an (epsilon, delta)-DP release.

    :func:`~privagg.attacks.roc.dp_tpr_bound` at 1%, with epsilon capped where ``e^epsilon`` would overflow.
    """
    return float(dp_tpr_bound(0.01, min(epsilon, 700.0), delta))


#: DP bounds on an attack's figure, as functions of (epsilon, delta), by (attack, metric).
#: ``risk`` means the AttackResult's headline risk. INTEGRATION: keep in step with what each attack reports.
DP_BOUNDS: dict[tuple[str, str], Callable[[float, float], float]] = {
    ("membership_inference", "risk"): _tradeoff_auc_bound,
    ("membership_inference", "auc"): _tradeoff_auc_bound,
    ("membership_inference", "tpr_at_0.01_fpr"): _tpr_at_1pct_bound,
    ("differencing", "risk"): _accuracy_bound,
}

#: Metrics in which an attack reports the DP bound of its own game (tighter than the release-level
#: bound when the game sees only part of the release), by (attack, metric). Used instead of DP_BOUNDS.
REPORTED_BOUNDS: dict[tuple[str, str], str] = {
    ("membership_inference", "risk"): "dp_auc_bound",
    ("membership_inference", "auc"): "dp_auc_bound",
    ("membership_inference", "tpr_at_0.01_fpr"): "dp_tpr_bound_at_0.01_fpr",
}


#: Metrics holding a stronger trivial adversary than random guessing, drawn next to each configuration.
YARDSTICKS: dict[tuple[str, str], tuple[str, str]] = {
    ("trajectory_recovery", "risk"): ("stay_put_accuracy", "staying put at the night cell (no linking)"),
}

#: What each attack's headline ``risk`` measures, for axis labels.
RISK_LABELS: dict[str, str] = {
    "membership_inference": "AUC of telling members from non-members",
    "trajectory_recovery": "share of trajectory recovered",
    "unicity": "share of subscribers singled out",
    "differencing": "success rate of the differencing game",
    "reconstruction": "share of records reconstructed",
}


def _style(family: str) -> dict[str, Any]:
    return FAMILY_STYLE.get(family, {"color": "#2ca02c", "marker": "^", "label": family})


def _param_label(family: str, params: str) -> str:
    try:
        p = json.loads(params)
    except (TypeError, ValueError):
        return ""
    if family == "dp" and "epsilon" in p:
        return f"ε={p['epsilon']:g}"
    if family == "dp" and "rho" in p:
        return f"ρ={p['rho']:g}"
    if "k" in p:
        return f"k={p['k']}"
    if "level" in p:
        return str(p["level"])
    return ", ".join(f"{k}={v}" for k, v in p.items())


def frontier_table(results: pd.DataFrame, attack: str, utility_metric: str,
                   risk_metric: str = "risk") -> pd.DataFrame:
    """Per anonymiser configuration: mean utility error and mean risk (with mean CI and baseline) over repetitions."""
    ok = results[results["status"].fillna("ok") == "ok"]
    util = ok[(ok["kind"] == "utility") & (ok["metric"] == utility_metric)]
    risk = ok[(ok["kind"] == "risk") & (ok["attack"] == attack) & (ok["metric"] == risk_metric)]
    keys = ["statistic", "family", "config", "params"]
    u = util.groupby(keys, dropna=False)["value"].agg(utility="mean", utility_sd="std").reset_index()
    r = risk.groupby(keys, dropna=False).agg(
        risk=("value", "mean"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean"),
        baseline=("baseline", "mean"), epsilon=("epsilon", "first"), n=("value", "size"),
    ).reset_index()
    out = u.merge(r, on=keys, how="right")
    bound_metric = REPORTED_BOUNDS.get((attack, risk_metric))
    out["bound"] = np.nan
    if bound_metric is not None:
        b = ok[(ok["kind"] == "risk") & (ok["attack"] == attack) & (ok["metric"] == bound_metric)]
        if len(b):
            out = out.drop(columns="bound").merge(
                b.groupby(keys, dropna=False)["value"].mean().rename("bound").reset_index(), on=keys, how="left")
    out["yardstick"] = np.nan
    yardstick = YARDSTICKS.get((attack, risk_metric))
    if yardstick is not None:
        y = ok[(ok["kind"] == "risk") & (ok["attack"] == attack) & (ok["metric"] == yardstick[0])]
        if len(y):
            out = out.drop(columns="yardstick").merge(
                y.groupby(keys, dropna=False)["value"].mean().rename("yardstick").reset_index(), on=keys, how="left")
    # Microdata releases (e.g. pseudonymised records) have no aggregate error: every aggregate can be
    # computed exactly from them, so they sit at zero utility loss.
    out["microdata"] = out["utility"].isna()
    out["utility"] = out["utility"].fillna(0.0)
    return out


def frontier_figure(results: pd.DataFrame, attack: str, utility_metric: str = "mean_relative_error",
                    risk_metric: str = "risk", title: str | None = None) -> Figure:
    """The utility-risk frontier of ``attack``: one curve per family, CI bands, baseline, DP bound."""
    table = frontier_table(results, attack, utility_metric, risk_metric)
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=110)
    if table.empty:
        ax.text(0.5, 0.5, f"no results for {attack}", ha="center", va="center", transform=ax.transAxes)
        return fig
    for family, group in table.groupby("family", sort=False):
        g = group.sort_values("utility")
        st = _style(str(family))
        x = g["utility"].to_numpy(float)
        y = g["risk"].to_numpy(float)
        lo = g["ci_low"].to_numpy(float)
        hi = g["ci_high"].to_numpy(float)
        has_ci = np.isfinite(lo).all() and np.isfinite(hi).all()
        if len(g) > 1:
            ax.plot(x, y, "-", color=st["color"], marker=st["marker"], label=st["label"], lw=1.8, ms=7)
            if has_ci:
                ax.fill_between(x, lo, hi, color=st["color"], alpha=0.15, lw=0)
        else:
            yerr = np.array([[y[0] - lo[0]], [hi[0] - y[0]]]) if has_ci else None
            ax.errorbar(x, y, yerr=yerr, color=st["color"], marker=st["marker"], ms=8, capsize=4,
                        ls="none", label=st["label"])
        for xi, yi, params, micro in zip(x, y, g["params"], g["microdata"]):
            label = _param_label(str(family), params) + (" (microdata: exact aggregates)" if micro else "")
            ax.annotate(label.strip(), (xi, yi), textcoords="offset points", xytext=(5, 5),
                        fontsize=8, color=st["color"])
    stay = table[table["yardstick"].notna()]
    if len(stay):
        ax.scatter(stay["utility"], stay["yardstick"], facecolors="none", edgecolors="dimgray", marker="o", s=60,
                   label=YARDSTICKS[(attack, risk_metric)][1])
    baseline = table["baseline"].dropna()
    if len(baseline):
        ax.axhline(float(baseline.mean()), color="black", ls=":", lw=1.2, label="random guess (baseline)")
    bound = DP_BOUNDS.get((attack, risk_metric))
    dp = table[(table["family"] == "dp") & table["epsilon"].notna()].sort_values("utility")
    if (bound is not None or dp["bound"].notna().any()) and len(dp):
        yb = [b if pd.notna(b) else (bound(float(e), 0.0) if bound else np.nan)
              for e, b in zip(dp["epsilon"], dp["bound"])]
        ax.plot(dp["utility"], yb, ls="--", color=_style("dp")["color"], alpha=0.7, lw=1.2,
                label="DP guarantee: highest possible risk")
    ax.set_xlabel(f"utility loss: {METRIC_LABELS.get(utility_metric, utility_metric)}"
                  + ("" if LOWER_IS_BETTER.get(utility_metric, True) else " (higher is better)"))
    what = RISK_LABELS.get(attack, "risk") if risk_metric == "risk" else risk_metric.replace("_", " ")
    ax.set_ylabel(f"{attack.replace('_', ' ')}: {what}")
    positive = table.loc[table["utility"] > 0, "utility"]
    if len(positive) and positive.max() / positive.min() > 50:
        if (table["utility"] > 0).all():
            ax.set_xscale("log")
        else:  # exact releases sit at 0: linear near 0, logarithmic beyond
            ax.set_xscale("symlog", linthresh=float(positive.min()))
            ax.set_xlim(left=-0.1 * float(positive.min()))
    ax.set_title(title or f"Utility-risk frontier: {attack.replace('_', ' ')}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def error_vs_epsilon_figure(results: pd.DataFrame, metric: str = "mean_relative_error") -> Figure:
    """A utility metric of DP releases against epsilon (log x), with the other families as reference lines."""
    ok = results[(results["status"].fillna("ok") == "ok") & (results["kind"] == "utility") & (results["metric"] == metric)]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    dp = ok[(ok["family"] == "dp") & ok["epsilon"].notna()]
    for stat, group in dp.groupby("statistic"):
        agg = group.groupby("epsilon")["value"].agg(["mean", "min", "max"]).reset_index().sort_values("epsilon")
        ax.plot(agg["epsilon"], agg["mean"], "-o", label=f"DP: {stat}", color=_style("dp")["color"])
        ax.fill_between(agg["epsilon"], agg["min"], agg["max"], alpha=0.15, color=_style("dp")["color"])
    others = ok[ok["family"] != "dp"].groupby(["family", "config", "params"])["value"].mean().reset_index()
    for i, row in enumerate(others.itertuples(index=False)):
        st = _style(row.family)
        ax.axhline(row.value, color=st["color"], ls=["--", ":", "-."][i % 3], lw=1,
                   label=f"{st['label'].split(' (')[0]} {_param_label(row.family, row.params)}".strip())
    if len(dp):
        ax.set_xscale("log")
        values = pd.concat([dp["value"], others["value"]])
        positive = values[values > 0]
        if len(positive) and positive.max() / positive.min() > 50:
            if (values > 0).all():
                ax.set_yscale("log")
            else:
                ax.set_yscale("symlog", linthresh=float(positive.min()))
                ax.set_ylim(bottom=-0.3 * float(positive.min()), top=float(values.max()) * 2)
    else:
        ax.text(0.5, 0.5, "no DP releases in this experiment", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("epsilon per subscriber (log scale)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.set_title(f"{METRIC_LABELS.get(metric, metric).capitalize()} against epsilon")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


AREA_KEYS = ("cell_id", "zone_id", "district_id")


def _area_positions(cells: pd.DataFrame, area: str) -> pd.DataFrame:
    return cells.groupby(area)[["x", "y"]].mean().reset_index()


def _tile_side(xy: np.ndarray) -> float:
    """Side of the square drawn per area: the median distance to the nearest other area."""
    if len(xy) < 2:
        return 1.0
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(xy).query(xy, k=2)
    side = float(np.median(dist[:, 1]))
    return side if side > 0 else 1.0


def footfall_map_figure(cells: pd.DataFrame, tables: Mapping[str, pd.DataFrame], *,
                        title: str = "Footfall over the city (total over the period)") -> Figure:
    """One panel per table: each area at its (mean) x/y, coloured by its total value, on a shared scale.

    Suppressed (NaN) values are drawn as hollow grey markers.
    """
    if not tables:
        raise PrivaggInputError("no tables to map. Fix: pass at least one table, e.g. {'true': truth}.")
    n = len(tables)
    cols = min(n, 2)  # at most two panels a row, so each map stays readable in a report column
    rows = int(math.ceil(n / cols))
    fig, grid = plt.subplots(rows, cols, figsize=(5.6 * cols + 1.2, 5.2 * rows + 0.4), dpi=110, squeeze=False)
    axes = [list(grid.ravel()[:n])]
    for extra in grid.ravel()[n:]:
        extra.set_visible(False)
    totals = {}
    for name, table in tables.items():
        area = next((c for c in AREA_KEYS if c in table.columns), None)
        if area is None:
            raise PrivaggInputError(f"table {name!r} has no area column ({', '.join(AREA_KEYS)}). "
                                    "Fix: map a table keyed by area.")
        suppressed = table.groupby(area)["value"].apply(lambda v: v.isna().all())
        total = table.groupby(area)["value"].sum(min_count=1)
        pos = _area_positions(cells, area).set_index(area)
        frame = pos.join(total.rename("value")).join(suppressed.rename("suppressed"))
        totals[name] = (frame, area)
    finite = np.concatenate([f["value"].to_numpy(float) for f, _ in totals.values()])
    finite = finite[np.isfinite(finite)]
    vmin, vmax = (0.0, float(finite.max()) if len(finite) else 1.0)
    from matplotlib.collections import PatchCollection
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    norm = Normalize(vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1.0)
    view = _map_view(*next(iter(totals.values())))
    sc = None
    span = max(view[0][1] - view[0][0], view[1][1] - view[1][0])
    for ax, (name, (frame, area)) in zip(axes[0], totals.items()):
        # Tiles at least 2% of the frame, so outlying towers stay visible; the busiest are drawn last.
        side = max(_tile_side(frame[["x", "y"]].to_numpy(float)), 0.02 * span)
        frame = frame.sort_values("value", na_position="first")
        shown = frame[frame["value"].notna()]
        tiles = [Rectangle((x - side / 2, y - side / 2), side, side) for x, y in shown[["x", "y"]].to_numpy(float)]
        sc = PatchCollection(tiles, cmap="magma_r", norm=norm, edgecolors="white", linewidths=0.3)
        sc.set_array(shown["value"].clip(lower=0).to_numpy(float))
        ax.add_collection(sc)
        hidden = frame[frame["value"].isna()]
        if len(hidden):
            ax.add_collection(PatchCollection(
                [Rectangle((x - side / 2, y - side / 2), side, side) for x, y in hidden[["x", "y"]].to_numpy(float)],
                facecolors="none", edgecolors="#999999", linewidths=0.8, hatch="///"))
            ax.plot([], [], "s", mfc="none", mec="#999999", label=f"suppressed ({len(hidden)})")
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xlim(*view[0])
        ax.set_ylim(*view[1])
        ax.set_title(name, fontsize=10)
        ax.set_aspect("equal")
        _km_axes(ax)
    if sc is not None:
        fig.colorbar(sc, ax=list(grid.ravel()), shrink=0.8, label="people (sum over time bins)")
    fig.suptitle(title, fontsize=12)
    return fig


def _map_view(frame: pd.DataFrame, area: str, share: float = 0.98) -> tuple[tuple[float, float], tuple[float, float]]:
    """The map's frame: the box holding ``share`` of the people of the first table (the city, not its empty
    rural ring, where a few towers would otherwise shrink every tile to a dot), padded by a tile."""
    xy = frame[["x", "y"]].to_numpy(float)
    side = _tile_side(xy)
    weight = frame["value"].fillna(0).clip(lower=0).to_numpy(float)
    if weight.sum() <= 0:
        weight = np.ones(len(frame))
    limits = []
    for axis in (0, 1):
        order = np.argsort(xy[:, axis])
        cum = np.cumsum(weight[order]) / weight.sum()
        lo = xy[order][np.searchsorted(cum, (1 - share) / 2), axis]
        hi = xy[order][min(np.searchsorted(cum, 1 - (1 - share) / 2), len(cum) - 1), axis]
        limits.append((lo - 1.5 * side, hi + 1.5 * side))
    return limits[0], limits[1]


def _km_axes(ax: Any) -> None:
    """Label map axes in kilometres (cell coordinates are metres)."""
    from matplotlib.ticker import FuncFormatter

    km = FuncFormatter(lambda v, _pos: f"{v / 1000:g}")
    ax.xaxis.set_major_formatter(km)
    ax.yaxis.set_major_formatter(km)
    ax.set_xlabel("x (km)", fontsize=8)
    ax.set_ylabel("y (km)", fontsize=8)
    ax.tick_params(labelsize=7)


def od_flow_map_figure(cells: pd.DataFrame, flows: pd.DataFrame, *, top: int = 60,
                       title: str = "Origin-destination flows") -> Figure:
    """Lines between origin and destination centroids, width and opacity by flow (the ``top`` largest)."""
    origin = next((c for c in flows.columns if c.startswith("origin")), None)
    dest = next((c for c in flows.columns if c.startswith("destination")), None)
    if origin is None or dest is None:
        raise PrivaggInputError(
            f"flows have no origin/destination columns (columns: {list(flows.columns)}). "
            "Fix: pass an OD table with origin_* and destination_* columns."
        )
    level = next((a for a in AREA_KEYS if a.split("_")[0] in origin), "cell_id")
    pos = _area_positions(cells, level).set_index(level)
    agg = flows.groupby([origin, dest])["value"].sum(min_count=1).dropna()
    agg = agg[agg > 0]
    agg = agg[[o != d for o, d in agg.index]].sort_values(ascending=False).head(top)
    fig, ax = plt.subplots(figsize=(6.5, 6.0), dpi=110)
    ax.scatter(pos["x"], pos["y"], s=12, color="#999999", zorder=1)
    if len(agg):
        vmax = float(agg.max())
        for (o, d), v in agg.items():
            if o in pos.index and d in pos.index:
                (x0, y0), (x1, y1) = pos.loc[o, ["x", "y"]], pos.loc[d, ["x", "y"]]
                ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=2,
                            arrowprops={"arrowstyle": "-|>", "lw": 0.5 + 5.0 * v / vmax, "alpha": 0.25 + 0.7 * v / vmax,
                                        "color": "#1f77b4", "shrinkA": 2, "shrinkB": 2,
                                        "connectionstyle": "arc3,rad=0.15"})
        from matplotlib.lines import Line2D

        refs = sorted({float(f"{vmax * q:.2g}") for q in (0.1, 0.5, 1.0)})
        handles = [Line2D([], [], color="#1f77b4", lw=0.5 + 5.0 * r / vmax, alpha=0.25 + 0.7 * r / vmax) for r in refs]
        ax.legend(handles, [f"{r:,.0f} trips" for r in refs], title="flow", fontsize=7, title_fontsize=8,
                  loc="upper right", framealpha=0.85)
    else:
        ax.text(0.5, 0.5, "no flows between different areas", ha="center", va="center", transform=ax.transAxes)
    ax.set_aspect("equal", adjustable="datalim")
    _km_axes(ax)
    ax.set_title(f"{title}\n(the {min(top, len(agg))} largest flows between areas)", fontsize=10)
    fig.tight_layout()
    return fig


def risk_figure(results: Sequence[Mapping[str, Any]], labels: Sequence[str] | None = None,
                release_label: str = "claimed release") -> Figure:
    """Risk with its interval per attack: the release and, where run, the DP release of equal utility.

    ``results`` are report rows (:func:`privagg.harness.report.finding`): ``risk``, ``ci_low``, ``ci_high``,
    ``baseline``, optional ``yardstick`` (the strongest simple attack, e.g. staying put) and
    ``dp_comparison``. ``labels`` name the rows (default: the attack names); ``release_label`` names the
    red points. The legend sits below the axes, where it can hide no point.
    """
    import matplotlib.pyplot as plt

    n = max(len(results), 1)
    fig, ax = plt.subplots(figsize=(7.5, 1.6 + 0.75 * n), dpi=110)
    seen: set[str] = set()

    def once(label: str) -> str | None:
        if label in seen:
            return None
        seen.add(label)
        return label

    for i, r in enumerate(results):
        y = len(results) - 1 - i
        rows = [(r, "#c62828", 0.15 if r.get("dp_comparison") else 0.0, release_label)]
        if r.get("dp_comparison"):
            rows.append((r["dp_comparison"], "#1565c0", -0.15, "DP, same accuracy"))
        for item, colour, dy, label in rows:
            risk, lo, hi = (item.get(k) for k in ("risk", "ci_low", "ci_high"))
            if risk is None:
                continue
            ax.errorbar([risk], [y + dy], xerr=[[risk - (lo if lo is not None else risk)],
                                                [(hi if hi is not None else risk) - risk]],
                        fmt="o", color=colour, capsize=3, label=once(label))
        base = r.get("baseline")
        if base is not None:
            ax.plot([base, base], [y - 0.35, y + 0.35], color="#1d232a", lw=1.5, label=once("guessing baseline"))
        stay = r.get("yardstick")
        if stay is not None:
            ax.plot([stay], [y + 0.15], marker="D", mfc="none", mec="#6d6d6d", ls="none", ms=7,
                    label=once("simplest attack (yardstick)"))
    ax.set_yticks(range(len(results)))
    names = list(labels) if labels else [str(r.get("attack", "")).replace("_", " ") for r in results]
    ax.set_yticklabels(list(reversed(names)), fontsize=8 if labels else None)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("attack success (risk), with 95% interval")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.2 / n), ncol=2, frameon=False)
    ax.set_title("How often each attack succeeds", fontsize=11)
    fig.tight_layout()
    return fig


def search_figure(searched: Sequence[tuple[float, float]], claimed_error: float, method: str,
                  chosen: float | None, unit: str = "per subscriber-day") -> Figure:
    """Mean relative error of DP against epsilon (the search for the DP release of equal accuracy)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.0), dpi=110)
    eps, err = zip(*searched)
    ax.plot(eps, err, "o-", color="#1565c0", label=f"DP (epsilon {unit})")
    ax.axhline(claimed_error, color="#c62828", ls="--", label=f"claimed: {method}")
    if chosen is not None:
        ax.axvline(chosen, color="#2e7d32", ls=":", label=f"same accuracy at epsilon = {chosen:g}")
    ax.set_xscale("log")
    ax.set_xlabel(f"epsilon {unit} (smaller = more private)")
    ax.set_ylabel("mean relative error")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Accuracy of differential privacy against epsilon", fontsize=11)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, directory: str | Path, name: str) -> list[Path]:
    """Write ``fig`` as ``name.png`` and ``name.svg`` into ``directory`` (atomically) and close it."""
    from privagg.harness.store import publish
    from privagg.atomic import atomic_write

    directory = Path(directory)
    paths = []
    for ext in ("png", "svg"):
        path = atomic_write(directory / f"{name}.{ext}", lambda tmp, e=ext: fig.savefig(tmp, format=e))
        paths.append(publish(path))
    plt.close(fig)
    return paths


def _pick_sample_releases(index: dict[str, Any], statistic: str) -> list[dict[str, Any]]:
    """A few releases worth mapping: the strongest suppression, DP at the epsilon nearest 1, coarsening."""
    rels = [r for r in index.get("releases", []) if r["statistic"] == statistic]
    chosen = []
    dp = [r for r in rels if r["family"] == "dp" and "epsilon" in r["params"]]
    if dp:
        chosen.append(min(dp, key=lambda r: abs(math.log(float(r["params"]["epsilon"])))))
    supp = [r for r in rels if r["family"] == "suppression" and "k" in r["params"]]
    if supp:
        chosen.append(max(supp, key=lambda r: r["params"]["k"]))
    if not chosen and rels:
        chosen.append(rels[0])
    return chosen


def plot_experiment(directory: str | Path) -> dict[str, list[Path]]:
    """Draw every figure that applies to the experiment in ``directory`` into ``directory/figures``.

    Returns
    -------
    dict
        Figure name -> [PNG path, SVG path].
    """
    from privagg.harness.store import ResultStore

    store = ResultStore(directory)
    results = store.read_results()
    provenance = store.read_provenance()
    primary = provenance.get("spec", {}).get("primary_metric", "mean_relative_error")
    utility_metrics = set(results.loc[results["kind"] == "utility", "metric"])
    if primary not in utility_metrics and utility_metrics:
        primary = sorted(utility_metrics)[0]
    figures_dir = store.dir / "figures"
    out: dict[str, list[Path]] = {}

    ok_risk = results[(results["kind"] == "risk") & (results["metric"] == "risk") & (results["status"] == "ok")]
    for attack in sorted(set(ok_risk["attack"].dropna())):
        out[f"frontier-{attack}"] = save_figure(frontier_figure(results, attack, primary), figures_dir,
                                                f"frontier-{attack}")
        for metric in ("tpr_at_0.01_fpr",):
            if ((results["attack"] == attack) & (results["metric"] == metric)).any():
                name = f"frontier-{attack}-tpr-at-1pct-fpr"
                out[name] = save_figure(frontier_figure(results, attack, primary, risk_metric=metric), figures_dir, name)
    if ((results["family"] == "dp") & (results["kind"] == "utility")).any():
        out["error-vs-epsilon"] = save_figure(error_vs_epsilon_figure(results, primary), figures_dir, "error-vs-epsilon")

    index_path = store.samples_dir / "index.json"
    if index_path.is_file():
        index = json.loads(index_path.read_text())
        cells = pd.read_parquet(store.samples_dir / index["cells"]) if index.get("cells") else None
        if cells is not None:
            for stat_name, info in index.get("truth", {}).items():
                truth = pd.read_parquet(store.samples_dir / info["file"])
                tables = {"true values": truth}
                for rel in _pick_sample_releases(index, stat_name):
                    tables[rel["config"]] = pd.read_parquet(store.samples_dir / rel["file"])
                kind = {"od": "od_flows", "dwell": "dwell_times", "segments": "segment_counts"}.get(
                    info["statistic"], info["statistic"])
                if kind in ("footfall", "visits", "segment_counts") and any(c in truth.columns for c in AREA_KEYS):
                    name = f"{kind.split('_')[0]}-heatmap"
                    if name in out:
                        name = f"{name}-{len(out)}"
                    fig = footfall_map_figure(cells, tables, title=f"{stat_name}: total over the period")
                    out[name] = save_figure(fig, figures_dir, name)
                elif kind == "od_flows":
                    for label, table in list(tables.items())[:2]:
                        name = "od-flow-map" if label == "true values" else "od-flow-map-release"
                        fig = od_flow_map_figure(cells, table, title=f"OD flows, {label}")
                        out[name] = save_figure(fig, figures_dir, name)
    return out


__all__ = [
    "DP_BOUNDS", "FAMILY_STYLE", "error_vs_epsilon_figure", "footfall_map_figure", "frontier_figure",
    "frontier_table", "od_flow_map_figure", "plot_experiment", "risk_figure", "save_figure", "search_figure",
]
