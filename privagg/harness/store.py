"""The results store of an experiment directory.

Layout of ``DIR``::

    spec.toml             the spec as given
    cells/<hash>.parquet  rows of one finished cell (written atomically)
    samples/              a few releases and true tables, for maps
    worlds/<id>/          the generated world, reused on resume
    results.parquet       the tidy table of every cell of the spec (atomic)
    provenance.json       privagg version, git commit, spec hash, seeds, times

A cell's file appears only once the cell has finished, via a temporary file
and :func:`os.replace`, so a killed run leaves either a complete cell file
or none, and a rerun recomputes exactly the cells whose files are missing.

The results table is *tidy*: one row per measured quantity, with columns

``cell, kind, world_id, statistic, statistic_kind, level, time_bin, family,
config, params, epsilon, k, repetition, seed, cell_seed, attack, metric,
value, ci_low, ci_high, baseline, n_trials, status, detail, seconds,
started, finished, spec_hash, privagg_version, git_commit``

``kind`` is ``"utility"`` (``metric`` a utility metric), ``"risk"``
(``metric`` ``"risk"`` with its interval and baseline, or one of the
attack's extra metrics) or ``"privacy"`` (loss spent by the release).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from privagg.errors import PrivaggInputError
from privagg.atomic import atomic_write, atomic_write_text

COLUMNS: dict[str, str] = {
    "cell": "string",
    "kind": "string",
    "world_id": "string",
    "statistic": "string",
    "statistic_kind": "string",
    "level": "string",
    "time_bin": "string",
    "family": "string",
    "config": "string",
    "params": "string",
    "epsilon": "float64",
    "k": "float64",
    "repetition": "int64",
    "seed": "int64",
    "cell_seed": "int64",
    "attack": "string",
    "metric": "string",
    "value": "float64",
    "ci_low": "float64",
    "ci_high": "float64",
    "baseline": "float64",
    "n_trials": "float64",
    "status": "string",
    "detail": "string",
    "seconds": "float64",
    "started": "string",
    "finished": "string",
}
PROVENANCE_COLUMNS = ("spec_hash", "privagg_version", "git_commit")


def publish(path: str | Path) -> Path:
    """Give a file written via a temporary file the usual permissions (0666 minus the umask), so others can read it."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
    return Path(path)


def tidy(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows (dicts) as a DataFrame with exactly :data:`COLUMNS`, typed; absent fields are null."""
    df = pd.DataFrame(list(rows))
    for column, dtype in COLUMNS.items():
        if column not in df.columns:
            df[column] = pd.Series([None] * len(df), dtype="object")
    df = df.loc[:, list(COLUMNS)]
    for column, dtype in COLUMNS.items():
        if dtype == "string":
            df[column] = df[column].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)).astype("string")
        elif dtype == "int64":
            df[column] = pd.to_numeric(df[column], errors="coerce").fillna(-1).astype("int64")
        else:
            df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    return df


class ResultStore:
    """Per-cell result files and the final table of one experiment directory."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        if self.dir.exists() and not self.dir.is_dir():
            raise PrivaggInputError(f"--out {str(self.dir)!r} is a file. Fix: give a directory.")
        self.cells_dir = self.dir / "cells"
        self.samples_dir = self.dir / "samples"
        self.worlds_dir = self.dir / "worlds"
        self.results_path = self.dir / "results.parquet"
        self.provenance_path = self.dir / "provenance.json"

    def prepare(self) -> None:
        """Create the directories; remove temporary files a killed run left behind."""
        for d in (self.dir, self.cells_dir, self.samples_dir, self.worlds_dir):
            d.mkdir(parents=True, exist_ok=True)
        for stale in self.cells_dir.glob(".*.parquet"):
            stale.unlink(missing_ok=True)

    def cell_path(self, cell_hash: str) -> Path:
        return self.cells_dir / f"{cell_hash}.parquet"

    def has_cell(self, cell_hash: str) -> bool:
        return self.cell_path(cell_hash).is_file()

    def write_cell(self, cell_hash: str, rows: list[dict[str, Any]]) -> Path:
        """Persist one finished cell's rows atomically."""
        df = tidy(rows)
        return atomic_write(self.cell_path(cell_hash), lambda tmp: df.to_parquet(tmp, index=False))

    def read_cell(self, cell_hash: str) -> pd.DataFrame:
        return pd.read_parquet(self.cell_path(cell_hash))

    def write_results(self, cell_hashes: list[str], provenance: dict[str, Any]) -> pd.DataFrame:
        """Concatenate the given cells into ``results.parquet`` (atomic) with provenance columns."""
        frames = [self.read_cell(h) for h in cell_hashes if self.has_cell(h)]
        df = pd.concat(frames, ignore_index=True) if frames else tidy([])
        for column in PROVENANCE_COLUMNS:
            df[column] = pd.Series([str(provenance.get(column, "unknown"))] * len(df), dtype="string")
        atomic_write(self.results_path, lambda tmp: df.to_parquet(tmp, index=False))
        publish(self.results_path)
        return df

    def write_provenance(self, provenance: dict[str, Any]) -> Path:
        return publish(atomic_write_text(self.provenance_path, json.dumps(provenance, indent=2, default=_json_default)))

    def read_results(self) -> pd.DataFrame:
        if not self.results_path.is_file():
            raise PrivaggInputError(
                f"{str(self.dir)!r} has no results.parquet. "
                "Fix: run `privagg experiment run SPEC --out DIR` first (a killed run resumes when rerun)."
            )
        return pd.read_parquet(self.results_path)

    def read_provenance(self) -> dict[str, Any]:
        if not self.provenance_path.is_file():
            return {}
        return json.loads(self.provenance_path.read_text())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if math.isnan(value) else float(value)
    return str(value)


def git_commit(start: str | Path | None = None) -> str:
    """``git rev-parse HEAD`` of the repository holding privagg (or ``start``), else ``"unknown"``.

    A ``+dirty`` suffix marks uncommitted changes to tracked files.
    """
    where = Path(start) if start else Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        commit = head.stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10)
        return commit + ("+dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment() -> dict[str, Any]:
    """Versions of Python and the main libraries, for provenance."""
    import importlib.metadata as md

    versions = {}
    for pkg in ("numpy", "pandas", "scipy", "opendp", "pyarrow", "matplotlib"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "packages": versions}


__all__ = ["COLUMNS", "PROVENANCE_COLUMNS", "ResultStore", "environment", "git_commit", "publish", "tidy"]
