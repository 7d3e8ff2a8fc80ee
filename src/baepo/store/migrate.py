"""Schema migrations, run programmatically with the Alembic scripts shipped in the package.

Callers: ``store.open_store`` (brings a database to head before use) and the ``baepo db``
commands (``schema_revision``, ``head_revision``, ``migrate``). No ``alembic.ini`` is needed.

Two processes opening the same new database at once must not collide: the upgrade runs in one
transaction that first takes a lock (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on
PostgreSQL), then reads the current revision, so the second process waits and then finds
nothing left to do.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine

from baepo.errors import StateError
from baepo.store import engine as store_engine
from baepo.store import translate

SCRIPT_LOCATION = "baepo.store:migrations"

# Alembic keeps the running migration in module globals (``alembic.context``): one at a time.
_RUNNING = threading.Lock()


Seal = Callable[[str], str]
"""Seals one secret-looking value (``secrets.sealed.seal`` with the server's keyring): how
migration 0007 seals the values older revisions kept in plaintext."""


def alembic_config(connection: Connection | None = None, seal: Seal | None = None) -> Config:
    """An Alembic config for the shipped scripts, bound to ``connection`` if given."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    if seal is not None:
        config.attributes["seal"] = seal
    return config


@functools.cache
def scripts() -> ScriptDirectory:
    """The migration scripts shipped with baepo."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The schema revision this version of baepo needs."""
    head = scripts().get_current_head()
    if head is None:  # pragma: no cover - the package always ships revisions
        raise StateError("no schema migrations are installed with baepo")
    return head


def current_revision(connection: Connection) -> str | None:
    """The schema revision recorded in the database; None for an empty database."""
    return MigrationContext.configure(connection).get_current_revision()


def schema_revision(engine: Engine) -> str | None:
    """The database's schema revision (None when empty). Raises ExternalError if unreachable."""
    with (
        translate.errors(engine.url, "read the schema revision"),
        engine.connect() as connection,
    ):
        return current_revision(connection)


def upgrade(engine: Engine, seal: Seal | None = None) -> str:
    """Bring the database to ``head_revision()``; idempotent; returns the head.

    ``seal`` seals the secret-looking ``run.env`` values of revisions stored before 0007;
    without it such a revision is a StateError (nothing is changed).

    Raises StateError when the database has a revision this baepo does not know (a newer
    baepo migrated it), ExternalError when it cannot be reached or the migration fails.
    """
    head = head_revision()
    url = store_engine.redact(engine.url)
    with translate.errors(engine.url, "open the database"), engine.connect() as connection:
        current = current_revision(connection)
    if current == head:
        return head
    _check_known(current, url)
    with (
        translate.errors(engine.url, "migrate the schema"),
        _RUNNING,
        store_engine.write_engine(engine).connect() as connection,
        connection.begin(),
    ):
        store_engine.lock(connection, "baepo", "migrate")
        _check_known(current_revision(connection), url)
        try:
            command.upgrade(alembic_config(connection, seal), "head")
        except CommandError as exc:
            raise StateError(f"cannot migrate {url}: {exc}") from exc
    if engine.url.get_backend_name() == "sqlite":
        # Move the migrated pages into the file now, and empty the WAL that held them.
        with engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return head


def _check_known(revision: str | None, url: str) -> None:
    if revision is None:
        return
    try:
        scripts().get_revision(revision)
    except CommandError as exc:
        raise StateError(
            f"database {url} has schema revision {revision!r}, unknown to this baepo "
            f"(which knows up to {head_revision()!r})",
            hint="upgrade baepo, or use a database made by this version",
        ) from exc
