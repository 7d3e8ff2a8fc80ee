"""Database URLs and engines: the one place that knows SQLite and PostgreSQL apart.

Callers: ``store.open_store`` and ``store.migrate`` build their engine here; the repository
uses ``write_engine`` for transactions that write. Only two kinds of URL are accepted:
``sqlite:///path`` (the embedded default) and ``postgresql+psycopg://...`` (``postgresql://``
and ``postgres://`` are read as psycopg too).

SQLite is set up for several threads and several processes on one file: WAL journal, a busy
timeout, foreign keys on, and transactions that write start with ``BEGIN IMMEDIATE`` so two
writers queue on the lock instead of failing when one upgrades a read lock.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, pool
from sqlalchemy.engine import URL, Connection, Engine, make_url

from baepo.errors import ConfigError, ExternalError

BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite connection waits for another writer before giving up."""

CONNECT_TIMEOUT_S = 10
"""How long a PostgreSQL connection attempt may take."""

WRITE_OPTION = "baepo_write"
"""Execution option marking a connection whose transaction will write (BEGIN IMMEDIATE)."""


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of the SQLite database file at ``path`` (made absolute)."""
    return URL.create("sqlite", database=str(Path(path).absolute())).render_as_string()


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite ``url``; None for PostgreSQL or an in-memory database."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or is_memory(parsed) or not parsed.database:
        return None
    return Path(parsed.database)


def redact(url: str | URL) -> str:
    """``url`` as text with any password replaced by ``***``; safe for messages and logs."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (sa.exc.ArgumentError, ValueError):
        return "<unparsable database URL>"
    return parsed.render_as_string(hide_password=True)


def parse_url(url: str) -> URL:
    """Parse and normalise ``url``; raise ConfigError for anything but SQLite or PostgreSQL."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise ConfigError(
            f"invalid database URL {redact(url)!r}",
            hint="use sqlite:///path/to/baepo.db or postgresql+psycopg://user@host/db",
        ) from exc
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        return parsed
    raise ConfigError(
        f"unsupported database {parsed.drivername!r} in {redact(parsed)!r}",
        hint="baepo stores its state in SQLite (sqlite:///...) or PostgreSQL "
        "(postgresql+psycopg://...)",
    )


def is_memory(url: URL) -> bool:
    """True for an in-memory SQLite database (one connection, for single-threaded tests)."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def create_engine(url: str) -> Engine:
    """An engine for ``url``, configured for use from several threads; connects lazily."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
    )


def write_engine(engine: Engine) -> Engine:
    """A view of ``engine`` (same pool) whose transactions take the write lock up front."""
    return engine.execution_options(**{WRITE_OPTION: True})


def advisory_key(*parts: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` naming ``parts``."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock(connection: Connection, *parts: str) -> None:
    """Serialise writers of ``parts`` until the end of the current transaction.

    PostgreSQL takes a transaction-scoped advisory lock. SQLite needs nothing: a writing
    transaction already holds the database's single write lock.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(*parts)}
        )


def _sqlite_engine(url: URL) -> Engine:
    memory = is_memory(url)
    if not memory and url.database:
        folder = Path(url.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExternalError(
                f"cannot open the database {redact(url)}: cannot create {folder}: "
                f"{exc.strerror or exc}"
            ) from exc
    options: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30}}
    if memory:
        options["poolclass"] = pool.StaticPool
    else:
        options.update(pool_size=5, max_overflow=10, pool_timeout=BUSY_TIMEOUT_MS / 1000)
    engine = sa.create_engine(url, **options)
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event, not the sqlite3 module, start transactions.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        # What a write replaces or deletes is overwritten with zeros, not left in free pages:
        # a value sealed in place (migration 0007) is then gone from the file's bytes.
        cursor.execute("PRAGMA secure_delete = ON")
        _wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _wal(cursor: Any) -> None:
    """Switch to WAL. SQLite does not call the busy handler for this switch, so while another
    process holds a lock on a new database (creating its schema) it fails at once with
    "database is locked": retry until the busy timeout is over."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _begin_sqlite(connection: Connection) -> None:
    mode = "IMMEDIATE" if connection.get_execution_options().get(WRITE_OPTION) else "DEFERRED"
    connection.exec_driver_sql(f"BEGIN {mode}")
