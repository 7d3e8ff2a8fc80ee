"""The transactions every part of ``SqlStore`` shares: one session per method call.

``Transactions`` holds the engine and its two session factories (reads, and writes that start
with ``BEGIN IMMEDIATE`` on SQLite); every SQLAlchemy exception leaving a transaction becomes a
baepo error. Callers: the record classes ``SqlStore`` is made of (``store.repository``,
``store.analysis_records``, ``store.access_records``, ``store.pipeline_records``).
"""

from __future__ import annotations

import contextlib
import typing
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session, sessionmaker

from baepo.errors import ConflictError
from baepo.store import engine as store_engine
from baepo.store import translate


class Transactions:
    """The engine and the session factories of one store."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(store_engine.write_engine(engine), expire_on_commit=False)

    def _reading(self, action: str) -> contextlib.AbstractContextManager[Session]:
        return _transaction(self._read, self._engine.url, action)

    def _writing(self, action: str) -> contextlib.AbstractContextManager[Session]:
        return _transaction(self._write, self._engine.url, action)

    @staticmethod
    def _flush_unique(session: Session) -> bool:
        """Flush pending inserts; False when a unique constraint refused them."""
        try:
            with session.begin_nested():
                session.flush()
        except sa_exc.IntegrityError:
            return False
        return True


@contextlib.contextmanager
def _transaction(factory: sessionmaker[Session], url: URL, action: str) -> Iterator[Session]:
    """One session in one transaction: committed on success, rolled back on any error."""
    with translate.errors(url, action), factory() as session, session.begin():
        yield session


def rowcount(result: sa.Result[Any]) -> int:
    """How many rows an UPDATE or DELETE touched."""
    return typing.cast("sa.CursorResult[Any]", result).rowcount


def conflict(name: str, expected: int, found: int) -> ConflictError:
    """The error of a compare-and-set write that lost to a concurrent one."""
    return ConflictError(
        f"{name} was changed concurrently: saved with version {expected}, stored version is "
        f"{found}",
        hint="read it again and retry",
    )
