"""The tables of the service's database, its engine, and the triggers that keep the records append-only.

``clients``
    name, role (``client`` or ``admin``), the SHA-256 of the token (never the
    token), the per-window budget (``epsilon``, ``delta``, ``window``), the
    datasets it may query, revocation time.
``datasets``
    the catalogue's datasets and their global caps (the loss if every client
    colludes). A charge locks its dataset's row, so charges to one dataset
    are serialised (``BEGIN IMMEDIATE`` on SQLite, ``SELECT ... FOR UPDATE``
    on PostgreSQL).
``charges``
    the service's ledger: one row per charged release (client, dataset,
    window, request digest, cost). Append-only (triggers refuse ``UPDATE``
    and ``DELETE``).
``releases``
    the answer of each charged request, keyed by client and request digest, so
    that a repeated identical request returns it at no cost. Append-only.
``idempotency``
    a client's idempotency keys and the request each was first used for.
``consent``
    opt-in changes per dataset and subscriber, latest wins, read at each release.
``log``
    append-only record of who asked what, when, at what cost, and what was
    returned (the release's record and the digest of the answer, never
    individuals' values). Entries are chained: each stores the SHA-256 of its
    fields and of the entry before it, so an edit or a removal shows in
    :meth:`Store.consistency` (a chain, not a signature: protect the database).

SQLite (a file path or ``sqlite:///path``) is the default; any SQLAlchemy URL
of PostgreSQL (``postgresql+psycopg://user@host/db``) works too.
"""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from privagg.errors import PrivaggInputError

metadata = sa.MetaData()

clients = sa.Table(
    "clients", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("epsilon", sa.Float, nullable=False),
    sa.Column("delta", sa.Float, nullable=False),
    sa.Column("window", sa.String(16), nullable=False),
    sa.Column("datasets", sa.Text, nullable=False),  # JSON list, or "*" for every dataset
    sa.Column("rate_limit", sa.Integer, nullable=True),  # requests per minute; None: the server's default
    sa.Column("created", sa.String(40), nullable=False),
    sa.Column("revoked", sa.String(40), nullable=True),
)

datasets = sa.Table(
    "datasets", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("cap_epsilon", sa.Float, nullable=False),
    sa.Column("cap_delta", sa.Float, nullable=False),
    sa.Column("registered", sa.String(40), nullable=False),
)

charges = sa.Table(
    "charges", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.String(40), nullable=False),
    sa.Column("client_id", sa.Integer, sa.ForeignKey("clients.id"), nullable=False),
    sa.Column("dataset", sa.String(64), sa.ForeignKey("datasets.name"), nullable=False),
    sa.Column("window_start", sa.String(40), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("statistic", sa.String(40), nullable=False),
    sa.Column("epsilon", sa.Float, nullable=False),
    sa.Column("delta", sa.Float, nullable=False),
    sa.UniqueConstraint("client_id", "request_hash", name="one_charge_per_request"),
)

releases = sa.Table(
    "releases", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("charge_seq", sa.Integer, sa.ForeignKey("charges.seq"), nullable=False, unique=True),
    sa.Column("client_id", sa.Integer, sa.ForeignKey("clients.id"), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("created", sa.String(40), nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("answer_digest", sa.String(64), nullable=False),
    sa.UniqueConstraint("client_id", "request_hash", name="one_answer_per_request"),
)

idempotency = sa.Table(
    "idempotency", metadata,
    sa.Column("client_id", sa.Integer, sa.ForeignKey("clients.id"), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("created", sa.String(40), nullable=False),
)

consent = sa.Table(
    "consent", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset", sa.String(64), nullable=False, index=True),
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("opt_in", sa.Boolean, nullable=False),
    sa.Column("time", sa.String(40), nullable=False),
)

log = sa.Table(
    "log", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.String(40), nullable=False),
    sa.Column("client", sa.String(64), nullable=True),
    sa.Column("action", sa.String(24), nullable=False),
    sa.Column("dataset", sa.String(64), nullable=True),
    sa.Column("statistic", sa.String(40), nullable=True),
    sa.Column("parameters", sa.Text, nullable=False),
    sa.Column("cost_epsilon", sa.Float, nullable=False),
    sa.Column("cost_delta", sa.Float, nullable=False),
    sa.Column("charge_seq", sa.Integer, nullable=True),
    sa.Column("release_id", sa.String(32), nullable=True),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("answer_digest", sa.String(64), nullable=True),
    sa.Column("digest", sa.String(64), nullable=False),
)
#: The fields of a log entry its digest covers, with the digest of the entry before it.
LOG_FIELDS = ("time", "client", "action", "dataset", "statistic", "parameters", "cost_epsilon", "cost_delta",
              "charge_seq", "release_id", "outcome", "answer_digest")
LOG_GENESIS = hashlib.sha256(b"privagg-service-log").hexdigest()
#: PostgreSQL advisory lock serialising appends to the log (its chain needs the last digest).
LOG_LOCK = 0x70726976

APPEND_ONLY = ("charges", "releases", "idempotency", "consent", "log")


def _engine(url: str, immediate: bool = True) -> Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_con: Any, _record: Any) -> None:
            # Transactions are begun by the "begin" hook below, not by the driver.
            dbapi_con.isolation_level = None
            cur = dbapi_con.cursor()
            cur.execute("PRAGMA busy_timeout = 60000")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = FULL")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # IMMEDIATE takes the write lock before the first read: no charge can interleave between
            # another's check and insert. The reader engine begins deferred transactions instead.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _check_schema(conn: Connection, shown: str) -> None:
    """Every table has the columns this privagg writes (a database of another version is refused, not altered)."""
    inspector = sa.inspect(conn)
    for table in metadata.sorted_tables:
        have = {c["name"] for c in inspector.get_columns(table.name)}
        missing = [c.name for c in table.columns if c.name not in have]
        if missing:
            raise PrivaggInputError(
                f"database {shown!r}: table {table.name!r} lacks column(s) {missing}, so it was not written by this "
                "version of privagg; nothing was changed. Fix: use the privagg that wrote it, or a new database."
            )


def _append_only_triggers(conn: Connection, is_sqlite: bool) -> None:
    for table in APPEND_ONLY:
        if is_sqlite:
            for op in ("UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
        else:
            conn.execute(sa.text(  # text(): its '%' is escaped for the driver's placeholder style
                "CREATE OR REPLACE FUNCTION privagg_append_only() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
            ))
            exists = conn.exec_driver_sql(
                f"SELECT 1 FROM pg_trigger WHERE tgname = '{table}_append_only'").first()
            if exists is None:
                conn.exec_driver_sql(
                    f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION privagg_append_only()"
                )
