"""Release: a published table and the record of how it was protected.

Every method in privagg, differentially private or not, returns a
:class:`Release`, so utility metrics and attacks treat them alike. The table
has the key columns, then ``value``, ``ci_low`` and ``ci_high`` (NaN where the
method gives no interval, and ``value`` NaN where a key was suppressed).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from privagg.atomic import atomic_write, atomic_write_text
from privagg.dp.units import Loss, PrivacyUnit
from privagg.errors import PrivaggInputError

VALUE_COLUMNS = ("value", "ci_low", "ci_high")


@dataclass(frozen=True)
class PrivacyRecord:
    """What a release spent and how it was protected.

    Attributes
    ----------
    statistic
        What was released, e.g. ``"footfall"``.
    method
        How it was protected: ``"dp"``, ``"raw"``, ``"suppression"``,
        ``"coarsening"``, ``"pseudonymised"``, ``"naive_laplace"``.
    privacy_unit
        The protected unit, e.g. ``"one subscriber (user_id) over 2026-01-05 to 2026-01-06"``.
    epsilon, delta, rho
        Privacy loss spent. ``epsilon`` is the pure-DP epsilon, or for zCDP
        releases the epsilon implied at ``delta``; ``rho`` is set for zCDP.
        All ``None`` for methods that give no formal guarantee.
    formally_private
        True only for releases with a proven differential-privacy guarantee.
    bounds
        Contribution bounds applied per privacy unit (``max_partitions``,
        ``max_per_partition``, clamping range).
    mechanism
        The noise mechanism, e.g. ``"discrete Laplace (OpenDP)"``.
    noise_scale
        Scale of the noise added to each released value.
    parameters
        The release's parameters (level, time bin, k, ...), JSON-serialisable.
    notes
        Caveats a reader must know, e.g. that intervals ignore bounding bias.
    unit
        The privacy unit as structured fields
        (:meth:`privagg.dp.units.PrivacyUnit.to_dict`: ``period``,
        ``identifier``, ``label`` and the window's ``start``, ``end`` and
        ``periods``). ``epsilon``, ``delta`` and ``rho`` are per this unit;
        :meth:`total_loss` gives the loss over the whole window.

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> keys = pa.KeySet.areas_by_time(world.cells, level="zone", start=world.start, end=world.end, time_bin="6h")
    >>> record = pa.footfall(world, epsilon=1.0, level="zone", time_bin="6h", keys=keys).privacy
    >>> record.method, record.epsilon, record.formally_private
    ('dp', 1.0, True)
    >>> record.unit["period"], record.unit["identifier"]
    ('window', 'user_id')
    >>> record.total_loss().describe()
    'epsilon=1'
    """

    statistic: str
    method: str
    privacy_unit: str
    epsilon: float | None = None
    delta: float | None = None
    rho: float | None = None
    formally_private: bool = False
    bounds: dict[str, Any] | None = None
    mechanism: str | None = None
    noise_scale: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    unit: dict[str, Any] | None = None

    @property
    def privacy_unit_type(self) -> PrivacyUnit:
        """The unit as a :class:`~privagg.dp.units.PrivacyUnit` (the whole window when the record names none)."""
        return PrivacyUnit.from_dict(self.unit)

    def loss(self) -> Loss | None:
        """The loss per privacy unit, or ``None`` without a formal guarantee."""
        if not self.formally_private or (self.epsilon is None and self.rho is None):
            return None
        return Loss(epsilon=math.inf if self.epsilon is None else self.epsilon, delta=self.delta or 0.0, rho=self.rho)

    def total_loss(self) -> Loss | None:
        """The loss per subscriber over the whole window (per-period losses times the number of periods)."""
        loss = self.loss()
        if loss is None:
            return None
        return loss * int((self.unit or {}).get("periods", 1))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the record."""
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out

    def label(self) -> str:
        """A short name of the method and its loss per unit, e.g. ``"DP, epsilon 0.5 per subscriber-day"``.

        Reports, plots and the command line name a release by this label, so
        the name always matches the record it comes from.
        """
        if self.formally_private and (self.epsilon is not None or self.rho is not None):
            loss = f"rho {self.rho:g}" if self.rho is not None else f"epsilon {self.epsilon:g}"
            return f"DP, {loss} {self.privacy_unit_type.per}"
        shown = [f"{k}={self.parameters[k]}" for k in ("k", "rounding", "level", "time_bin")
                 if self.parameters.get(k) is not None]
        return f"{self.method} ({', '.join(shown)})" if shown else self.method

    def describe(self) -> str:
        """One sentence stating the loss per privacy unit, or that there is no guarantee."""
        if not self.formally_private:
            return f"{self.method}: no formal privacy guarantee for {self.privacy_unit}"
        parts = []
        if self.rho is not None:
            parts.append(f"rho={self.rho:g} (zCDP)")
        if self.epsilon is not None:
            parts.append(f"epsilon={self.epsilon:g}")
        if self.delta:
            parts.append(f"delta={self.delta:g}")
        text = f"{', '.join(parts)} for {self.privacy_unit}"
        periods = int((self.unit or {}).get("periods", 1))
        if self.privacy_unit_type.period != "window" and periods > 1 and self.epsilon is not None:
            total = self.total_loss()
            text += f" (epsilon={total.epsilon:g} per subscriber over the whole window)"
        return text


class Release:
    """A released table with its privacy record.

    Parameters
    ----------
    table
        Key columns followed by ``value``, ``ci_low``, ``ci_high``. Missing
        interval columns are filled with NaN.
    key_columns
        Names of the key columns, in order.
    privacy
        How the table was protected.

    Examples
    --------
    >>> import privagg as pa
    >>> from privagg.synth import generate_world
    >>> world = generate_world(n_users=60, n_cells=20, days=1, seed=0)   # a tiny synthetic city
    >>> keys = pa.KeySet.areas_by_time(world.cells, level="district", start=world.start, end=world.end, time_bin="1D")
    >>> rel = pa.footfall(world, epsilon=1.0, level="district", time_bin="1D", keys=keys)
    >>> rel.key_columns
    ('district_id', 'time')
    >>> table = rel.to_pandas()                   # a copy: editing it changes nothing published
    >>> bool((table.ci_low <= table.value).all() and (table.value <= table.ci_high).all())
    True
    """

    def __init__(self, table: pd.DataFrame, key_columns: Sequence[str], privacy: PrivacyRecord) -> None:
        key_columns = tuple(key_columns)
        missing = [c for c in (*key_columns, "value") if c not in table.columns]
        if missing:
            raise PrivaggInputError(
                f"Release table lacks column(s) {missing}. Fix: include the key columns and 'value'."
            )
        table = table.loc[:, [*key_columns, *[c for c in VALUE_COLUMNS if c in table.columns]]].copy()
        for column in ("ci_low", "ci_high"):
            if column not in table.columns:
                table[column] = np.nan
        self._table = table.reset_index(drop=True)
        self.key_columns = key_columns
        self.privacy = privacy

    def to_pandas(self) -> pd.DataFrame:
        """A copy of the released table: key columns, then value, ci_low, ci_high."""
        return self._table.copy()

    def to_polars(self) -> Any:
        """The released table as a Polars DataFrame (needs ``polars``: ``pip install privagg[bench]``).

        >>> # rel.to_polars().filter(pl.col("value") > 10)
        """
        try:
            import polars as pl
        except ImportError:
            raise PrivaggInputError(
                "Release.to_polars needs the polars package. Fix: pip install polars (or privagg[bench]), "
                "or use to_pandas() / to_arrow()."
            ) from None
        return pl.from_arrow(self.to_arrow())

    def to_arrow(self) -> Any:
        """The released table as a ``pyarrow.Table`` (key columns, then value, ci_low, ci_high)."""
        import pyarrow as pa

        return pa.Table.from_pandas(self._table, preserve_index=False)

    @property
    def values(self) -> np.ndarray:
        """The released values as a float array (a copy)."""
        return self._table["value"].to_numpy(dtype=float, copy=True)

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return (
            f"Release({self.privacy.statistic}, {len(self)} keys by {', '.join(self.key_columns)}; "
            f"{self.privacy.describe()})"
        )

    @classmethod
    def read(cls, path: str | Path) -> Release:
        """A release written by :meth:`write`: the table (Parquet or CSV) and ``<path>.privacy.json``.

        Every column other than ``value``, ``ci_low`` and ``ci_high`` is a key
        column; from CSV, a ``time`` column is read back as datetimes.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise PrivaggInputError(
                f"{str(path)!r}: unknown file type. Fix: read a release written as .parquet or .csv."
            )
        record_path = path.with_name(path.name + ".privacy.json")
        for needed in (path, record_path):
            if not needed.is_file():
                raise PrivaggInputError(
                    f"{str(needed)!r} does not exist. Fix: pass a release written by Release.write or "
                    "`privagg release` (the table and its .privacy.json side by side)."
                )
        table = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
        if suffix == ".csv" and "time" in table.columns:
            table["time"] = pd.to_datetime(table["time"])
        record = json.loads(record_path.read_text())
        try:
            privacy = PrivacyRecord(**{**record, "notes": tuple(record.get("notes", ()))})
        except TypeError as exc:
            raise PrivaggInputError(
                f"{str(record_path)!r} is not a privagg privacy record ({exc}). Fix: pass the .privacy.json "
                "written with the release."
            ) from None
        keys = [c for c in table.columns if c not in VALUE_COLUMNS]
        return cls(table, keys, privacy)

    def write(self, path: str | Path) -> tuple[Path, Path]:
        """Write the table (Parquet or CSV, by extension) and ``<path>.privacy.json``, each atomically."""
        path = write_table(path, self.to_pandas())
        record_path = path.with_name(path.name + ".privacy.json")
        atomic_write_text(record_path, json.dumps(self.privacy.to_dict(), indent=2, default=_json_default))
        return path, record_path


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return str(value)
    return str(value)


def write_table(path: str | Path, table: pd.DataFrame) -> Path:
    """Write ``table`` atomically as Parquet or CSV, by the extension of ``path``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise PrivaggInputError(f"out={str(path)!r}: unknown file type. Fix: end the file name in .parquet or .csv.")

    def write(tmp: Path) -> None:
        if suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False)

    return atomic_write(path, write)
