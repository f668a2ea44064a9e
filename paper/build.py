"""Build the paper: regenerate every number, table and figure from the code, then compile ``paper/privagg.pdf``.

    .venv/bin/python paper/build.py            # research scale (`make paper`): about 15-25 minutes on 2 cores
    .venv/bin/python paper/build.py --small    # toy sizes, the test suite's run (under a minute)
    .venv/bin/python paper/build.py --stages membership audit   # recompute only these stages
    .venv/bin/python paper/build.py --pages    # also render every page to paper/generated/pages/*.png

Each stage (realism, unicity, membership, trajectory, differencing,
reconstruction, audit, frontier, accuracy, speed) runs the library's public
functions at the sizes of ``experiments/paper/paper.toml`` and returns plain
numbers, tables and figures. The numbers go to ``generated/numbers.json``
(the text reads them with ``#v("key")``; nothing is typed by hand), the tables
to ``generated/table-*.typ``, the figures to ``generated/*.png`` drawn with
:mod:`privagg.harness.plots`. A stage's output is cached in
``generated/cache/`` under a key made of its sizes and the hash of every
source file of privagg, experiments/ and benchmarks/, so a change to the
text recompiles in seconds while a change to the code recomputes. The PDF is
written atomically (:func:`privagg.atomic.atomic_write`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import matplotlib  # noqa: E402

matplotlib.use("Agg")

SPEC = ROOT / "experiments" / "paper" / "paper.toml"
PUBLISHED = ROOT / "experiments" / "paper" / "published.toml"
SOURCES = ("privagg.typ", "refs.bib")
STAGES: dict[str, Callable[[dict[str, Any], "Out"], None]] = {}


STAGE_SOURCES: dict[str, str] = {}


def stage(fn: Callable[[dict[str, Any], "Out"], None]) -> Callable[[dict[str, Any], "Out"], None]:
    import inspect

    name = fn.__name__.removeprefix("stage_")
    STAGES[name] = fn
    STAGE_SOURCES[name] = inspect.getsource(fn)  # read at import: editing the file mid-build changes no key
    return fn


# ---------------------------------------------------------------------- formatting
def f3(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def f2(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"


def g(x: float) -> str:
    return f"{x:g}"


def grouped(n: float) -> str:
    return f"{int(round(n)):,}"


def secs(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


def interval(lo: float, hi: float, fmt: Callable[[float], str] = f3) -> str:
    return f"[{fmt(lo)}, {fmt(hi)}]"


_TYPST_SPECIAL = str.maketrans({c: "\\" + c for c in "\\#$*_@<>[]`~/"})


def esc(text: Any) -> str:
    """Text as Typst markup content: every special character escaped."""
    return str(text).translate(_TYPST_SPECIAL)


class Out:
    """What a stage produces: numbers (formatted strings, by key), Typst tables and figure files."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.numbers: dict[str, str] = {}
        self.data: dict[str, Any] = {}
        self.files: list[str] = []

    def num(self, key: str, value: str) -> None:
        self.numbers[key] = value

    def table(self, name: str, header: list[str], rows: list[list[Any]], *, align: str | None = None,
              columns: str | None = None) -> None:
        from privagg.atomic import atomic_write_text

        cols = len(header)
        cells = [", ".join(f"[*{esc(h)}*]" for h in header)]
        for row in rows:
            cells.append(", ".join(f"[{esc(c)}]" for c in row))
        align = align or "(" + ", ".join(["left"] + ["right"] * (cols - 1)) + ")"
        body = (f"#table(columns: {columns or cols}, align: {align}, stroke: none, inset: (x: 4pt, y: 2.5pt),\n"
                "  table.hline(),\n  " + cells[0] + ",\n  table.hline(stroke: 0.5pt),\n  "
                + ",\n  ".join(cells[1:]) + ",\n  table.hline(),\n)\n")
        atomic_write_text(self.dir / f"table-{name}.typ", body)
        self.files.append(f"table-{name}.typ")

    def figure(self, fig: Any, name: str) -> None:
        from privagg.atomic import atomic_write

        atomic_write(self.dir / f"{name}.png", lambda tmp: fig.savefig(tmp, format="png", dpi=200))
        import matplotlib.pyplot as plt

        plt.close(fig)
        self.files.append(f"{name}.png")


def short_key(family: str, params: str | dict[str, Any]) -> str:
    """A release's key in numbers.json: raw, k5, zone, eps0.1, pseudonymised."""
    p = json.loads(params) if isinstance(params, str) else params
    p = p or {}
    if family == "dp" and "epsilon" in p:
        return f"eps{g(float(p['epsilon']))}"
    if "k" in p and family == "suppression":
        return f"k{p['k']}"
    if family == "coarsening":
        return str(p.get("level", "coarsening"))
    return family


def anonymiser_key(a: Any) -> str:
    """:func:`short_key` of an anonymiser object."""
    family = {"Raw": "raw", "Suppression": "suppression", "Coarsening": "coarsening",
              "DPAnonymiser": "dp"}.get(type(a).__name__, type(a).__name__.lower())
    params = {k: getattr(a, k) for k in ("epsilon", "k", "level") if getattr(a, k, None) is not None}
    return short_key(family, params)


# ---------------------------------------------------------------------- stages
@stage
def stage_realism(p: dict[str, Any], out: Out) -> None:
    from privagg.synth import StadiumEvent, generate_world
    from privagg.synth.realism import realism_report

    event = StadiumEvent(day=5, start_hour=18, end_hour=21, attendance=0.15) if p["stadium"] else None
    t0 = time.perf_counter()
    world = generate_world(p["n_users"], p["n_cells"], p["days"], p["seed"], stadium_event=event)
    gen = time.perf_counter() - t0
    r = realism_report(world, seed=0)
    out.num("realism.users", grouped(p["n_users"]))
    out.num("realism.cells", grouped(p["n_cells"]))
    out.num("realism.days", str(p["days"]))
    out.num("realism.events", grouped(len(world.events)))
    out.num("realism.stays", grouped(len(world.stays)))
    out.num("realism.trips", grouped(len(world.trips)))
    out.num("realism.zones", grouped(world.cells["zone_id"].nunique()))
    out.num("realism.districts", grouped(world.cells["district_id"].nunique()))
    out.num("realism.generate_seconds", secs(gen))
    out.num("realism.unicity", pct(r["unicity"]))
    out.num("realism.unicity_ci", f"{pct(r['unicity_ci'][0])}-{pct(r['unicity_ci'][1])}")
    out.num("realism.unicity_users", grouped(r["unicity_users"]))
    out.num("realism.zipf", f2(r["zipf_exponent"]))
    out.num("realism.rg_median_km", f2(r["rg_median_m"] / 1000))
    out.num("realism.rg_p90_km", f2(r["rg_p90_m"] / 1000))
    out.num("realism.rg_ratio", f2(r["rg_p90_over_median"]))
    for lu in ("office", "residential"):
        out.num(f"realism.{lu}_peak", f"{r.get(f'{lu}_peak_hour', 0):02d}:00")
        out.num(f"realism.{lu}_day_night", f2(r.get(f"{lu}_day_night_ratio", float("nan"))))
    st = r.get("stadium") or {}
    out.num("realism.stadium_ratio", f"{st['ratio']:,.0f}x" if st.get("event") else "-")
    pub = published()
    rows = [
        ["unicity, 4 random (cell, hour) points", f"{pct(r['unicity'])} {interval(*r['unicity_ci'], pct)}",
         f"{pub['demontjoye_unicity_4']['value']} ({pub['demontjoye_unicity_4']['source']})"],
        ["visitation law: exponent zeta of the k-th most visited cell", f2(r["zipf_exponent"]),
         f"{pub['song_zeta']['value']} ({pub['song_zeta']['source']})"],
        ["radius of gyration: median, p90 (km)", f"{f2(r['rg_median_m'] / 1000)}, {f2(r['rg_p90_m'] / 1000)}",
         f"{pub['gonzalez_rg']['value']} ({pub['gonzalez_rg']['source']})"],
        ["office cells: weekday peak, day/night", f"{r.get('office_peak_hour', 0):02d}:00, "
         f"{f2(r.get('office_day_night_ratio', float('nan')))}x", pub["land_use"]["value"]],
        ["residential cells: peak, day/night", f"{r.get('residential_peak_hour', 0):02d}:00, "
         f"{f2(r.get('residential_day_night_ratio', float('nan')))}x", pub["land_use"]["value"]],
    ]
    out.table("realism", ["regularity", "synthetic city", "published (real operator data)"], rows,
              align="(left, right, left)")


def _world(p: dict[str, Any], days: int | None = None) -> Any:
    from privagg.synth import generate_world

    return generate_world(n_users=p["n_users"], n_cells=p["n_cells"], days=days or p.get("days", 1), seed=p["seed"])


@stage
def stage_unicity(p: dict[str, Any], out: Out) -> None:
    from privagg.anonymisers.pseudonymised import Pseudonymised
    from privagg.attacks.unicity import unicity

    world = _world(p)
    micro = Pseudonymised(level="cell", time_bin="1h", seed=0).release(world)
    rows = []
    for k in p["points"]:
        t0 = time.perf_counter()
        r = unicity(micro, p=k, n_targets=None, seed=p["seed"])
        rows.append([str(k), str(r.n_trials), f3(r.variants["random k points"]),
                     f"{f3(r.risk)} {interval(r.ci_low, r.ci_high)}", f3(r.metrics["worst_case_upper"]),
                     secs(time.perf_counter() - t0)])
        out.num(f"unicity.random.p{k}", pct(r.variants["random k points"]))
        out.num(f"unicity.some.p{k}", pct(r.risk))
    out.num("unicity.users", grouped(p["n_users"]))
    out.num("unicity.cells", grouped(p["n_cells"]))
    out.num("unicity.days", str(p["days"]))
    out.num("unicity.pmax", str(max(p["points"])))
    out.table("unicity", ["points known", "targets", "random points (de Montjoye)", "some points (worst case) [95% CI]",
                          "upper bound", "time"], rows)


def _mia_models(p: dict[str, Any]) -> list[tuple[str, Any]]:
    from privagg.anonymisers.models import Exact, Noisy, Suppressed
    from privagg.dp.units import Loss

    models: list[tuple[str, Any]] = [("raw", Exact())] + [(f"k{k}", Suppressed(k=k)) for k in p["ks"]]
    # one (cell, hour) per subscriber and hour: sensitivity 24 over the day
    models += [(f"eps{g(e)}", Noisy(mechanism="laplace", scale=24 / e, loss=Loss(epsilon=e),
                                    label=f"dp(eps={e:g}/day)")) for e in p["epsilons"]]
    return models


def _label(name: str) -> str:
    """A release's name as the paper's tables print it."""
    if name.startswith("coarsening("):
        level = name.split("level=")[1].split(",")[0].rstrip(")")
        return f"coarsening to {level}s"
    return (name.replace("suppression(k=", "k-suppression (k = ").replace("dp(epsilon=", "DP (eps = ")
            .replace("dp(eps=", "DP (eps = ").replace("/day)", ")").replace(" per subscriber-day)", ")")
            .replace("coarsening(", "coarsening (").replace("raw", "raw aggregates") if name != "exact" else
            "raw aggregates")


@stage
def stage_membership(p: dict[str, Any], out: Out) -> None:
    from privagg.attacks.membership import hourly_presence, membership_inference

    world = _world(p, days=1)
    opted = world.opted_in()
    presence = hourly_presence(opted.events, start=world.start, n_hours=24,
                               locations=world.cells["cell_id"].to_numpy(), user_ids=opted.users["user_id"].to_numpy())
    game = dict(targets=p["targets"], n_train=p["n_train"], n_test=p["n_test"], n_bootstrap=p["n_bootstrap"])
    rows, series = [], []
    for key, model in _mia_models(p):
        for m in p["group_sizes"]:
            t0 = time.perf_counter()
            r = membership_inference(presence, group_size=m, anonymiser=model, seed=p["seed"], **game)
            bound = r.metrics.get("dp_auc_bound")
            tpr_bound = r.metrics.get("dp_tpr_bound_at_0.01_fpr")
            out.num(f"mia.{key}.m{m}.auc", f3(r.risk))
            out.num(f"mia.{key}.m{m}.ci", interval(r.ci_low, r.ci_high))
            out.num(f"mia.{key}.m{m}.tpr", f3(r.metrics["tpr_at_0.01_fpr"]))
            if bound is not None:
                out.num(f"mia.{key}.m{m}.bound", f3(bound))
            rows.append([_label(model.name), grouped(m), r.variant, f"{f3(r.risk)} {interval(r.ci_low, r.ci_high)}",
                         f3(r.metrics["tpr_at_0.01_fpr"]), "-" if bound is None else f"{f3(bound)} / {f3(tpr_bound)}",
                         secs(time.perf_counter() - t0)])
            series.append({"release": model.name, "m": m, "auc": r.risk, "lo": r.ci_low, "hi": r.ci_high,
                           "bound": bound})
    out.data["series"] = series
    out.num("mia.users", grouped(presence.n_users))
    out.num("mia.cells", grouped(presence.n_locations))
    out.num("mia.targets", str(p["targets"]))
    out.num("mia.n_train", str(p["n_train"]))
    out.num("mia.n_test", str(p["n_test"]))
    out.num("mia.m_small", grouped(min(p["group_sizes"])))
    out.num("mia.m_large", grouped(max(p["group_sizes"])))
    out.table("membership", ["release", "group size m", "strongest variant", "AUC [95% CI]", "TPR at 1% FPR",
                             "DP bound: AUC / TPR", "time"], rows, align="(left, right, left, right, right, right, right)")


@stage
def stage_trajectory(p: dict[str, Any], out: Out) -> None:
    import pandas as pd

    from privagg.anonymisers import DPAnonymiser
    from privagg.anonymisers.raw import Raw
    from privagg.anonymisers.suppression import Suppression
    from privagg.attacks.trajectory_recovery import location_coordinates, trajectory_recovery, true_locations
    from privagg.queries import Query

    world = _world(p)
    slots = pd.date_range(world.start, world.end, freq="1h", inclusive="left")
    _, truth = true_locations(world.opted_in().stays, slots)
    coords = location_coordinates(world.cells)
    n = len(world.opted_in().users)
    releases = [("raw", Raw())] + [(f"k={k}", Suppression(k=k)) for k in p["ks"]]
    releases += [(f"eps={e:g}", DPAnonymiser(epsilon=e)) for e in p["epsilons"]]
    rows = []
    for label, anonymiser in releases:
        t0 = time.perf_counter()
        parts = []
        for day in pd.date_range(world.start, world.end, freq="1D", inclusive="left"):
            q = Query("footfall", level="cell", time_bin="1h", start=day, end=day + pd.Timedelta("1D"))
            parts.append(anonymiser.release(world, q).to_pandas())
        r = trajectory_recovery(pd.concat(parts, ignore_index=True), coords, truth, n_trajectories=n, seed=p["seed"],
                                target=label)
        v = r.variants
        key = label.replace("=", "")
        out.num(f"traj.{key}.xu", pct(v["Xu et al."]))
        out.num(f"traj.{key}.best", pct(r.risk))
        out.num(f"traj.{key}.ci", interval(r.ci_low, r.ci_high, pct))
        out.num(f"traj.{key}.free", pct(r.metrics["release_free_accuracy"]))
        out.num(f"traj.{key}.variant", r.variant)
        name = {"raw": "raw aggregates"}.get(label, label.replace("k=", "k-suppression (k = ").replace(
            "eps=", "DP (eps = ") + ")")
        rows.append([name, f3(v["Xu et al."]), f3(v["stay put (night cell)"]), f3(v["home/work prior"]),
                     f3(r.baseline), f3(r.metrics["release_free_accuracy"]),
                     f"{f3(r.risk)} {interval(r.ci_low, r.ci_high)}", r.variant, secs(time.perf_counter() - t0)])
    out.num("traj.users", grouped(n))
    out.num("traj.cells", grouped(p["n_cells"]))
    out.num("traj.days", str(p["days"]))
    out.table("trajectory", ["release", "Xu et al.", "stay put", "home/work", "random", "no release",
                             "strongest [95% CI]", "strongest variant", "time"], rows,
              align="(left, right, right, right, right, right, right, left, right)")


@stage
def stage_differencing(p: dict[str, Any], out: Out) -> None:
    from privagg.anonymisers.coarsening import Coarsening
    from privagg.anonymisers.dp import DPAnonymiser
    from privagg.anonymisers.raw import Raw
    from privagg.anonymisers.suppression import Suppression
    from privagg.attacks.differencing import differencing
    from privagg.queries import Query

    world = _world(p)
    query = Query("footfall", level="cell", time_bin="1h")
    anonymisers: list[Any] = [Raw()] + [Suppression(k=k) for k in p["ks"]]
    anonymisers += [Coarsening(level=lv, time_bin="1h") for lv in p["coarsen"]]
    anonymisers += [DPAnonymiser(epsilon=e, unit="subscriber-day") for e in p["epsilons"]]
    rows = []
    for a in anonymisers:
        t0 = time.perf_counter()
        r = differencing(world, query, a, n_trials=p["trials"], seed=p["seed"])
        bound = r.metrics.get("dp_bound")
        key = anonymiser_key(a)
        out.num(f"diff.{key}.risk", f3(r.risk))
        out.num(f"diff.{key}.ci", interval(r.ci_low, r.ci_high))
        if bound is not None:
            out.num(f"diff.{key}.bound", f3(bound))
        rows.append([_label(a.name), f3(r.variants.get("difference rule")), f3(r.variants.get("likelihood ratio")),
                     f"{f3(r.risk)} {interval(r.ci_low, r.ci_high)}", f3(r.baseline),
                     "-" if bound is None else f"{f3(bound)} (eps {g(r.metrics['epsilon'])})",
                     secs(time.perf_counter() - t0)])
    out.num("diff.users", grouped(p["n_users"]))
    out.num("diff.cells", grouped(p["n_cells"]))
    out.num("diff.days", str(p["days"]))
    out.num("diff.trials", grouped(p["trials"]))
    out.table("differencing", ["release", "difference rule", "likelihood ratio", "reported [95% CI]", "guess",
                               "DP bound (eps over the window)", "time"], rows)


@stage
def stage_reconstruction(p: dict[str, Any], out: Out) -> None:
    from privagg.anonymisers.dp import DPAnonymiser
    from privagg.anonymisers.raw import Raw
    from privagg.anonymisers.suppression import Suppression
    from privagg.attacks.reconstruction import reconstruction_attack, records_from_users

    world = _world(p, days=1)
    records = records_from_users(world.users, area="home_cell")
    anonymisers: list[Any] = [Raw()] + [Suppression(k=k) for k in p["ks"]] + [DPAnonymiser(epsilon=e)
                                                                               for e in p["epsilons"]]
    rows = []
    for a in anonymisers:
        t0 = time.perf_counter()
        r = reconstruction_attack(records, anonymiser=a, seed=p["seed"])
        key = anonymiser_key(a)
        out.num(f"recon.{key}.risk", pct(r.risk))
        out.num(f"recon.{key}.base", pct(r.baseline))
        out.num(f"recon.{key}.ci", interval(r.ci_low, r.ci_high, pct))
        rows.append([_label(a.name), f"{f3(r.risk)} {interval(r.ci_low, r.ci_high)}", r.variant, f3(r.baseline),
                     secs(time.perf_counter() - t0)])
    out.num("recon.users", grouped(len(records)))
    out.num("recon.cells", grouped(p["n_cells"]))
    out.table("reconstruction", ["release", "records reconstructed exactly [95% CI]", "strongest variant",
                                 "product-of-marginals baseline", "time"], rows, align="(left, right, left, right, right)")


@stage
def stage_audit(p: dict[str, Any], out: Out) -> None:
    from privagg.audit import COUNT_MECHANISMS, epsilon_lower_bound, example_contributions

    rows = []
    for key, cls in COUNT_MECHANISMS.items():
        mech = cls(p["epsilon"], p["n_partitions"], max_partitions=p["max_partitions"])
        data = example_contributions(p["n_users"], p["n_partitions"], heavy_partitions=p["max_partitions"],
                                     seed=p["seed"], own_partition=key == "data_keys")
        t0 = time.perf_counter()
        r = epsilon_lower_bound(mech, data, seed=p["seed"], max_runs=p["max_runs"])
        out.num(f"audit.{mech.name}.lb", f3(r.epsilon_lb))
        out.num(f"audit.{mech.name}.runs", grouped(r.n_runs))
        out.num(f"audit.{mech.name}.verdict", "flagged" if r.flagged else "not flagged")
        rows.append([mech.name.replace("_", " "), g(r.claimed_epsilon), f3(r.epsilon_lb),
                     "FLAGGED" if r.flagged else "not flagged", grouped(r.n_runs), secs(time.perf_counter() - t0)])
    out.num("audit.claimed", g(p["epsilon"]))
    out.num("audit.max_runs", grouped(p["max_runs"]))
    out.num("audit.users", grouped(p["n_users"]))
    out.num("audit.partitions", grouped(p["n_partitions"]))
    out.num("audit.l0", grouped(p["max_partitions"]))
    out.table("audit", ["mechanism", "claimed eps", "eps lower bound (95%)", "verdict", "runs", "time"], rows)


@stage
def stage_frontier(p: dict[str, Any], out: Out) -> None:
    from privagg.harness.plots import frontier_figure, frontier_table
    from privagg.harness.runner import run_experiment
    from privagg.harness.spec import load_spec
    from privagg.harness.store import ResultStore

    spec = load_spec(ROOT / p["spec"])
    run_dir = out.dir / "frontier-run"
    if run_dir.exists():  # a cached stage is recomputed from scratch: no cells reused from older code
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    summary = run_experiment(spec, run_dir, max_workers=2, progress=False)
    out.num("frontier.seconds", secs(time.perf_counter() - t0))
    results = ResultStore(run_dir).read_results()
    out.num("frontier.cells", grouped(summary.n_cells))
    out.num("frontier.users", grouped(spec.world.n_users))
    out.num("frontier.cells_city", grouped(spec.world.n_cells))
    out.num("frontier.days", str(spec.world.days))
    out.num("frontier.reps", str(spec.repetitions))
    attacks = sorted(set(results.loc[(results["kind"] == "risk") & (results["status"] == "ok"), "attack"].dropna()))
    for attack in attacks:
        fig = frontier_figure(results, attack, spec.primary_metric, title=" ")
        out.figure(fig, f"frontier-{attack}")
        tab = frontier_table(results, attack, spec.primary_metric)
        rows = []
        for r in tab.sort_values(["family", "utility"]).itertuples(index=False):
            rows.append([str(r.config), f3(r.utility), f"{f3(r.risk)} {interval(r.ci_low, r.ci_high)}", f3(r.baseline),
                         f3(r.bound) if not (isinstance(r.bound, float) and math.isnan(r.bound)) else "-"])
            key = short_key(str(r.family), str(r.params))
            out.num(f"frontier.{attack}.{key}.risk", f3(r.risk))
            out.num(f"frontier.{attack}.{key}.ci", interval(r.ci_low, r.ci_high))
            out.num(f"frontier.{attack}.{key}.error", f3(r.utility))
        out.table(f"frontier-{attack}", ["release", "mean relative error", "risk [95% CI]", "baseline", "DP bound"],
                  rows)
    out.data["attacks"] = attacks


@stage
def stage_accuracy(p: dict[str, Any], out: Out) -> None:
    import pandas as pd

    import bench_accuracy as ba
    import bench_structure as bs
    from privagg.harness.plots import error_vs_epsilon_figure
    from privagg.synth import generate_world

    t0 = time.perf_counter()
    world = generate_world(n_users=p["n_users"], n_cells=p["n_cells"], days=p["days"], seed=p["seed"])
    out.num("acc.generate_seconds", secs(time.perf_counter() - t0))
    bench = ba.Bench(world, p["repeats"])
    chosen = [c for c in ba.cases() if c.name in p["cases"]]
    tidy, rows = [], []
    t1 = time.perf_counter()
    for case in chosen:
        query = bench.keyed(case.query)
        keys, true = bench.truth(query)
        cells = [f"{case.name} ({grouped(len(keys))})", case.metric.upper()]
        for eps in p["epsilons"]:
            a = bench.auto(query, eps, keys, true)
            value = a[case.metric]
            cells.append(f3(value) if case.metric == "smape" else pct(value))
            key = case.name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
            out.num(f"acc.{key}.eps{g(eps)}", f3(value) if case.metric == "smape" else pct(value))
            tidy.append({"status": "ok", "kind": "utility", "metric": case.metric, "family": "dp",
                         "statistic": case.name, "epsilon": eps, "value": value, "config": "", "params": "{}"})
        rows.append(cells)
    out.num("acc.seconds", secs(time.perf_counter() - t1))
    out.num("acc.users", grouped(p["n_users"]))
    out.num("acc.cells", grouped(p["n_cells"]))
    out.num("acc.days", str(p["days"]))
    out.num("acc.repeats", str(p["repeats"]))
    out.num("acc.consenting", grouped(len(world.opted_in().users)))
    out.table("accuracy", ["case (keys)", "metric"] + [f"eps {g(e)}" for e in p["epsilons"]], rows)
    frame = pd.DataFrame(tidy)
    for metric in sorted(set(frame["metric"])):
        fig = error_vs_epsilon_figure(frame[frame["metric"] == metric], metric)
        ax = fig.axes[0]
        # the harness draws every DP statistic in the DP colour; here the lines are cases, so tell them apart
        import matplotlib.pyplot as plt

        for i, (line, band) in enumerate(zip(ax.get_lines(), ax.collections)):
            colour = plt.get_cmap("tab10")(i)
            line.set_color(colour)
            line.set_marker("osD^vP*X"[i % 8])
            band.set_color(colour)
        ax.legend(fontsize=8, loc="best")
        ax.set_ylabel(metric.upper() + (" (weighted relative error)" if metric == "wre" else ""))
        ax.set_xlabel("epsilon per subscriber-week (log scale)")
        ax.set_title(" ")
        out.figure(fig, f"accuracy-{metric}")

    # accuracy from structure: shrinkage over time (footfall) and gravity shrinkage / hierarchy (OD), same world
    t2 = time.perf_counter()
    ff = bs.bench_footfall(p["structure_repeats"], world=world)
    od = bs.bench_od(p["structure_repeats"], world=world)
    out.num("acc.structure_seconds", secs(time.perf_counter() - t2))
    srows = []
    for name, v in ff.items():
        key = name.replace(" ", "_")
        out.num(f"struct.{key}.indep", pct(v["independent_wre"]))
        out.num(f"struct.{key}.shrunk", pct(v["structured_wre"]))
        out.num(f"struct.{key}.coverage", pct(v["coverage_vs_truth"]))
        srows.append([name, "eps 2, WRE", pct(v["independent_wre"]), pct(v["structured_wre"]),
                      f"coverage of the 95% intervals: {pct(v['coverage_vs_truth'])}"])
    for eps_key, v in od.items():
        e = eps_key.split("=")[1]
        for method in ("independent (auto)", "top-down hierarchy", "gravity shrinkage"):
            key = method.split(" ")[0]
            out.num(f"struct.od.eps{e}.{key}", f3(v[method]["smape"]))
        srows.append(["OD flows zone (week)", f"eps {e}, SMAPE", f3(v["independent (auto)"]["smape"]),
                      f"{f3(v['gravity shrinkage']['smape'])} (gravity); {f3(v['top-down hierarchy']['smape'])} (top-down)",
                      f"top-100 recall {pct(v['gravity shrinkage']['top100_recall'], 0)} (gravity)"])
    out.table("structure", ["case", "epsilon, metric", "independent (auto)", "structured", "note"], srows,
              align="(left, left, right, right, left)")


@stage
def stage_speed(p: dict[str, Any], out: Out) -> None:
    import importlib.util

    results = ROOT / "benchmarks" / "results"
    cases = ["privagg", "sort"] + (["polars"] if importlib.util.find_spec("polars") else [])
    before = set(results.glob("footfall-*.json")) if results.exists() else set()
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_footfall.py"), "--events", str(p["events"]),
           "--pipelinedp-events", "0", "--cases", ",".join(cases)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"bench_footfall failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    wall = time.perf_counter() - t0
    new = sorted(set(results.glob("footfall-*.json")) - before)
    res = json.loads(new[-1].read_text())
    size = res["sizes"][0]
    priv = size["privagg"]
    out.num("speed.events", grouped(p["events"]))
    out.num("speed.users", grouped(size["meta"]["users"]))
    out.num("speed.cells", grouped(size["meta"]["cells"]))
    out.num("speed.privagg_s", f"{priv['seconds']:.2f} s")
    out.num("speed.ns_per_event", f"{1e9 * priv['seconds'] / p['events']:.0f}")
    out.num("speed.sort_s", f"{size['sort']['seconds']:.2f} s" if "seconds" in size.get("sort", {}) else "-")
    pl = size.get("polars", {})
    out.num("speed.polars_s", f"{pl['seconds']:.2f} s" if "seconds" in pl else "not measured (Polars not installed)")
    out.num("speed.ratio_polars", f2(priv["seconds"] / pl["seconds"]) if "seconds" in pl else "-")
    mem = (priv["peak_rss"] - priv["rss_before_input"]) / priv["input_bytes"] if "peak_rss" in priv else float("nan")
    out.num("speed.memory_ratio", f2(mem))
    out.num("speed.mre", f3(priv.get("median_relative_error")))
    out.num("speed.wall", secs(wall))
    out.num("speed.command", "python benchmarks/bench_footfall.py " + " ".join(cmd[2:]))
    out.num("speed.versions", ", ".join(f"{k} {v}" for k, v in res.get("versions", {}).items()))
    rows = [["privagg DP footfall (OpenDP noise on every key)", f"{priv['seconds']:.2f} s",
             f"{1e9 * priv['seconds'] / p['events']:.0f} ns/event; peak memory {f2(mem)}x the input"],
            ["numpy.sort of the composite key (a floor)", out.numbers["speed.sort_s"], "not private"]]
    if "seconds" in pl:
        rows.append(["Polars group_by n_unique (not private)", f"{pl['seconds']:.2f} s",
                     f"privagg / Polars = {f2(priv['seconds'] / pl['seconds'])}"])
    out.table("speed", ["what", "time", "note"], rows, align="(left, right, left)")


# ---------------------------------------------------------------------- the build
def published() -> dict[str, dict[str, str]]:
    return tomllib.loads(PUBLISHED.read_text())


def code_hash() -> str:
    """Hash of every source file whose change can change a figure."""
    h = hashlib.sha256()
    for folder, pattern in (("privagg", "**/*.py"), ("experiments", "**/*.py"), ("experiments", "**/*.toml"),
                            ("benchmarks", "*.py")):
        for path in sorted((ROOT / folder).glob(pattern)):
            if path.parent == ROOT / "experiments" / "paper":  # the paper's own sizes enter each stage's key
                continue
            h.update(str(path.relative_to(ROOT)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def run_stages(size: str, gen: Path, only: list[str] | None, log: Callable[[str], None]) -> dict[str, Any]:
    spec = tomllib.loads(SPEC.read_text())[size]
    code = code_hash()
    cache = gen / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    numbers: dict[str, str] = {}
    timings: dict[str, float] = {}
    failed: list[str] = []
    loads: list[float | None] = []
    cpus: dict[str, float | None] = {}
    from privagg.atomic import atomic_write_text

    for name, fn in STAGES.items():
        params = spec[name]
        # the key: the stage's sizes, the library's code, the stage's own code, and the files it reads
        extra = [STAGE_SOURCES[name]]
        if name == "realism":
            extra.append(PUBLISHED.read_text())
        if "spec" in params:
            extra.append((ROOT / params["spec"]).read_text())
        key = hashlib.sha256(json.dumps([size, params, code, extra], sort_keys=True).encode()).hexdigest()[:16]
        path = cache / f"{name}.json"
        cached = json.loads(path.read_text()) if path.exists() else None
        fresh = cached is not None and cached["key"] == key and all((gen / f).exists() for f in cached["files"])
        if fresh and (only is None or name not in only):
            log(f"{name}: cached ({cached['seconds']:.0f} s when computed)")
        else:
            log(f"{name}: running ...")
            out = Out(gen)
            t0 = time.perf_counter()
            cpu0 = _cpu_seconds()
            try:
                fn(params, out)
            except Exception:  # noqa: BLE001 - the other stages still run (and are cached); the build fails below
                import traceback

                log(f"{name}: FAILED\n{traceback.format_exc()}")
                failed.append(name)
                continue
            seconds = time.perf_counter() - t0
            cpu = _cpu_seconds() - cpu0
            cached = {"key": key, "numbers": out.numbers, "files": out.files, "data": out.data, "seconds": seconds,
                      "computed": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      "load_average": os.getloadavg()[0],  # the machine is shared: how busy it was
                      "cpu_seconds": cpu}  # CPU time of this process and its finished children: load-independent
            atomic_write_text(path, json.dumps(cached, indent=1, default=str))
            log(f"{name}: {seconds:.0f} s")
        numbers.update(with_aliases(cached["numbers"]))
        timings[name] = cached["seconds"]
        loads.append(cached.get("load_average"))
        cpus[name] = cached.get("cpu_seconds")
    if failed:
        raise RuntimeError(f"stages failed: {', '.join(failed)} (the others are cached; rerun to retry these)")
    for name, seconds in timings.items():
        numbers[f"time.{name}"] = secs(seconds)
        numbers[f"cpu.{name}"] = "not recorded" if cpus.get(name) is None else secs(cpus[name])
    numbers["cpu.total"] = ("not recorded" if any(c is None for c in cpus.values())
                            else f"{sum(cpus.values()) / 60:.1f} minutes")
    total = sum(timings.values())
    known = [x for x in loads if x is not None]
    numbers["machine.load"] = ("not recorded" if not known else
                               f"{min(known):.1f}-{max(known):.1f} ({len(known)} of {len(loads)} stages recorded it)")
    numbers["time.total"] = f"{total / 60:.1f} minutes"
    numbers["machine.cpus"] = str(os.cpu_count())
    numbers["machine.python"] = platform.python_version()
    mem = _memory_gib()
    numbers["machine.memory"] = f"{mem:.0f} GiB" if mem else "unknown"
    numbers["build.size"] = size
    numbers["build.command"] = "make paper" if size == "full" else "python paper/build.py --small"
    numbers["build.code"] = code
    for key, entry in published().items():
        numbers[f"pub.{key}"] = entry["value"]
    mia = spec["membership"]
    numbers["grid.k_max"] = str(max(mia["ks"]))
    numbers["grid.kmin"] = str(min(mia["ks"]))
    numbers["grid.eps"] = words([g(e) for e in mia["epsilons"]])
    numbers["grid.ks"] = words([str(k) for k in mia["ks"]])
    numbers["grid.eps_min"] = g(min(mia["epsilons"]))
    numbers["grid.eps_max"] = g(max(mia["epsilons"]))
    numbers["grid.acc_eps"] = words([g(e) for e in spec["accuracy"]["epsilons"]])
    # the epsilons whose figures the text quotes by key (``...eps1...``, ``...eps10...``): in every grid
    numbers["grid.eps_ref"] = "1"
    numbers["grid.eps_ref_hi"] = "10"
    numbers["ci"] = "95%"
    numbers["fpr"] = "1%"
    numbers.update(bound_checks(numbers))
    headline_table(numbers, Out(gen))
    return numbers


def bound_checks(n: dict[str, str]) -> dict[str, str]:
    """Whether every DP figure lies within its bound: membership AUC and differencing success.

    The test is on the point estimates; the sentence says how many of how many, so the abstract's claim
    is itself generated."""
    import re

    pairs = []
    for key, value in n.items():
        hit = re.match(r"^(mia\.eps[\d.]+\.m\d+|diff\.eps[\d.]+)\.(auc|risk)$", key)
        if hit and f"{hit.group(1)}.bound" in n:
            pairs.append((float(value), float(n[f"{hit.group(1)}.bound"])))
    within = sum(v <= b for v, b in pairs)
    if not pairs:
        text = "no attack with a DP bound was run"
    elif within == len(pairs):
        text = f"every one of the {len(pairs)} DP results with a bound (membership AUC, differencing success) lies within it"
    else:
        text = f"{within} of {len(pairs)} DP results with a bound lie within it"
    return {"checks.dp_bounds": text, "checks.dp_bounds_n": str(len(pairs)), "checks.dp_bounds_within": str(within)}




def with_aliases(numbers: dict[str, str]) -> dict[str, str]:
    """The numbers plus aliases by role: ``mia.k20.m1000.auc`` is also ``mia.kmax.mmax.auc``.

    The text names a grid's ends (the largest k, the smallest epsilon, the largest group) rather than
    their values, so the same text compiles at every size of ``experiments/paper/paper.toml``. A slot
    is a key's first part, the kind (k, eps, m, p) and the position among the key's grid parts."""
    import re

    part = re.compile(r"\.(k|eps|m|p)(\d+(?:\.\d+)?)(?=\.|$)")
    seen: dict[tuple[str, str, int], set[float]] = {}
    hits = {key: list(part.finditer(key)) for key in numbers}
    for key, found in hits.items():
        for j, m in enumerate(found):
            seen.setdefault((key.split(".")[0], m.group(1), j), set()).add(float(m.group(2)))
    out = dict(numbers)
    for key, found in hits.items():
        variants = [key]
        for j, m in reversed(list(enumerate(found))):  # right to left: earlier spans stay valid
            values = seen[(key.split(".")[0], m.group(1), j)]
            x = float(m.group(2))
            roles = [r for r, ok in (("min", x == min(values)), ("max", x == max(values))) if ok]
            variants += [v[:m.start()] + f".{m.group(1)}{r}" + v[m.end():] for v in variants for r in roles]
        for v in variants[1:]:
            out.setdefault(v, numbers[key])
    return out


def words(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def headline_table(n: dict[str, str], out: Out) -> None:
    """Each headline figure beside its source paper's (the closing table of the paper)."""
    pub = published()

    def get(key: str) -> str:
        return n.get(key, "-")

    rows = [
        [f"unicity, {get('unicity.pmax')} random points (pseudonymised microdata)", f"{get('realism.unicity')} (city of {get('realism.users')}); "
         f"{get('unicity.random.pmax')} ({get('unicity.users')} subscribers, {get('unicity.days')} days)",
         pub["demontjoye_unicity_4"]["value"], "de Montjoye et al. 2013"],
        [f"membership inference, raw aggregates, groups of {get('mia.m_small')}",
         f"AUC {get('mia.raw.mmin.auc')} {get('mia.raw.mmin.ci')}",
         pub["pyrgelis_auc"]["value"], "Pyrgelis et al. 2018"],
        [f"membership inference, k = {get('grid.k_max')} suppression, groups of {get('mia.m_large')}",
         f"AUC {get('mia.kmax.mmax.auc')} {get('mia.kmax.mmax.ci')}", "-",
         "-"],
        ["trajectory recovery, raw hourly footfall", f"{get('traj.raw.best')} (Xu et al.'s attack: {get('traj.raw.xu')})",
         pub["xu_recovery"]["value"], "Xu et al. 2017"],
        ["reconstruction, raw tables (exact records)", f"{get('recon.raw.risk')} (baseline {get('recon.raw.base')})",
         f"{pub['census_exact']['value']} ({pub['census_age1']['value']} with age +-1)", "2010 Census (Abowd et al.)"],
        ["differencing, raw footfall", get("diff.raw.risk"), "certain on exact counts", "textbook"],
        [f"footfall WRE, zone x day, eps {pub['google_eps']['value']} per subscriber-week",
         get(f"acc.footfall_zone_x_day.eps{pub['google_eps']['value']}"), f"{pub['google_wre']['value']} "
         f"(eps {pub['google_eps']['value']} per user-week)", "Google mobility histograms"],
        ["visits per cell, SMAPE, eps 1 / 10", f"{get('acc.visits_cell_week.eps1')} / {get('acc.visits_cell_week.eps10')}",
         f"{pub['dpmr_visits_eps1']['value']} / {pub['dpmr_visits_eps10']['value']}", "dp_mobility_report (Madrid)"],
        ["OD flows per zone pair, SMAPE, eps 1 / 10 (gravity shrinkage)",
         f"{get('struct.od.eps1.gravity')} / {get('struct.od.eps10.gravity')}",
         f"{pub['dpmr_od_eps1']['value']} / {pub['dpmr_od_eps10']['value']} (all OD flows)", "dp_mobility_report (Madrid)"],
        [f"audit: naive float Laplace claiming eps {get('audit.claimed')}", f"eps >= {get('audit.naive_laplace.lb')}, "
         f"{get('audit.naive_laplace.verdict')}", "-", "-"],
    ]
    out.table("headlines", ["figure", "privagg (this paper)", "source paper", "source"], rows,
              align="(left, left, left, left)", columns="(1.25fr, 1.35fr, 1.1fr, 0.8fr)")


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def compile_pdf(directory: Path) -> Path:
    """Compile ``directory/privagg.typ`` to ``directory/privagg.pdf`` atomically."""
    import typst

    from privagg.atomic import atomic_write

    pdf = typst.compile(str(directory / "privagg.typ"), root=str(directory))
    return atomic_write(directory / "privagg.pdf", lambda tmp: tmp.write_bytes(pdf))


def render_pages(pdf: Path, folder: Path, scale: float = 1.6) -> list[Path]:
    """Every page of ``pdf`` as a PNG (pypdfium2), for reading the layout as a reviewer would."""
    import pypdfium2 as pdfium

    folder.mkdir(parents=True, exist_ok=True)
    doc = pdfium.PdfDocument(str(pdf))
    paths = []
    for i in range(len(doc)):
        path = folder / f"page-{i + 1:02d}.png"
        doc[i].render(scale=scale).to_pil().save(path)
        paths.append(path)
    return paths


def build(size: str = "full", directory: Path = HERE, *, only: list[str] | None = None, pages: bool = False,
          log: Callable[[str], None] = print) -> Path:
    """Regenerate ``directory/generated`` at ``size`` ("full" or "small") and compile the PDF.

    Parameters
    ----------
    size
        ``"full"`` (research scale) or ``"small"`` (toy sizes, for the tests).
    directory
        Where the paper is built; the sources are copied there when it is not ``paper/`` itself.
    only
        Stages to recompute even if cached.
    pages
        Also render every page to ``generated/pages/page-NN.png``.

    Returns
    -------
    Path
        The PDF.
    """
    from privagg.atomic import atomic_write_text

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if directory.resolve() != HERE:
        for name in SOURCES:
            shutil.copyfile(HERE / name, directory / name)
    gen = directory / "generated"
    gen.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    numbers = run_stages(size, gen, only, log)
    atomic_write_text(gen / "numbers.json", json.dumps(numbers, indent=1, sort_keys=True))
    pdf = compile_pdf(directory)
    log(f"wrote {pdf} ({time.perf_counter() - t0:.0f} s)")
    if pages:
        log(f"pages: {len(render_pages(pdf, gen / 'pages'))} in {gen / 'pages'}")
    return pdf


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="toy sizes (the test suite's run)")
    ap.add_argument("--out", type=Path, default=HERE, help="build directory (default: paper/)")
    ap.add_argument("--stages", nargs="*", default=None, help=f"recompute these stages: {', '.join(STAGES)}")
    ap.add_argument("--pages", action="store_true", help="render every page to generated/pages/*.png")
    args = ap.parse_args(argv)
    unknown = set(args.stages or ()) - set(STAGES)
    if unknown:
        ap.error(f"--stages: unknown {sorted(unknown)}; choose from {', '.join(STAGES)}")
    build("small" if args.small else "full", args.out, only=args.stages, pages=args.pages,
          log=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
