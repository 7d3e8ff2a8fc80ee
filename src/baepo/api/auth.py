"""Who is asking, and may they: API tokens, roles per environment, and the audit log.

A token is ``bp_<id>_<secret>``. The store keeps the id, the SHA-256 of the secret (the secret
is 256 random bits, so a fast hash is the right one, as for GitHub's tokens), a role and the
environments it applies to. ``Authorization: Bearer <token>`` identifies the caller.

Roles, each allowed what the ones before it are (``core.model.ROLES``):

- ``viewer``: read apps, revisions, rollouts, events, analysis and the audit log;
- ``deployer``: deploy, undo, down, promote, pause, resume, abort and retry;
- ``approver``: approve releases that need it;
- ``admin``: manage tokens.

A server started without ``--auth required`` listens on loopback only and accepts its local
credential (``api.local_credential``: ``Bearer bpl_…``, from a file only the server's OS user
can read) as the local user, an admin of every environment; an API token is checked as
always, and a request with neither is refused (401). The name recorded for an action is
always the credential's (``Principal.name``): the local user's ``user@host``, the token's
name or the dashboard user's name, never a name the request claims. Every request that
changes something is appended to the audit log with its result, refused ones included.

The dashboard's session cookie (``web.sessions``) identifies a caller too, when there is no
``Authorization`` header: its random id is looked up by SHA-256 in the store. A request that
changes something with only the cookie must carry the session's CSRF token in the
``X-CSRF-Token`` header (the dashboard's own forms send it as a field and are checked there).

Callers: ``api.routes`` (``require``), ``api.app`` (the audit middleware), the token routes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from fastapi import Request

from baepo.api import local_credential
from baepo.api.runtime import Runtime
from baepo.core.model import ROLES, ApiToken, AuditRecord, WebSession
from baepo.core.ports import Store
from baepo.errors import AuthError, ForbiddenError

TOKEN_PREFIX = "bp_"  # noqa: S105 (a prefix, not a secret)
LAST_USED_EVERY = timedelta(minutes=1)
"""How stale a token's ``last_used_at`` may get before a request writes it again."""

ALL_ENVS = "*"
SESSION_COOKIE = "baepo_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """The caller: a token's holder, or the local user of a server without auth."""

    name: str
    role: str
    envs: tuple[str, ...]
    token_id: str | None = None
    user: str | None = None  # a dashboard user logged in with a password

    @property
    def local(self) -> bool:
        return self.token_id is None and self.user is None

    @property
    def actor(self) -> str:
        """The name recorded for an action: the local user's ``user@host``, the token's
        name, or the dashboard user's name."""
        return self.name

    def can(self, role: str, env: str | None = None) -> bool:
        """Whether this caller holds ``role`` (or a higher one) in ``env`` (None: any)."""
        if ROLES.index(self.role) < ROLES.index(role):
            return False
        return env is None or ALL_ENVS in self.envs or env in self.envs


def local_principal(owner: str) -> Principal:
    """The local user of a server without auth (``owner`` is ``user@host``): an admin of
    every environment."""
    return Principal(name=owner, role="admin", envs=(ALL_ENVS,))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token(
    name: str,
    role: str,
    envs: list[str],
    created_by: str,
    *,
    expires_in: float | None = None,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token record and its text, which is shown once and never stored."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    now = now or datetime.now(UTC)
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    record = ApiToken(
        id=token_id,
        name=name,
        role=role,
        envs=list(envs),
        secret_hash=hash_secret(secret),
        created_at=now,
        created_by=created_by,
        expires_at=None if expires_in is None else now + timedelta(seconds=expires_in),
    )
    return record, f"{TOKEN_PREFIX}{token_id}_{secret}"


def split_token(text: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a token's text, or None when it is not one."""
    if not text.startswith(TOKEN_PREFIX):
        return None
    token_id, sep, secret = text[len(TOKEN_PREFIX) :].partition("_")
    if not sep or not token_id or not secret:
        return None
    return token_id, secret


def principal(request: Request) -> Principal:
    """The caller of ``request`` (cached on it). AuthError when a token is required and
    missing, or given and not valid."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    runtime = request.app.state.runtime
    header = request.headers.get("authorization", "")
    web = None if header else session_of(request)
    if web is not None:
        found = session_principal(request, web)
        sent = request.headers.get(CSRF_HEADER, "")
        if request.method not in SAFE_METHODS and not hmac.compare_digest(sent, web.csrf):
            raise ForbiddenError(
                "a request with the dashboard's session cookie needs its CSRF token",
                hint=f"send it in the {CSRF_HEADER} header",
            )
    elif not header:
        if runtime.auth_required:
            raise AuthError(
                "this server requires an API token",
                hint="set BAEPO_TOKEN to a token from baepo token create",
            )
        raise AuthError(
            "this server requires its local credential or an API token",
            hint="run baepo as the user who started the server (the CLI sends the token in "
            f"the state directory's {local_credential.TOKEN_FILE}); for the dashboard, open "
            "the link baepo ui prints",
        )
    else:
        found = _from_header(runtime, header)
    request.state.principal = found
    return found


def local_token_matches(runtime: Runtime, text: str) -> bool:
    """Whether ``text`` is the local credential of a server without auth."""
    expected = runtime.local_token
    return (
        not runtime.auth_required
        and expected is not None
        and hmac.compare_digest(text.encode(), expected.encode())
    )


def _from_header(runtime: Runtime, header: str) -> Principal:
    scheme, _, text = header.partition(" ")
    if scheme.lower() != "bearer" or not text.strip():
        raise AuthError("the Authorization header must be `Bearer <token>`")
    text = text.strip()
    if text.startswith(local_credential.PREFIX):
        if local_token_matches(runtime, text):
            return local_principal(runtime.owner)
        raise AuthError(
            "the local credential is not valid here",
            hint="a server with --auth required takes API tokens only; otherwise the token "
            f"changed: the CLI reads it again from {local_credential.TOKEN_FILE}",
        )
    store: Store = runtime.store
    parts = split_token(text)
    refused = AuthError(
        "the API token is not valid (unknown, revoked or expired)",
        hint="ask an admin for a new one: baepo token create",
    )
    if parts is None:
        raise refused
    token_id, secret = parts
    token = store.get_token(token_id)
    if token is None or not hmac.compare_digest(token.secret_hash, hash_secret(secret)):
        raise refused
    now = datetime.now(UTC)
    if not token_in_force(token, now):
        raise refused
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_EVERY:
        store.save_token(replace(token, last_used_at=now))
    return Principal(name=token.name, role=token.role, envs=tuple(token.envs), token_id=token.id)


def token_in_force(token: ApiToken, now: datetime) -> bool:
    """Neither revoked nor expired at ``now``."""
    return token.revoked_at is None and (token.expires_at is None or token.expires_at > now)


def session_of(request: Request) -> WebSession | None:
    """The dashboard session named by the request's cookie, if it exists and has not
    expired (cached on the request)."""
    if hasattr(request.state, "web_session"):
        cached: WebSession | None = request.state.web_session
        return cached
    found = None
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if cookie:
        store: Store = request.app.state.runtime.store
        found = store.get_session(hash_secret(cookie))
        if found is not None and found.expires_at <= datetime.now(UTC):
            found = None
    request.state.web_session = found
    return found


def session_principal(request: Request, web: WebSession) -> Principal:
    """Who a dashboard session is now: the user's or token's current role, so a disabled
    user or a revoked token ends their sessions. AuthError when they no longer may."""
    runtime = request.app.state.runtime
    store: Store = runtime.store
    ended = AuthError("the dashboard session has ended", hint="log in again")
    if web.kind == "local":
        if runtime.auth_required:
            raise ended
        found = local_principal(runtime.owner)
    elif web.kind == "user":
        user = store.get_user(web.subject)
        if user is None or user.disabled:
            raise ended
        found = Principal(
            name=user.username, role=user.role, envs=tuple(user.envs), user=user.username
        )
    elif web.kind == "token":
        token = store.get_token(web.subject)
        if token is None or not token_in_force(token, datetime.now(UTC)):
            raise ended
        found = Principal(
            name=token.name, role=token.role, envs=tuple(token.envs), token_id=token.id
        )
    else:  # a one-time login link (``web.sessions.LINK``) is no session
        raise ended
    request.state.principal = found
    return found


def require(request: Request, role: str, env: str | None, action: str = "") -> Principal:
    """The caller, if they hold ``role`` in ``env``; ForbiddenError naming what is missing.

    Also notes the environment on the request, for the audit log.
    """
    request.state.audit_env = env
    caller = principal(request)
    if not caller.can(role, env):
        where = f" in {env}" if env else ""
        scope = ", ".join(caller.envs)
        raise ForbiddenError(
            f"{caller.name} is {caller.role} in {scope}; {action or 'this'}{where} needs "
            f"{role} or above",
            hint="ask an admin for a token with that role: baepo token create",
        )
    return caller


def require_admin_of(request: Request, envs: list[str], action: str) -> None:
    """Admin in each of ``envs`` (for ``*``, of every environment), as managing a token or a
    user that covers them needs; the environments go to the audit log."""
    for env in envs:
        require(request, "admin", env, action)
    request.state.audit_env = ",".join(envs)


def audit_record(request: Request, status: int, action: str) -> AuditRecord:
    """The audit entry of a finished request that changes something."""
    caller = getattr(request.state, "principal", None)
    client = request.client
    return AuditRecord(
        at=datetime.now(UTC),
        actor=caller.name if isinstance(caller, Principal) else "anonymous",
        role=caller.role if isinstance(caller, Principal) else "-",
        action=action,
        source=client.host if client else "-",
        status=status,
        app=request.path_params.get("app") or getattr(request.state, "audit_app", None),
        env=getattr(request.state, "audit_env", None),
        detail=str(getattr(request.state, "audit_detail", "")),
    )
