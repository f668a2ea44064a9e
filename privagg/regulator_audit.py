"""The regulator's audit: make the claimed release, attack it, compare it with DP, write the report.

:func:`audit_claim` is what ``privagg audit CLAIM.toml --out DIR`` runs:

1. build the data (a synthetic world, or the user's tables with
   :meth:`privagg.world.World.load`);
2. make the release the claim describes (main table and crossbreaks) with
   the claimed method;
3. measure its accuracy against the exact aggregate (mean relative error
   with a floor, MAE, share of keys within 10%, from :mod:`privagg.metrics`);
4. find the *DP release of the same utility*: the smallest epsilon per
   subscriber-day on the claim's grid whose mean relative error is no worse
   than the claimed method's (bisection over the sorted grid);
5. run every attack that applies, against the claimed release and against
   that DP release:

   ==========================  =============================================
   attack                      applies when
   ==========================  =============================================
   unicity                     the method publishes pseudonymised microdata;
                               otherwise run once on the underlying traces at
                               the release's resolution and reported as a
                               reference note (what microdata would leak)
   trajectory recovery         footfall (or crossbroken footfall) with time bins
   membership inference        footfall with hourly bins
   reconstruction              crossbreaks are published (needs
                               ``privagg.attacks.reconstruction``)
   differencing                any count table
   ==========================  =============================================

6. write ``report.html`` and ``report.json`` with
   :func:`privagg.harness.report.write_report`, and the releases as Parquet.

Everything is written into a staging directory first and moved into
``out_dir`` only when the whole audit has succeeded, so a failed audit
leaves no partial report behind.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from privagg.claims import Claim, MethodSpec, load_claim
from privagg.errors import PrivaggInputError
from privagg.queries import LEVELS, Query
from privagg.release import Release

Progress = Callable[[str], None]
UTILITY_METRICS = ("mean_relative_error", "mae", "share_within_10pct")


# --------------------------------------------------------------------------- data and queries


def build_world(claim: Claim) -> Any:
    """The claim's World: generated from ``[data]`` parameters, or loaded from ``[data] path``."""
    if claim.data.path is not None:
        from privagg.world import World

        return World.load(claim.data.path)
    from privagg.synth import generate_world

    return generate_world(n_users=claim.data.n_users, n_cells=claim.data.n_cells, days=claim.data.days,
                          seed=claim.data.seed, **claim.data.options)


def main_query(claim: Claim) -> Query:
    """The main published table as a Query (crossbroken footfall is released as segment counts)."""
    r = claim.release
    statistic = "segment_counts" if r.by else r.statistic
    return Query(statistic, level=r.level, time_bin=r.time_bin, by=r.by, source=r.source)


def crossbreak_queries(claim: Claim) -> list[Query]:
    """One segment-count Query per ``crossbreaks`` entry (the main table too when it has ``by``)."""
    r = claim.release
    level = r.crossbreak_level or r.level
    time_bin = r.crossbreak_time_bin or r.time_bin
    out = [main_query(claim)] if r.by else []
    out += [Query("segment_counts", level=level, time_bin=time_bin, by=by, source=r.source) for by in r.crossbreaks]
    return out


def with_window(world: Any, query: Query, days: int | None = None, first_day: int = 0) -> Query:
    """``query`` restricted to days ``first_day .. first_day + days`` of the World's window (all days when None)."""
    start = pd.Timestamp(world.meta["start"]) + pd.Timedelta(days=first_day)
    end = pd.Timestamp(world.meta["end"])
    if days is not None:
        end = min(end, start + pd.Timedelta(days=days))
    return replace(query, start=start, end=end, keys=None)


# --------------------------------------------------------------------------- anonymisers


class PerDayDP:
    """DP releases at ``epsilon`` per subscriber-day: every day of the window is released separately.

    Each day is a :class:`~privagg.anonymisers.dp.DPAnonymiser` release over
    that day's window (contribution bounds per subscriber-day, public keys),
    so a subscriber's loss is ``epsilon`` per day and ``days x epsilon`` over
    the whole release (sequential composition).
    """

    method = "dp"
    formally_private = True

    def __init__(self, epsilon: float | None = None, *, rho: float | None = None, delta: float | None = None,
                 bounds: Any = None, budget: Any = None) -> None:
        from privagg.anonymisers.dp import DPAnonymiser

        self.epsilon, self.rho, self.delta = epsilon, rho, delta
        self._day = DPAnonymiser(epsilon, rho=rho, delta=delta, bounds=bounds, budget=budget)
        self.bounds = bounds

    @property
    def name(self) -> str:
        loss = f"epsilon={self.epsilon:g}" if self.epsilon is not None else f"rho={self.rho:g}"
        return f"dp({loss} per subscriber-day)"

    def release(self, world: Any, query: Query) -> Release:
        from privagg.releases.inputs import window

        if query.time_bin is None:
            raise PrivaggInputError("DP per subscriber-day needs a query with time bins. Fix: give the release a time_bin.")
        start, end = window(query, query.keys, world.meta.get("start"), world.meta.get("end"))
        days = pd.date_range(start.floor("D"), end, freq="1D", inclusive="left")
        parts = []
        for day in days:
            q = replace(query, start=max(day, start), end=min(day + pd.Timedelta(days=1), end), keys=None)
            parts.append(self._day.release(world, q))
        table = pd.concat([p.to_pandas() for p in parts], ignore_index=True)
        first = parts[0].privacy
        unit = f"one subscriber (user_id) per day, {len(days)} day(s) from {start.date()} to {end.date()}"
        total = f"{len(days) * first.epsilon:g}" if first.epsilon is not None else "n/a"
        record = replace(first, privacy_unit=unit,
                         parameters={**first.parameters, "privacy_unit": "subscriber-day", "days": len(days)},
                         notes=(*first.notes, f"Each day is released separately at the loss above; over the whole "
                                               f"window a subscriber's epsilon is {total} (sequential composition)."))
        return Release(table, parts[0].key_columns, record)


def dp_anonymiser(epsilon: float | None, *, rho: float | None = None, delta: float | None = None,
                  privacy_unit: str = "subscriber-day", bounds: Any = None, budget: Any = None) -> Any:
    """A DP anonymiser at ``epsilon`` (or ``rho``) per ``privacy_unit`` (``subscriber-day`` or ``subscriber``)."""
    if privacy_unit == "subscriber-day":
        return PerDayDP(epsilon, rho=rho, delta=delta, bounds=bounds, budget=budget)
    from privagg.anonymisers.dp import DPAnonymiser

    return DPAnonymiser(epsilon, rho=rho, delta=delta, bounds=bounds, budget=budget)


def _bounds(params: dict[str, Any]) -> Any:
    from privagg.dp.bounds import Bounds

    kw = {k: params[k] for k in ("max_partitions", "max_per_partition") if params.get(k) is not None}
    return Bounds(**kw) if kw else None


def make_anonymiser(method: MethodSpec, seed: int = 0) -> Any:
    """The anonymiser a claim's ``[method]`` describes."""
    p = method.params
    if method.name == "raw":
        from privagg.anonymisers.raw import Raw

        return Raw()
    if method.name == "suppression":
        from privagg.anonymisers.suppression import Suppression

        return Suppression(k=p["k"], rounding=p.get("rounding"))
    if method.name == "coarsening":
        from privagg.anonymisers.coarsening import Coarsening

        return Coarsening(level=p.get("level"), time_bin=p.get("time_bin"), k=p.get("k"))
    if method.name == "naive_laplace":
        from privagg.anonymisers.naive_laplace import NaiveLaplace

        return NaiveLaplace(p["epsilon"], bounds=_bounds(p), seed=seed)
    if method.name == "dp":
        return dp_anonymiser(p.get("epsilon"), rho=p.get("rho"), delta=p.get("delta"),
                             privacy_unit=p["privacy_unit"], bounds=_bounds(p))
    raise PrivaggInputError(f"method {method.name!r} does not make aggregate releases.")


def published_query(world: Any, query: Query, method: MethodSpec) -> Query:
    """The query whose answer is actually published: coarsening moves it to its coarser level/bin."""
    if method.name != "coarsening":
        return query
    from privagg.anonymisers.coarsening import coarsen_query

    return coarsen_query(world, query, method.params.get("level"), method.params.get("time_bin"))


# --------------------------------------------------------------------------- utility


def truth_of(world: Any, query: Query) -> pd.DataFrame:
    """Exact aggregate of ``query`` over its public key domain (empty keys included, value 0)."""
    from privagg.exact import exact_aggregate
    from privagg.queries import public_keys
    from privagg.releases.inputs import window

    start, end = window(query, None, world.meta.get("start"), world.meta.get("end"))
    keys = public_keys(query, world.cells, start=start, end=end, users_columns=list(world.users.columns))
    q = replace(query, keys=keys, start=start if query.time_bin else query.start, end=end if query.time_bin else query.end)
    return exact_aggregate(world, q, include_empty=True)


def utility_of(truth: pd.DataFrame, release: Any, floor: float) -> dict[str, float]:
    """Mean relative error (with ``floor``), MAE and share within 10% of ``release`` against ``truth``."""
    from privagg.metrics import compute_metrics

    table = release.to_pandas() if hasattr(release, "to_pandas") else release
    keys = [c for c in truth.columns if c != "value"]
    table = table[[*keys, "value"]]
    return compute_metrics(truth, table, list(UTILITY_METRICS), keys,
                           {"mean_relative_error": {"floor": floor}, "share_within_10pct": {"floor": floor}})


@dataclass
class Equivalent:
    """The DP release of the same utility, and the search that found it."""

    epsilon: float
    release: Release
    metrics: dict[str, float]
    matched: bool
    searched: list[tuple[float, float]] = field(default_factory=list)


def find_dp_equivalent(world: Any, query: Query, truth: pd.DataFrame, target_error: float,
                       epsilons: tuple[float, ...], floor: float, progress: Progress = print) -> Equivalent:
    """Smallest epsilon per subscriber-day on ``epsilons`` whose mean relative error is <= ``target_error``.

    The error falls as epsilon grows, so the grid is bisected: about
    ``log2(len(epsilons)) + 1`` DP releases. When even the largest epsilon is
    less accurate, it is returned with ``matched=False``.
    """
    grid = sorted(epsilons)
    cache: dict[int, tuple[Release, dict[str, float]]] = {}

    def evaluate(i: int) -> float:
        if i not in cache:
            rel = dp_anonymiser(grid[i]).release(world, query)
            cache[i] = (rel, utility_of(truth, rel, floor))
            progress(f"  DP at epsilon {grid[i]:g} per subscriber-day: mean relative error "
                     f"{cache[i][1]['mean_relative_error']:.3f} (target {target_error:.3f})")
        return cache[i][1]["mean_relative_error"]

    hi = len(grid) - 1
    if evaluate(hi) > target_error:
        best, matched = hi, False
    else:
        lo, best = 0, hi
        while lo < best:
            mid = (lo + best) // 2
            if evaluate(mid) <= target_error:
                best = mid
            else:
                lo = mid + 1
        matched = True
    rel, metrics = cache[best]
    searched = sorted((grid[i], m["mean_relative_error"]) for i, (_, m) in cache.items())
    return Equivalent(grid[best], rel, metrics, matched, searched)


# --------------------------------------------------------------------------- attacks


@dataclass
class Target:
    """One release under attack: how to remake it (for games that need fresh releases) and what was published."""

    label: str
    anonymiser: Any
    query: Query             # the query given to the anonymiser
    published: Query         # what is actually published (coarsening: the coarser query)
    release: Release
    method: MethodSpec
    epsilon: float | None = None   # per subscriber-day, for DP targets


def _area_column(query: Query) -> str:
    return LEVELS[query.level]


def run_trajectory_recovery(world: Any, target: Target, settings: dict[str, int], seed: int) -> dict[str, Any] | None:
    """Xu et al. on the published footfall of the first ``days`` days, scored against true trajectories."""
    from privagg.attacks.trajectory_recovery import location_coordinates, trajectory_recovery, true_locations

    q = target.published
    if q.time_bin is None or q.statistic not in ("footfall", "segment_counts"):
        return None
    area = _area_column(q)
    table = target.release.to_pandas()
    start = pd.Timestamp(world.meta["start"])
    end = min(pd.Timestamp(world.meta["end"]), start + pd.Timedelta(days=settings["days"]))
    table = table[(table["time"] >= start) & (table["time"] < end)]
    slots = pd.date_range(table["time"].min(), table["time"].max(), freq=pd.Timedelta(q.time_bin))
    ow = world.opted_in()
    stays = ow.stays
    if area != "cell_id":
        stays = stays.assign(**{area: world.cells.set_index("cell_id")[area].reindex(stays["cell_id"]).to_numpy()})
    _, truth = true_locations(stays, slots, location_col=area)
    result = trajectory_recovery(table, location_coordinates(world.cells, area), truth, location_col=area,
                                 seed=seed, n_bootstrap=settings["bootstrap"], target=target.label)
    return result.to_dict()


def _membership_mechanism(target: Target) -> Any:
    from privagg.attacks.membership import aggregate_publication

    return aggregate_publication(target.method.name, target.method.params)


def run_membership(world: Any, target: Target, settings: dict[str, int], seed: int) -> dict[str, Any] | None:
    """Knock-Knock membership inference on hourly group footfall, through the target's method."""
    q = target.published
    if q.statistic not in ("footfall", "segment_counts") or q.time_bin is None or pd.Timedelta(q.time_bin) != pd.Timedelta("1h"):
        return None
    from privagg.attacks import membership as m

    mechanism = _membership_mechanism(target)
    if mechanism is None:
        return None
    ow = world.opted_in()
    area = _area_column(q)
    location_map = None if area == "cell_id" else world.cells.set_index("cell_id")[area]
    locations = np.sort(world.cells[area].unique())
    presence = m.hourly_presence(ow.events, start=world.meta["start"], n_hours=24 * settings["days"],
                                 locations=locations, location_map=location_map,
                                 user_ids=ow.users["user_id"].to_numpy())
    group = min(settings["group_size"], presence.n_users - 2)
    result = m.membership_inference(presence, group_size=group, anonymiser=mechanism, targets=settings["targets"],
                                    n_train=settings["n_train"], n_test=settings["n_test"], seed=seed,
                                    n_bootstrap=200)
    out = result.to_dict()
    out["target"] = f"{target.label} (groups of {group}, first {settings['days']} day(s))"
    if "dp_auc_bound" in out.get("metrics", {}):
        out["dp_bound"] = out["metrics"]["dp_auc_bound"]
    return out


def run_differencing(world: Any, target: Target, settings: dict[str, int], seed: int) -> dict[str, Any] | None:
    """The differencing game on the first ``days`` days of the release, fresh releases each trial."""
    from privagg.attacks.differencing import differencing

    query = with_window(world, target.query, settings["days"]) if target.query.time_bin else target.query
    result = differencing(world, query, target.anonymiser, n_trials=settings["trials"], seed=seed,
                          target=target.label).to_dict()
    if "dp_bound" in result.get("metrics", {}):
        result["dp_bound"] = result["metrics"]["dp_bound"]
    return result


RECORD_COLUMNS = ("age_band", "gender", "contract")


def _reconstruction_tables(target: Target) -> Any:
    from privagg.attacks.reconstruction import table_publication

    return table_publication(target.method.name, target.method.params)


def run_reconstruction(world: Any, target: Target, crossbreaks: list[tuple[str, ...]], level: str,
                       settings: dict[str, int], seed: int) -> dict[str, Any] | None:
    """Dinur-Nissim reconstruction of subscriber records from the claim's crossbreaks.

    The adversary sees each crossbreak as a table of subscribers per home area
    (at ``level``) x the crossbreak's columns, published with the target's
    method, and solves for records (home area, age band, gender, contract,
    one tag) consistent with all tables (:mod:`privagg.attacks.reconstruction`).
    Crossbreaks over other user columns are left out.
    """
    from privagg.attacks import reconstruction as r

    tables = _reconstruction_tables(target)
    if tables is None:
        return None
    tag = next((c for cb in crossbreaks for c in cb if c.startswith("tag_")), None)
    usable = [cb for cb in crossbreaks if all(c in RECORD_COLUMNS or c == tag for c in cb)]
    if not usable:
        return None
    area = "home_cell" if level == "cell" else LEVELS[level]
    records = r.records_from_users(world.users, area=area, tag=tag, cells=world.cells)
    published = [("area", *("tag" if c == tag else c for c in cb)) for cb in usable]
    result = r.reconstruction_attack(records, anonymiser=tables, crossbreaks=published, seed=seed,
                                     n_bootstrap=settings["bootstrap"]).to_dict()
    shown = "; ".join(" x ".join(("home " + level, *cb)) for cb in usable)
    result["target"] = f"{target.label}: crossbreaks {shown}"
    return result


def unicity_of_traces(world: Any, query: Query, settings: dict[str, int], seed: int) -> dict[str, Any]:
    """Unicity of the subscribers' traces as pseudonymised microdata at ``query``'s level and time bin."""
    from privagg.anonymisers.pseudonymised import Pseudonymised
    from privagg.attacks.unicity import unicity

    micro = Pseudonymised(source="events", level=query.level, time_bin=query.time_bin, seed=seed).release(world, query)
    return unicity(micro, p=settings["points"], n_targets=settings["targets"], seed=seed).to_dict()


TRAJECTORY_DP_NOTE = (
    "Trajectory recovery against a DP release: its guessing baseline assigns people to places at random, so "
    "part of the attack's advantage comes from what holds for everyone (most people stay in one place at "
    "night) rather than from the release; the stay-put figure in each verdict (everyone kept all day where "
    "the night counts put them) shows how much. The DP guarantee bounds what the release adds about any one person.")

ATTACK_FUNCS = {
    "trajectory_recovery": run_trajectory_recovery,
    "membership": run_membership,
    "differencing": run_differencing,
}


def _comparison(dp: dict[str, Any], epsilon: float, utility: str) -> dict[str, Any]:
    return {"target": dp.get("target"), "risk": dp.get("risk"), "ci_low": dp.get("ci_low"),
            "ci_high": dp.get("ci_high"), "baseline": dp.get("baseline"), "epsilon": epsilon, "utility": utility}


# --------------------------------------------------------------------------- figures


def risk_figure(results: list[dict[str, Any]], labels: list[str] | None = None, release_label: str = "claimed release") -> Any:
    """Risk with its interval per attack: the claimed release and, where run, the DP release of equal utility.

    ``labels`` name the rows (default: the attack names); ``release_label`` names the red points.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.75 * max(len(results), 1)), dpi=110)
    for i, r in enumerate(results):
        y = len(results) - 1 - i
        rows = [(r, "#c62828", 0.15 if r.get("dp_comparison") else 0.0, release_label)]
        if r.get("dp_comparison"):
            rows.append((r["dp_comparison"], "#1565c0", -0.15, "DP, same utility"))
        for item, colour, dy, label in rows:
            risk, lo, hi = (item.get(k) for k in ("risk", "ci_low", "ci_high"))
            if risk is None:
                continue
            ax.errorbar([risk], [y + dy], xerr=[[risk - (lo if lo is not None else risk)],
                                                [(hi if hi is not None else risk) - risk]],
                        fmt="o", color=colour, capsize=3, label=label if i == 0 else None)
        base = r.get("baseline")
        if base is not None:
            ax.plot([base, base], [y - 0.35, y + 0.35], color="#1d232a", lw=1.5,
                    label="guessing baseline" if i == 0 else None)
    ax.set_yticks(range(len(results)))
    names = labels or [str(r.get("attack", "")).replace("_", " ") for r in results]
    ax.set_yticklabels(list(reversed(names)), fontsize=8 if labels else None)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("attack success (risk), with 95% interval")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("How often each attack succeeds", fontsize=11)
    fig.tight_layout()
    return fig


def search_figure(searched: list[tuple[float, float]], claimed_error: float, method: str, chosen: float | None) -> Any:
    """Mean relative error of DP against epsilon (the search), with the claimed method's error."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.0), dpi=110)
    eps, err = zip(*searched)
    ax.plot(eps, err, "o-", color="#1565c0", label="DP (per subscriber-day)")
    ax.axhline(claimed_error, color="#c62828", ls="--", label=f"claimed: {method}")
    if chosen is not None:
        ax.axvline(chosen, color="#2e7d32", ls=":", label=f"same utility at epsilon = {chosen:g}")
    ax.set_xscale("log")
    ax.set_xlabel("epsilon per subscriber-day (smaller = more private)")
    ax.set_ylabel("mean relative error")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Accuracy of differential privacy against epsilon", fontsize=11)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- the audit


@dataclass
class AuditOutcome:
    """What :func:`audit_claim` wrote and found."""

    html: Path
    json: Path
    results: list[dict[str, Any]]
    utility: dict[str, Any]
    seconds: float


def staged(out_dir: str | Path, work: Callable[[Path], Any]) -> Any:
    """Run ``work(staging_dir)`` and swap what it wrote in as ``out_dir`` only if it succeeds."""
    from privagg.atomic import publish_directory

    return publish_directory(out_dir, work)


def audit_claim(claim: Claim | str | Path, out_dir: str | Path, *, progress: Progress | None = print,
                world: Any = None) -> AuditOutcome:
    """Audit an anonymisation claim and write ``report.html``, ``report.json`` and the releases into ``out_dir``.

    Parameters
    ----------
    claim
        A :class:`~privagg.claims.Claim` or the path of a claim TOML file.
    out_dir
        Output directory (created). Nothing is written there unless the whole audit succeeds.
    progress
        Called with one line per step (``None``: silent).
    world
        A World to use instead of building the claim's ``[data]`` (for tests and notebooks).
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    if not isinstance(claim, Claim):
        claim = load_claim(claim)
    out = Path(out_dir)
    outcome = staged(out, lambda staging: _audit(claim, staging, say, world))
    outcome.html, outcome.json = out / "report.html", out / "report.json"
    outcome.seconds = time.perf_counter() - started
    say(f"audit finished in {outcome.seconds:.0f} s; report: {outcome.html}")
    return outcome


def _audit(claim: Claim, staging: Path, say: Progress, world: Any) -> AuditOutcome:
    t0 = time.perf_counter()
    seed = claim.seed
    notes: list[str] = []
    if world is None:
        say("building the data" + (f" from {claim.data.path}" if claim.data.path else
                                   f" (synthetic: {claim.data.n_users} subscribers, {claim.data.n_cells} cells, "
                                   f"{claim.data.days} days)"))
        world = build_world(claim)
    method = claim.method
    query = main_query(claim)
    timings: dict[str, float] = {"data": time.perf_counter() - t0}
    results: list[dict[str, Any]] = []
    utility: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    attacks = claim.attacks

    if method.name == "pseudonymised":
        results, notes = _audit_microdata(claim, world, query, say)
    else:
        t = time.perf_counter()
        anonymiser = make_anonymiser(method, seed)
        say(f"releasing {query.describe()} with {method.describe()}")
        release = anonymiser.release(world, query)
        published = published_query(world, query, method)
        release.write(staging / "release.parquet")
        crossbreaks = [(q, anonymiser.release(world, q)) for q in crossbreak_queries(claim) if q != query]
        for i, (_, rel) in enumerate(crossbreaks, start=1):
            rel.write(staging / f"crossbreak_{i}.parquet")
        truth = truth_of(world, published)
        metrics = utility_of(truth, release, claim.metric_floor)
        utility = {"metrics": metrics, "utility_floor": claim.metric_floor}
        timings["release"] = time.perf_counter() - t
        say(f"  accuracy: mean relative error {metrics['mean_relative_error']:.3f} "
            f"(floor {claim.metric_floor:g}), {100 * metrics['share_within_10pct']:.0f}% of keys within 10%")
        eps = method.params.get("epsilon") if method.is_dp and method.params.get("privacy_unit") == "subscriber-day" else None
        claimed = Target(f"{method.describe()} (the claim)", anonymiser, query, published, release, method, eps)

        equivalent = None
        if claim.epsilons and not method.is_dp:
            t = time.perf_counter()
            say(f"searching epsilon in {list(claim.epsilons)} for a DP release as accurate as the claim")
            equivalent = find_dp_equivalent(world, published, truth, metrics["mean_relative_error"],
                                            claim.epsilons, claim.metric_floor, say)
            equivalent.release.write(staging / "dp_equivalent.parquet")
            timings["dp_search"] = time.perf_counter() - t
            word = "matches" if equivalent.matched else "comes closest to (but does not reach)"
            say(f"  DP at epsilon {equivalent.epsilon:g} per subscriber-day {word} the claim's accuracy")
            utility["dp_equivalent"] = {"target": f"DP, epsilon = {equivalent.epsilon:g} per subscriber-day",
                                        "epsilon": equivalent.epsilon, "matched": equivalent.matched,
                                        "metrics": equivalent.metrics,
                                        "searched": [{"epsilon": e, "mean_relative_error": m} for e, m in equivalent.searched]}
            if not equivalent.matched:
                notes.append(f"No epsilon up to {max(claim.epsilons):g} per subscriber-day was as accurate as the "
                             f"claimed release (an exact release cannot be matched by a noisy one); the comparison "
                             f"uses epsilon = {equivalent.epsilon:g}.")
            figures["accuracy-vs-epsilon"] = (search_figure(equivalent.searched, metrics["mean_relative_error"],
                                                            method.describe(), equivalent.epsilon if equivalent.matched else None),
                                              "Accuracy of DP releases against epsilon, and the claimed method's accuracy")
        elif method.is_dp:
            notes.append("The claimed release is itself differentially private, so it is not compared with "
                         "another DP release; attacks against it are checked against the DP bound where one is known.")
        dp_target = None
        if equivalent is not None:
            dp_method = MethodSpec("dp", {"epsilon": equivalent.epsilon, "privacy_unit": "subscriber-day"})
            dp_target = Target(f"DP, epsilon = {equivalent.epsilon:g} per subscriber-day (same utility)",
                               dp_anonymiser(equivalent.epsilon), published, published, equivalent.release,
                               dp_method, equivalent.epsilon)
        utility_text = (f"mean relative error {equivalent.metrics['mean_relative_error']:.3g} vs "
                        f"{metrics['mean_relative_error']:.3g}" if equivalent is not None else "")

        breaks = [q.by for q in crossbreak_queries(claim)]
        break_level = published.level if claim.release.by else (claim.release.crossbreak_level or published.level)
        for name in ("trajectory_recovery", "membership", "reconstruction", "differencing"):
            if name not in attacks:
                continue
            t = time.perf_counter()
            try:
                if name == "reconstruction":
                    res = run_reconstruction(world, claimed, breaks, break_level, attacks[name], seed)
                else:
                    res = ATTACK_FUNCS[name](world, claimed, attacks[name], seed)
            except ImportError:
                notes.append(f"The {name.replace('_', ' ')} attack is not available in this version of privagg; "
                             "it was not run.")
                continue
            if res is None:
                continue
            if name == "trajectory_recovery" and (method.is_dp or dp_target is not None):
                notes.append(TRAJECTORY_DP_NOTE)
            say(f"attack {name.replace('_', ' ')} on the claimed release: risk {res['risk']:.3f} "
                f"[{res['ci_low']:.3f}, {res['ci_high']:.3f}], guessing {res['baseline']:.3f}")
            if dp_target is not None:
                if name == "reconstruction":
                    dp_res = run_reconstruction(world, dp_target, breaks, break_level, attacks[name], seed)
                else:
                    dp_res = ATTACK_FUNCS[name](world, dp_target, attacks[name], seed)
                if dp_res is not None:
                    say(f"  same attack on DP at epsilon {equivalent.epsilon:g}: risk {dp_res['risk']:.3f} "
                        f"[{dp_res['ci_low']:.3f}, {dp_res['ci_high']:.3f}]")
                    res["dp_comparison"] = _comparison(dp_res, equivalent.epsilon, utility_text)
                    if dp_res.get("dp_bound") is not None:
                        res["dp_comparison"]["dp_bound"] = dp_res["dp_bound"]
            timings[name] = time.perf_counter() - t
            results.append(res)

        if "unicity" in attacks:
            t = time.perf_counter()
            ref = unicity_of_traces(world, published, attacks["unicity"], seed)
            timings["unicity"] = time.perf_counter() - t
            say(f"reference: unicity of the same traces as microdata: {ref['risk']:.3f}")
            notes.append(
                f"Reference, not an attack on this release: had the same traces been published as pseudonymised "
                f"microdata at {published.level} level and {published.time_bin or 'whole-window'} resolution, "
                f"{ref['metrics'].get('p', 4):.0f} known points would single out {100 * ref['risk']:.0f}% of subscribers "
                f"(95% interval {100 * ref['ci_low']:.0f}% to {100 * ref['ci_high']:.0f}%; guessing "
                f"{100 * ref['baseline']:.2f}%). Aggregation is what the attacks above test.")
            utility["unicity_reference"] = {k: ref[k] for k in ("risk", "ci_low", "ci_high", "baseline", "n_trials")}

        tables = {"true": truth, "claimed release": release.to_pandas()}
        if equivalent is not None:
            tables[f"DP, epsilon = {equivalent.epsilon:g}"] = equivalent.release.to_pandas()
        if published.statistic != "od_flows":
            from privagg.harness.plots import footfall_map_figure

            figures["map"] = (footfall_map_figure(world.cells, tables, title=f"{published.describe()}: total over the period"),
                              "The true counts, the claimed release and the DP release of equal utility, summed over time")
        else:
            from privagg.harness.plots import od_flow_map_figure

            figures["map"] = (od_flow_map_figure(world.cells, release.to_pandas(), title="Claimed release"),
                              "Origin-destination flows of the claimed release")

    if results:
        figures = {"risks": (risk_figure(results), "Attack success with 95% intervals; black bars: guessing"),
                   **figures}
    provenance = _provenance(claim, world, timings)
    html, js = _write(staging, claim, results, utility, figures, provenance, notes)
    import matplotlib.pyplot as plt

    plt.close("all")
    return AuditOutcome(html, js, results, utility, time.perf_counter() - t0)


def _audit_microdata(claim: Claim, world: Any, query: Query, say: Progress) -> tuple[list[dict[str, Any]], list[str]]:
    """Pseudonymised microdata: unicity is the attack; there is no aggregate to compare with DP."""
    from privagg.anonymisers.pseudonymised import Pseudonymised
    from privagg.attacks.unicity import unicity

    results, notes = [], []
    settings = claim.attacks.get("unicity")
    micro = Pseudonymised(source=claim.method.params.get("source", "events"), level=query.level,
                          time_bin=query.time_bin, seed=claim.seed).release(world, query)
    if settings:
        say(f"attack unicity on {len(micro):,} pseudonymised records")
        res = unicity(micro, p=settings["points"], n_targets=settings["targets"], seed=claim.seed).to_dict()
        say(f"  risk {res['risk']:.3f} [{res['ci_low']:.3f}, {res['ci_high']:.3f}]")
        results.append(res)
    others = [a for a in claim.attacks if a != "unicity"]
    if others:
        notes.append(f"Not run on microdata (they attack aggregates): {', '.join(a.replace('_', ' ') for a in others)}.")
    notes.append("Pseudonymised microdata has no aggregate counterpart, so no DP release is compared with it; "
                 "a DP release of aggregates at the same resolution gives no individual records to single out.")
    return results, notes


def _provenance(claim: Claim, world: Any, timings: dict[str, float]) -> dict[str, Any]:
    from privagg import __version__
    from privagg.harness.store import git_commit

    return {"privagg_version": __version__, "git_commit": git_commit(Path(__file__).parent),
            "claim_file": claim.path, "seeds": {"attacks": claim.seed, "data": claim.data.seed},
            "world": {k: v for k, v in world.summary().items()}, "seconds": {k: round(v, 2) for k, v in timings.items()},
            "finished": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}


def _write(staging: Path, claim: Claim, results: list[dict[str, Any]], utility: dict[str, Any],
           figures: dict[str, Any], provenance: dict[str, Any], notes: list[str]) -> tuple[Path, Path]:
    from privagg.harness.report import write_report

    title = claim.title or f"Anonymisation audit: {claim.name}"
    return write_report(staging, claim.to_dict(), results, utility, figures, title=title,
                        provenance=provenance, notes=notes)


__all__ = ["AuditOutcome", "PerDayDP", "audit_claim", "build_world", "dp_anonymiser", "find_dp_equivalent",
           "main_query", "make_anonymiser", "truth_of", "utility_of"]
