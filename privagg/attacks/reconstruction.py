"""Reconstruction of subscriber records from published crossbreak tables.

Re-implements the database reconstruction attack of Dinur and Nissim (PODS
2003) as the US Census Bureau ran it against its own 2010 tables: published
crossbreaks (e.g. area x age_band x gender, area x contract x tag,
area x age_band x contract) are linear constraints on the unknown microdata,
and an integer program finds records consistent with all of them.

Per area, the unknowns are ``x_r >= 0``, the number of subscribers of each
full record type ``r`` (e.g. age_band x gender x contract x tag: 48 types).
Each published cell says ``sum of x_r over the types it covers = value``;
each suppressed cell (value NaN, "below k") says ``0 <= sum <= k - 1``. We
minimise the L1 deviation from the published values with auxiliary
variables, which is exactly feasibility for exact tables and the natural
estimate for noisy (DP) ones, and solve with HiGHS (``scipy.optimize.milp``).
Areas are independent, so the programs stay small. Two refinements make the
solution a good guess rather than any consistent one: suppressed cells get
a weak pull towards their share of the estimated area total (otherwise the
cheapest solution leaves them empty), and ties between consistent solutions
are broken by one of several rules (:data:`TIE_BREAKS`): towards the
maximum-entropy table fitted to the published cells (iterative proportional
fitting, inventing no association the tables do not show), towards a random
table (a random choice among the consistent ones), or as the solver finds
them. No rule is best everywhere, so the attack runs all of them, chooses
the one that rebuilds most records on a training half of the areas and
reports its success on the held-out half (``AttackResult.variant``).

The tables are published by the attacked anonymiser's own model
(:meth:`~privagg.anonymisers.base.Anonymiser.publication_model`, through
:func:`table_model`), applied to each table's ``value`` column.

Success is the share of true records exactly reconstructed: reconstructed
and true records are matched one-to-one within each area, and a record
counts when all its attributes match (``sum_r min(x_r, true_r)``). The
baseline draws, per area, as many records as the reconstruction holds from
the product of the published one-way marginals: the same head count without
any joint information. ``precision`` (matched / reconstructed) is reported
too, since a reconstruction could inflate its share by inventing records.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, sparse

from privagg.anonymisers.models import Exact, Publication
from privagg.attacks.result import AttackResult, strongest_variant
from privagg.errors import PrivaggInputError

__all__ = [
    "TIE_BREAKS",
    "crossbreak_tables",
    "publish_tables",
    "reconstruct",
    "reconstruction_attack",
    "records_from_users",
    "table_model",
]

#: Tie-breaks between tables equally consistent with the publication, in the order that wins ties.
TIE_BREAKS = ("max-entropy", "random", "solver")
#: The naive variant: records drawn from the product of the published one-way marginals.
MARGINALS = "records from the published marginals"

DEFAULT_CROSSBREAKS = (
    ("area", "age_band", "gender"),
    ("area", "contract", "tag"),
    ("area", "age_band", "contract"),
)


def records_from_users(users: pd.DataFrame, *, area: str = "home_cell", tag: str | None = None,
                       cells: pd.DataFrame | None = None) -> pd.DataFrame:
    """One record per opted-in subscriber: ``area, age_band, gender, contract, tag``.

    ``area`` is a users column (``home_cell``) or, with ``cells``, a cells
    column reached through ``home_cell`` (``zone_id``, ``district_id``).
    ``tag`` names a boolean ``tag_*`` column (default: the first one).
    """
    users = users.loc[users["opt_in"].to_numpy(dtype=bool)] if "opt_in" in users.columns else users
    if area in users.columns:
        area_values = users[area].to_numpy()
    elif cells is not None and area in cells.columns:
        area_values = users["home_cell"].map(cells.set_index("cell_id")[area]).to_numpy()
    else:
        raise PrivaggInputError(f"area={area!r} is neither a users column nor a cells column. Fix: e.g. area='home_cell'.")
    tags = [c for c in users.columns if c.startswith("tag_")]
    tag = tag or (tags[0] if tags else None)
    if tag is None or tag not in users.columns:
        raise PrivaggInputError(f"tag={tag!r}: users has no such tag column. Fix: pass one of {tags}.")
    return pd.DataFrame({
        "area": area_values,
        "age_band": users["age_band"].astype(str).to_numpy(),
        "gender": users["gender"].astype(str).to_numpy(),
        "contract": users["contract"].astype(str).to_numpy(),
        "tag": users[tag].astype(bool).to_numpy(),
    })


def _domains(records: pd.DataFrame, domains: Mapping[str, Sequence] | None) -> dict[str, list]:
    out = {c: sorted(pd.unique(records[c])) for c in records.columns}
    if domains:
        out.update({k: list(v) for k, v in domains.items()})
    return out


def crossbreak_tables(records: pd.DataFrame, crossbreaks: Sequence[Sequence[str]],
                      domains: Mapping[str, Sequence] | None = None) -> list[pd.DataFrame]:
    """Exact crossbreak counts over the full public domain (empty cells included), column ``value``."""
    dom = _domains(records, domains)
    tables = []
    for cb in crossbreaks:
        cb = list(cb)
        index = pd.MultiIndex.from_product([dom[c] for c in cb], names=cb)
        counts = records.groupby(cb, sort=False).size().reindex(index, fill_value=0)
        tables.append(counts.rename("value").astype(float).reset_index())
    return tables


# ----------------------------------------------------------------------------- the integer programs


def _area_program(types: pd.DataFrame, published: list[tuple[list[str], pd.DataFrame]], k: int | None):
    """One area's program: incidence rows and targets of published and suppressed cells.

    Suppressed cells get a soft target: the area total is estimated from the
    table with fewest suppressed cells (its published sum plus (k-1)/2 per
    suppressed cell), and each table's missing mass is spread evenly over its
    suppressed cells (clipped to 0..k-1). Without it the cheapest solution
    leaves every suppressed cell empty and loses the people in them.
    """
    n = len(types)
    pub_rows, pub_vals, sup_rows, sup_info = [], [], [], []
    for attrs, table in published:
        key_types = pd.MultiIndex.from_frame(types[attrs])
        key_cells = pd.MultiIndex.from_frame(table[attrs])
        cell_of_type = key_cells.get_indexer(key_types)
        values = table["value"].to_numpy(dtype=float)
        hit = cell_of_type >= 0  # types whose cell the table does not list are unconstrained by it
        inc = sparse.csr_matrix(
            (np.ones(hit.sum()), (cell_of_type[hit], np.flatnonzero(hit))), shape=(len(table), n)
        )
        known = ~np.isnan(values)
        pub_rows.append(inc[np.flatnonzero(known)])
        pub_vals.append(values[known])
        sup_rows.append(inc[np.flatnonzero(~known)])
        sup_info.append((float(np.clip(values[known], 0, None).sum()), int((~known).sum())))
    sup_targets = []
    if k is not None and any(ns for _, ns in sup_info):
        total = min(sup_info, key=lambda t: t[1])
        n_hat = max(total[0] + (k - 1) / 2 * total[1], max(p for p, _ in sup_info))
        for pub, ns in sup_info:
            sup_targets.append(np.full(ns, np.clip((n_hat - pub) / max(ns, 1), 0, k - 1)))
    else:
        sup_targets = [np.zeros(ns) for _, ns in sup_info]
    a_pub, v_pub = sparse.vstack(pub_rows).tocsr(), np.concatenate(pub_vals)
    w_pub = np.ones(len(v_pub))
    if not any(ns for _, ns in sup_info) and len(published) > 1:
        # Every table sums to the area's head count: their mean is a far less noisy estimate of it
        # (exact tables agree anyway), weighted like a whole table.
        sums = [float(np.nansum(t["value"].to_numpy(dtype=float))) for _, t in published]
        a_pub = sparse.vstack([a_pub, sparse.csr_matrix(np.ones((1, n)))]).tocsr()
        v_pub = np.r_[v_pub, max(np.mean(sums), 0.0)]
        w_pub = np.r_[w_pub, np.mean([len(t) for _, t in published])]
    return a_pub, v_pub, w_pub, sparse.vstack(sup_rows).tocsr(), np.concatenate(sup_targets)


def _solve_area(a_pub, v_pub, w_pub, a_sup, s_sup, k, n_types, *, avoid: np.ndarray | None = None,
                deviation: float | None = None, soft_weight: float = 0.05, prior: np.ndarray | None = None):
    """Minimise the weighted L1 deviation from the targets (published cells weigh 1, suppressed ones
    ``soft_weight``), suppressed cells held to 0..k-1; with ``avoid``, find the solution at the same
    deviation that overlaps least with ``avoid``. ``prior`` (expected count of each record type, e.g.
    the maximum-entropy fit of the tables) breaks ties between equally good solutions: an L1 pull
    towards it, with a weight too small to trade against any deviation from the tables.
    """
    s = a_sup.shape[0]
    soft = k is not None and s > 0
    a_fit = sparse.vstack([a_pub, a_sup]).tocsr() if soft else a_pub
    v_fit = np.r_[v_pub, s_sup] if soft else v_pub
    w_fit = np.r_[w_pub, np.full(s, soft_weight)] if soft else w_pub
    n_fit = a_fit.shape[0]
    if prior is not None and avoid is None:
        a_fit = sparse.vstack([a_fit, sparse.identity(n_types, format="csr")]).tocsr()
        v_fit = np.r_[v_fit, prior]
        w_fit = np.r_[w_fit, np.full(n_types, 0.01)]
    p = a_fit.shape[0]
    eye = sparse.identity(p, format="csr")
    blocks = [
        sparse.hstack([a_fit, -eye]),  # A x - e <= v
        sparse.hstack([a_fit, eye]),   # A x + e >= v
    ]
    lb = [np.full(p, -np.inf), v_fit]
    ub = [v_fit, np.full(p, np.inf)]
    if s:
        blocks.append(sparse.hstack([a_sup, sparse.csr_matrix((s, p))]))
        lb.append(np.zeros(s))
        ub.append(np.full(s, np.inf if k is None else k - 1.0))
    n_vars = n_types + p
    c = np.r_[np.zeros(n_types), w_fit]
    integrality = np.r_[np.ones(n_types), np.zeros(p)]
    upper = np.full(n_vars, np.inf)
    if avoid is not None:
        # overlap m_r >= min(x_r, avoid_r) via binaries z_r; keep the deviation optimal
        big = float(max(avoid.max(), 1.0) + (v_fit.max() if v_fit.size else 0) + (k or 0) + 1)
        nt = n_types
        blocks = [sparse.hstack([b, sparse.csr_matrix((b.shape[0], 2 * nt))]) for b in blocks]
        ident = sparse.identity(nt, format="csr")
        zero_e = sparse.csr_matrix((nt, p))
        # m - x + big*z >= 0  ;  m - big*z >= avoid - big
        blocks.append(sparse.hstack([-ident, zero_e, ident, big * ident]))
        lb.append(np.zeros(nt))
        ub.append(np.full(nt, np.inf))
        blocks.append(sparse.hstack([sparse.csr_matrix((nt, nt)), zero_e, ident, -big * ident]))
        lb.append(avoid - big)
        ub.append(np.full(nt, np.inf))
        blocks.append(sparse.csr_matrix(np.r_[np.zeros(nt), w_fit, np.zeros(2 * nt)]))
        lb.append(np.array([-np.inf]))
        ub.append(np.array([(deviation or 0.0) + 1e-6]))
        c = np.r_[np.zeros(nt), np.zeros(p), np.ones(nt), np.zeros(nt)]
        integrality = np.r_[np.ones(nt), np.zeros(p), np.zeros(nt), np.ones(nt)]
        upper = np.r_[np.full(nt + p + nt, np.inf), np.ones(nt)]
        n_vars = len(c)
    constraints = optimize.LinearConstraint(sparse.vstack(blocks).tocsr(), np.concatenate(lb), np.concatenate(ub))
    res = optimize.milp(c, constraints=constraints, integrality=integrality,
                        bounds=optimize.Bounds(np.zeros(n_vars), upper), options={"time_limit": 10})
    if res.x is None:
        return None, None
    if avoid is not None:
        return np.rint(res.x[:n_types]).astype(np.int64), float(res.fun)
    return np.rint(res.x[:n_types]).astype(np.int64), float(w_fit[:n_fit] @ res.x[n_types:n_types + n_fit])


def _max_entropy_fit(a_pub, v_pub, a_sup, s_sup, n_types: int, iterations: int = 40) -> np.ndarray:
    """Expected count per record type: the maximum-entropy table consistent with the published cells
    (suppressed ones at their soft targets), by iterative proportional fitting (row-action form)."""
    rows = sparse.vstack([a_pub, a_sup]).tocsr()
    targets = np.clip(np.r_[v_pub, s_sup], 0.0, None)
    members = [rows.indices[rows.indptr[i]:rows.indptr[i + 1]] for i in range(rows.shape[0])]
    total = max(float(targets[: a_pub.shape[0]].max(initial=0.0)), 1.0)
    mu = np.full(n_types, total / n_types)
    for _ in range(iterations):
        for cols, target in zip(members, targets):
            current = mu[cols].sum()
            if cols.size and current > 0:
                mu[cols] *= target / current
            elif cols.size:
                mu[cols] = target / cols.size
    return mu


def reconstruct(
    published: Sequence[pd.DataFrame | Any],
    *,
    k: int | None = None,
    area: str = "area",
    domains: Mapping[str, Sequence] | None = None,
    check_uniqueness: bool = False,
    tie_break: bool | str = "max-entropy",
    seed: int | None = 0,
) -> pd.DataFrame:
    """Find records consistent with published crossbreaks, one integer program per area.

    Parameters
    ----------
    published
        Tables (DataFrames or :class:`~privagg.release.Release`) with key
        columns, including ``area``, and ``value`` (NaN where suppressed).
    k
        Suppression threshold: a suppressed cell holds 0 to ``k - 1``
        subscribers. ``None``: suppressed cells are unconstrained.
    area
        The area column shared by all tables.
    domains
        Values of each attribute; defaults to those appearing in the tables.
    check_uniqueness
        Also solve, per area, for the consistent solution overlapping least
        with the one found (nice to have, slower): ``unique`` is True where
        every consistent solution equals it.
    tie_break
        How to choose among tables equally consistent with the publication
        (:data:`TIE_BREAKS`): ``"max-entropy"`` (closest in L1 to the
        maximum-entropy fit of the tables: invents no association),
        ``"random"`` (closest to a random table of the area's estimated size,
        drawn per area: a random choice among the consistent tables) or
        ``"solver"`` (whichever the solver finds first). ``True``/``False``
        mean ``"max-entropy"``/``"solver"``.
    seed
        Seeds the random tie-break (the adversary's own draws).

    Returns
    -------
    DataFrame
        ``area``, the attributes, ``count`` (reconstructed subscribers of
        that type, > 0), and with ``check_uniqueness`` the area's ``unique``
        flag and ``min_overlap``.
    """
    tables = []
    for t in published:
        if hasattr(t, "to_pandas") and hasattr(t, "key_columns"):
            frame, keys = t.to_pandas(), [c for c in t.key_columns]
        else:
            frame, keys = t, [c for c in t.columns if c not in ("value", "ci_low", "ci_high")]
        if area not in keys:
            raise PrivaggInputError(
                f"a published table has keys {keys} without the area column {area!r}. Fix: pass area= naming it."
            )
        tables.append((keys, frame))
    attrs: list[str] = []
    for keys, _ in tables:
        attrs += [c for c in keys if c != area and c not in attrs]
    dom: dict[str, list] = {}
    for a in attrs:
        vals = pd.unique(pd.concat([f[a] for keys, f in tables if a in keys], ignore_index=True))
        dom[a] = sorted(vals) if domains is None or a not in domains else list(domains[a])
    types = pd.DataFrame(list(itertools.product(*[dom[a] for a in attrs])), columns=attrs)
    areas = sorted(pd.unique(pd.concat([f[area] for _, f in tables], ignore_index=True)))
    grouped = [dict(tuple(f.groupby(area, sort=False))) for _, f in tables]

    if tie_break is True or tie_break is False:
        tie_break = "max-entropy" if tie_break else "solver"
    if tie_break not in TIE_BREAKS:
        raise PrivaggInputError(f"tie_break={tie_break!r} is unknown. Fix: use one of {', '.join(TIE_BREAKS)}.")
    rng = np.random.default_rng(seed)
    rows = []
    for a in areas:
        published_a = []
        for (keys, _), groups in zip(tables, grouped):
            sub = groups.get(a)
            if sub is not None:
                published_a.append(([c for c in keys if c != area], sub))
        a_pub, v_pub, w_pub, a_sup, s_sup = _area_program(types, published_a, k)
        prior = None
        if tie_break != "solver":
            prior = _max_entropy_fit(a_pub, v_pub, a_sup, s_sup, len(types))
            if tie_break == "random":
                # a random table of the same estimated size: the consistent table closest to it is a random one
                prior = prior.sum() * rng.dirichlet(np.ones(len(types)))
        x, dev = _solve_area(a_pub, v_pub, w_pub, a_sup, s_sup, k, len(types), prior=prior)
        if x is None:
            continue
        out = types.copy()
        out.insert(0, area, a)
        out["count"] = x
        if check_uniqueness:
            _, overlap = _solve_area(a_pub, v_pub, w_pub, a_sup, s_sup, k, len(types), avoid=x.astype(float),
                                     deviation=dev)
            out["min_overlap"] = overlap
            out["unique"] = overlap is not None and overlap >= x.sum() - 0.5
        rows.append(out.loc[out["count"] > 0])
    cols = [area, *attrs, "count"] + (["min_overlap", "unique"] if check_uniqueness else [])
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)


# ----------------------------------------------------------------------------- the attack


def _type_counts(frame: pd.DataFrame, keys: list[str], weight: str | None = None) -> pd.Series:
    if weight is None:
        return frame.groupby(keys, sort=False).size()
    return frame.groupby(keys, sort=False)[weight].sum()


def _marginal_per_area(published: list[pd.DataFrame], true_counts: pd.Series, n_guess: pd.Series,
                       attrs: list[str], k: int | None, rng: np.random.Generator,
                       n_draws: int = 20) -> pd.DataFrame:
    """Per area: true records, guessed ones and (expected) matches when as many records as ``n_guess`` holds
    there are drawn from the product of the published one-way marginals (and, ``matched_uniform``, uniformly):
    the same count, no joint information."""
    imputed = [t.assign(value=t["value"].fillna(0.0 if k is None else (k - 1) / 2).clip(lower=0)) for t in published]
    marg = {}
    for a in attrs:
        t = next(t for t in imputed if a in t.columns)
        marg[a] = t.groupby(["area", a])["value"].sum()
    rows = {}
    for a, tc in true_counts.groupby(level="area"):
        n = int(n_guess.get(a, 0))
        if n == 0:
            rows[a] = (float(tc.sum()), 0.0, 0.0, 0.0)
            continue
        probs, levels = [], []
        for attr in attrs:
            m = marg[attr].loc[a]
            probs.append((m / m.sum()).to_numpy() if m.sum() > 0 else np.full(len(m), 1 / len(m)))
            levels.append(m.index)
        p = probs[0]
        for q in probs[1:]:
            p = np.outer(p, q).ravel()
        idx = pd.MultiIndex.from_product(levels, names=attrs)
        truth = tc.droplevel("area").reindex(idx, fill_value=0).to_numpy()
        draws = rng.multinomial(n, p, size=n_draws)
        unif = rng.multinomial(n, np.full(p.size, 1 / p.size), size=n_draws)
        rows[a] = (float(tc.sum()), float(n), float(np.minimum(draws, truth).sum(axis=1).mean()),
                   float(np.minimum(unif, truth).sum(axis=1).mean()))
    out = pd.DataFrame.from_dict(rows, orient="index", columns=["true", "rec", "matched", "matched_uniform"])
    out.index.name = "area"
    return out


def table_model(anonymiser: Any, crossbreaks: Sequence[Sequence[str]] = DEFAULT_CROSSBREAKS) -> Publication:
    """The publication model of ``anonymiser`` for a set of crossbreak tables.

    The tables are published together: each subscriber is one record,
    counted once in each table, so one subscriber touches ``len(crossbreaks)``
    cells of the whole publication, 1 each, with no time
    (``publication_model(l0=len(crossbreaks), linf=1, days=None)``); the
    model's ``loss`` is the guarantee of all the tables together.

    Raises
    ------
    PublicationModelUnavailable
        When the anonymiser has no model (e.g. pseudonymised microdata).
    """
    if isinstance(anonymiser, Publication):
        return anonymiser
    return anonymiser.publication_model(l0=len(crossbreaks), linf=1, days=None)


def publish_tables(tables: Sequence[pd.DataFrame], model: Publication) -> list[pd.DataFrame]:
    """Each table with its ``value`` column as ``model`` publishes it (NaN where suppressed)."""
    return [t.assign(value=model(t["value"].to_numpy())) for t in tables]


def _per_area(records: pd.DataFrame, guess: pd.DataFrame, attrs: list[str]) -> pd.DataFrame:
    """Per area: true records, reconstructed records, and matched ones (one-to-one within the area)."""
    true_counts = _type_counts(records, ["area", *attrs])
    rec_counts = _type_counts(guess, ["area", *attrs], "count") if len(guess) else true_counts.iloc[:0]
    both = pd.concat([true_counts.rename("true"), rec_counts.rename("rec")], axis=1).fillna(0)
    both["matched"] = np.minimum(both["true"], both["rec"])
    areas = pd.Index(sorted(pd.unique(records["area"])), name="area")
    return both.groupby(level="area")[["true", "rec", "matched"]].sum().reindex(areas, fill_value=0)


def _share(per_area: pd.DataFrame, areas: np.ndarray) -> float:
    sub = per_area.loc[areas]
    return float(sub["matched"].sum() / max(sub["true"].sum(), 1))


def reconstruction_attack(
    records: pd.DataFrame,
    *,
    anonymiser: Any = None,
    crossbreaks: Sequence[Sequence[str]] = DEFAULT_CROSSBREAKS,
    k: int | None = None,
    domains: Mapping[str, Sequence] | None = None,
    check_uniqueness: bool = False,
    n_bootstrap: int = 1000,
    seed: int | None = None,
    tie_breaks: Sequence[str] = TIE_BREAKS,
    train_share: float = 0.5,
) -> AttackResult:
    """Publish crossbreaks of ``records`` as ``anonymiser`` would, reconstruct, and score the strongest tie-break.

    Parameters
    ----------
    records
        One row per subscriber with ``area`` and the attribute columns
        (:func:`records_from_users`).
    anonymiser
        A :class:`~privagg.anonymisers.models.Publication` applied to each
        table's ``value`` column, or an anonymiser, whose model for the
        tables is :func:`table_model` (default: exact tables).
    crossbreaks
        Attribute tuples of the published tables; each includes ``area``.
    k
        Suppression threshold the adversary assumes (default: the model's ``k``).
    check_uniqueness
        Also test whether each area's solution is the only consistent one.
    n_bootstrap
        Resamples of held-out areas for the interval of the share.
    seed
        Seeds the split of areas, the random tie-break, the baseline draws and the bootstrap.
    tie_breaks
        The tie-break variants run (:data:`TIE_BREAKS`). Areas are split at
        random into training areas (``train_share``) and held-out ones; the
        variant reconstructing most records on training areas is chosen
        (:func:`~privagg.attacks.result.strongest_variant`) and ``risk`` is its
        share on held-out areas, so the choice does not inflate it. With
        fewer than 4 areas there is no split: the first variant is reported
        on every area.

    Returns
    -------
    AttackResult
        ``variant`` names the chosen tie-break, ``variants`` gives every
        tie-break's held-out share; ``metrics`` holds precision, the
        baselines (on the held-out areas) and the counts.
    """
    model = table_model(anonymiser if anonymiser is not None else Exact(), crossbreaks)
    for cb in crossbreaks:
        missing = [c for c in cb if c not in records.columns]
        if "area" not in cb or missing:
            raise PrivaggInputError(
                f"crossbreak {tuple(cb)} must include 'area' and columns of records; missing {missing}. "
                "Fix: e.g. ('area', 'age_band', 'gender')."
            )
    tie_breaks = tuple(tie_breaks)
    unknown = [t for t in tie_breaks if t not in TIE_BREAKS]
    if not tie_breaks or unknown:
        raise PrivaggInputError(f"tie_breaks={tie_breaks!r}: unknown or none. Fix: choose from {', '.join(TIE_BREAKS)}.")
    if not 0 < train_share < 1:
        raise PrivaggInputError(f"train_share={train_share!r} must lie in (0, 1). Fix: pass e.g. train_share=0.5.")
    if k is None:
        k = getattr(model, "k", None)
    rng = np.random.default_rng(seed)
    dom = _domains(records, domains)
    exact = crossbreak_tables(records, crossbreaks, dom)
    published = publish_tables(exact, model)
    attrs = [c for c in dom if c != "area" and any(c in cb for cb in crossbreaks)]

    guesses = {
        name: reconstruct(published, k=k, domains=dom, check_uniqueness=check_uniqueness and i == 0,
                          tie_break=name, seed=int(rng.integers(2**32)))
        for i, name in enumerate(tie_breaks)
    }
    per_area = {f"tie-break: {name}": _per_area(records, guess, attrs) for name, guess in guesses.items()}
    first = f"tie-break: {tie_breaks[0]}"
    # Records drawn from the published one-way marginals are an attack too (the naive one): it runs as a
    # variant, so the reported figure is chosen against it on training areas like the tie-breaks.
    # Its draws come from their own stream, so the split of areas and the bootstrap do not depend on them.
    marginals = _marginal_per_area(published, _type_counts(records, ["area", *attrs]), per_area[first]["rec"],
                                   attrs, k, np.random.default_rng([0 if seed is None else seed, 1]))
    marginals = marginals.reindex(per_area[first].index, fill_value=0.0)
    per_area[MARGINALS] = marginals
    areas = per_area[first].index.to_numpy()
    if len(areas) >= 4:
        order = rng.permutation(len(areas))
        n_train = min(max(int(round(train_share * len(areas))), 1), len(areas) - 1)
        train, test = np.sort(areas[order[:n_train]]), np.sort(areas[order[n_train:]])
        chosen = strongest_variant({name: _share(pa, train) for name, pa in per_area.items()})
    else:
        train, test, chosen = areas[:0], areas, first
    variants = {name: _share(pa, test) for name, pa in per_area.items()}
    held = per_area[chosen].loc[test]
    share = variants[chosen]
    # Cluster bootstrap over held-out areas (records of one area are reconstructed together).
    t, mt = held["true"].to_numpy(), held["matched"].to_numpy()
    idx = rng.integers(0, len(t), size=(n_bootstrap, len(t)))
    boot = mt[idx].sum(axis=1) / np.maximum(t[idx].sum(axis=1), 1)
    ci_low, ci_high = (float(v) for v in np.quantile(boot, [0.025, 0.975]))
    ci_low, ci_high = min(ci_low, share), max(ci_high, share)
    baseline = variants[MARGINALS]
    held_marginals = marginals.loc[test]
    uniform = float(held_marginals["matched_uniform"].sum() / max(held_marginals["true"].sum(), 1))
    metrics: dict[str, Any] = {
        "share_reconstructed": share,
        "n_records": int(held["true"].sum()),
        "n_reconstructed": int(held["rec"].sum()),
        "precision": float(held["matched"].sum() / max(held["rec"].sum(), 1)),
        "n_areas": int(len(test)),
        "n_training_areas": int(len(train)),
        "n_record_types": int(np.prod([len(dom[a]) for a in attrs])),
        "baseline_product_of_marginals": baseline,
        "baseline_uniform": uniform,
        "areas_fully_reconstructed": float((held["matched"] == held["true"]).mean()),
    }
    if check_uniqueness and len(guesses[tie_breaks[0]]):
        flags = guesses[tie_breaks[0]].groupby("area")["unique"].first()
        metrics["areas_with_unique_solution"] = float(flags.mean())
    name = model.name
    tables = ", ".join(" x ".join(cb) for cb in crossbreaks)
    return AttackResult(
        attack="reconstruction",
        target=f"{name} crossbreaks {tables}",
        risk=share,
        ci_low=ci_low,
        ci_high=ci_high,
        baseline=baseline,
        n_trials=int(held["true"].sum()),
        background_knowledge="only the published tables, the attribute domains and the suppression rule",
        metrics=metrics,
        interpretation=(
            f"From the {name} tables alone, {share:.0%} of subscribers' full records (area, "
            f"{', '.join(attrs)}) are rebuilt exactly, against {baseline:.0%} for records drawn from the "
            "published marginals."
        ),
        variant=chosen,
        variants=variants,
    )
