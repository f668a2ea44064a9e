"""The budget ledger: one SQLite file that no two processes or threads can overspend.

A :class:`Ledger` records every charge made against one privacy budget. The
check ("does this loss fit in what remains?") and the charge (append the
entry) are one ``BEGIN IMMEDIATE`` transaction of SQLite (standard library
``sqlite3``, write-ahead log): any number of processes and threads may share
a ledger, and a charge that does not fit is refused with
:class:`~privagg.errors.BudgetExceededError` without writing anything.

Entries are append-only (SQLite triggers refuse ``UPDATE`` and ``DELETE``)
and chained: each stores the SHA-256 digest of its content and of the entry
before it, and the first one the digest of the budget's totals. Every read
checks the chain and every entry (a cost that is finite, non-negative and in
the budget's units), so a ledger that was damaged or edited by hand is
refused with one line naming the entry, never repaired. (The chain detects
edits and damage; it is not a signature: protect the file itself with file
permissions.)

This module holds the transactional store: :class:`Ledger`, its paths and
its SQLite plumbing. What a loss costs in a budget's units and whether it
fits is :mod:`privagg.dp.costs`; the entries' validation, their digest chain
and the import of JSON ledgers of earlier versions are
:mod:`privagg.dp.ledger_format`. The public names of both are importable
from here too.

Paths
-----
A path ending in ``.json`` names two files: ``NAME.sqlite``, the ledger, and
``NAME.json``, its JSON export, rewritten atomically after every charge.
A JSON ledger written by an earlier privagg (a ``NAME.json`` without
``NAME.sqlite``) is validated and imported into ``NAME.sqlite`` once; its
original bytes are kept as ``NAME.json.migrated``. A ``NAME.json`` that no
longer matches ``NAME.sqlite`` (edited by hand) is refused. Any other path
is the SQLite file itself, with an export on request (:meth:`Ledger.export_json`).

Server interface
----------------
:meth:`Ledger.charge` takes the loss and, optionally, ``request_id``,
``client``, ``dataset`` and ``window``: a request retried with the same
``request_id`` is not charged twice, the first entry is returned instead.

Examples
--------
>>> import tempfile, pathlib
>>> from privagg.dp.budget import Loss
>>> path = pathlib.Path(tempfile.mkdtemp()) / "ledger.sqlite"
>>> ledger = Ledger.open(path, totals={"epsilon": 1.0, "delta": 0.0})
>>> ledger.charge(Loss(epsilon=0.25), statistic="footfall", request_id="r1")["cost"]
{'epsilon': 0.25, 'delta': 0.0}
>>> ledger.charge(Loss(epsilon=0.25), statistic="footfall", request_id="r1")["seq"]  # a retry
1
>>> ledger.remaining()
{'epsilon': 0.75, 'delta': 0.0}
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from privagg.atomic import atomic_write_text, can_create_in

# Units and costs live in privagg.dp.costs, the entries' format and chain in privagg.dp.ledger_format;
# the names this module has always offered are re-exported from here.
from privagg.dp.costs import TOLERANCE, UNITS, check_totals, cost_of, fmt, kind_of, refusal, remaining_of  # noqa: F401
from privagg.dp.ledger_format import (
    _ENTRY_FIELDS, _canonical, _column, _entry_digest, _entry_problem, _jsonable, _meta_digest, _read_legacy, _sum,
)
from privagg.errors import PrivaggInputError

if TYPE_CHECKING:  # pragma: no cover
    from privagg.dp.budget import Loss

SCHEMA_VERSION = 2
EXPORT_FORMAT = "privagg-ledger-export"
#: How long a charge waits for another process's transaction (seconds).
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE entries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT UNIQUE,
    statistic TEXT NOT NULL,
    client TEXT,
    dataset TEXT,
    window TEXT,
    parameters TEXT NOT NULL,
    loss TEXT NOT NULL,
    cost TEXT NOT NULL,
    time TEXT NOT NULL,
    digest TEXT NOT NULL
) STRICT;
CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries
    BEGIN SELECT RAISE(ABORT, 'privagg ledger entries are append-only'); END;
CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries
    BEGIN SELECT RAISE(ABORT, 'privagg ledger entries are append-only'); END;
CREATE TRIGGER meta_no_update BEFORE UPDATE ON meta
    BEGIN SELECT RAISE(ABORT, 'privagg ledger totals are fixed'); END;
"""


# --------------------------------------------------------------------------- paths
def ledger_paths(path: str | Path) -> tuple[Path, Path | None]:
    """The SQLite file and the JSON export (``None`` if none) that ``path`` names."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return path.with_suffix(".sqlite"), path
    return path, None


def _writable_dir(directory: Path) -> bool:
    directory = directory if str(directory) else Path(".")
    return directory.is_dir() and os.access(directory, os.W_OK | os.X_OK) and can_create_in(directory)


def check_ledger_path(path: str | Path, *, must_exist: bool = False, what: str = "ledger") -> tuple[Path, Path | None]:
    """Check, without opening it, that a ledger can live at ``path``: a file (or nothing yet) in a writable folder.

    Raises :class:`PrivaggInputError` naming ``what`` (e.g. ``--budget``) and the fix.
    """
    db, export = ledger_paths(path)
    shown = str(path)
    for p in (db, export):
        if p is not None and p.exists() and not p.is_file():
            raise PrivaggInputError(f"{what} {shown!r}: {str(p)!r} is not a file. Fix: name a ledger file, e.g. ledger.sqlite.")
    if must_exist and not db.exists() and not (export is not None and export.exists()):
        raise PrivaggInputError(f"{what} {shown!r} does not exist. Fix: check the path, or create the ledger with its total.")
    parent = db.parent if str(db.parent) else Path(".")
    if not parent.is_dir():
        raise PrivaggInputError(f"{what} {shown!r}: folder {str(parent)!r} does not exist. Fix: create it or choose another path.")
    if not _writable_dir(parent):
        raise PrivaggInputError(
            f"{what} {shown!r}: folder {str(parent)!r} is not writable (SQLite keeps its write-ahead log beside the "
            "ledger). Fix: make it writable or move the ledger."
        )
    for p in (db, export):
        if p is not None and p.exists() and not os.access(p, os.R_OK | os.W_OK):
            raise PrivaggInputError(
                f"{what} {shown!r}: {str(p)!r} is not readable and writable. Fix: change its permissions (chmod u+rw) "
                "or use another ledger."
            )
    return db, export


# --------------------------------------------------------------------------- the ledger
class Ledger:
    """A budget ledger in one SQLite file (see the module docstring).

    Use :meth:`Ledger.open`. A Ledger holds no open connection between calls,
    so it may be shared by threads and survives ``fork``.
    """

    def __init__(self, path: Path, export: Path | None, totals: dict[str, float], shown: str) -> None:
        self.path = path
        self.export_path = export
        self.totals = totals
        self.kind = kind_of(totals)
        self._shown = shown

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, totals: Mapping[str, float] | None = None) -> Ledger:
        """Open the ledger at ``path``, creating it with ``totals`` if it does not exist yet.

        With ``totals`` and an existing ledger, the ledger's recorded totals
        must equal them. Without ``totals`` the ledger must exist.
        """
        shown = str(path)
        db, export = check_ledger_path(path)
        want = None if totals is None else check_totals(totals)
        # An empty file is what a process killed while creating the ledger leaves: not a ledger yet.
        exists = db.exists() and db.stat().st_size > 0
        legacy = export is not None and export.exists() and not exists
        imported = None
        if legacy:
            assert export is not None
            imported = _read_legacy(export, want, shown)  # validated before any file is created
        elif not exists and want is None:
            raise PrivaggInputError(
                f"ledger {shown!r} does not exist, so its total is unknown. Fix: create it with its total "
                "(Budget(epsilon=..., ledger=path), or --budget-epsilon on the command line)."
            )
        con = _connect(db, shown)
        try:
            recorded = _initialise(con, export if legacy else None, imported, want, shown)
        finally:
            con.close()
        ledger = cls(db, export, recorded, shown)
        if want is not None and want != recorded:
            raise PrivaggInputError(
                f"ledger {shown!r} records the budget {recorded} but {want} was declared. Fix: continue it without "
                "declaring a total (Budget.load(path), or --budget without --budget-epsilon/--budget-rho), "
                "or use a new ledger path for a new budget."
            )
        entries = ledger.entries()  # verifies the whole chain now, before anything is computed
        if export is not None:
            ledger._check_export(entries, migrated=legacy)
        return ledger

    def _check_export(self, entries: list[dict[str, Any]], *, migrated: bool) -> None:
        """Refuse a JSON export that does not match the ledger; refresh one left stale by a crash."""
        assert self.export_path is not None
        if self.export_path.exists() and not migrated:
            try:
                data = json.loads(self.export_path.read_text())
                ok = isinstance(data, dict) and data.get("format") == EXPORT_FORMAT
            except (ValueError, UnicodeDecodeError):
                ok, data = False, None
            if not ok:
                raise PrivaggInputError(
                    f"ledger {self._shown!r}: {str(self.export_path)!r} is not the export of {str(self.path)!r}, "
                    f"which already exists and is the ledger. Fix: move {str(self.export_path)!r} away, or name the "
                    "SQLite ledger directly."
                )
            exported = data.get("entries")
            if isinstance(exported, list) and len(exported) > len(entries):
                # Another process charged (and exported) since our read: read again, the ledger only grows.
                entries = self.entries()
            if (data.get("budget") != self.totals or not isinstance(exported, list) or len(exported) > len(entries)
                    or exported != _jsonable(entries[: len(exported)])):
                raise PrivaggInputError(
                    f"ledger {self._shown!r}: the export {str(self.export_path)!r} differs from the ledger "
                    f"{str(self.path)!r} (it was edited). The ledger is the SQLite file; the export is never read "
                    f"back. Fix: restore the export with `privagg ledger export {str(self.path)} --out "
                    f"{str(self.export_path)} --overwrite`, or move it away."
                )
            if len(exported) == len(entries):
                return
        self.export_json(self.export_path, entries=entries)

    # -- reading -------------------------------------------------------------------
    def entries(self) -> list[dict[str, Any]]:
        """Every entry, oldest first, after checking the chain and every cost."""
        con = _connect(self.path, self._shown)
        try:
            con.execute("BEGIN")
            return self._read(con)
        except _DB_ERRORS as exc:
            raise _sqlite_error(exc, self._shown) from None
        finally:
            con.close()

    def spent(self) -> dict[str, float]:
        """The sum of the costs of every entry, per unit."""
        return _sum(self.entries(), self.totals)

    def remaining(self) -> dict[str, float]:
        return remaining_of(self.spent(), self.totals)

    def _read(self, con: sqlite3.Connection) -> list[dict[str, Any]]:
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        previous = _meta_digest(meta)
        if meta.get("digest") != previous or _totals_from_meta(meta, self._shown) != self.totals:
            raise self._damaged("its recorded totals were changed")
        out = []
        expected_seq = 1
        for row in con.execute(f"SELECT {', '.join(_ENTRY_FIELDS)}, digest FROM entries ORDER BY seq"):
            entry = dict(zip(_ENTRY_FIELDS, row[:-1]))
            seq = entry["seq"]
            if seq != expected_seq:
                raise self._damaged(f"entry {expected_seq} is missing")
            expected_seq += 1
            try:
                for field in ("parameters", "loss", "cost"):
                    entry[field] = json.loads(entry[field])
            except (TypeError, ValueError):
                raise self._damaged(f"entry {seq} is not valid JSON") from None
            problem = _entry_problem(entry, self.kind)
            if problem:
                raise self._damaged(f"entry {seq} {problem}")
            if _entry_digest(previous, entry) != row[-1]:
                raise self._damaged(f"entry {seq} does not match its digest (it was changed after it was written)")
            entry["cost"] = {unit: float(entry["cost"][unit]) for unit in UNITS[self.kind]}
            previous = row[-1]
            out.append(entry)
        return out

    def _damaged(self, problem: str) -> PrivaggInputError:
        return PrivaggInputError(
            f"ledger {self._shown!r} is damaged or was edited: {problem}; privagg does not repair a ledger and "
            "charged nothing. Fix: restore it from a backup, or start a new ledger for a new budget."
        )

    # -- charging -------------------------------------------------------------------
    def charge(self, loss: Loss, *, statistic: str = "release", parameters: Mapping[str, Any] | None = None,
               request_id: str | None = None, client: str | None = None, dataset: str | None = None,
               window: str | None = None) -> dict[str, Any]:
        """Check that ``loss`` fits and append it, in one transaction; return the entry.

        Raises :class:`~privagg.errors.BudgetExceededError` (nothing written)
        if it does not fit. A ``request_id`` already in the ledger returns
        that entry without charging again (the same loss is required).
        """
        cost = cost_of(loss, self.kind, statistic)
        for name, value in (("request_id", request_id), ("client", client), ("dataset", dataset), ("window", window)):
            if value is not None and not isinstance(value, str):
                raise PrivaggInputError(f"{name}={value!r} must be a string. Fix: pass str({name}).")
        entry: dict[str, Any] = {
            "request_id": request_id, "statistic": str(statistic), "client": client, "dataset": dataset,
            "window": window, "parameters": _jsonable(dict(parameters or {})), "loss": _jsonable(loss.to_dict()),
            "cost": cost, "time": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        }
        con = _connect(self.path, self._shown)
        try:
            # IMMEDIATE takes the write lock before reading: no other charge can interleave
            # between the check below and the insert.
            _execute(con, "BEGIN IMMEDIATE", self._shown)
            entries = self._read(con)
            if request_id is not None:
                for old in entries:
                    if old["request_id"] == request_id:
                        con.rollback()
                        if old["cost"] != cost:
                            raise PrivaggInputError(
                                f"request_id {request_id!r} was already charged {fmt(old['cost'])}, not {fmt(cost)}. "
                                "Fix: give a new request a new request_id."
                            )
                        return old
            error = refusal(statistic, cost, _sum(entries, self.totals), self.totals)
            if error is not None:
                con.rollback()
                raise error
            previous = self._last_digest(con)
            entry["seq"] = len(entries) + 1
            digest = _entry_digest(previous, entry)
            con.execute(
                f"INSERT INTO entries ({', '.join(_ENTRY_FIELDS)}, digest) VALUES ({', '.join('?' * (len(_ENTRY_FIELDS) + 1))})",
                [*(_column(entry, f) for f in _ENTRY_FIELDS), digest],
            )
            con.commit()
        except _DB_ERRORS as exc:
            raise _sqlite_error(exc, self._shown) from None
        finally:
            con.close()
        entry = {f: entry[f] for f in _ENTRY_FIELDS}
        if self.export_path is not None:
            self.export_json(self.export_path)
        return entry

    def _last_digest(self, con: sqlite3.Connection) -> str:
        row = con.execute("SELECT digest FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None:
            return row[0]
        return dict(con.execute("SELECT key, value FROM meta").fetchall())["digest"]

    # -- export ------------------------------------------------------------------------
    def to_dict(self, entries: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The ledger as a JSON-able dict: format, version, budget totals, entries."""
        entries = self.entries() if entries is None else entries
        return {"format": EXPORT_FORMAT, "version": SCHEMA_VERSION, "ledger": self.path.name,
                "budget": dict(self.totals), "spent": _sum(entries, self.totals), "entries": _jsonable(entries)}

    def export_json(self, path: str | Path, *, entries: list[dict[str, Any]] | None = None) -> Path:
        """Write the ledger to ``path`` as JSON, atomically (for reading; it is never read back as the ledger)."""
        return atomic_write_text(path, json.dumps(self.to_dict(entries), indent=2))

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r}, totals {fmt(self.totals)})"


# --------------------------------------------------------------------------- SQLite plumbing
#: What SQLite raises on a damaged file (its own messages may quote bytes that are not UTF-8).
_DB_ERRORS = (sqlite3.Error, UnicodeDecodeError)


def _connect(db: Path, shown: str) -> sqlite3.Connection:
    try:
        con = sqlite3.connect(db, timeout=BUSY_TIMEOUT_S, isolation_level=None)  # transactions begun explicitly
        con.text_factory = _text
        con.execute("PRAGMA busy_timeout = %d" % int(BUSY_TIMEOUT_S * 1000))
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal":
            con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = FULL")
        return con
    except _DB_ERRORS as exc:
        raise _sqlite_error(exc, shown) from None


def _text(raw: bytes) -> str:
    """Decode TEXT from the file; bytes that are not UTF-8 mean damage, reported as an SQLite error."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise sqlite3.DataError("database disk image is malformed (text that is not UTF-8)") from None


def _execute(con: sqlite3.Connection, sql: str, shown: str) -> None:
    try:
        con.execute(sql)
    except _DB_ERRORS as exc:
        raise _sqlite_error(exc, shown) from None


def _sqlite_error(exc: BaseException, shown: str) -> PrivaggInputError:
    text = "text that is not UTF-8 (malformed)" if isinstance(exc, UnicodeDecodeError) else " ".join(str(exc).split())
    if isinstance(exc, (sqlite3.DatabaseError, UnicodeDecodeError)) and ("not a database" in text or "malformed" in text):
        return PrivaggInputError(
            f"ledger {shown!r} is not a privagg ledger or is damaged (SQLite: {text}); privagg does not repair a "
            "ledger. Fix: restore it from a backup, or name a new ledger file."
        )
    if "locked" in text or "busy" in text:
        return PrivaggInputError(
            f"ledger {shown!r} stayed locked by another process for {BUSY_TIMEOUT_S:g} s (SQLite: {text}). "
            "Fix: retry when the other release has finished."
        )
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return PrivaggInputError(
            f"ledger {shown!r} cannot be written (SQLite: {text}). Fix: make the ledger and its folder writable."
        )
    return PrivaggInputError(f"ledger {shown!r}: SQLite failed ({text}). Fix: check the file, or use a new ledger.")


def _totals_from_meta(meta: Mapping[str, str], shown: str) -> dict[str, float]:
    try:
        totals = json.loads(meta["totals"])
        return check_totals(totals, f"ledger {shown!r}")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, PrivaggInputError):
            raise
        raise PrivaggInputError(
            f"ledger {shown!r} is not a privagg ledger (no budget totals). Fix: name a ledger written by privagg, "
            "or a new path."
        ) from None


def _initialise(con: sqlite3.Connection, legacy: Path | None,
                imported: tuple[dict[str, float], list[dict[str, Any]]] | None,
                totals: dict[str, float] | None, shown: str) -> dict[str, float]:
    """Create the schema (importing the ``legacy`` JSON ledger, already validated as ``imported``, or recording
    ``totals``) unless another process already did; return the recorded totals."""
    try:
        con.execute("BEGIN IMMEDIATE")
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" in tables:
            meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
            con.rollback()
            if meta.get("version") != str(SCHEMA_VERSION):
                raise PrivaggInputError(
                    f"ledger {shown!r} has version {meta.get('version')!r}, this privagg reads version {SCHEMA_VERSION}. "
                    "Fix: use the privagg that wrote it."
                )
            return _totals_from_meta(meta, shown)
        if tables:
            con.rollback()
            raise PrivaggInputError(
                f"ledger {shown!r} is an SQLite database but not a privagg ledger. Fix: name a new ledger file."
            )
        entries: list[dict[str, Any]] = []
        if imported is not None:
            totals, entries = imported
        if totals is None:
            con.rollback()
            raise PrivaggInputError(
                f"ledger {shown!r} is empty (its creation was interrupted), so its total is unknown. "
                "Fix: create it with its total (Budget(epsilon=..., ledger=path), or --budget-epsilon)."
            )
        # One statement at a time: executescript() would commit the open transaction.
        for statement in _SCHEMA.split(";\n"):
            if statement.strip():
                con.execute(statement)
        meta = {"version": str(SCHEMA_VERSION), "totals": _canonical(totals),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        meta["digest"] = _meta_digest(meta)
        con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", list(meta.items()))
        previous = meta["digest"]
        for seq, old in enumerate(entries, start=1):
            entry = {"seq": seq, "request_id": None, "client": None, "dataset": None, "window": None, **old}
            previous = _entry_digest(previous, entry)
            con.execute(
                f"INSERT INTO entries ({', '.join(_ENTRY_FIELDS)}, digest) VALUES ({', '.join('?' * (len(_ENTRY_FIELDS) + 1))})",
                [*(_column(entry, f) for f in _ENTRY_FIELDS), previous],
            )
        if legacy is not None:
            # Keep the original bytes before the export replaces the JSON file.
            shutil.copyfile(legacy, legacy.with_name(legacy.name + ".migrated"))
        con.commit()
        return totals
    except _DB_ERRORS as exc:
        if con.in_transaction:
            con.rollback()
        raise _sqlite_error(exc, shown) from None
    except BaseException:
        if con.in_transaction:
            con.rollback()
        raise


__all__ = ["Ledger", "check_ledger_path", "cost_of", "ledger_paths", "refusal", "UNITS"]
