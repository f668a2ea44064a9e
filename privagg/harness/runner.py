"""Run an experiment spec: expand the grid into cells, run them in parallel, resumably.

A *cell* is one point of the grid: world x statistic x anonymiser parameters
x repetition, and either the utility measurement (release -> metrics) or one
attack (release -> attack). Each cell has a hash of everything that
determines its result; its rows are stored in ``DIR/cells/<hash>.parquet`` as
soon as it finishes, so a killed run resumes where it stopped, and a changed
spec recomputes only the cells it changed.

Parallelism: a :class:`concurrent.futures.ProcessPoolExecutor` with
``max_workers`` processes (2 by default, one per core of the reference
machine), forked after the world and the true aggregates are built, so the
workers share them without copying. ``max_workers=1`` runs in-process.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privagg.errors import PrivaggError, PrivaggInputError
from privagg.harness import registry
from privagg.harness.hashing import canonical_json, short_hash
from privagg.harness.spec import AttackSpec, ExperimentSpec, StatisticSpec, WorldSpec, load_spec
from privagg.harness.store import ResultStore, environment, git_commit
from privagg.metrics import compute_metrics

AREA_KEYS = ("cell_id", "zone_id", "district_id")


@dataclass(frozen=True)
class Cell:
    """One point of the grid. ``attack`` is None for the utility cell."""

    world: WorldSpec
    statistic: StatisticSpec
    family: str
    params: dict[str, Any]
    label: str | None
    repetition: int
    seed: int
    attack: AttackSpec | None = None
    metrics: tuple[str, ...] = ()
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    store_sample: bool = False

    def identity(self) -> dict[str, Any]:
        """Everything that determines the cell's result (hashed into :attr:`hash`)."""
        out: dict[str, Any] = {
            "world": self.world.to_dict(),
            "statistic": self.statistic.to_dict(),
            "family": self.family,
            "params": self.params,
            "seed": self.seed,
        }
        if self.attack is None:
            out["metrics"] = list(self.metrics)
            out["metric_options"] = self.metric_options
        else:
            out["attack"] = {"name": self.attack.name, "params": self.attack.params}
        return out

    @property
    def hash(self) -> str:
        return short_hash(self.identity(), 20)

    @property
    def cell_seed(self) -> int:
        """A seed of its own for this cell, derived from the repetition seed and the cell's identity."""
        return int(hashlib.sha256(canonical_json(self.identity()).encode()).hexdigest()[:8], 16)

    @property
    def config(self) -> str:
        """Human label of the anonymiser configuration, e.g. ``dp epsilon=1``."""
        if self.label:
            base = self.label
        else:
            base = self.family
        params = " ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        return f"{base} {params}".strip()

    @property
    def kind(self) -> str:
        return "utility" if self.attack is None else "risk"


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) >= 1 else f"{value:g}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def expand(spec: ExperimentSpec) -> list[Cell]:
    """Every cell of the spec, in a deterministic order (utility cells before attack cells of the same point)."""
    cells: list[Cell] = []
    for stat in spec.statistics:
        for anon in spec.anonymisers:
            for params in anon.expand():
                for rep, seed in enumerate(spec.seeds):
                    cells.append(Cell(spec.world, stat, anon.family, params, anon.label, rep, seed,
                                      None, spec.metrics, spec.metric_options,
                                      store_sample=spec.store_samples and rep == 0))
                    for attack in spec.attacks:
                        if attack.applies(anon.family):
                            cells.append(Cell(spec.world, stat, anon.family, params, anon.label, rep, seed, attack))
    hashes = [c.hash for c in cells]
    if len(set(hashes)) != len(hashes):
        dup = next(c for c in cells if hashes.count(c.hash) > 1)
        raise PrivaggInputError(
            f"{spec.path}: the grid holds the same cell twice ({dup.family} {dup.params}, "
            f"{dup.statistic.name}). Fix: remove the duplicate [[anonymisers]] or [[statistics]] entry."
        )
    return cells


# --------------------------------------------------------------------------- per-process caches

_WORLDS: dict[str, Any] = {}
_QUERIES: dict[tuple[str, str], Any] = {}
_TRUTHS: dict[tuple[str, str], pd.DataFrame] = {}
_OUT_DIR: dict[str, Path] = {}


def _world_dir(out: Path, world: WorldSpec) -> Path:
    return out / "worlds" / world.id


def build_world(world: WorldSpec) -> Any:
    """Generate the spec's synthetic world, or load the user's tables."""
    from privagg.world import World

    if world.data is not None:
        return World.load(world.data)
    generate = registry.hook("world")
    return generate(n_users=world.n_users, n_cells=world.n_cells, days=world.days, seed=world.seed, **world.options)


def get_world(out: Path, world: WorldSpec) -> Any:
    """The world of the spec, from this process's cache, the experiment directory, or built anew."""
    if world.id in _WORLDS:
        return _WORLDS[world.id]
    from privagg.world import World

    saved = _world_dir(out, world)
    if world.data is None and (saved / "world.json").exists():
        w = World.load(saved, validate=False)
    else:
        w = build_world(world)
        if world.data is None:
            try:
                w.save(saved)
            except Exception:  # noqa: BLE001 - a cache, not a result: never fail the run for it
                pass
    _WORLDS[world.id] = w
    return w


def get_query(world_obj: Any, world: WorldSpec, stat: StatisticSpec) -> Any:
    key = (world.id, short_hash(stat.to_dict()))
    if key not in _QUERIES:
        _QUERIES[key] = registry.hook("query")(world_obj, stat)
    return _QUERIES[key]


def get_truth(out: Path, world_obj: Any, world: WorldSpec, stat: StatisticSpec) -> pd.DataFrame:
    key = (world.id, short_hash(stat.to_dict()))
    if key not in _TRUTHS:
        path = out / "samples" / f"truth-{world.id}-{key[1]}.parquet"
        if path.is_file():
            _TRUTHS[key] = pd.read_parquet(path)
        else:
            truth = registry.hook("truth")(world_obj, get_query(world_obj, world, stat))
            truth = truth.to_pandas() if hasattr(truth, "to_pandas") else pd.DataFrame(truth)
            _TRUTHS[key] = truth
            from privagg.atomic import atomic_write

            atomic_write(path, lambda tmp: truth.to_parquet(tmp, index=False))
    return _TRUTHS[key]


# --------------------------------------------------------------------------- one cell


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _base_row(cell: Cell) -> dict[str, Any]:
    def num(name: str) -> float:
        v = cell.params.get(name)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")

    return {
        "cell": cell.hash,
        "kind": cell.kind,
        "world_id": cell.world.id,
        "statistic": cell.statistic.name,
        "statistic_kind": cell.statistic.statistic,
        "level": cell.statistic.level,
        "time_bin": cell.statistic.time_bin,
        "family": cell.family,
        "config": cell.config,
        "params": canonical_json(cell.params),
        "epsilon": num("epsilon"),
        "k": num("k"),
        "repetition": cell.repetition,
        "seed": cell.seed,
        "cell_seed": cell.cell_seed,
        "attack": cell.attack.name if cell.attack else "",
    }


def _table_of(release: Any) -> tuple[pd.DataFrame, list[str]]:
    if hasattr(release, "to_pandas"):
        df = release.to_pandas()
    else:
        df = pd.DataFrame(release)
    keys = list(getattr(release, "key_columns", [c for c in df.columns if c not in ("value", "ci_low", "ci_high")]))
    return df, keys


def _time_step(values: pd.Series) -> pd.Timedelta | None:
    times = np.unique(pd.to_datetime(values).to_numpy("datetime64[ns]"))
    if len(times) < 2:
        return None
    return pd.Timedelta(np.diff(times).min())


def project_to_truth(released: pd.DataFrame, keys: list[str], truth: pd.DataFrame,
                     truth_keys: list[str], cells: pd.DataFrame | None,
                     *, additive_in_time: bool = False) -> tuple[pd.DataFrame, str]:
    """Bring a release made at a coarser area level or time bin onto the truth's keys.

    This is what a user of the coarse release would assume: a zone (district)
    value is spread evenly over the zone's (district's) cells; a value for a
    long time bin holds for each of its short bins (presence counts) or is
    divided among them (``additive_in_time``: visits, trips). Returns the
    projected table and a note ("" when nothing was projected).
    """
    notes = []
    rel = released
    rkeys = list(keys)
    rel_area = next((c for c in rkeys if c in AREA_KEYS), None)
    truth_area = next((c for c in truth_keys if c in AREA_KEYS), None)
    if rel_area and truth_area and rel_area != truth_area and cells is not None \
            and AREA_KEYS.index(rel_area) > AREA_KEYS.index(truth_area):
        mapping = cells[[truth_area, rel_area]].drop_duplicates()
        sizes = mapping.groupby(rel_area)[truth_area].transform("count")
        mapping = mapping.assign(_share=1.0 / sizes.to_numpy())
        rel = rel.merge(mapping, on=rel_area, how="left")
        rel["value"] = rel["value"] * rel["_share"]
        rel = rel.drop(columns=["_share", rel_area])
        rkeys = [truth_area if c == rel_area else c for c in rkeys]
        notes.append(f"{rel_area} values spread evenly over each {rel_area.removesuffix('_id')}'s "
                     f"{truth_area.removesuffix('_id')}s")
    if "time" in rkeys and "time" in truth_keys and len(rel) and len(truth):
        rstep, tstep = _time_step(rel["time"]), _time_step(truth["time"])
        if rstep is not None and tstep is not None and rstep > tstep:
            origin = pd.to_datetime(truth["time"]).min().floor("D")
            fine = pd.DataFrame({"time": pd.to_datetime(truth["time"]).unique()})
            fine["_coarse"] = origin + ((fine["time"] - origin) // rstep) * rstep
            rel = rel.rename(columns={"time": "_coarse"}).merge(fine, on="_coarse", how="inner").drop(columns="_coarse")
            if additive_in_time:
                rel["value"] = rel["value"] / (rstep / tstep)
            notes.append(f"{rstep} values {'divided among' if additive_in_time else 'repeated for'} each {tstep} bin")
    if sorted(rkeys) != sorted(truth_keys):
        shared = [c for c in truth_keys if c in keys]
        raise PrivaggError(
            f"the release has keys {list(keys)} but the true table has {truth_keys}; shared keys {shared}. "
            "Fix: make the anonymiser release the query's keys, or extend privagg.harness.runner.project_to_truth."
        )
    if notes:
        rel = rel.groupby(truth_keys, as_index=False, dropna=False)["value"].sum(min_count=1)
    return rel.loc[:, [*truth_keys, "value"]], "; ".join(notes)


def _utility_rows(cell: Cell, out: Path, world_obj: Any, release: Any, truth: pd.DataFrame) -> list[dict[str, Any]]:
    released, keys = _table_of(release)
    if "value" not in released.columns:
        # Microdata (e.g. pseudonymised trajectories): no aggregate to score; attacks still run.
        return [{**_base_row(cell), "metric": name, "status": "not_applicable",
                 "detail": "the release is microdata, not an aggregate table"} for name in cell.metrics]
    truth_keys = [c for c in truth.columns if c not in ("value", "ci_low", "ci_high")]
    projected, note = project_to_truth(
        released, keys, truth, truth_keys, getattr(world_obj, "cells", None),
        additive_in_time=cell.statistic.statistic not in ("footfall", "segment_counts", "segments"))
    values = compute_metrics(truth, projected, cell.metrics, key_columns=truth_keys, options=cell.metric_options)
    base = _base_row(cell)
    rows = [{**base, "metric": name, "value": value, "status": "ok", "detail": note} for name, value in values.items()]
    privacy = getattr(release, "privacy", None)
    if privacy is not None:
        for name in ("epsilon", "delta", "rho"):
            v = getattr(privacy, name, None)
            if v is not None:
                rows.append({**base, "kind": "privacy", "metric": f"{name}_spent", "value": float(v), "status": "ok"})
        rows.append({**base, "kind": "privacy", "metric": "formally_private",
                     "value": float(bool(getattr(privacy, "formally_private", False))), "status": "ok",
                     "detail": privacy.describe() if hasattr(privacy, "describe") else ""})
    rows.append({**base, "kind": "utility", "metric": "released_keys", "value": float(len(released)), "status": "ok"})
    if cell.store_sample:
        from privagg.atomic import atomic_write

        atomic_write(out / "samples" / f"release-{cell.hash}.parquet",
                     lambda tmp: released.to_parquet(tmp, index=False))
    return rows


def _as_dicts(result: Any) -> list[dict[str, Any]]:
    items = result if isinstance(result, (list, tuple)) else [result]
    out = []
    for item in items:
        if hasattr(item, "to_dict"):
            out.append(item.to_dict())
        elif isinstance(item, dict):
            out.append(dict(item))
        else:
            raise PrivaggError(f"an attack returned {type(item).__name__}; expected an AttackResult or dict.")
    return out


def _risk_rows(cell: Cell, result: Any) -> list[dict[str, Any]]:
    import json

    base = _base_row(cell)
    rows = []
    for r in _as_dicts(result):
        detail = json.dumps({k: r.get(k) for k in ("target", "background_knowledge", "interpretation",
                                                    "confidence_level", "attack") if k in r}, default=str)
        rows.append({**base, "metric": "risk", "value": r.get("risk"), "ci_low": r.get("ci_low"),
                     "ci_high": r.get("ci_high"), "baseline": r.get("baseline"), "n_trials": r.get("n_trials"),
                     "status": "ok", "detail": detail})
        for name, value in (r.get("metrics") or {}).items():
            if isinstance(value, (int, float)) or value is None:  # lists (e.g. per-target figures) stay in detail
                rows.append({**base, "metric": str(name), "value": None if value is None else float(value),
                             "status": "ok", "n_trials": r.get("n_trials")})
    return rows


def run_cell(cell: Cell, out_dir: str) -> tuple[str, list[dict[str, Any]], float, str, str]:
    """Compute one cell; returns (hash, rows, seconds, started, finished). Runs in a worker."""
    out = Path(out_dir)
    started = _now()
    t0 = time.perf_counter()
    world_obj = get_world(out, cell.world)
    query = get_query(world_obj, cell.world, cell.statistic)
    truth = get_truth(out, world_obj, cell.world, cell.statistic)
    anonymiser = registry.make_anonymiser(cell.family, cell.params, seed=cell.cell_seed)
    if cell.attack is None:
        release = anonymiser.release(world_obj, query)
        rows = _utility_rows(cell, out, world_obj, release, truth)
    else:
        runner = registry.attack_runner(cell.attack.name)
        try:
            release = anonymiser.release(world_obj, query)
            ctx = registry.AttackContext(world=world_obj, query=query, statistic=cell.statistic, family=cell.family,
                                         params=dict(cell.params), anonymiser=anonymiser, release=release,
                                         truth=truth, seed=cell.cell_seed, attack_params=dict(cell.attack.params))
            rows = _risk_rows(cell, runner(ctx))
        except registry.NotApplicable as exc:
            rows = [{**_base_row(cell), "metric": "risk", "status": "not_applicable", "detail": str(exc)}]
    seconds = time.perf_counter() - t0
    finished = _now()
    for row in rows:
        row.update(seconds=seconds, started=started, finished=finished)
    return cell.hash, rows, seconds, started, finished


def _guarded(cell: Cell, out_dir: str) -> tuple[str, list[dict[str, Any]] | None, float, str, str, str | None]:
    try:
        h, rows, s, a, b = run_cell(cell, out_dir)
        return h, rows, s, a, b, None
    except Exception as exc:  # noqa: BLE001 - reported per cell, the run continues
        tb = traceback.format_exc(limit=6)
        message = str(exc) if isinstance(exc, PrivaggError) else f"{type(exc).__name__}: {exc}\n{tb}"
        return cell.hash, None, 0.0, "", "", message


# --------------------------------------------------------------------------- the run


@dataclass
class RunSummary:
    """What a run did."""

    out_dir: Path
    n_cells: int
    n_run: int
    n_reused: int
    failed: dict[str, str]
    results: pd.DataFrame
    provenance: dict[str, Any]


def _preflight(spec: ExperimentSpec) -> None:
    """Resolve every registry entry the spec needs, so a missing piece fails before any work."""
    problems = []
    needed: list[tuple[str, Any]] = [("query", lambda: registry.hook("query")), ("truth", lambda: registry.hook("truth"))]
    if spec.world.data is None:
        needed.append(("world", lambda: registry.hook("world")))
    for family in dict.fromkeys(a.family for a in spec.anonymisers):
        needed.append((family, lambda f=family: registry.anonymiser_factory(f)))
    for name in dict.fromkeys(a.name for a in spec.attacks):
        needed.append((name, lambda n=name: registry.attack_runner(n)))
    for _, resolve in needed:
        try:
            func = resolve()
            # Adapters list what they import (``requires``): check those too, before any work.
            for entry in getattr(func, "requires", ()):
                registry._resolve("harness step", entry, entry)
        except registry.MissingComponentError as exc:
            problems.append(str(exc))
    if problems:
        raise registry.MissingComponentError(
            f"{spec.path}: {len(problems)} part(s) of this experiment are not available:\n  - " + "\n  - ".join(problems)
        )


def _write_sample_index(store: ResultStore, spec: ExperimentSpec, cells: list[Cell]) -> None:
    """samples/index.json: which stored table is the truth or a release of which statistic and config."""
    import json

    from privagg.atomic import atomic_write_text

    index: dict[str, Any] = {"cells": None, "truth": {}, "releases": []}
    cells_path = store.samples_dir / f"cells-{spec.world.id}.parquet"
    if cells_path.is_file():
        index["cells"] = cells_path.name
    for stat in spec.statistics:
        p = store.samples_dir / f"truth-{spec.world.id}-{short_hash(stat.to_dict())}.parquet"
        if p.is_file():
            index["truth"][stat.name] = {"file": p.name, "statistic": stat.statistic, "level": stat.level,
                                         "time_bin": stat.time_bin}
    for c in cells:
        p = store.samples_dir / f"release-{c.hash}.parquet"
        if c.attack is None and c.store_sample and p.is_file():
            index["releases"].append({"file": p.name, "statistic": c.statistic.name, "family": c.family,
                                      "config": c.config, "params": c.params, "cell": c.hash})
    atomic_write_text(store.samples_dir / "index.json", json.dumps(index, indent=2, default=str))


def run_experiment(
    spec: ExperimentSpec | str | Path,
    out_dir: str | Path,
    *,
    max_workers: int = 2,
    progress: bool = True,
) -> RunSummary:
    """Run every cell of ``spec`` not already finished in ``out_dir``, then write the results table.

    Parameters
    ----------
    spec
        A parsed spec or the path of a TOML spec.
    out_dir
        The experiment directory (created if needed; reused to resume).
    max_workers
        Worker processes; 1 runs every cell in this process.
    progress
        Show a tqdm progress bar on stderr.

    Returns
    -------
    RunSummary
        Counts, failures and the results table. Failed cells are not stored,
        so a rerun retries them; when any failed a :class:`PrivaggError` is
        raised after the finished cells and the partial table are written.
    """
    from privagg import __version__

    if not isinstance(spec, ExperimentSpec):
        spec = load_spec(spec)
    if max_workers < 1:
        raise PrivaggInputError(f"max_workers={max_workers}: must be at least 1. Fix: e.g. max_workers=2.")
    started = _now()
    t_start = time.perf_counter()
    store = ResultStore(out_dir)
    cells = expand(spec)
    _preflight(spec)
    store.prepare()
    if spec.text is not None:
        from privagg.atomic import atomic_write_text

        atomic_write_text(store.dir / "spec.toml", spec.text)

    todo = [c for c in cells if not store.has_cell(c.hash)]
    reused = len(cells) - len(todo)
    timings: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    out = str(store.dir.resolve())

    if todo:
        # Built once here, so forked workers inherit them.
        world_obj = get_world(store.dir, spec.world)
        for stat in spec.statistics:
            get_truth(store.dir, world_obj, spec.world, stat)
        if spec.store_samples:
            cells_path = store.samples_dir / f"cells-{spec.world.id}.parquet"
            if hasattr(world_obj, "cells") and not cells_path.exists():
                from privagg.atomic import atomic_write

                atomic_write(cells_path, lambda tmp: world_obj.cells.to_parquet(tmp, index=False))

    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cells), initial=reused, desc=f"experiment {spec.name}", unit="cell", file=sys.stderr)

    def finish(result: tuple[str, list[dict[str, Any]] | None, float, str, str, str | None]) -> None:
        h, rows, seconds, a, b, error = result
        if error is not None:
            failed[h] = error
        else:
            store.write_cell(h, rows or [])
            timings[h] = {"seconds": round(seconds, 4), "started": a, "finished": b}
        if bar is not None:
            bar.update(1)

    engine_scope: Any = contextlib.nullcontext()
    if spec.engine != "local" and todo:
        from privagg.engines import make_engine, using

        # One engine (a Spark session) shared by every cell, run in this process: forked workers
        # cannot share a session.
        engine_scope = using(make_engine(spec.engine, spark_master=spec.spark_master))
        max_workers = 1
    try:
        engine_scope.__enter__()
        if max_workers == 1 or len(todo) <= 1:
            for cell in todo:
                finish(_guarded(cell, out))
        else:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
            with ProcessPoolExecutor(max_workers=max_workers, mp_context=ctx) as pool:
                pending = {pool.submit(_guarded, cell, out) for cell in todo}
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        finish(future.result())
    finally:
        engine_scope.__exit__(None, None, None)
        if bar is not None:
            bar.close()

    previous = store.read_provenance().get("cells", {})
    cell_times = {}
    for c in cells:
        if c.hash in timings:
            cell_times[c.hash] = {**timings[c.hash], "reused": False}
        elif c.hash in previous:
            cell_times[c.hash] = {**previous[c.hash], "reused": True}
        elif store.has_cell(c.hash):
            cell_times[c.hash] = {"reused": True}
    provenance = {
        "privagg_version": __version__,
        "git_commit": git_commit(),
        "spec_hash": spec.hash,
        "spec_name": spec.name,
        "spec_path": spec.path,
        "spec": spec.to_dict(),
        "seeds": list(spec.seeds),
        "world_id": spec.world.id,
        "started": started,
        "finished": _now(),
        "wall_seconds": round(time.perf_counter() - t_start, 3),
        "max_workers": max_workers,
        "n_cells": len(cells),
        "n_cells_run": len(timings),
        "n_cells_reused": reused,
        "n_cells_failed": len(failed),
        "failed": failed,
        "environment": environment(),
        "cells": cell_times,
    }
    _write_sample_index(store, spec, cells)
    results = store.write_results([c.hash for c in cells], provenance)
    store.write_provenance(provenance)
    summary = RunSummary(store.dir, len(cells), len(timings), reused, failed, results, provenance)
    if failed:
        first = next(iter(failed.values())).strip().splitlines()[0]
        raise PrivaggError(
            f"{len(failed)} of {len(cells)} cells failed (first: {first}). The {len(cells) - len(failed)} finished "
            f"cells are saved in {store.dir}; see provenance.json 'failed'. Fix the cause and rerun to retry only those."
        )
    return summary


__all__ = ["Cell", "RunSummary", "build_world", "expand", "project_to_truth", "run_cell", "run_experiment"]
