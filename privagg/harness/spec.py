"""Experiment specs: a TOML file describing a sweep, parsed and validated.

A spec says which world to build, which statistics to release, which
anonymisers to sweep over which parameter grids, which attacks to run, which
utility metrics to compute and how often. Example (``experiments/frontier.toml``)::

    name = "frontier"
    description = "Utility-risk frontier of footfall releases"
    repetitions = 3          # or seeds = [11, 12, 13]
    seed = 20261123          # base seed of the repetitions
    metrics = ["mean_relative_error", "mae", "hotspot_spearman"]
    primary_metric = "mean_relative_error"   # x axis of the frontier

    [metric_options.mean_relative_error]
    floor = 10

    [world]                  # a synthetic world ...
    n_users = 3000
    n_cells = 100
    days = 7
    seed = 1
    # data = "path/to/tables"   ... or the user's own tables (relative to this file)
    [world.options]          # passed on to privagg.synth.generate_world
    scenario = "default"

    [[statistics]]
    statistic = "footfall"   # footfall | visits | dwell | od | segments
    level = "cell"           # cell | zone | district
    time_bin = "1h"
    by = []                  # crossbreak columns (segments)

    [[anonymisers]]
    family = "suppression"
    k = [5, 10, 20]          # a list is a grid axis; a scalar is fixed

    [[anonymisers]]
    family = "dp"
    epsilon = [0.1, 1, 10]
    max_partitions = 24

    [[attacks]]
    name = "membership_inference"
    applies_to = ["raw", "suppression", "dp"]   # optional: families it runs against
    [attacks.params]
    group_size = 100

Every list-valued anonymiser parameter is a grid axis and the grid is their
cross product; to pass a list as one fixed value, wrap it in another list.

Invalid specs raise :class:`~privagg.errors.PrivaggInputError` naming the file,
the line (where it can be found) and key, and the fix. Unknown keys are
rejected, with a suggestion when they look like a typo.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from privagg.anonymisers.factory import FAMILY_PARAMETERS as FACTORY_PARAMETERS
from privagg.attacks.runner import ATTACK_ALIASES, ATTACK_SETTINGS, attack_settings
from privagg.errors import PrivaggInputError
from privagg.harness.hashing import canonical_json, short_hash  # noqa: F401 - re-exported
from privagg.toml_errors import TomlErrors, read_toml_document, suggest

#: Statistics a spec may release: the library's names (privagg.queries.STATISTICS) and short aliases.
STATISTICS = (
    "footfall", "visits", "dwell_times", "dwell_mean", "od_flows", "segment_counts", "segment_mean",
    "micro_segments", "dwell", "od", "segments",
)
LEVELS = ("cell", "zone", "district")

#: Parameters each anonymiser family accepts in a spec (besides ``family`` and ``label``): the one
#: vocabulary of :mod:`privagg.anonymisers.factory`, shared with claim files. Extend with
#: :func:`register_family` when adding an anonymiser.
FAMILY_PARAMETERS: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in FACTORY_PARAMETERS.items()}

#: Attack names a spec may use (those of :mod:`privagg.attacks.runner`; ``"membership"`` is read as
#: ``"membership_inference"``). Extend with :func:`register_attack_name`.
ATTACK_NAMES: tuple[str, ...] = tuple(ATTACK_SETTINGS)

TOP_KEYS = (
    "name", "description", "repetitions", "seed", "seeds", "metrics", "primary_metric",
    "metric_options", "store_samples", "world", "statistics", "anonymisers", "attacks", "engine", "spark_master",
)
WORLD_KEYS = ("n_users", "n_cells", "days", "seed", "data", "options")
STATISTIC_KEYS = ("statistic", "level", "time_bin", "by", "label", "column", "source", "dwell_edges", "options")
ATTACK_KEYS = ("name", "params", "applies_to", "label")


def register_family(family: str, parameters: Iterable[str]) -> None:
    """Allow anonymiser ``family`` with the given parameter names in specs."""
    FAMILY_PARAMETERS[family] = tuple(parameters)


def register_attack_name(name: str) -> None:
    """Allow attack ``name`` in specs."""
    global ATTACK_NAMES
    if name not in ATTACK_NAMES:
        ATTACK_NAMES = (*ATTACK_NAMES, name)


@dataclass(frozen=True)
class WorldSpec:
    """The world of an experiment: generator parameters, or a data directory."""

    n_users: int | None = None
    n_cells: int | None = None
    days: int | None = None
    seed: int | None = None
    data: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def id(self) -> str:
        return short_hash(self.to_dict(), 12)


@dataclass(frozen=True)
class StatisticSpec:
    """One statistic to release: what, at which area level and time bin, crossbroken by what."""

    statistic: str
    level: str = "cell"
    time_bin: str | None = None
    by: tuple[str, ...] = ()
    label: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["by"] = list(self.by)
        return out

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        by = f" by {'+'.join(self.by)}" if self.by else ""
        time = f" x {self.time_bin}" if self.time_bin not in (None, "none") else ""
        return f"{self.statistic} {self.level}{time}{by}"


@dataclass(frozen=True)
class AnonymiserSpec:
    """An anonymiser family with fixed parameters and grid axes."""

    family: str
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    label: str | None = None

    def expand(self) -> list[dict[str, Any]]:
        """Every parameter combination of the grid (fixed values included), in spec order."""
        axes = list(self.grid)
        combos = itertools.product(*(self.grid[a] for a in axes)) if axes else [()]
        return [{**self.fixed, **dict(zip(axes, combo))} for combo in combos]


@dataclass(frozen=True)
class AttackSpec:
    """An attack with its parameters and, optionally, the families it runs against."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    applies_to: tuple[str, ...] | None = None
    label: str | None = None

    def applies(self, family: str) -> bool:
        return self.applies_to is None or family in self.applies_to

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["applies_to"] = list(self.applies_to) if self.applies_to is not None else None
        return out


@dataclass(frozen=True)
class ExperimentSpec:
    """A validated experiment spec (see the module docstring for the TOML format)."""

    name: str
    world: WorldSpec
    statistics: tuple[StatisticSpec, ...]
    anonymisers: tuple[AnonymiserSpec, ...]
    attacks: tuple[AttackSpec, ...] = ()
    metrics: tuple[str, ...] = ("mae", "rmse", "mean_relative_error", "share_within_10pct")
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    primary_metric: str = "mean_relative_error"
    description: str = ""
    store_samples: bool = True
    path: str | None = None
    text: str | None = None
    engine: str = "local"  # where releases run: "local" or "spark" (results do not depend on it)
    spark_master: str | None = None

    @property
    def repetitions(self) -> int:
        return len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        """The normalised spec (no file path or raw text), JSON-serialisable."""
        return {
            "name": self.name,
            "description": self.description,
            "world": self.world.to_dict(),
            "statistics": [s.to_dict() for s in self.statistics],
            "anonymisers": [
                {"family": a.family, "fixed": a.fixed, "grid": a.grid, "label": a.label} for a in self.anonymisers
            ],
            "attacks": [a.to_dict() for a in self.attacks],
            "metrics": list(self.metrics),
            "metric_options": self.metric_options,
            "seeds": list(self.seeds),
            "primary_metric": self.primary_metric,
            "store_samples": self.store_samples,
            # The engine only changes where a release runs; a local spec keeps its old hash.
            **({"engine": self.engine} if self.engine != "local" else {}),
        }

    @property
    def hash(self) -> str:
        """Hash of the normalised spec: comments and layout do not change it."""
        return short_hash(self.to_dict(), 16)


# --------------------------------------------------------------------------- parsing


def _fix(key: str, allowed: Iterable[str], rest: str) -> str:
    """``rest``, preceded by "did you mean 'x'?" when ``key`` looks like a typo of an allowed name."""
    hint = suggest(key, allowed)
    return f"{hint}{rest[:1].upper()}{rest[1:]}" if hint else rest


def _check_keys(ctx: TomlErrors, table: dict[str, Any], allowed: Iterable[str], where: str,
                header: str | None, index: int | None = None) -> None:
    allowed = tuple(allowed)
    for key in table:
        if key not in allowed:
            raise ctx.error(
                where, f"unknown key '{key}'",
                _fix(key, allowed, f"allowed keys are {', '.join(allowed) or '(none)'}."),
                header=header, key=key, index=index,
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(ctx: TomlErrors, value: Any, where: str, key: str, header: str | None,
                  index: int | None = None, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ctx.error(where, f"'{key}' = {value!r} is not an integer >= {minimum}",
                        f"set {key} to a whole number of at least {minimum}.", header=header, key=key, index=index)
    return value


def _time_bin_ok(value: Any) -> bool:
    """A duration from 15 minutes to 1 day that divides a day (as privagg.queries requires), or "none"."""
    if not isinstance(value, str):
        return False
    if value.lower() == "none":
        return True
    try:
        import pandas as pd

        delta = pd.Timedelta(value)
    except (ValueError, TypeError):
        return False
    day = pd.Timedelta(days=1)
    return pd.Timedelta(minutes=15) <= delta <= day and day.value % delta.value == 0


TIME_BIN_FIX = "use a duration from 15 minutes to 1 day that divides a day, like \"15min\", \"1h\" or \"1D\" (or \"none\")."


def _validate_param(ctx: TomlErrors, family: str, key: str, value: Any, where: str, index: int) -> None:
    h = "anonymisers"
    if key in ("epsilon", "rho", "delta"):
        ok = _is_number(value) and math.isfinite(value) and value > 0 and (key != "delta" or value < 1)
        if not ok:
            rng = "between 0 and 1 (exclusive)" if key == "delta" else "a positive finite number"
            raise ctx.error(where, f"{key} = {value!r} must be {rng}",
                            f"e.g. {key} = {'1e-9' if key == 'delta' else '[0.1, 1, 10]'}.",
                            header=h, key=key, index=index)
    elif key in ("k", "max_partitions", "max_per_partition", "rounding"):
        _positive_int(ctx, value, where, key, h, index)
    elif key == "level":
        if value not in LEVELS and value != "none":
            raise ctx.error(where, f"level = {value!r} is not an area level",
                            f"use one of {', '.join(map(repr, LEVELS))}.", header=h, key=key, index=index)
    elif key == "unit":
        if value not in ("subscriber", "subscriber-day", "subscriber-week"):
            raise ctx.error(where, f"unit = {value!r} is not a privacy unit",
                            "use \"subscriber\" (the whole window), \"subscriber-day\" or \"subscriber-week\".",
                            header=h, key=key, index=index)
    elif key == "time_bin":
        if not _time_bin_ok(value):
            raise ctx.error(where, f"time_bin = {value!r} is not a supported time bin",
                            TIME_BIN_FIX, header=h, key=key, index=index)


def _parse_anonymiser(ctx: TomlErrors, table: Any, i: int) -> AnonymiserSpec:
    where = f"[[anonymisers]] #{i + 1}"
    if not isinstance(table, dict):
        raise ctx.error(where, "is not a table", "write each anonymiser as a [[anonymisers]] table.",
                        header="anonymisers", key=None, index=i)
    family = table.get("family")
    if family is None:
        raise ctx.error(where, "has no 'family'",
                        f"add family = one of {', '.join(map(repr, FAMILY_PARAMETERS))}.",
                        header="anonymisers", key=None, index=i)
    if family not in FAMILY_PARAMETERS:
        raise ctx.error(where, f"family = {family!r} is not a known anonymiser family",
                        _fix(str(family), FAMILY_PARAMETERS, f"use one of {', '.join(map(repr, FAMILY_PARAMETERS))}."),
                        header="anonymisers", key="family", index=i)
    allowed = ("family", "label", *FAMILY_PARAMETERS[family])
    for key in table:
        if key not in allowed:
            raise ctx.error(
                f"{where} (family {family!r})", f"unknown key '{key}'",
                _fix(key, allowed, f"family {family!r} accepts {', '.join(FAMILY_PARAMETERS[family]) or 'no parameters'}."),
                header="anonymisers", key=key, index=i,
            )
    if family == "dp" and "epsilon" not in table and "rho" not in table:
        raise ctx.error(f"{where} (family 'dp')", "sets neither 'epsilon' nor 'rho'",
                        "add e.g. epsilon = [0.1, 1, 10] (pure DP) or rho = [0.5] (zCDP).",
                        header="anonymisers", key=None, index=i)
    if family == "dp" and "epsilon" in table and "rho" in table:
        raise ctx.error(f"{where} (family 'dp')", "sets both 'epsilon' and 'rho'",
                        "keep one: epsilon for pure DP, rho for zCDP; use two [[anonymisers]] tables to compare them.",
                        header="anonymisers", key="rho", index=i)
    fixed: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    for key, value in table.items():
        if key in ("family", "label"):
            continue
        if isinstance(value, list):
            if not value:
                raise ctx.error(where, f"'{key}' is an empty list", f"give at least one value, e.g. {key} = [1].",
                                header="anonymisers", key=key, index=i)
            for v in value:
                _validate_param(ctx, family, key, v, where, i)
            grid[key] = list(value)
        else:
            _validate_param(ctx, family, key, value, where, i)
            fixed[key] = value
    label = table.get("label")
    if label is not None and not isinstance(label, str):
        raise ctx.error(where, "'label' is not a string", "write label = \"...\".",
                        header="anonymisers", key="label", index=i)
    return AnonymiserSpec(family=family, fixed=fixed, grid=grid, label=label)


def _entry(ctx: TomlErrors, table: Any, i: int, header: str, what: str, keys: Iterable[str]) -> str:
    """Check that entry ``i`` of ``[[header]]`` is a table with known keys; returns how errors name it."""
    where = f"[[{header}]] #{i + 1}"
    if not isinstance(table, dict):
        raise ctx.error(where, "is not a table", f"write each {what} as its own [[{header}]] table.", header=header,
                        index=i, key=None)
    _check_keys(ctx, table, keys, where, header, i)
    return where


def _required_choice(ctx: TomlErrors, table: dict[str, Any], key: str, allowed: Iterable[str], noun: str,
                     where: str, header: str, index: int) -> Any:
    """``table[key]``, which must be present and one of ``allowed`` (errors name both and suggest a fix)."""
    allowed = tuple(allowed)
    value = table.get(key)
    if value is None:
        raise ctx.error(where, f"has no '{key}'", f"add {key} = one of {', '.join(map(repr, allowed))}.",
                        header=header, index=index, key=None)
    if value not in allowed:
        raise ctx.error(where, f"{key} = {value!r} is not {noun}",
                        _fix(str(value), allowed, f"use one of {', '.join(map(repr, allowed))}."),
                        header=header, index=index, key=key)
    return value


def _parse_statistic(ctx: TomlErrors, table: Any, i: int) -> StatisticSpec:
    h = "statistics"
    where = _entry(ctx, table, i, h, "statistic", STATISTIC_KEYS)
    stat = _required_choice(ctx, table, "statistic", STATISTICS, "known", where, h, i)
    level = table.get("level", "cell")
    if level not in LEVELS and level != "none":
        raise ctx.error(where, f"level = {level!r} is not an area level",
                        _fix(str(level), LEVELS, f"use one of {', '.join(map(repr, LEVELS))}."),
                        header=h, index=i, key="level")
    time_bin = table.get("time_bin")
    if time_bin is not None and not _time_bin_ok(time_bin):
        raise ctx.error(where, f"time_bin = {time_bin!r} is not a supported time bin",
                        TIME_BIN_FIX, header=h, index=i, key="time_bin")
    by = table.get("by", [])
    if isinstance(by, str):
        by = [by]
    if not isinstance(by, list) or not all(isinstance(b, str) for b in by):
        raise ctx.error(where, f"by = {by!r} is not a list of column names",
                        "write e.g. by = [\"age_band\", \"gender\"].", header=h, index=i, key="by")
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise ctx.error(where, "'options' is not a table", "write [statistics.options] with key = value lines.",
                        header=h, index=i, key="options")
    options = dict(options)
    for key in ("column", "source", "dwell_edges"):
        if key in table:
            options[key] = table[key]
    return StatisticSpec(statistic=stat, level=level, time_bin=time_bin, by=tuple(by),
                         label=table.get("label"), options=options)


def _parse_attack(ctx: TomlErrors, table: Any, i: int) -> AttackSpec:
    h = "attacks"
    where = _entry(ctx, table, i, h, "attack", ATTACK_KEYS)
    if isinstance(table.get("name"), str):
        table = {**table, "name": ATTACK_ALIASES.get(table["name"], table["name"])}
    name = _required_choice(ctx, table, "name", ATTACK_NAMES, "a known attack", where, h, i)
    params = table.get("params", {})
    if not isinstance(params, dict):
        raise ctx.error(where, "'params' is not a table", "write [attacks.params] with key = value lines.",
                        header=h, index=i, key="params")
    if name in ATTACK_SETTINGS:  # checked now, before any cell runs (registered attacks check their own)
        try:
            attack_settings(name, params)
        except PrivaggInputError as exc:
            problem, _, fix = str(exc).partition(" Fix: ")
            raise ctx.error(where, problem.rstrip("."), fix or "see privagg.attacks.ATTACK_SETTINGS.",
                            header="attacks.params", index=i, key=None) from None
    applies_to = table.get("applies_to")
    if applies_to is not None:
        if isinstance(applies_to, str):
            applies_to = [applies_to]
        if not isinstance(applies_to, list) or not all(f in FAMILY_PARAMETERS for f in applies_to):
            bad = [f for f in (applies_to if isinstance(applies_to, list) else [applies_to]) if f not in FAMILY_PARAMETERS]
            raise ctx.error(where, f"applies_to names unknown famil{'ies' if len(bad) > 1 else 'y'} {bad}",
                            f"use anonymiser families among {', '.join(map(repr, FAMILY_PARAMETERS))}.",
                            header=h, index=i, key="applies_to")
        applies_to = tuple(applies_to)
    return AttackSpec(name=name, params=dict(params), applies_to=applies_to, label=table.get("label"))


def _parse_world(ctx: TomlErrors, table: Any, base_dir: Path) -> WorldSpec:
    where = "[world]"
    if not isinstance(table, dict):
        raise ctx.error(where, "is not a table", "write a [world] table.", header="world", key=None)
    _check_keys(ctx, table, WORLD_KEYS, where, "world")
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise ctx.error(where, "'options' is not a table", "write [world.options] with key = value lines.",
                        header="world", key="options")
    if "data" in table:
        clash = [k for k in ("n_users", "n_cells", "days") if k in table]
        if clash:
            raise ctx.error(where, f"sets both 'data' and {clash}",
                            "keep data = \"DIR\" to use your own tables, or the generator parameters, not both.",
                            header="world", key=clash[0])
        data = table["data"]
        if not isinstance(data, str):
            raise ctx.error(where, f"data = {data!r} is not a path", "write data = \"path/to/tables\".",
                            header="world", key="data")
        resolved = (base_dir / data).resolve() if not Path(data).is_absolute() else Path(data)
        if not resolved.is_dir():
            raise ctx.error(where, f"data directory {str(resolved)!r} does not exist",
                            "give a directory of cells, users, events, stays and trips tables "
                            "(relative paths are relative to the spec file).", header="world", key="data")
        return WorldSpec(data=str(resolved), seed=table.get("seed"), options=dict(options))
    for key in ("n_users", "n_cells", "days"):
        if key not in table:
            raise ctx.error(where, f"has no '{key}'",
                            "give n_users, n_cells and days (a synthetic world) or data = \"DIR\" (your tables).",
                            header="world", key=None)
        _positive_int(ctx, table[key], where, key, "world")
    seed = table.get("seed", 0)
    _positive_int(ctx, seed, where, "seed", "world", minimum=0)
    return WorldSpec(n_users=table["n_users"], n_cells=table["n_cells"], days=table["days"],
                     seed=seed, options=dict(options))


def parse_spec(text: str, path: str | Path = "<spec>") -> ExperimentSpec:
    """Parse and validate a spec given as TOML text.

    Parameters
    ----------
    text
        The TOML text.
    path
        The file it came from, for error messages and to resolve ``data`` paths.

    Raises
    ------
    PrivaggInputError
        Naming the file, the line and key where possible, and the fix.
    """
    from privagg.metrics import METRICS

    raw, ctx, path_str, base_dir = read_toml_document(text, path, "<spec>")

    _check_keys(ctx, raw, TOP_KEYS, "top level", None)
    for required in ("world", "statistics", "anonymisers"):
        if required not in raw:
            hint = {
                "world": "add a [world] table with n_users, n_cells, days and seed (or data = \"DIR\").",
                "statistics": "add at least one [[statistics]] table, e.g. statistic = \"footfall\".",
                "anonymisers": "add at least one [[anonymisers]] table, e.g. family = \"raw\".",
            }[required]
            raise PrivaggInputError(f"{path_str}: missing '{required}'. Fix: {hint}")

    name = raw.get("name", Path(path_str).stem)
    world = _parse_world(ctx, raw["world"], base_dir)

    def array(key: str) -> list[Any]:
        value = raw[key]
        if not isinstance(value, list) or not value:
            raise ctx.error(key, f"'{key}' must be one or more [[{key}]] tables", f"write [[{key}]] sections.",
                            header=None, key=key)
        return value

    statistics = tuple(_parse_statistic(ctx, t, i) for i, t in enumerate(array("statistics")))
    anonymisers = tuple(_parse_anonymiser(ctx, t, i) for i, t in enumerate(array("anonymisers")))
    attacks = tuple(_parse_attack(ctx, t, i) for i, t in enumerate(array("attacks"))) if "attacks" in raw else ()

    metrics = raw.get("metrics", list(ExperimentSpec.metrics))
    if not isinstance(metrics, list) or not metrics:
        raise ctx.error("top level", f"metrics = {metrics!r} is not a list of metric names",
                        f"write e.g. metrics = [\"mae\", \"mean_relative_error\"]; known: {', '.join(METRICS)}.",
                        key="metrics")
    for metric in metrics:
        if metric not in METRICS:
            raise ctx.error("top level", f"metric {metric!r} is not known",
                            _fix(str(metric), METRICS, f"use some of {', '.join(METRICS)}."), key="metrics")
    primary = raw.get("primary_metric", "mean_relative_error" if "mean_relative_error" in metrics else metrics[0])
    if primary not in metrics:
        raise ctx.error("top level", f"primary_metric = {primary!r} is not among metrics",
                        f"pick one of {metrics} or add it to metrics.", key="primary_metric")
    metric_options = raw.get("metric_options", {})
    if not isinstance(metric_options, dict):
        raise ctx.error("top level", "'metric_options' is not a table",
                        "write [metric_options.<metric>] tables.", key="metric_options")
    for metric, opts in metric_options.items():
        if metric not in metrics or not isinstance(opts, dict):
            raise ctx.error(f"[metric_options.{metric}]", f"{metric!r} is not one of the spec's metrics",
                            _fix(metric, metrics, "give options only for metrics listed in 'metrics'."),
                            header=f"metric_options.{metric}", key=None)

    if "seeds" in raw:
        seeds = raw["seeds"]
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise ctx.error("top level", f"seeds = {seeds!r} is not a list of integers",
                            "write e.g. seeds = [1, 2, 3], or repetitions = 3 with seed = 1.", key="seeds")
        if "repetitions" in raw and raw["repetitions"] != len(seeds):
            raise ctx.error("top level", f"repetitions = {raw['repetitions']!r} but {len(seeds)} seeds are listed",
                            "drop repetitions (the seeds define them) or make them agree.", key="repetitions")
        if len(set(seeds)) != len(seeds):
            raise ctx.error("top level", "seeds has duplicates", "list each seed once.", key="seeds")
        seeds = tuple(seeds)
    else:
        reps = _positive_int(ctx, raw.get("repetitions", 1), "top level", "repetitions", None)
        base = _positive_int(ctx, raw.get("seed", 0), "top level", "seed", None, minimum=0)
        seeds = tuple(base + r for r in range(reps))
    store_samples = raw.get("store_samples", True)
    if not isinstance(store_samples, bool):
        raise ctx.error("top level", f"store_samples = {store_samples!r} is not true or false",
                        "write store_samples = true.", key="store_samples")

    from privagg.engines import ENGINES

    engine = raw.get("engine", "local")
    if engine not in ENGINES:
        raise ctx.error("top level", f"engine = {engine!r} is not known",
                        _fix(str(engine), ENGINES, "write engine = \"local\" or engine = \"spark\"."), key="engine")
    spark_master = raw.get("spark_master")
    if spark_master is not None and (not isinstance(spark_master, str) or engine != "spark"):
        raise ctx.error("top level", f"spark_master = {spark_master!r} needs engine = \"spark\" and a master URL",
                        "write engine = \"spark\" and e.g. spark_master = \"local[2]\".", key="spark_master")

    return ExperimentSpec(
        engine=engine, spark_master=spark_master,
        name=str(name), description=str(raw.get("description", "")), world=world,
        statistics=statistics, anonymisers=anonymisers, attacks=attacks, metrics=tuple(metrics),
        metric_options={k: dict(v) for k, v in metric_options.items()}, seeds=seeds,
        primary_metric=primary, store_samples=store_samples, path=path_str, text=text,
    )


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate the spec in TOML file ``path`` (see :func:`parse_spec`)."""
    p = Path(path)
    if not p.is_file():
        raise PrivaggInputError(f"spec file {str(p)!r} does not exist. Fix: check the path, e.g. experiments/frontier.toml.")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PrivaggInputError(f"{p}: is not UTF-8 text. Fix: save the spec as UTF-8 TOML.") from None
    return parse_spec(text, p)


__all__ = [
    "ATTACK_NAMES", "AnonymiserSpec", "AttackSpec", "ExperimentSpec", "FAMILY_PARAMETERS", "LEVELS",
    "STATISTICS", "StatisticSpec", "WorldSpec", "load_spec", "parse_spec", "register_attack_name",
    "register_family", "short_hash",
]
