"""The format of a ledger's entries: validation, the digest chain and the JSON ledgers of earlier versions.

Every entry of a :class:`~privagg.dp.ledger.Ledger` has the fields
``_ENTRY_FIELDS``; :func:`_entry_problem` says what is wrong with one (a
cost that is not finite, not non-negative or not in the budget's units).
Entries are chained: :func:`_entry_digest` is the SHA-256 digest of an
entry and of the digest before it, and :func:`_meta_digest` that of the
budget's totals, which starts the chain. :func:`_read_legacy` validates a
JSON ledger written by an earlier privagg (or an export) before it is
imported into SQLite.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from privagg.dp.costs import TOLERANCE, UNITS, check_totals, fmt, kind_of
from privagg.errors import PrivaggInputError

_ENTRY_FIELDS = ("seq", "request_id", "statistic", "client", "dataset", "window", "parameters", "loss", "cost", "time")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


def _digest(*parts: Any) -> str:
    return hashlib.sha256(_canonical(list(parts)).encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _meta_digest(meta: Mapping[str, str]) -> str:
    return _digest("privagg-ledger", meta.get("version"), meta.get("totals"), meta.get("created"))


def _read_legacy(path: Path, totals: dict[str, float] | None, shown: str) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Validate a JSON ledger of privagg <= 0.x (or an export) for import."""
    where = f"JSON ledger {str(path)!r}"
    try:
        data = json.loads(path.read_text())
        budget, entries = data["budget"], data["entries"]
        if not isinstance(budget, dict) or not isinstance(entries, list):
            raise TypeError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise PrivaggInputError(
            f"{where} is not a privagg budget ledger, so it cannot be migrated. Fix: point the ledger at a file "
            "written by privagg, or a new path."
        ) from None
    recorded = check_totals(budget, where)
    if totals is not None and totals != recorded:
        raise PrivaggInputError(
            f"ledger {shown!r} records the budget {recorded} but {totals} was declared. Fix: continue it without "
            "declaring a total (Budget.load(path), or --budget without --budget-epsilon/--budget-rho), "
            "or use a new ledger path for a new budget."
        )
    kind = kind_of(recorded)
    out = []
    for i, old in enumerate(entries, start=1):
        if not isinstance(old, dict):
            raise PrivaggInputError(f"{where}: entry {i} is not an object; nothing was migrated. Fix: restore the file from a backup.")
        entry = {"statistic": old.get("statistic"), "parameters": old.get("parameters", {}), "loss": old.get("loss", {}),
                 "cost": old.get("cost"), "time": old.get("time", "")}
        problem = _entry_problem(entry, kind)
        if problem:
            raise PrivaggInputError(
                f"{where}: entry {i} {problem}; nothing was migrated and nothing charged. Fix: restore the file from "
                "a backup (privagg never repairs a ledger), or start a new ledger."
            )
        entry["cost"] = {unit: float(entry["cost"][unit]) for unit in UNITS[kind]}
        out.append(entry)
    spent = _sum(out, recorded)
    over = [k for k in recorded if spent[k] > recorded[k] * (1 + TOLERANCE) + TOLERANCE]
    if over:
        raise PrivaggInputError(
            f"{where}: its entries spend {fmt(spent)}, more than its total {fmt(recorded)}; nothing was migrated. "
            "Fix: restore the file from a backup."
        )
    return recorded, out


def _entry_problem(entry: Mapping[str, Any], kind: str) -> str | None:
    """What is wrong with an entry (``None`` if nothing)."""
    if not isinstance(entry.get("statistic"), str):
        return "has no statistic name"
    if not isinstance(entry.get("parameters"), dict) or not isinstance(entry.get("loss"), dict):
        return "has malformed parameters or loss"
    if not isinstance(entry.get("time"), str):
        return "has no time"
    cost = entry.get("cost")
    if not isinstance(cost, dict):
        return "has no cost"
    units = UNITS[kind]
    if set(cost) != set(units):
        return f"has a cost in units {sorted(map(str, cost))}, not this budget's {list(units)}"
    for unit in units:
        value = cost[unit]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"has a cost {unit}={value!r} that is not a number"
        if not math.isfinite(value):
            return f"has a cost {unit}={value!r} that is not finite"
        if value < 0:
            return f"has a negative cost {unit}={value!r}"
    return None


def _entry_digest(previous: str, entry: Mapping[str, Any]) -> str:
    return _digest(previous, *(entry.get(f) for f in _ENTRY_FIELDS))


def _column(entry: Mapping[str, Any], field: str) -> Any:
    value = entry[field]
    return _canonical(value) if field in ("parameters", "loss", "cost") else value


def _sum(entries: list[Mapping[str, Any]], totals: Mapping[str, float]) -> dict[str, float]:
    out = {k: 0.0 for k in totals}
    for entry in entries:
        for k, v in entry["cost"].items():
            out[k] += float(v)
    return out
