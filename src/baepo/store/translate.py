"""Turns SQLAlchemy and driver exceptions into baepo errors at the store's boundary.

Callers: ``store.repository`` and ``store.migrate`` wrap every database call in ``errors``.
Messages name the database by its URL without the password, and carry only the driver's
first line: never the SQL parameters, which may hold a revision's resolved config.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from baepo.errors import BaepoError, ExternalError, StateError, TransientError

RETRY_DELAY_S = 1.0


def driver_message(exc: BaseException) -> str:
    """The first line of the driver's message for ``exc`` (no SQL, no parameters)."""
    # A StatementError's own text holds the SQL and its parameters: use the cause only.
    origin: BaseException = exc
    if isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        origin = exc.orig
    text = str(origin).strip().splitlines()
    return text[0] if text else type(origin).__name__


def translate(exc: sa_exc.SQLAlchemyError, url: URL, action: str) -> BaepoError:
    """The baepo error for ``exc`` raised while trying to ``action`` the database ``url``."""
    detail = driver_message(exc)
    if url.password:
        detail = detail.replace(str(url.password), "***")
    where = url.render_as_string(hide_password=True)
    if isinstance(exc, sa_exc.IntegrityError):
        return StateError(f"cannot {action} ({where}): conflicting change ({detail})")
    if isinstance(exc, sa_exc.OperationalError) and _full(detail):
        place = url.database if url.get_backend_name() == "sqlite" and url.database else where
        return TransientError(
            f"cannot {action} ({where}): {detail}",
            delay=RETRY_DELAY_S,
            hint=f"free space on the disk that holds {place}; nothing was written",
        )
    if isinstance(exc, sa_exc.OperationalError):
        return TransientError(
            f"cannot {action} ({where}): {detail}",
            delay=RETRY_DELAY_S,
            hint="check that the database is reachable and not locked by another program",
        )
    return ExternalError(f"cannot {action} ({where}): {detail}")


def _full(detail: str) -> bool:
    """A full disk, as SQLite (SQLITE_FULL) and PostgreSQL (ENOSPC, 53100) word it."""
    lowered = detail.lower()
    return "disk is full" in lowered or "no space left" in lowered or "disk full" in lowered


@contextlib.contextmanager
def errors(url: URL, action: str) -> Iterator[None]:
    """Re-raise SQLAlchemy exceptions inside the block as baepo errors (``from`` the original)."""
    try:
        yield
    except sa_exc.SQLAlchemyError as exc:
        raise translate(exc, url, action) from exc
