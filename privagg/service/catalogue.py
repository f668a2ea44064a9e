"""The datasets a service offers: a synthetic World by default, the operator's own tables by configuration.

A catalogue file (TOML) names each dataset, where its data is, and its global
cap (the most epsilon and delta all clients together may spend on it, the
loss if every client colludes)::

    [datasets.city]
    world = "data/city"          # a World folder: privagg synth, World.save, or the five tables as .parquet/.csv
    cap_epsilon = 20
    cap_delta = 1e-6

    [datasets.demo]
    synthetic = { n_users = 2000, n_cells = 100, days = 7, seed = 0 }
    cap_epsilon = 10

Consent is read at each release: for a World folder, the users table is read
again whenever its file changed, and opt-in changes made through the service
(``POST /v1/admin/datasets/{name}/consent``) are applied on top, so an
opt-out takes effect for every later release.
"""

from __future__ import annotations

import dataclasses
import threading
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from privagg.errors import PrivaggInputError
from privagg.service.store import Store, check_name
from privagg.world import World

DEFAULT_DATASET = "synthetic"
#: The default synthetic world: small enough to start in seconds.
DEFAULT_SYNTHETIC = {"n_users": 2000, "n_cells": 100, "days": 7, "seed": 0}
DEFAULT_CAP_EPSILON = 10.0
DEFAULT_CAP_DELTA = 1e-6
SYNTHETIC_OPTIONS = ("n_users", "n_cells", "days", "seed", "opt_in_share")
#: Most subscribers x days a synthetic dataset may have (beyond, generation would not fit a service's memory).
MAX_SYNTHETIC_USER_DAYS = 2_000_000


@dataclass
class Dataset:
    """One dataset of the catalogue: its World and its global cap."""

    name: str
    world: World
    cap_epsilon: float
    cap_delta: float
    source: str
    folder: Path | None = None
    _users_file: Path | None = None
    _users_mtime: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self) -> dict[str, Any]:
        """What a client may know of the dataset: name, window, cells and levels (public), not its subscribers."""
        cells = self.world.cells
        return {"name": self.name, "start": self.world.start.isoformat(), "end": self.world.end.isoformat(),
                "cells": int(len(cells)), "zones": int(cells["zone_id"].nunique()),
                "districts": int(cells["district_id"].nunique()), "source": self.source}

    def current(self, store: Store) -> World:
        """The World as of now: its users table re-read if its file changed, consent changes applied."""
        with self._lock:
            if self._users_file is not None:
                mtime = self._users_file.stat().st_mtime
                if mtime != self._users_mtime:
                    from privagg.schema import load_table

                    users = load_table(self._users_file, "users", cells=self.world.cells)
                    self.world = dataclasses.replace(self.world, users=users)
                    self._users_mtime = mtime
            world = self.world
        changes = store.consent_changes(self.name)
        if not changes:
            return world
        users = world.users.copy()
        ids = users["user_id"].to_numpy()
        change = pd.Series(changes)
        known = pd.Series(ids).isin(change.index).to_numpy()
        users.loc[known, "opt_in"] = change.reindex(ids[known]).to_numpy(dtype=bool)
        return dataclasses.replace(world, users=users)


def _cap(entry: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or value == float("inf"):
        raise PrivaggInputError(f"{where}: {key} = {value!r} must be a finite number >= 0. Fix: e.g. {key} = 10.")
    return float(value)


def synthetic(name: str, options: Mapping[str, Any], cap_epsilon: float, cap_delta: float, where: str) -> Dataset:
    from privagg.synth import generate_world

    unknown = sorted(set(options) - set(SYNTHETIC_OPTIONS))
    if unknown:
        raise PrivaggInputError(f"{where}: unknown synthetic option(s) {unknown}. Fix: use {', '.join(SYNTHETIC_OPTIONS)}.")
    opts = {**DEFAULT_SYNTHETIC, **options}
    for key in ("n_users", "n_cells", "days", "seed"):
        if isinstance(opts[key], bool) or not isinstance(opts[key], int) or opts[key] < 0:
            raise PrivaggInputError(f"{where}: {key} = {opts[key]!r} must be a whole number >= 0. Fix: e.g. {key} = 100.")
    if opts["n_users"] * opts["days"] > MAX_SYNTHETIC_USER_DAYS:
        raise PrivaggInputError(
            f"{where}: {opts['n_users']:,} subscribers x {opts['days']} days is more than the service generates in "
            f"memory ({MAX_SYNTHETIC_USER_DAYS:,} subscriber-days). Fix: fewer n_users or days, or `privagg synth` "
            "to a folder and world = \"folder\"."
        )
    world = generate_world(**opts)
    return Dataset(name, world, cap_epsilon, cap_delta, f"synthetic {opts}")


def from_folder(name: str, folder: Path, cap_epsilon: float, cap_delta: float) -> Dataset:
    world = World.load(folder)
    users_file = next((folder / f"users{s}" for s in (".parquet", ".csv") if (folder / f"users{s}").exists()), None)
    ds = Dataset(name, world, cap_epsilon, cap_delta, f"World folder {folder.name}", folder=folder,
                 _users_file=users_file)
    ds._users_mtime = users_file.stat().st_mtime if users_file is not None else None
    return ds


def load_catalogue(config: str | Path | None = None, *, synthetic_options: Mapping[str, Any] | None = None,
                   cap_epsilon: float = DEFAULT_CAP_EPSILON, cap_delta: float = DEFAULT_CAP_DELTA) -> dict[str, Dataset]:
    """The catalogue from ``config`` (TOML, see the module docstring), or one synthetic dataset named ``synthetic``."""
    if config is None:
        return {DEFAULT_DATASET: synthetic(DEFAULT_DATASET, dict(synthetic_options or {}), cap_epsilon, cap_delta,
                                           "synthetic dataset")}
    path = Path(config)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise PrivaggInputError(f"catalogue {str(path)!r} does not exist. Fix: pass a TOML file with [datasets.NAME] tables.") from None
    except tomllib.TOMLDecodeError as exc:
        raise PrivaggInputError(f"catalogue {str(path)!r} is not valid TOML ({exc}). Fix: correct the file.") from None
    entries = raw.get("datasets")
    if not isinstance(entries, dict) or not entries:
        raise PrivaggInputError(f"catalogue {str(path)!r} names no dataset. Fix: add a [datasets.NAME] table with world = \"folder\".")
    out: dict[str, Dataset] = {}
    for name, entry in entries.items():
        where = f"catalogue {str(path)!r}, dataset {name!r}"
        check_name(name, "dataset")
        if not isinstance(entry, dict) or ("world" in entry) == ("synthetic" in entry):
            raise PrivaggInputError(f"{where}: give exactly one of world = \"folder\" or synthetic = {{...}}. Fix: add one.")
        unknown = sorted(set(entry) - {"world", "synthetic", "cap_epsilon", "cap_delta"})
        if unknown:
            raise PrivaggInputError(f"{where}: unknown key(s) {unknown}. Fix: use world, synthetic, cap_epsilon, cap_delta.")
        eps = _cap(entry, "cap_epsilon", cap_epsilon, where)
        delta = _cap(entry, "cap_delta", cap_delta, where)
        if "world" in entry:
            folder = (path.parent / str(entry["world"])).resolve()
            out[name] = from_folder(name, folder, eps, delta)
        else:
            if not isinstance(entry["synthetic"], dict):
                raise PrivaggInputError(f"{where}: synthetic must be a table, e.g. synthetic = {{ n_users = 2000 }}.")
            out[name] = synthetic(name, entry["synthetic"], eps, delta, where)
    return out
