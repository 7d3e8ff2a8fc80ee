"""The store: SQLAlchemy models, repositories and Alembic migrations. Only here is SQL.

Callers: the server and CLI open a store with ``open_store(url)`` and hand it to the
controller and the API as a ``core.ports.Store``; the ``baepo db`` commands use
``schema_revision``, ``head_revision`` and ``migrate``. SQLAlchemy is used synchronously
(see docs/adr/0001-sync-sqlalchemy.md): async callers go through ``asyncio.to_thread``.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from baepo.errors import BaepoError, StateError
from baepo.store import engine as _engine
from baepo.store import migrate as _migrate
from baepo.store.engine import redact, sqlite_file, sqlite_url
from baepo.store.repository import SqlStore

__all__ = [
    "SqlStore",
    "head_revision",
    "migrate",
    "open_store",
    "redact",
    "schema_revision",
    "sqlite_file",
    "sqlite_url",
]


def open_store(url: str, *, upgrade: bool = True, seal: _migrate.Seal | None = None) -> SqlStore:
    """Connect to ``url``, bring its schema to head and return the store.

    ``url`` is ``sqlite:///path`` (see ``sqlite_url``; the folder is created) or
    ``postgresql+psycopg://user:password@host/db``. Safe when several processes open the same
    new database at once. With ``upgrade=False`` an out-of-date schema is a StateError instead.
    Raises ConfigError for an unusable URL and ExternalError (password hidden) when the
    database cannot be opened. ``seal`` seals the plaintext secret-looking ``run.env`` values
    of revisions made before schema 0007 (see ``store.migrate.upgrade``).
    """
    engine = _engine.create_engine(url)
    try:
        if upgrade:
            _migrate.upgrade(engine, seal)
        else:
            _require_head(engine)
    except BaepoError:
        engine.dispose()
        raise
    return SqlStore(engine)


def schema_revision(url: str) -> str | None:
    """The schema revision of the database at ``url``; None when it has no baepo tables."""
    engine = _engine.create_engine(url)
    try:
        return _migrate.schema_revision(engine)
    finally:
        engine.dispose()


def head_revision() -> str:
    """The schema revision this version of baepo needs."""
    return _migrate.head_revision()


def migrate(url: str) -> str:
    """Bring the database at ``url`` to ``head_revision()``. Idempotent; returns the head."""
    engine = _engine.create_engine(url)
    try:
        return _migrate.upgrade(engine)
    finally:
        engine.dispose()


def _require_head(engine: Engine) -> None:
    current = _migrate.schema_revision(engine)
    head = _migrate.head_revision()
    if current != head:
        raise StateError(
            f"the database {redact(engine.url)} has schema revision {current or 'none'}, "
            f"baepo needs {head}",
            hint="run: baepo db upgrade",
        )
