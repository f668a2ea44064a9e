"""The service's database: clients, budgets, charges, stored answers and the log (SQLAlchemy 2).

One database holds everything the service must remember, so that the budget
check, the charge and its log entry are one transaction; its tables and
their append-only triggers are described in :mod:`privagg.service.schema`.
A charge locks its dataset's row, so charges to one dataset are serialised
(``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE`` on PostgreSQL).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from privagg.errors import BudgetExceededError, PrivaggInputError

#: Names of clients and datasets: letters, digits, ``_ . -``; nothing a shell, SQL or HTML would read.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ROLES = ("client", "admin")
#: Windows start at multiples of their length after this Monday, 00:00 UTC (so weeks start on Mondays).
WINDOW_EPOCH = datetime(1970, 1, 5, tzinfo=timezone.utc)
#: Relative float tolerance of a charge that exactly exhausts a budget (as in privagg.dp.ledger).
TOLERANCE = 1e-12
TOKEN_PREFIX = "pa_"
from privagg.service.schema import (  # noqa: F401 - the tables are part of the store's vocabulary
    APPEND_ONLY, LOG_FIELDS, LOG_GENESIS, LOG_LOCK, _append_only_triggers, _check_schema, _engine, charges, clients,
    consent, datasets, idempotency, log, metadata, releases,
)


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime) -> str:
    return t.isoformat(timespec="microseconds")


def canonical(value: Any) -> str:
    """JSON with sorted keys and no spaces: the form digests are taken of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


def digest(value: Any) -> str:
    return hashlib.sha256((value if isinstance(value, str) else canonical(value)).encode()).hexdigest()


def hash_token(token: str) -> str:
    """What is stored of a token: its SHA-256 (tokens are 256-bit random, so no slow hash is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise PrivaggInputError(
            f"{what} {name!r} is not a valid name. Fix: use 1-64 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit."
        )
    return name


def parse_window(text: Any) -> timedelta:
    """A budget window: ``1h`` .. ``366D`` (pandas offsets such as ``1D``, ``7D``, ``12h``)."""
    import pandas as pd

    try:
        td = pd.Timedelta(str(text)).to_pytimedelta()
    except (ValueError, TypeError):
        td = None
    if td is None or not timedelta(hours=1) <= td <= timedelta(days=366):
        raise PrivaggInputError(
            f"window {text!r} is not a duration from 1h to 366D. Fix: e.g. --window 1D (daily) or --window 7D (weekly)."
        )
    return td


def window_start(window: str, at: datetime) -> datetime:
    """Start of the budget window containing ``at`` (windows renew at fixed times, weeks on Mondays 00:00 UTC)."""
    length = parse_window(window)
    n = (at - WINDOW_EPOCH) // length
    return WINDOW_EPOCH + n * length


def database_url(db: str | Path) -> str:
    """A SQLAlchemy URL: given as one, or a file path for SQLite."""
    text = str(db)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).resolve()}"


@dataclass(frozen=True)
class Client:
    """An authenticated client (or administrator) of the service."""

    id: int
    name: str
    role: str
    epsilon: float
    delta: float
    window: str
    datasets: tuple[str, ...] | None  # None: every dataset
    created: str
    revoked: str | None
    rate_limit: int | None = None  # requests per minute; None: the server's default

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_use(self, dataset: str) -> bool:
        return self.datasets is None or dataset in self.datasets

    def public(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "epsilon": self.epsilon, "delta": self.delta,
                "window": self.window, "datasets": "*" if self.datasets is None else list(self.datasets),
                "rate_limit": self.rate_limit, "created": self.created, "revoked": self.revoked}


def _client(row: Any) -> Client:
    ds = None if row.datasets == "*" else tuple(json.loads(row.datasets))
    return Client(row.id, row.name, row.role, row.epsilon, row.delta, row.window, ds, row.created, row.revoked,
                  row.rate_limit)


class ChargeExists(Exception):
    """The request was charged already (its answer may still be in the making)."""

    def __init__(self, seq: int) -> None:
        super().__init__(seq)
        self.seq = seq


class Store:
    """The service database (see the module docstring).

    Parameters
    ----------
    db
        A SQLAlchemy URL (``sqlite:///service.sqlite``, ``postgresql+psycopg://...``) or a file path (SQLite).
    """

    def __init__(self, db: str | Path) -> None:
        self.url = database_url(db)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            path = self.url.split("///", 1)[-1]
            if path and path != ":memory:" and not Path(path).parent.is_dir():
                raise PrivaggInputError(
                    f"database {path!r}: folder {str(Path(path).parent)!r} does not exist. Fix: create it or name "
                    "another file."
                )
        try:
            self.engine: Engine = _engine(self.url)
            # Reads need no write lock: on SQLite they use deferred transactions (WAL: they see the last commit).
            self.reader: Engine = _engine(self.url, immediate=False) if self.is_sqlite else self.engine
            with self.engine.begin() as conn:
                metadata.create_all(conn)
                _check_schema(conn, self.shown)
                _append_only_triggers(conn, self.is_sqlite)
        except sa.exc.ArgumentError:
            raise PrivaggInputError(
                f"database {db!r} is not a database URL. Fix: pass a file path (SQLite) or e.g. "
                "postgresql+psycopg://user@host/dbname."
            ) from None
        except sa.exc.OperationalError as exc:
            raise PrivaggInputError(
                f"database {self.shown!r} cannot be opened ({_one_line(exc.orig)}). Fix: check the path or URL, "
                "that the server runs, and the permissions."
            ) from None
        except ModuleNotFoundError as exc:
            raise PrivaggInputError(
                f"database {self.shown!r} needs the Python module {exc.name!r}. Fix: pip install 'privagg[postgres]'."
            ) from None

    @property
    def shown(self) -> str:
        """The URL without a password."""
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", self.url)

    def close(self) -> None:
        self.engine.dispose()
        self.reader.dispose()

    # -- clients ------------------------------------------------------------------------------
    def add_client(self, name: str, *, epsilon: float = 0.0, delta: float = 0.0, window: str = "7D",
                   datasets: Iterable[str] | None = None, role: str = "client",
                   rate_limit: int | None = None) -> tuple[Client, str]:
        """Create a client; return it and its token (shown once: only its hash is stored).

        ``epsilon`` and ``delta`` are its budget on each dataset per ``window`` (renewing); ``datasets`` the
        ones it may query (``None``: all); ``rate_limit`` its requests per minute (``None``: the server's).
        """
        if rate_limit is not None and (isinstance(rate_limit, bool) or not isinstance(rate_limit, int)
                                       or not 1 <= rate_limit <= 1_000_000):
            raise PrivaggInputError(f"rate_limit={rate_limit!r} must be a whole number of requests per minute from 1 "
                                    "to 1,000,000. Fix: e.g. --rate-limit 60.")
        check_name(name, "client name")
        if role not in ROLES:
            raise PrivaggInputError(f"role {role!r} is unknown. Fix: use 'client' or 'admin'.")
        for what, value in (("epsilon", epsilon), ("delta", delta)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise PrivaggInputError(f"{what}={value!r} must be a finite number >= 0. Fix: e.g. --{what} 1.")
        if delta >= 1:
            raise PrivaggInputError(f"delta={delta!r} must be < 1. Fix: e.g. --delta 1e-9.")
        if role == "client" and epsilon <= 0:
            raise PrivaggInputError("a client needs a budget. Fix: pass --epsilon E (per window), e.g. --epsilon 1.")
        parse_window(window)
        ds = None if datasets is None else sorted({check_name(d, "dataset") for d in datasets})
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = {"name": name, "role": role, "token_hash": hash_token(token), "epsilon": float(epsilon),
               "delta": float(delta), "window": str(window), "datasets": "*" if ds is None else json.dumps(ds),
               "created": iso(now_utc()), "revoked": None, "rate_limit": rate_limit}
        with self.engine.begin() as conn:
            if conn.execute(sa.select(clients.c.id).where(clients.c.name == name)).first() is not None:
                raise PrivaggInputError(f"client {name!r} exists already. Fix: choose another name, or revoke it first "
                                        "and add it under a new name.")
            conn.execute(clients.insert().values(**row))
            self._log(conn, client=name, action="client_add",
                      parameters={k: row[k] for k in ("role", "epsilon", "delta", "window", "datasets", "rate_limit")},
                      outcome=f"{role} {name!r} created")
            created = conn.execute(sa.select(clients).where(clients.c.name == name)).one()
        return _client(created), token

    def list_clients(self) -> list[Client]:
        with self.reader.connect() as conn:
            out = [_client(r) for r in conn.execute(sa.select(clients).order_by(clients.c.id))]
            conn.rollback()
        return out

    def get_client(self, name: str) -> Client | None:
        with self.reader.connect() as conn:
            row = conn.execute(sa.select(clients).where(clients.c.name == name)).first()
            conn.rollback()
        return None if row is None else _client(row)

    def revoke_client(self, name: str, *, by: str | None = None) -> Client:
        """Revoke ``name``'s token from now on (its record and releases stay)."""
        check_name(name, "client name")
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(clients).where(clients.c.name == name)).first()
            if row is None:
                raise PrivaggInputError(f"there is no client {name!r}. Fix: see `privagg clients list`.")
            if row.revoked is None:
                conn.execute(clients.update().where(clients.c.id == row.id).values(revoked=iso(now_utc())))
                self._log(conn, client=by or name, action="client_revoke", parameters={"client": name},
                          outcome=f"token of {name!r} revoked")
            row = conn.execute(sa.select(clients).where(clients.c.id == row.id)).one()
        return _client(row)

    def authenticate(self, token: str) -> Client | None | str:
        """The client holding ``token``; ``None`` if no client does; ``"revoked"`` if its token was revoked."""
        with self.reader.connect() as conn:
            row = conn.execute(sa.select(clients).where(clients.c.token_hash == hash_token(token))).first()
            conn.rollback()
        if row is None:
            return None
        if row.revoked is not None:
            return "revoked"
        return _client(row)

    # -- datasets and consent --------------------------------------------------------------------
    def register_dataset(self, name: str, cap_epsilon: float, cap_delta: float) -> None:
        """Record ``name`` and its global cap (a changed cap is logged)."""
        check_name(name, "dataset")
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(datasets).where(datasets.c.name == name)).first()
            if row is None:
                conn.execute(datasets.insert().values(name=name, cap_epsilon=cap_epsilon, cap_delta=cap_delta,
                                                      registered=iso(now_utc())))
            elif (row.cap_epsilon, row.cap_delta) != (cap_epsilon, cap_delta):
                conn.execute(datasets.update().where(datasets.c.name == name)
                             .values(cap_epsilon=cap_epsilon, cap_delta=cap_delta))
            else:
                return
            self._log(conn, action="dataset_cap", dataset=name,
                      parameters={"cap_epsilon": cap_epsilon, "cap_delta": cap_delta},
                      outcome=f"global cap of {name!r}: epsilon={cap_epsilon:g}, delta={cap_delta:g}")

    def set_consent(self, dataset: str, user_ids: Iterable[int], opt_in: bool, *, by: str) -> int:
        ids = sorted({int(u) for u in user_ids})
        with self.engine.begin() as conn:
            t = iso(now_utc())
            if ids:
                conn.execute(consent.insert(), [{"dataset": dataset, "user_id": u, "opt_in": bool(opt_in), "time": t}
                                                for u in ids])
            self._log(conn, client=by, action="consent", dataset=dataset,
                      parameters={"subscribers": len(ids), "opt_in": bool(opt_in)},
                      outcome=f"{len(ids)} subscriber(s) {'opted in' if opt_in else 'opted out'}")
        return len(ids)

    def consent_changes(self, dataset: str) -> dict[int, bool]:
        """Latest opt-in per subscriber changed through the service."""
        with self.reader.connect() as conn:
            rows = conn.execute(sa.select(consent.c.user_id, consent.c.opt_in).where(consent.c.dataset == dataset)
                                .order_by(consent.c.seq)).all()
            conn.rollback()
        return {int(u): bool(o) for u, o in rows}

    # -- budget -----------------------------------------------------------------------------------------
    def _spent(self, conn: Connection, dataset: str, client_id: int | None = None,
               since: str | None = None) -> tuple[float, float]:
        q = sa.select(sa.func.coalesce(sa.func.sum(charges.c.epsilon), 0.0),
                      sa.func.coalesce(sa.func.sum(charges.c.delta), 0.0)).where(charges.c.dataset == dataset)
        if client_id is not None:
            q = q.where(charges.c.client_id == client_id)
        if since is not None:
            q = q.where(charges.c.window_start == since)
        eps, delta = conn.execute(q).one()
        return float(eps), float(delta)

    def budget(self, client: Client, dataset: str, at: datetime | None = None) -> dict[str, Any]:
        """``client``'s budget on ``dataset`` in the window containing ``at`` (default now)."""
        at = at or now_utc()
        start = window_start(client.window, at)
        with self.reader.connect() as conn:
            eps, delta = self._spent(conn, dataset, client.id, iso(start))
            conn.rollback()
        return {"dataset": dataset, "window": client.window, "window_start": iso(start),
                "window_end": iso(start + parse_window(client.window)),
                "total": {"epsilon": client.epsilon, "delta": client.delta},
                "spent": {"epsilon": eps, "delta": delta},
                "remaining": {"epsilon": max(0.0, client.epsilon - eps), "delta": max(0.0, client.delta - delta)}}

    def caps(self) -> list[dict[str, Any]]:
        """Every dataset's global cap, spent and remaining (all clients, all time)."""
        out = []
        with self.reader.connect() as conn:
            for row in conn.execute(sa.select(datasets).order_by(datasets.c.name)).all():
                eps, delta = self._spent(conn, row.name)
                out.append({"dataset": row.name, "cap": {"epsilon": row.cap_epsilon, "delta": row.cap_delta},
                            "spent": {"epsilon": eps, "delta": delta},
                            "remaining": {"epsilon": max(0.0, row.cap_epsilon - eps),
                                          "delta": max(0.0, row.cap_delta - delta)}})
            conn.rollback()
        return out

    def precheck(self, client: Client, dataset: str, statistic: str, cost: Mapping[str, float]) -> None:
        """Raise :class:`BudgetExceededError` if ``cost`` does not fit now (no lock: :meth:`charge` checks again)."""
        with self.reader.connect() as conn:
            self._check(conn, client, dataset, statistic, cost, now_utc())
            conn.rollback()

    def _check(self, conn: Connection, client: Client, dataset: str, statistic: str, cost: Mapping[str, float],
               at: datetime) -> None:
        ds = conn.execute(sa.select(datasets).where(datasets.c.name == dataset).with_for_update()).first()
        if ds is None:
            raise PrivaggInputError(f"dataset {dataset!r} is not in the catalogue. Fix: see GET /v1/datasets.")
        start = window_start(client.window, at)
        spent = self._spent(conn, dataset, client.id, iso(start))
        end = iso(start + parse_window(client.window))
        for unit, total, used in (("epsilon", client.epsilon, spent[0]), ("delta", client.delta, spent[1])):
            remaining = max(0.0, total - used)
            if not cost[unit] <= remaining + TOLERANCE * max(total, 1e-300):
                raise BudgetExceededError(
                    f"{statistic} refused: it would spend {unit}={cost[unit]:.6g} on dataset {dataset!r}, but client "
                    f"{client.name!r} has {remaining:.6g} of {total:.6g} left in this {client.window} window (until "
                    f"{end}). Nothing was computed or drawn. Fix: lower epsilon/rho (or delta), or wait for the next window."
                )
        cap_used = self._spent(conn, dataset)
        for unit, total, used in (("epsilon", ds.cap_epsilon, cap_used[0]), ("delta", ds.cap_delta, cap_used[1])):
            remaining = max(0.0, total - used)
            if not cost[unit] <= remaining + TOLERANCE * max(total, 1e-300):
                raise BudgetExceededError(
                    f"{statistic} refused: dataset {dataset!r} has reached its global cap for all clients "
                    f"({unit}: {remaining:.6g} left, {cost[unit]:.6g} asked). Nothing was computed or drawn. "
                    "Fix: ask the operator; the cap bounds what all clients together may learn."
                )

    def charge(self, client: Client, dataset: str, request_hash: str, statistic: str, cost: Mapping[str, float],
               parameters: Mapping[str, Any]) -> int:
        """Check every budget of the request and charge it, in one transaction; return the charge's sequence number.

        Checked together, under the dataset's lock: the client is not revoked, its budget in the current window,
        the dataset's global cap. A request already charged raises :class:`ChargeExists` and charges nothing.
        The charge and its log entry are written together or not at all.
        """
        at = now_utc()
        with self.engine.begin() as conn:
            # The lock first: on PostgreSQL the dataset row (FOR UPDATE), on SQLite the whole database
            # (BEGIN IMMEDIATE, see _engine): nothing else charges this dataset until we commit.
            conn.execute(sa.select(datasets.c.name).where(datasets.c.name == dataset).with_for_update()).first()
            row = conn.execute(sa.select(clients).where(clients.c.id == client.id)).one()
            if row.revoked is not None:
                raise PermissionError("token revoked")
            self._check(conn, _client(row), dataset, statistic, cost, at)
            old = conn.execute(sa.select(charges.c.seq).where(charges.c.client_id == client.id,
                                                              charges.c.request_hash == request_hash)).first()
            if old is not None:
                raise ChargeExists(old.seq)
            seq = conn.execute(charges.insert().values(
                time=iso(at), client_id=client.id, dataset=dataset, window_start=iso(window_start(client.window, at)),
                request_hash=request_hash, statistic=statistic, epsilon=float(cost["epsilon"]),
                delta=float(cost["delta"])).returning(charges.c.seq)).scalar_one()
            self._log(conn, client=client.name, action="charge", dataset=dataset, statistic=statistic,
                      parameters=parameters, cost=cost, charge_seq=seq, outcome="charged; release being computed")
        return int(seq)

    def find_charge(self, client: Client, request_hash: str) -> int | None:
        with self.reader.connect() as conn:
            row = conn.execute(sa.select(charges.c.seq).where(charges.c.client_id == client.id,
                                                              charges.c.request_hash == request_hash)).first()
            conn.rollback()
        return None if row is None else int(row.seq)

    # -- answers ------------------------------------------------------------------------------------------
    def store_answer(self, client: Client, charge_seq: int, request_hash: str, answer: dict[str, Any],
                     summary: Mapping[str, Any]) -> str:
        """Keep the answer of a charged request (before it is sent) and log what was returned; return its id."""
        release_id = answer["release_id"]
        text = canonical(answer)
        with self.engine.begin() as conn:
            conn.execute(releases.insert().values(id=release_id, charge_seq=charge_seq, client_id=client.id,
                                                  request_hash=request_hash, created=answer["created"], answer=text,
                                                  answer_digest=digest(text)))
            self._log(conn, client=client.name, action="release", dataset=answer["dataset"],
                      statistic=answer["statistic"], parameters=answer["request"], cost=answer["cost"],
                      charge_seq=charge_seq, release_id=release_id, answer_digest=digest(text),
                      outcome=str(summary.get("outcome", "answered")))
        return release_id

    def answer_for(self, client: Client, request_hash: str) -> dict[str, Any] | None:
        with self.reader.connect() as conn:
            row = conn.execute(sa.select(releases.c.answer).where(releases.c.client_id == client.id,
                                                                  releases.c.request_hash == request_hash)).first()
            conn.rollback()
        return None if row is None else json.loads(row.answer)

    def release(self, client: Client, release_id: str) -> dict[str, Any] | None:
        """``client``'s own release ``release_id`` (``None`` if it has none by that id, whoever else may)."""
        with self.reader.connect() as conn:
            row = conn.execute(sa.select(releases.c.answer).where(releases.c.id == str(release_id),
                                                                  releases.c.client_id == client.id)).first()
            conn.rollback()
        return None if row is None else json.loads(row.answer)

    def list_releases(self, client: Client) -> list[dict[str, Any]]:
        with self.reader.connect() as conn:
            rows = conn.execute(sa.select(releases.c.answer).where(releases.c.client_id == client.id)
                                .order_by(releases.c.charge_seq)).all()
            conn.rollback()
        out = []
        for row in rows:
            a = json.loads(row.answer)
            out.append({k: a[k] for k in ("release_id", "created", "dataset", "function", "statistic", "cost",
                                          "request", "n_keys")})
        return out

    def idempotent(self, client: Client, key: str, request_hash: str) -> bool:
        """Remember ``key`` for ``request_hash``; ``False`` if the key was used before for another request."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(idempotency.c.request_hash).where(idempotency.c.client_id == client.id,
                                                                           idempotency.c.key == key)).first()
            if row is not None:
                return row.request_hash == request_hash
            conn.execute(idempotency.insert().values(client_id=client.id, key=key, request_hash=request_hash,
                                                     created=iso(now_utc())))
        return True

    # -- the log ------------------------------------------------------------------------------------------
    def _log(self, conn: Connection, *, action: str, outcome: str, client: str | None = None,
             dataset: str | None = None, statistic: str | None = None, parameters: Mapping[str, Any] | None = None,
             cost: Mapping[str, float] | None = None, charge_seq: int | None = None, release_id: str | None = None,
             answer_digest: str | None = None) -> None:
        cost = cost or {"epsilon": 0.0, "delta": 0.0}
        if not self.is_sqlite:  # on SQLite the IMMEDIATE transaction already serialises every writer
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOG_LOCK})
        previous = conn.execute(sa.select(log.c.digest).order_by(log.c.seq.desc()).limit(1)).scalar()
        row = {"time": iso(now_utc()), "client": client, "action": action, "dataset": dataset, "statistic": statistic,
               "parameters": canonical(dict(parameters or {})), "cost_epsilon": float(cost["epsilon"]),
               "cost_delta": float(cost["delta"]), "charge_seq": charge_seq, "release_id": release_id,
               "outcome": _one_line(outcome)[:2000], "answer_digest": answer_digest}
        conn.execute(log.insert().values(**row, digest=_log_digest(previous or LOG_GENESIS, row)))

    def record(self, **fields: Any) -> None:
        """Append one entry to the log (see :meth:`_log` for the fields)."""
        with self.engine.begin() as conn:
            self._log(conn, **fields)

    def log_entries(self, client: str | None = None) -> list[dict[str, Any]]:
        with self.reader.connect() as conn:
            q = sa.select(log).order_by(log.c.seq)
            if client is not None:
                q = q.where(log.c.client == client)
            rows = [dict(r._mapping) for r in conn.execute(q)]
            conn.rollback()
        for r in rows:
            r["parameters"] = json.loads(r["parameters"])
        return rows

    def charge_entries(self) -> list[dict[str, Any]]:
        with self.reader.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(
                sa.select(charges, clients.c.name.label("client")).join(clients, clients.c.id == charges.c.client_id)
                .order_by(charges.c.seq))]
            answered = {r.charge_seq: r.id for r in conn.execute(sa.select(releases.c.charge_seq, releases.c.id))}
            conn.rollback()
        for r in rows:
            r["release_id"] = answered.get(r["seq"])
        return rows

    def consistency(self) -> dict[str, Any]:
        """Whether the ledger (charges), the stored answers and the log agree.

        Every charge has exactly one ``charge`` log entry with its cost; every stored answer has its charge and
        one ``release`` log entry; no log entry names a charge that does not exist. Charges without an answer
        are requests interrupted after the charge (a crash or a failed computation): spent, never returned.
        """
        entries = self.charge_entries()
        logs = self.log_entries()
        by_seq = {e["seq"]: e for e in entries}
        charged = [r for r in logs if r["action"] == "charge"]
        released = [r for r in logs if r["action"] == "release"]
        problems = []
        previous = LOG_GENESIS
        for r in logs:
            entry = {**r, "parameters": canonical(r["parameters"])}
            if _log_digest(previous, entry) != r["digest"]:
                problems.append(f"log entry {r['seq']} does not match its digest (it, or an entry before it, was "
                                "changed or removed)")
                break
            previous = r["digest"]
        seen: dict[int, int] = {}
        for r in charged:
            seen[r["charge_seq"]] = seen.get(r["charge_seq"], 0) + 1
            e = by_seq.get(r["charge_seq"])
            if e is None:
                problems.append(f"log entry {r['seq']} names charge {r['charge_seq']}, which the ledger lacks")
            elif (e["epsilon"], e["delta"]) != (r["cost_epsilon"], r["cost_delta"]):
                problems.append(f"log entry {r['seq']} records another cost than charge {e['seq']}")
        for e in entries:
            if seen.get(e["seq"], 0) != 1:
                problems.append(f"charge {e['seq']} has {seen.get(e['seq'], 0)} log entries, not 1")
        answered = {e["release_id"]: e for e in entries if e["release_id"]}
        logged = {r["release_id"] for r in released}
        for rid in answered:
            if rid not in logged:
                problems.append(f"release {rid} is stored but not logged")
        for rid in logged:
            if rid not in answered:
                problems.append(f"release {rid} is logged but has no charge")
        return {"charges": len(entries), "answered": len(answered),
                "interrupted": sum(1 for e in entries if not e["release_id"]), "log_entries": len(logs),
                "problems": problems, "consistent": not problems}


def _log_digest(previous: str, row: Mapping[str, Any]) -> str:
    return digest([previous, *(row[f] for f in LOG_FIELDS)])


def new_release_id() -> str:
    return uuid.uuid4().hex


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())
