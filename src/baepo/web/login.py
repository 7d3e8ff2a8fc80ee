"""The dashboard's login and logout under ``/ui``: a username and password, an API token, or
on a server without auth the local credential or a one-time login link.

A login from another site's page is refused (``Origin``); failed logins are throttled per
username and per client address. An unknown username and a wrong password get the same
answer, the same status and the same work (the password KDF runs against a dummy hash), and
the throttle counts failures for any name, so nothing tells which names exist. A successful
login starts a session (``web.sessions``) and sets its cookie. ``POST
/api/v1/dashboard-links`` (the local credential only) makes the one-time link that ``baepo
ui`` prints; ``GET /ui/login/link`` uses it up. Callers: ``web.pages`` includes ``router``,
``api.app`` includes ``links``.
"""

from __future__ import annotations

import asyncio
import hmac
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from baepo.api import auth, local_credential, passwords
from baepo.errors import ForbiddenError
from baepo.web import sessions, view

router = APIRouter()
links = APIRouter(prefix="/api/v1", tags=["server"])


def _safe_next(target: str) -> str:
    """A path on this server to go to after login (never another site)."""
    if target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui/"


@router.get("/login", response_model=None)
def login_page(request: Request, next: str = "/ui/") -> Response:
    visit = view.Visit(None, None)
    return view.render(request, visit, "login.html", {"next": _safe_next(next), "failed": False})


PER_USER = sessions.LoginThrottle(limit=5)
PER_ADDRESS = sessions.LoginThrottle(limit=30)


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    """Log in with a username and password, or with an API token; 401 when neither works,
    429 after too many failures for the name or from the address (five minutes)."""
    if not sessions.same_origin(request):
        return view.error(request, view.Visit(None, None), 403, "a login from another site's page")
    form = await view.form(request)
    rt = view.runtime(request)
    target = _safe_next(form.get("next", "/ui/"))
    username, password = form.get("username", "").strip(), form.get("password", "")
    token_text = form.get("token", "").strip()
    now = datetime.now(UTC)
    keys = [f"address {request.client.host if request.client else '-'}"]
    keys += [f"user {username.lower()}"] if username and not token_text else []
    if PER_ADDRESS.blocked(keys[0], now) or any(PER_USER.blocked(k, now) for k in keys[1:]):
        context = {"next": target, "failed": False, "throttled": True, "username": username}
        return view.render(request, view.Visit(None, None), "login.html", context, status=429)
    kind, subject = "", ""
    if token_text.startswith(local_credential.PREFIX):
        if auth.local_token_matches(rt, token_text):
            kind, subject = "local", "local"
    elif token_text:
        parts = auth.split_token(token_text)
        token = await asyncio.to_thread(rt.store.get_token, parts[0]) if parts else None
        if (
            parts is not None
            and token is not None
            and hmac.compare_digest(token.secret_hash, auth.hash_secret(parts[1]))
            and auth.token_in_force(token, datetime.now(UTC))
        ):
            kind, subject = "token", token.id
    elif username:
        user = await asyncio.to_thread(rt.store.get_user, username)
        stored = user.password_hash if user is not None and not user.disabled else None
        if await asyncio.to_thread(passwords.verify_password, password, stored):
            kind, subject = "user", username
    if not kind:
        PER_ADDRESS.failed(keys[0], now)
        for key in keys[1:]:
            PER_USER.failed(key, now)
        visit = view.Visit(None, None)
        context = {"next": target, "failed": True, "username": username}
        return view.render(request, visit, "login.html", context, status=401)
    _, cookie = await asyncio.to_thread(sessions.start, rt.store, kind, subject)
    response = RedirectResponse(target, status_code=303)
    sessions.set_cookie(response, request, cookie)
    return response


@router.post("/logout", response_model=None)
async def logout(request: Request) -> Response:
    form = await view.form(request)
    found = auth.session_of(request)
    if not sessions.same_origin(request) or not sessions.check_csrf(found, form.get("csrf", "")):
        return view.error(
            request, view.Visit(None, None), 403, "the form's CSRF token is missing or wrong"
        )
    assert found is not None
    await asyncio.to_thread(view.runtime(request).store.delete_session, found.id_hash)
    response = RedirectResponse("/ui/login", status_code=303)
    sessions.clear_cookie(response, request)
    return response


@router.get("/login/link", response_model=None)
async def login_link(request: Request, code: str = "", next: str = "/ui/") -> Response:
    """Start the local user's session with a one-time code from ``baepo ui`` (a server
    without auth only); 401 and the login page when the code is used, late or unknown."""
    rt = view.runtime(request)
    if rt.auth_required or not await asyncio.to_thread(sessions.redeem_link, rt.store, code):
        context = {"next": "/ui/", "failed": False, "link_refused": True}
        return view.render(request, view.Visit(None, None), "login.html", context, status=401)
    _, cookie = await asyncio.to_thread(sessions.start, rt.store, "local", "local")
    response = RedirectResponse(_safe_next(next), status_code=303)
    sessions.set_cookie(response, request, cookie)
    return response


@links.post("/dashboard-links", status_code=201)
async def create_link(request: Request) -> dict[str, str]:
    """A one-time link that opens the dashboard as the local user (a server without auth,
    called with its local credential): it works once, within five minutes."""
    caller = await asyncio.to_thread(auth.principal, request)
    rt = view.runtime(request)
    if rt.auth_required or not caller.local:
        raise ForbiddenError(
            "login links are for the local user of a server without auth",
            hint="log in at /ui/login with a username and password or an API token",
        )
    code = await asyncio.to_thread(sessions.start_link, rt.store)
    expires = datetime.now(UTC) + sessions.LINK_LIFETIME
    base = str(request.base_url).rstrip("/")
    return {"url": f"{base}/ui/login/link?code={code}", "expires_at": expires.isoformat()}
