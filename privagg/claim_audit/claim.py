"""Anonymisation claims: a small TOML file describing a release a regulator wants tested.

A claim says what is published (statistic, area level, time bin,
crossbreaks), how it is protected (method and parameters: suppression with
``k = 10``, DP at ``epsilon = 1`` per subscriber-day, ...), on which data (a
synthetic world's parameters or a directory of the user's own tables), and
optionally how hard the attacks should try. :func:`load_claim` parses and
validates it into an immutable :class:`Claim`; ``privagg audit CLAIM.toml``
(:func:`privagg.claim_audit.audit_claim`) then makes the release, attacks
it and writes the report. The format is documented key by key in
``docs/claims.md``. A minimal claim::

    name = "operator_footfall_k10"
    description = "Hourly footfall per cell; counts below 10 suppressed."

    [data]
    n_users = 2000
    n_cells = 100
    days = 7

    [release]
    statistic = "footfall"
    level = "cell"
    time_bin = "1h"
    crossbreaks = [["age_band", "gender"]]

    [method]
    family = "suppression"
    k = 10

Anonymisers and attacks are named as in experiment specs: ``family`` and
its parameters (:mod:`privagg.anonymisers.factory`), attack names and
settings (:mod:`privagg.attacks.runner`). The older spellings ``[method]
name =``, ``privacy_unit =`` and ``[attacks.membership]`` are still read.

Invalid claims raise :class:`~privagg.errors.PrivaggInputError` naming the
file, the line (when it can be found) and the key, and the fix. Unknown
keys are rejected, with a suggestion when they look like a typo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privagg.anonymisers.factory import FAMILY_PARAMETERS, make_anonymiser
from privagg.attacks.runner import ATTACK_ALIASES, ATTACK_SETTINGS
from privagg.dp.units import PrivacyUnit
from privagg.errors import PrivaggInputError
from privagg.toml_errors import TomlErrors, read_toml_document, suggest

#: Statistics a claim may release (the count statistics every attack understands).
STATISTICS = ("footfall", "visits", "od_flows", "segment_counts")
LEVELS = ("cell", "zone", "district")
TIME_BINS_HINT = "a duration from 15 minutes to 1 day that divides a day, e.g. \"1h\", \"3h\", \"1D\""
METHODS = tuple(FAMILY_PARAMETERS)
PRIVACY_UNITS = ("subscriber-day", "subscriber-week", "subscriber")
ATTACKS = tuple(ATTACK_SETTINGS)

TOP_KEYS = ("name", "title", "description", "seed", "world", "data", "release", "method", "attacks", "comparison")
DATA_KEYS = ("n_users", "n_cells", "days", "seed", "path", "options")
#: ``[world]``, as in experiment specs: the user's tables are ``data = "DIR"``.
WORLD_KEYS = ("n_users", "n_cells", "days", "seed", "data", "options")
RELEASE_KEYS = ("statistic", "level", "time_bin", "by", "crossbreaks", "crossbreak_level",
                "crossbreak_time_bin", "source")
#: Parameters a claim may give each method (besides ``family``): a subset of the factory's.
METHOD_KEYS: dict[str, tuple[str, ...]] = {
    "raw": (),
    "suppression": ("k", "rounding"),
    "coarsening": ("level", "time_bin", "k"),
    "pseudonymised": ("source",),
    "dp": ("epsilon", "rho", "delta", "unit", "max_partitions", "max_per_partition"),
    "naive_laplace": ("epsilon", "max_partitions", "max_per_partition"),
}
#: Attack settings: name -> {key: (default, minimum)}, shared with experiment specs.
ATTACK_DEFAULTS = ATTACK_SETTINGS
COMPARISON_KEYS = ("epsilons", "metric_floor", "enabled")
#: The epsilon grid searched for the DP release of the same utility (per subscriber-day).
DEFAULT_EPSILONS = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
DEFAULT_FLOOR = 10.0


@dataclass(frozen=True)
class DataSpec:
    """Where the data comes from: a synthetic world (``n_users``...) or the user's tables (``path``)."""

    n_users: int | None = None
    n_cells: int | None = None
    days: int | None = None
    seed: int = 0
    path: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        if self.path is not None:
            return {"path": self.path}
        out = {"n_users": self.n_users, "n_cells": self.n_cells, "days": self.days, "seed": self.seed}
        if self.options:
            out["options"] = dict(self.options)
        return out


@dataclass(frozen=True)
class ReleaseSpec:
    """What is published: the main table and any further crossbreak tables."""

    statistic: str = "footfall"
    level: str = "cell"
    time_bin: str | None = "1h"
    by: tuple[str, ...] = ()
    crossbreaks: tuple[tuple[str, ...], ...] = ()
    crossbreak_level: str | None = None
    crossbreak_time_bin: str | None = None
    source: str = "stays"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"statistic": self.statistic, "level": self.level, "time_bin": self.time_bin}
        if self.by:
            out["by"] = " x ".join(self.by)
        if self.crossbreaks:
            out["crossbreaks"] = [" x ".join(c) for c in self.crossbreaks]
            out["crossbreak_level"] = self.crossbreak_level or self.level
            out["crossbreak_time_bin"] = self.crossbreak_time_bin or self.time_bin
        if self.source != "stays":
            out["source"] = self.source
        return out


@dataclass(frozen=True)
class MethodSpec:
    """How the release is protected: the anonymiser ``family`` (``name``) and its parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.name

    @property
    def is_dp(self) -> bool:
        return self.name == "dp"

    def anonymiser(self, seed: int | None = None) -> Any:
        """The :class:`~privagg.anonymisers.base.Anonymiser` this method describes (the one factory)."""
        return make_anonymiser(self.name, self.params, seed=seed)

    def describe(self) -> str:
        p = self.params
        if self.name == "suppression":
            return f"counts below {p['k']} suppressed" + (f", others rounded to {p['rounding']}" if p.get("rounding") else "")
        if self.name == "dp":
            loss = f"epsilon = {p['epsilon']:g}" if p.get("epsilon") is not None else f"rho = {p['rho']:g}"
            return f"differential privacy, {loss} {PrivacyUnit.parse(p.get('unit')).per}"
        if self.name == "coarsening":
            parts = [f"{k} {p[k]}" for k in ("level", "time_bin") if p.get(k)]
            return "coarsened to " + ", ".join(parts) + (f", counts below {p['k']} suppressed" if p.get("k") else "")
        if self.name == "pseudonymised":
            return f"pseudonymised {p.get('source', 'events')} microdata"
        if self.name == "naive_laplace":
            return f"textbook floating-point Laplace noise at epsilon = {p['epsilon']:g} (insecure)"
        return "exact aggregates, no protection"

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.name, **self.params}


@dataclass(frozen=True)
class Claim:
    """A validated anonymisation claim (see the module docstring and ``docs/claims.md``).

    Attributes
    ----------
    name, title, description
        How the report names and describes the release.
    seed
        Seed of every attack's randomness (the same claim and seed give the same risks,
        up to DP noise, which OpenDP draws unseeded).
    data, release, method
        The data, the published tables and the protection method.
    attacks
        ``{attack: {setting: value}}`` for the attacks to run (all that apply by default).
    epsilons
        Grid searched for the DP release of the same utility (per subscriber-day);
        empty when the comparison is disabled.
    metric_floor
        Floor of the mean relative error (utility).
    path
        The file the claim came from.
    """

    name: str
    data: DataSpec
    release: ReleaseSpec
    method: MethodSpec
    title: str | None = None
    description: str = ""
    seed: int = 0
    attacks: dict[str, dict[str, int]] = field(default_factory=dict)
    epsilons: tuple[float, ...] = DEFAULT_EPSILONS
    metric_floor: float = DEFAULT_FLOOR
    path: str = "<claim>"

    def to_dict(self) -> dict[str, Any]:
        """The claim as shown in the report ("What was released")."""
        out: dict[str, Any] = {"name": self.name}
        if self.title:
            out["title"] = self.title
        if self.description:
            out["description"] = self.description
        out.update(self.release.to_dict())
        out["method"] = self.method.describe()
        out["parameters"] = dict(self.method.params)
        out["data"] = self.data.to_dict()
        out["claim_file"] = self.path
        return out


# --------------------------------------------------------------------------- parsing


def _check_keys(ctx: TomlErrors, table: dict[str, Any], allowed: tuple[str, ...], where: str, header: str | None) -> None:
    for key in table:
        if key not in allowed:
            hint = suggest(key, allowed)
            raise ctx.error(where, f"unknown key '{key}'",
                            f"{hint}allowed keys are {', '.join(allowed) or '(none)'}.", header=header, key=key)


def _table(ctx: TomlErrors, raw: dict[str, Any], key: str, required: bool, example: str) -> dict[str, Any]:
    if key not in raw:
        if required:
            raise PrivaggInputError(f"{ctx.path}: missing [{key}] table. Fix: add it, e.g. {example}")
        return {}
    value = raw[key]
    if not isinstance(value, dict):
        raise ctx.error("top level", f"'{key}' is not a table", f"write a [{key}] section, e.g. {example}", key=key)
    return value


def _int(ctx: TomlErrors, table: dict[str, Any], key: str, where: str, header: str | None, minimum: int,
         default: int | None = None) -> int | None:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ctx.error(where, f"{key} = {value!r} is not a whole number >= {minimum}",
                        f"write e.g. {key} = {max(minimum, default or minimum)}.", header=header, key=key)
    return value


def _positive(ctx: TomlErrors, table: dict[str, Any], key: str, where: str, header: str, example: str,
              below_one: bool = False) -> float | None:
    if key not in table:
        return None
    value = table[key]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if ok and below_one and value >= 1:
        ok = False
    if not ok:
        what = "a number strictly between 0 and 1" if below_one else "a positive number"
        raise ctx.error(where, f"{key} = {value!r} is not {what}", f"write e.g. {key} = {example}.",
                        header=header, key=key)
    return float(value)


def _choice(ctx: TomlErrors, table: dict[str, Any], key: str, allowed: tuple[str, ...], where: str, header: str,
            default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if value not in allowed:
        hint = suggest(str(value), allowed)
        raise ctx.error(where, f"{key} = {value!r} is not allowed",
                        f"{hint}use one of {', '.join(repr(a) for a in allowed)}.", header=header, key=key)
    return value


def _time_bin(ctx: TomlErrors, table: dict[str, Any], key: str, where: str, header: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    from privagg.queries import parse_time_bin

    try:
        ok = isinstance(value, str) and parse_time_bin(value) is not None
    except PrivaggInputError:
        ok = False
    if not ok:
        raise ctx.error(where, f"{key} = {value!r} is not a supported time bin", f"use {TIME_BINS_HINT}.",
                        header=header, key=key)
    return value


def _columns(ctx: TomlErrors, value: Any, key: str, where: str, header: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
        raise ctx.error(where, f"{key} = {value!r} is not a list of user column names",
                        f"write e.g. {key} = [\"age_band\", \"gender\"].", header=header, key=key)
    if len(set(value)) != len(value):
        raise ctx.error(where, f"{key} lists a column twice", "name each column once.", header=header, key=key)
    return tuple(value)


def _parse_data(ctx: TomlErrors, table: dict[str, Any], base_dir: Path, h: str = "data") -> DataSpec:
    """``[world]`` (the experiment specs' name: ``data = "DIR"`` for the user's tables) or the older ``[data]``
    (``path = "DIR"``)."""
    where = f"[{h}]"
    p = "data" if h == "world" else "path"  # the key naming the user's tables
    _check_keys(ctx, table, WORLD_KEYS if h == "world" else DATA_KEYS, where, h)
    table = {("path" if k == p else k): v for k, v in table.items()}
    options = table.get("options", {})
    if not isinstance(options, dict):
        raise ctx.error(where, "'options' is not a table",
                        f"write [{h}.options] with generate_world options, e.g. events_per_day = 10.", header=h, key="options")
    if "path" in table:
        clash = [k for k in ("n_users", "n_cells", "days") if k in table]
        if clash:
            raise ctx.error(where, f"sets both '{p}' and '{clash[0]}'",
                            f"keep {p} = \"DIR\" to audit your own tables, or the synthetic world's parameters, not both.",
                            header=h, key=clash[0])
        path = table["path"]
        if not isinstance(path, str) or not path:
            raise ctx.error(where, f"{p} = {path!r} is not a directory name",
                            f"write {p} = \"path/to/tables\" (relative to the claim file).", header=h, key=p)
        resolved = Path(path) if Path(path).is_absolute() else (base_dir / path).resolve()
        if not resolved.is_dir():
            raise ctx.error(where, f"data directory {str(resolved)!r} does not exist",
                            "give a directory holding cells, users, events, stays and trips as .parquet or .csv "
                            "(relative paths are relative to the claim file).", header=h, key=p)
        return DataSpec(path=str(resolved), seed=_int(ctx, table, "seed", where, h, 0, 0) or 0)
    missing = [k for k in ("n_users", "n_cells", "days") if k not in table]
    if missing:
        raise ctx.error(where, f"has no '{missing[0]}'",
                        f"give n_users, n_cells and days (a synthetic world) or {p} = \"DIR\" (your own tables).",
                        header=h, key=None)
    return DataSpec(
        n_users=_int(ctx, table, "n_users", where, h, 20), n_cells=_int(ctx, table, "n_cells", where, h, 20),
        days=_int(ctx, table, "days", where, h, 1), seed=_int(ctx, table, "seed", where, h, 0, 0) or 0,
        options=dict(options),
    )


def _parse_release(ctx: TomlErrors, table: dict[str, Any]) -> ReleaseSpec:
    where, h = "[release]", "release"
    _check_keys(ctx, table, RELEASE_KEYS, where, h)
    if "statistic" not in table:
        raise ctx.error(where, "has no 'statistic'", f"write statistic = \"footfall\" (one of {', '.join(STATISTICS)}).",
                        header=h, key=None)
    statistic = _choice(ctx, table, "statistic", STATISTICS, where, h, None)
    level = _choice(ctx, table, "level", LEVELS, where, h, "zone" if statistic == "od_flows" else "cell")
    if "time_bin" in table and table["time_bin"] in ("none", "None", ""):
        time_bin = None
    else:
        time_bin = _time_bin(ctx, table, "time_bin", where, h, "1D" if statistic == "segment_counts" else "1h")
    by = _columns(ctx, table["by"], "by", where, h) if "by" in table else ()
    if by and statistic not in ("footfall", "segment_counts"):
        raise ctx.error(where, f"by = {list(by)} crossbreaks {statistic}, which has no segment version",
                        "drop 'by', or use statistic = \"footfall\" (crossbroken footfall is released as segment counts).",
                        header=h, key="by")
    if statistic == "segment_counts" and not by:
        raise ctx.error(where, "statistic = \"segment_counts\" needs 'by'",
                        "write e.g. by = [\"age_band\", \"gender\"].", header=h, key="statistic")
    crossbreaks: tuple[tuple[str, ...], ...] = ()
    if "crossbreaks" in table:
        value = table["crossbreaks"]
        if not isinstance(value, list) or not value:
            raise ctx.error(where, f"crossbreaks = {value!r} is not a list of column lists",
                            "write e.g. crossbreaks = [[\"age_band\", \"gender\"], [\"contract\"]].", header=h, key="crossbreaks")
        crossbreaks = tuple(_columns(ctx, c, "crossbreaks", where, h) for c in value)
        if any(not c for c in crossbreaks):
            raise ctx.error(where, "crossbreaks holds an empty list", "give at least one column per crossbreak.",
                            header=h, key="crossbreaks")
    elif "crossbreak_level" in table or "crossbreak_time_bin" in table:
        key = "crossbreak_level" if "crossbreak_level" in table else "crossbreak_time_bin"
        raise ctx.error(where, f"sets '{key}' without 'crossbreaks'",
                        "add crossbreaks = [[\"age_band\", \"gender\"]] or drop it.", header=h, key=key)
    crossbreak_level = _choice(ctx, table, "crossbreak_level", LEVELS, where, h, None)
    crossbreak_time_bin = _time_bin(ctx, table, "crossbreak_time_bin", where, h, None)
    source = _choice(ctx, table, "source", ("stays", "events"), where, h, "stays")
    if source == "events" and statistic not in ("footfall", "segment_counts"):
        raise ctx.error(where, f"source = \"events\" does not apply to {statistic}", "drop 'source'.",
                        header=h, key="source")
    return ReleaseSpec(statistic=statistic, level=level, time_bin=time_bin, by=by, crossbreaks=crossbreaks,
                       crossbreak_level=crossbreak_level, crossbreak_time_bin=crossbreak_time_bin, source=source)


def _parse_method(ctx: TomlErrors, table: dict[str, Any], release: ReleaseSpec) -> MethodSpec:
    where, h = "[method]", "method"
    table = dict(table)
    if "name" in table and "family" not in table:  # the older spelling
        table["family"] = table.pop("name")
    if "privacy_unit" in table and "unit" not in table:
        table["unit"] = table.pop("privacy_unit")
    if "family" not in table:
        raise ctx.error(where, "has no 'family'", f"write family = \"suppression\" (one of {', '.join(METHODS)}).",
                        header=h, key=None)
    name = _choice(ctx, table, "family", METHODS, where, h, None)
    rest = {k: v for k, v in table.items() if k != "family"}
    _check_keys(ctx, rest, METHOD_KEYS[name], f"{where} (family = \"{name}\")", h)
    params: dict[str, Any] = {}
    if name == "suppression":
        params["k"] = _int(ctx, table, "k", where, h, 1, 10)
        params["rounding"] = _int(ctx, table, "rounding", where, h, 1)
    elif name == "coarsening":
        if "level" not in table and "time_bin" not in table:
            raise ctx.error(where, "coarsening needs 'level' or 'time_bin'",
                            "write e.g. level = \"zone\" and/or time_bin = \"3h\".", header=h, key=None)
        params["level"] = _choice(ctx, table, "level", LEVELS, where, h, None)
        params["time_bin"] = _time_bin(ctx, table, "time_bin", where, h, None)
        params["k"] = _int(ctx, table, "k", where, h, 1)
        order = {lv: i for i, lv in enumerate(LEVELS)}
        if params["level"] and order[params["level"]] < order[release.level]:
            raise ctx.error(where, f"level = {params['level']!r} is finer than the release's level {release.level!r}",
                            "coarsen to a larger area (zone or district).", header=h, key="level")
        if params["time_bin"] is not None:
            from privagg.queries import parse_time_bin

            if release.time_bin is None:
                raise ctx.error(where, "time_bin is set but the release has no time bins",
                                "drop time_bin here, or give the release a time_bin.", header=h, key="time_bin")
            fine, coarse = parse_time_bin(release.time_bin), parse_time_bin(params["time_bin"])
            if coarse < fine or coarse.value % fine.value:
                raise ctx.error(where, f"time_bin = {params['time_bin']!r} is not a multiple of the release's "
                                f"{release.time_bin!r}", "use a longer bin that the release's bin divides, e.g. \"3h\".",
                                header=h, key="time_bin")
    elif name == "pseudonymised":
        params["source"] = _choice(ctx, table, "source", ("events", "stays"), where, h, "events")
    elif name in ("dp", "naive_laplace"):
        eps = _positive(ctx, table, "epsilon", where, h, "1.0")
        rho = _positive(ctx, table, "rho", where, h, "0.5") if name == "dp" else None
        if (eps is None) == (rho is None):
            raise ctx.error(where, "needs exactly one of 'epsilon' or 'rho'" if name == "dp" else "needs 'epsilon'",
                            "write e.g. epsilon = 1.0.", header=h, key="rho" if rho is not None else None)
        params["epsilon"] = eps
        if name == "dp":
            params["rho"] = rho
            params["delta"] = _positive(ctx, table, "delta", where, h, "1e-9", below_one=True)
            unit = _choice(ctx, table, "unit", PRIVACY_UNITS, where, h, "subscriber-day")
            if unit != "subscriber" and release.time_bin is None:
                raise ctx.error(where, f"unit = \"{unit}\" needs a release with time bins",
                                "give [release] a time_bin, or write unit = \"subscriber\".",
                                header=h, key="unit")
            params["unit"] = unit
        params["max_partitions"] = _int(ctx, table, "max_partitions", where, h, 1)
        params["max_per_partition"] = _int(ctx, table, "max_per_partition", where, h, 1)
    return MethodSpec(name=name, params={k: v for k, v in params.items() if v is not None})


def _parse_attacks(ctx: TomlErrors, table: dict[str, Any]) -> dict[str, dict[str, int]]:
    where, h = "[attacks]", "attacks"
    table = {ATTACK_ALIASES.get(k, k): v for k, v in table.items()}
    if isinstance(table.get("run"), list):
        table["run"] = [ATTACK_ALIASES.get(a, a) if isinstance(a, str) else a for a in table["run"]]
    _check_keys(ctx, table, ("run", *ATTACKS), where, h)
    run = list(ATTACKS)
    if "run" in table:
        value = table["run"]
        if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
            raise ctx.error(where, f"run = {value!r} is not a list of attack names",
                            f"write e.g. run = [\"differencing\"]; attacks: {', '.join(ATTACKS)}.", header=h, key="run")
        for a in value:
            if a not in ATTACKS:
                hint = suggest(a, ATTACKS)
                raise ctx.error(where, f"attack {a!r} is unknown", f"{hint}use some of {', '.join(ATTACKS)}.",
                                header=h, key="run")
        run = list(dict.fromkeys(value))
    out: dict[str, dict[str, int]] = {}
    for name in run:
        sub = table.get(name, {})
        sh = f"attacks.{name}"
        if not isinstance(sub, dict):
            raise ctx.error(where, f"'{name}' is not a table", f"write [attacks.{name}] with its settings.",
                            header=h, key=name)
        allowed = tuple(ATTACK_DEFAULTS[name])
        _check_keys(ctx, sub, allowed, f"[{sh}]", sh)
        out[name] = {k: _int(ctx, sub, k, f"[{sh}]", sh, lo, d) for k, (d, lo) in ATTACK_DEFAULTS[name].items()}
    for name in ATTACKS:
        if name not in run and name in table:
            raise ctx.error(where, f"[attacks.{name}] is set but '{name}' is not in run",
                            f"add \"{name}\" to run, or remove [attacks.{name}].", header=f"attacks.{name}", key=None)
    return out


def _parse_comparison(ctx: TomlErrors, table: dict[str, Any]) -> tuple[tuple[float, ...], float]:
    where, h = "[comparison]", "comparison"
    _check_keys(ctx, table, COMPARISON_KEYS, where, h)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ctx.error(where, f"enabled = {enabled!r} is not true or false", "write enabled = false to skip it.",
                        header=h, key="enabled")
    epsilons = DEFAULT_EPSILONS
    if "epsilons" in table:
        value = table["epsilons"]
        ok = isinstance(value, list) and value and all(
            isinstance(e, (int, float)) and not isinstance(e, bool) and math.isfinite(e) and e > 0 for e in value)
        if not ok:
            raise ctx.error(where, f"epsilons = {value!r} is not a list of positive numbers",
                            "write e.g. epsilons = [0.1, 0.5, 1, 2, 5, 10].", header=h, key="epsilons")
        epsilons = tuple(sorted({float(e) for e in value}))
    floor = _positive(ctx, table, "metric_floor", where, h, "10") or DEFAULT_FLOOR
    return (epsilons if enabled else ()), floor


def parse_claim(text: str, path: str | Path = "<claim>") -> Claim:
    """Parse and validate a claim given as TOML text.

    Parameters
    ----------
    text
        The TOML text.
    path
        The file it came from, for error messages and to resolve a relative ``[data] path``.

    Raises
    ------
    PrivaggInputError
        Naming the file, the line and key where possible, and the fix.
    """
    raw, ctx, path_str, base_dir = read_toml_document(text, path, "<claim>")
    _check_keys(ctx, raw, TOP_KEYS, "top level", None)
    for key in ("name", "title", "description"):
        if key in raw and not isinstance(raw[key], str):
            raise ctx.error("top level", f"{key} = {raw[key]!r} is not text", f"write {key} = \"...\".", key=key)
    seed = _int(ctx, raw, "seed", "top level", None, 0, 0) or 0
    if "world" in raw and "data" in raw:
        raise ctx.error("top level", "has both [world] and [data]", "keep [world] (the older name is [data]).",
                        header="data", key=None)
    h = "data" if "data" in raw else "world"
    data = _parse_data(ctx, _table(ctx, raw, h, True, "[world] n_users = 2000, n_cells = 100, days = 7"),
                       base_dir, h)
    release = _parse_release(ctx, _table(ctx, raw, "release", True,
                                         "[release] statistic = \"footfall\", level = \"cell\", time_bin = \"1h\""))
    method = _parse_method(ctx, _table(ctx, raw, "method", True, "[method] family = \"suppression\", k = 10"), release)
    if method.name == "pseudonymised" and release.statistic not in ("footfall", "segment_counts"):
        raise ctx.error("[method]", f"pseudonymised microdata does not answer {release.statistic}",
                        "use statistic = \"footfall\" in [release] (its level and time bin set the microdata's "
                        "resolution).", header="method", key="family")
    if method.name in ("suppression", "coarsening", "naive_laplace") and release.statistic not in STATISTICS:
        raise ctx.error("[release]", f"{method.name} applies to counts", "use a count statistic.", header="release",
                        key="statistic")
    attacks = _parse_attacks(ctx, _table(ctx, raw, "attacks", False, ""))
    epsilons, floor = _parse_comparison(ctx, _table(ctx, raw, "comparison", False, ""))
    name = raw.get("name") or Path(path_str).stem
    return Claim(name=name, title=raw.get("title"), description=raw.get("description", ""), seed=seed,
                 data=data, release=release, method=method, attacks=attacks, epsilons=epsilons,
                 metric_floor=floor, path=path_str)


def load_claim(path: str | Path) -> Claim:
    """Read and validate the claim in TOML file ``path`` (see :func:`parse_claim`)."""
    p = Path(path)
    if not p.is_file():
        raise PrivaggInputError(
            f"claim file {str(p)!r} does not exist. Fix: check the path, e.g. experiments/claims/operator_footfall_k10.toml."
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PrivaggInputError(f"{p}: is not UTF-8 text. Fix: save the claim as UTF-8 TOML.") from None
    return parse_claim(text, p)


__all__ = ["ATTACKS", "ATTACK_DEFAULTS", "Claim", "DataSpec", "METHODS", "MethodSpec", "ReleaseSpec",
           "STATISTICS", "load_claim", "parse_claim"]
