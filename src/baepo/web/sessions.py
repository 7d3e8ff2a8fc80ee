"""Dashboard login sessions: an opaque random cookie, its SHA-256 in the store, a CSRF token.

The cookie holds 256 random bits; the store keeps only their SHA-256 (as for API tokens), so
a copy of the database logs nobody in. Sessions live in the store, not in memory, so every
server of a shared PostgreSQL store honours them and a restart keeps people logged in. Each
session has a synchronizer CSRF token that every form of the dashboard sends back and that
``check_csrf`` compares in constant time; posts from another site's page are also refused by
their ``Origin`` (``same_origin``), the login form included. ``LoginThrottle`` slows down
password guessing. A one-time login link (``start_link``, ``redeem_link``) starts a session
of the local user of a server without auth. Callers: ``web.pages``, ``web.login``,
``api.server`` (the link).
"""

from __future__ import annotations

import hmac
import secrets
from collections import deque
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from fastapi import Request, Response

from baepo.api.auth import SESSION_COOKIE, hash_secret
from baepo.core.model import WebSession
from baepo.core.ports import Store

LIFETIME = timedelta(hours=12)
"""How long a login lasts."""
LINK = "link"
"""The kind of a one-time login link's record (``start_link``): not a session by itself."""
LINK_LIFETIME = timedelta(minutes=5)
"""How long a login link may wait to be opened."""


def start(
    store: Store, kind: str, subject: str, now: datetime | None = None
) -> tuple[WebSession, str]:
    """A new session for ``kind``/``subject`` (see ``core.model.WebSession``), saved; and
    the cookie's value, which is never stored."""
    now = now or datetime.now(UTC)
    cookie = secrets.token_urlsafe(32)
    session = WebSession(
        id_hash=hash_secret(cookie),
        kind=kind,
        subject=subject,
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + LIFETIME,
    )
    store.add_session(session)
    return session, cookie


def start_link(store: Store, now: datetime | None = None) -> str:
    """A one-time code that starts a local user's session (``redeem_link``), for a login
    link of a server without auth; saved by its SHA-256 like a session, so every replica of
    a shared store honours it."""
    now = now or datetime.now(UTC)
    code = secrets.token_urlsafe(32)
    record = WebSession(
        id_hash=hash_secret(code),
        kind=LINK,
        subject="local",
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + LINK_LIFETIME,
    )
    store.add_session(record)
    return code


def redeem_link(store: Store, code: str, now: datetime | None = None) -> bool:
    """Whether ``code`` is a login link's, unused and in time; it is used up either way."""
    now = now or datetime.now(UTC)
    found = store.get_session(hash_secret(code)) if code else None
    if found is None or found.kind != LINK:
        return False
    return store.delete_session(found.id_hash) and found.expires_at > now


def set_cookie(response: Response, request: Request, cookie: str) -> None:
    """``HttpOnly``, ``SameSite=Strict``, and ``Secure`` when the request came over https."""
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip


def check_csrf(session: WebSession | None, sent: str) -> bool:
    """Whether ``sent`` is ``session``'s CSRF token."""
    return session is not None and bool(sent) and hmac.compare_digest(sent, session.csrf)


def same_origin(request: Request) -> bool:
    """Whether a browser's post comes from a page of this server. Browsers send ``Origin``
    with every post; a request without one (not a browser) is judged by its CSRF token."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


class LoginThrottle:
    """Failed logins per key (a username, a client address) over a sliding window: past
    ``limit`` of them a key is refused until the oldest ages out. One per server, in memory."""

    def __init__(self, limit: int, window: timedelta = timedelta(minutes=5)) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, deque[datetime]] = {}

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        found = self._failures.setdefault(key, deque())
        while found and now - found[0] > self.window:
            found.popleft()
        return found

    def blocked(self, key: str, now: datetime) -> bool:
        return len(self._recent(key, now)) >= self.limit

    def failed(self, key: str, now: datetime) -> None:
        self._recent(key, now).append(now)
