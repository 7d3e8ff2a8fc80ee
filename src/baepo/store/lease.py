"""Leader leases: which of the servers sharing one database drives the rollouts.

``SqlStore.lease`` returns the lease of its kind of database; the controller's elector
(``controller.leader``) campaigns for it and renews it. Three kinds:

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) held on a dedicated
  connection. The lock lives exactly as long as that session: a leader that crashes or loses
  its connection loses the lock the moment PostgreSQL closes the session. Once it holds the
  lock the session sets ``idle_session_timeout`` (PostgreSQL 14 and later) to the lease's
  ``ttl``, so a leader that stops renewing (hung, or cut off without a TCP reset) is
  disconnected by the server after ``ttl`` seconds; TCP keepalives notice a vanished client
  too. The holder's identity travels as the session's ``application_name``, which every
  replica can read in ``pg_stat_activity``.
- SQLite file: an exclusive ``flock`` on ``<database>.<name>.leader``, which holds the holder's
  identity. The lock dies with the process.
- In-memory SQLite: one process only, always held.

Callers: ``SqlStore.lease`` (and through it ``controller.leader.Elector``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from pathlib import Path
from typing import IO

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from baepo.core.ports import Lease
from baepo.store import engine as store_engine

log = logging.getLogger(__name__)

# PostgreSQL keeps application_name to NAMEDATALEN - 1 bytes.
MAX_IDENTITY = 63
# A dead leader's peer is noticed after idle + interval * count seconds without an answer.
KEEPALIVE = {
    "tcp_keepalives_idle": "2",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "3",
}


def open_lease(engine: Engine, name: str, identity: str, *, ttl: float) -> Lease:
    """The lease called ``name`` in the database behind ``engine``, for ``identity``."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        return AdvisoryLease(engine, name, identity, ttl=ttl)
    if store_engine.is_memory(url) or not url.database:
        return SoleLease(identity)
    return FileLease(Path(f"{url.database}.{name}.leader"), identity)


def _ascii(identity: str) -> str:
    return identity.encode("ascii", "replace").decode()[:MAX_IDENTITY]


class SoleLease:
    """An in-memory database has one process: it always leads."""

    kind = "sole (in-memory database)"

    def __init__(self, identity: str) -> None:
        self.identity = identity

    def acquire(self) -> bool:
        return True

    def renew(self) -> bool:
        return True

    def holder(self) -> str | None:
        return self.identity

    def release(self) -> None:
        return None


class FileLease:
    """An exclusive ``flock`` on a file beside the SQLite database, naming its holder."""

    kind = "file lock"

    def __init__(self, path: Path, identity: str) -> None:
        self.path = path
        self.identity = identity
        self._handle: IO[str] | None = None

    def acquire(self) -> bool:
        if self._handle is not None:
            return True
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(self.identity)
        handle.flush()
        self._handle = handle
        return True

    def renew(self) -> bool:
        return self._handle is not None

    def holder(self) -> str | None:
        if self._handle is not None:
            return self.identity
        try:
            with self.path.open("r") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return handle.read() or None
                return None  # nobody holds it
        except FileNotFoundError:
            return None

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.truncate(0)
            self._handle.close()
            self._handle = None


class AdvisoryLease:
    """A PostgreSQL session advisory lock on a connection kept for it alone.

    ``acquire`` opens the session when there is none and tries the lock without waiting;
    ``renew`` checks that the session still answers (a session lock is held until the
    session ends, so an answering session still holds it). Any database error drops the
    session, and with it the lock.
    """

    kind = "postgresql advisory lock"

    def __init__(self, engine: Engine, name: str, identity: str, *, ttl: float) -> None:
        self.engine = engine
        self.identity = _ascii(identity)
        self.ttl = ttl
        self.key = store_engine.advisory_key("baepo-leader", name)
        self._connection: Connection | None = None
        self._held = False

    def acquire(self) -> bool:
        if self._held:
            return self.renew()
        fresh = self._connection is None
        try:
            held = self._try_lock()
        except sa_exc.SQLAlchemyError as exc:
            self._drop()
            if fresh:
                log.info("leader lease: campaign failed: %s", _first_line(exc))
                return False
            try:  # the kept session had died: once more on a new one
                held = self._try_lock()
            except sa_exc.SQLAlchemyError as again:
                log.info("leader lease: campaign failed: %s", _first_line(again))
                self._drop()
                return False
        self._held = held
        return held

    def _try_lock(self) -> bool:
        connection = self._session()
        held = bool(
            connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            ).scalar()
        )
        version = connection.dialect.server_version_info or (0,)
        if held and version >= (14,):
            # Only the holder's session is ended when silent; a follower's may idle.
            self._set(connection, "idle_session_timeout", str(max(int(self.ttl * 1000), 1)))
        return held

    def renew(self) -> bool:
        if not self._held or self._connection is None:
            return False
        try:
            self._connection.execute(sa.text("SELECT 1"))
        except sa_exc.SQLAlchemyError as exc:
            log.warning("leader lease: renewal failed: %s", _first_line(exc))
            self._drop()
            return False
        return True

    def holder(self) -> str | None:
        unsigned = self.key & 0xFFFF_FFFF_FFFF_FFFF
        query = sa.text(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid::bigint = :high AND l.objid::bigint = :low "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        try:
            with self.engine.connect() as connection:
                found = connection.execute(
                    query, {"high": unsigned >> 32, "low": unsigned & 0xFFFF_FFFF}
                ).scalar()
        except sa_exc.SQLAlchemyError as exc:
            log.info("leader lease: cannot read the holder: %s", _first_line(exc))
            return None
        return None if found is None else str(found)

    def release(self) -> None:
        if self._connection is not None and self._held:
            with contextlib.suppress(sa_exc.SQLAlchemyError):
                self._connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key}
                )
        self._drop()

    def _session(self) -> Connection:
        if self._connection is not None:
            return self._connection
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            settings = {"application_name": self.identity, **KEEPALIVE}
            settings["statement_timeout"] = str(max(int(self.ttl * 1000), 1))
            for setting, value in settings.items():
                self._set(connection, setting, value)
        except sa_exc.SQLAlchemyError:
            connection.invalidate()
            connection.close()
            raise
        self._connection = connection
        return connection

    @staticmethod
    def _set(connection: Connection, setting: str, value: str) -> None:
        connection.execute(
            sa.text("SELECT set_config(:name, :value, false)"), {"name": setting, "value": value}
        )

    def _drop(self) -> None:
        """Forget the session; it is never given back to the pool with these settings."""
        self._held = False
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(sa_exc.SQLAlchemyError):
                connection.invalidate()
                connection.close()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
