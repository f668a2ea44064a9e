"""The regulator's audit: make the claimed release, attack it, compare it with DP, write the report.

:func:`audit_claim` is what ``privagg audit CLAIM.toml --out DIR`` runs, as
named steps:

1. :func:`build_world`: the data (a synthetic world, or the user's tables);
2. :func:`release_claim`: the release the claim describes (main table and
   crossbreaks), made by the claimed method's anonymiser (the one factory,
   :func:`privagg.anonymisers.factory.make_anonymiser`);
3. accuracy against the exact aggregate (:func:`~privagg.claim_audit.equivalent.utility_of`);
4. the DP release of the same accuracy (:func:`~privagg.claim_audit.equivalent.find_dp_equivalent`);
5. :func:`attack_releases`: every attack that applies, through the one
   attack runner (:func:`privagg.attacks.run_attack`), against the claimed
   release and against that DP release;
6. the report (:func:`privagg.harness.report.write_report`) and the releases
   as Parquet, written into a staging folder that replaces ``out_dir`` whole
   only when everything has succeeded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from privagg.attacks.result import AttackResult
from privagg.attacks.runner import NotApplicable, run_attack
from privagg.claim_audit.claim import Claim, load_claim
from privagg.claim_audit.equivalent import SEARCH_UNIT, Equivalent, find_dp_equivalent, truth_of, utility_of
from privagg.dp.units import PrivacyUnit
from privagg.queries import Query
from privagg.release import Release

Progress = Callable[[str], None]
#: Attacks run against aggregate releases, in report order.
AGGREGATE_ATTACKS = ("trajectory_recovery", "membership_inference", "reconstruction", "differencing")
#: Beyond this epsilon per subscriber-day a DP guarantee says little (e^10 is a likelihood ratio of 22,000).
MEANINGFUL_EPSILON = 10.0

TRAJECTORY_DP_NOTE = (
    "Trajectory recovery against a DP release: part of any attack's success comes from what holds for everyone "
    "(most people stay in one place at night) rather than from the release; each verdict therefore states the "
    "stay-put figure (everyone kept all day where the night counts put them) and is judged against the stronger "
    "of it and guessing. The DP guarantee bounds what the release adds about any one person.")


# --------------------------------------------------------------------------- steps


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


@dataclass
class ClaimedRelease:
    """The claimed method's releases: the main table, its crossbreaks, and the query actually published."""

    anonymiser: Any
    query: Query
    published: Query
    release: Release
    crossbreaks: list[tuple[Query, Release]] = field(default_factory=list)


def release_claim(claim: Claim, world: Any) -> ClaimedRelease:
    """Make the releases the claim describes with its method's anonymiser."""
    from privagg.attacks.runner import published_query

    anonymiser = claim.method.anonymiser(seed=claim.seed)
    query = main_query(claim)
    release = anonymiser.release(world, query)
    crossbreaks = [(q, anonymiser.release(world, q)) for q in crossbreak_queries(claim) if q != query]
    return ClaimedRelease(anonymiser, query, published_query(anonymiser, world, query), release, crossbreaks)


@dataclass
class Finding:
    """One attack against the claimed release and, where run, against the DP release of equal accuracy."""

    result: AttackResult
    comparison: AttackResult | None = None


def _attack(name: str, world: Any, anonymiser: Any, query: Query, release: Release | None, claim: Claim,
            label: str) -> AttackResult | None:
    settings = dict(claim.attacks[name])
    if name == "reconstruction":
        settings["crossbreaks"] = [q.by for q in crossbreak_queries(claim)]
        level = claim.release.crossbreak_level or claim.release.level
        query = replace(query, level=level if not claim.release.by else query.level)
    try:
        return run_attack(name, world, anonymiser, query, release=release, settings=settings, seed=claim.seed,
                          label=label)
    except NotApplicable:
        return None


def attack_releases(claim: Claim, world: Any, claimed: ClaimedRelease, equivalent: Equivalent | None,
                    say: Progress, timings: dict[str, float]) -> list[Finding]:
    """Every applicable attack against the claimed release, and against the DP release of equal accuracy."""
    findings = []
    label = f"{claimed.release.privacy.label()} (the claim)"
    for name in AGGREGATE_ATTACKS:
        if name not in claim.attacks:
            continue
        t = time.perf_counter()
        result = _attack(name, world, claimed.anonymiser, claimed.query, claimed.release, claim, label)
        if result is None:
            continue
        say(f"attack {name.replace('_', ' ')} on the claimed release: risk {result.risk:.3f} "
            f"[{result.ci_low:.3f}, {result.ci_high:.3f}], guessing {result.baseline:.3f}"
            + (f" (strongest variant: {result.variant})" if result.variant else ""))
        comparison = None
        if equivalent is not None:
            dp_label = f"{equivalent.release.privacy.label()}, as accurate as the claim"
            comparison = _attack(name, world, equivalent.anonymiser, claimed.published, equivalent.release, claim,
                                 dp_label)
            if comparison is not None:
                say(f"  same attack on DP at epsilon {equivalent.epsilon:g}: risk {comparison.risk:.3f} "
                    f"[{comparison.ci_low:.3f}, {comparison.ci_high:.3f}]")
        timings[name] = time.perf_counter() - t
        findings.append(Finding(result, comparison))
    return findings


def microdata_findings(claim: Claim, world: Any, query: Query, say: Progress) -> tuple[list[Finding], list[str]]:
    """Pseudonymised microdata: unicity is the attack; there is no aggregate to compare with DP."""
    findings, notes = [], []
    if "unicity" in claim.attacks:
        anonymiser = claim.method.anonymiser(seed=claim.seed)
        say("attack unicity on the pseudonymised records")
        res = run_attack("unicity", world, anonymiser, query, settings=claim.attacks["unicity"], seed=claim.seed,
                         label=f"{claim.method.describe()} (the claim)")
        say(f"  risk {res.risk:.3f} [{res.ci_low:.3f}, {res.ci_high:.3f}]")
        findings.append(Finding(res))
    others = [a for a in claim.attacks if a != "unicity"]
    if others:
        notes.append(f"Not run on microdata (they attack aggregates): {', '.join(a.replace('_', ' ') for a in others)}.")
    notes.append("Pseudonymised microdata has no aggregate counterpart, so no DP release is compared with it; "
                 "a DP release of aggregates at the same resolution gives no individual records to single out.")
    return findings, notes


def unicity_reference(claim: Claim, world: Any, published: Query) -> tuple[AttackResult, str]:
    """Unicity of the same traces had they been published as pseudonymised microdata, and a note saying so."""
    from privagg.anonymisers.factory import make_anonymiser

    micro = make_anonymiser("pseudonymised", {"source": "events", "level": published.level,
                                              "time_bin": published.time_bin}, seed=claim.seed)
    ref = run_attack("unicity", world, micro, published, settings=claim.attacks["unicity"], seed=claim.seed,
                     label="the same traces as pseudonymised microdata")
    points = claim.attacks["unicity"]["points"]
    note = (f"Reference, not an attack on this release: had the same traces been published as pseudonymised "
            f"microdata at {published.level} level and {published.time_bin or 'whole-window'} resolution, "
            f"{points} known points would single out {100 * ref.risk:.0f}% of subscribers "
            f"(95% interval {100 * ref.ci_low:.0f}% to {100 * ref.ci_high:.0f}%; guessing "
            f"{100 * ref.baseline:.2f}%). Aggregation is what the attacks above test.")
    return ref, note


def equivalent_note(claim: Claim, equivalent: Equivalent, claimed_error: float, world: Any) -> str:
    """What a regulator should conclude from the DP release of equal accuracy, in words."""
    start, end = world.meta["start"], world.meta["end"]
    per_day = SEARCH_UNIT
    total = per_day.periods(start, end) * equivalent.epsilon
    window = PrivacyUnit().describe(start, end)
    if not equivalent.matched:
        return (f"No epsilon up to {max(claim.epsilons):g} {per_day.per} was as accurate as the claimed release "
                f"(mean relative error {equivalent.metrics['mean_relative_error']:.3g} against {claimed_error:.3g}): "
                f"the claim publishes counts that are nearly exact, which no meaningful DP guarantee allows. The "
                f"comparison uses epsilon = {equivalent.epsilon:g}, the most accurate DP release tried.")
    text = (f"DP matches the claim's accuracy at epsilon = {equivalent.epsilon:g} {per_day.per}, "
            f"{total:g} for {window}.")
    if equivalent.epsilon >= MEANINGFUL_EPSILON:
        text += (f" At that level the DP guarantee is too weak to mean much (an attacker's odds may grow by a "
                 f"factor of e^{equivalent.epsilon:g} a day): the claim's accuracy can only be had by publishing "
                 f"nearly exact counts. A regulator should read this as a sign that the claimed product is about "
                 f"individuals as much as about crowds, and ask for coarser tables or less accuracy rather than "
                 f"accept suppression as protection.")
    return text


# --------------------------------------------------------------------------- the audit


@dataclass
class AuditOutcome:
    """What :func:`audit_claim` wrote and found."""

    html: Path
    json: Path
    findings: list[Finding]
    utility: dict[str, Any]
    seconds: float

    @property
    def results(self) -> list[dict[str, Any]]:
        """The report's rows (one per attack), as written to ``report.json``."""
        from privagg.harness.report import finding

        return [_row(f, self.utility, finding) for f in self.findings]


def _row(f: Finding, utility: dict[str, Any], finding: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    dp = utility.get("dp_equivalent") or {}
    return finding(f.result, f.comparison, epsilon=dp.get("epsilon"), utility=dp.get("utility_text"),
                   similar=dp.get("matched", True))


def audit_claim(claim: Claim | str | Path, out_dir: str | Path, *, progress: Progress | None = print,
                world: Any = None) -> AuditOutcome:
    """Audit an anonymisation claim and write ``report.html``, ``report.json`` and the releases into ``out_dir``.

    Parameters
    ----------
    claim
        A :class:`~privagg.claim_audit.claim.Claim` or the path of a claim TOML file.
    out_dir
        Output directory. It is replaced whole, and only once the whole audit has succeeded.
    progress
        Called with one line per step (``None``: silent).
    world
        A World to use instead of building the claim's ``[data]`` (for tests and notebooks).
    """
    from privagg.atomic import publish_directory

    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    if not isinstance(claim, Claim):
        claim = load_claim(claim)
    out = Path(out_dir)
    outcome = publish_directory(out, lambda staging: _audit(claim, staging, say, world))
    outcome.html, outcome.json = out / "report.html", out / "report.json"
    outcome.seconds = time.perf_counter() - started
    say(f"audit finished in {outcome.seconds:.0f} s; report: {outcome.html}")
    return outcome


def _audit(claim: Claim, staging: Path, say: Progress, world: Any) -> AuditOutcome:
    import matplotlib.pyplot as plt

    from privagg.harness.plots import footfall_map_figure, od_flow_map_figure, risk_figure, search_figure

    t0 = time.perf_counter()
    if world is None:
        say("building the data" + (f" from {claim.data.path}" if claim.data.path else
                                   f" (synthetic: {claim.data.n_users} subscribers, {claim.data.n_cells} cells, "
                                   f"{claim.data.days} days)"))
        world = build_world(claim)
    timings: dict[str, float] = {"data": time.perf_counter() - t0}
    notes: list[str] = []
    utility: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    method = claim.method

    if method.name == "pseudonymised":
        findings, notes = microdata_findings(claim, world, main_query(claim), say)
    else:
        t = time.perf_counter()
        say(f"releasing {main_query(claim).describe()} with {method.describe()}")
        claimed = release_claim(claim, world)
        claimed.release.write(staging / "release.parquet")
        for i, (_, rel) in enumerate(claimed.crossbreaks, start=1):
            rel.write(staging / f"crossbreak_{i}.parquet")
        truth = truth_of(world, claimed.published)
        metrics = utility_of(truth, claimed.release, claim.metric_floor)
        utility = {"metrics": metrics, "utility_floor": claim.metric_floor,
                   "privacy": claimed.release.privacy.describe()}
        timings["release"] = time.perf_counter() - t
        say(f"  {claimed.release.privacy.describe()}")
        say(f"  accuracy: mean relative error {metrics['mean_relative_error']:.3f} "
            f"(floor {claim.metric_floor:g}), {100 * metrics['share_within_10pct']:.0f}% of keys within 10%")

        equivalent = None
        if claim.epsilons and not method.is_dp:
            t = time.perf_counter()
            say(f"searching epsilon in {list(claim.epsilons)} {SEARCH_UNIT.per} for a DP release as accurate as the claim")
            equivalent = find_dp_equivalent(world, claimed.published, truth, metrics["mean_relative_error"],
                                            claim.epsilons, claim.metric_floor, say)
            equivalent.release.write(staging / "dp_equivalent.parquet")
            timings["dp_search"] = time.perf_counter() - t
            word = "matches" if equivalent.matched else "comes closest to (but does not reach)"
            say(f"  DP at epsilon {equivalent.epsilon:g} {SEARCH_UNIT.per} {word} the claim's accuracy")
            utility["dp_equivalent"] = {
                "target": f"DP, epsilon = {equivalent.epsilon:g} {SEARCH_UNIT.per}",
                "privacy": equivalent.release.privacy.describe(),
                "epsilon": equivalent.epsilon, "unit": SEARCH_UNIT.label, "matched": equivalent.matched,
                "metrics": equivalent.metrics,
                "utility_text": (f"mean relative error {equivalent.metrics['mean_relative_error']:.3g} vs "
                                 f"{metrics['mean_relative_error']:.3g}"),
                "searched": [{"epsilon": e, "mean_relative_error": m} for e, m in equivalent.searched]}
            notes.append(equivalent_note(claim, equivalent, metrics["mean_relative_error"], world))
            figures["accuracy-vs-epsilon"] = (
                search_figure(equivalent.searched, metrics["mean_relative_error"], method.describe(),
                              equivalent.epsilon if equivalent.matched else None, SEARCH_UNIT.per),
                "Accuracy of DP releases against epsilon, and the claimed method's accuracy")
        elif method.is_dp:
            notes.append("The claimed release is itself differentially private, so it is not compared with "
                         "another DP release; attacks against it are checked against the DP bound where one is known.")

        findings = attack_releases(claim, world, claimed, equivalent, say, timings)
        if any(f.result.attack == "trajectory_recovery" for f in findings) and (method.is_dp or equivalent):
            notes.append(TRAJECTORY_DP_NOTE)
        if "unicity" in claim.attacks:
            t = time.perf_counter()
            ref, note = unicity_reference(claim, world, claimed.published)
            timings["unicity"] = time.perf_counter() - t
            say(f"reference: unicity of the same traces as microdata: {ref.risk:.3f}")
            notes.append(note)
            utility["unicity_reference"] = {"risk": ref.risk, "ci_low": ref.ci_low, "ci_high": ref.ci_high,
                                            "baseline": ref.baseline, "n_trials": ref.n_trials}

        tables = {"true": truth, "claimed release": claimed.release.to_pandas()}
        if equivalent is not None:
            tables[f"DP, epsilon = {equivalent.epsilon:g} {SEARCH_UNIT.per}"] = equivalent.release.to_pandas()
        if claimed.published.statistic != "od_flows":
            figures["map"] = (footfall_map_figure(world.cells, tables,
                                                  title=f"{claimed.published.describe()}: total over the period"),
                              "The true counts, the claimed release and the DP release of equal accuracy, summed over time")
        else:
            figures["map"] = (od_flow_map_figure(world.cells, claimed.release.to_pandas(), title="Claimed release"),
                              "Origin-destination flows of the claimed release")

    outcome = AuditOutcome(staging / "report.html", staging / "report.json", findings, utility, 0.0)
    rows = outcome.results
    if rows:
        figures = {"risks": (risk_figure(rows), "Attack success with 95% intervals; black bars: guessing; "
                                                "hollow diamonds: the simplest attack"), **figures}
    _write(staging, claim, rows, utility, figures, _provenance(claim, world, timings), notes)
    plt.close("all")
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _provenance(claim: Claim, world: Any, timings: dict[str, float]) -> dict[str, Any]:
    from privagg import __version__
    from privagg.harness.store import git_commit

    return {"privagg_version": __version__, "git_commit": git_commit(Path(__file__).parent),
            "claim_file": claim.path, "seeds": {"attacks": claim.seed, "data": claim.data.seed},
            "world": dict(world.summary()), "seconds": {k: round(v, 2) for k, v in timings.items()},
            "finished": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")}


def _write(staging: Path, claim: Claim, rows: list[dict[str, Any]], utility: dict[str, Any],
           figures: dict[str, Any], provenance: dict[str, Any], notes: list[str]) -> None:
    from privagg.harness.report import write_report

    title = claim.title or f"Anonymisation audit: {claim.name}"
    write_report(staging, claim.to_dict(), rows, utility, figures, title=title, provenance=provenance, notes=notes)


__all__ = ["AuditOutcome", "ClaimedRelease", "Finding", "attack_releases", "audit_claim", "build_world",
           "crossbreak_queries", "equivalent_note", "main_query", "release_claim"]
