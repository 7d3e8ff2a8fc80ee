"""API tokens and the audit log under ``/api/v1``: create (shown once), list, revoke, read.

Managing tokens needs the ``admin`` role in every environment the token covers; the audit
log shows each caller the environments they may view. Callers: ``api.app``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field

from baepo.api.auth import new_token, principal, require, require_admin_of
from baepo.api.routes import MAX_ID, runtime
from baepo.api.schemas import Body
from baepo.core.model import ApiToken, AuditRecord
from baepo.errors import NotFoundError

router = APIRouter(prefix="/api/v1")

EnvOrAll = Annotated[str, Field(pattern=r"^(\*|[a-z0-9][a-z0-9-]{0,62})$")]


class TokenBody(Body):
    """A new token: who it is for, its role, and where the role applies."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
    role: Literal["viewer", "deployer", "approver", "admin"]
    envs: list[EnvOrAll] = Field(min_length=1, description="Environments, or `*` for all.")
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


def token_view(token: ApiToken) -> dict[str, Any]:
    """A token's record without its hash."""

    def ts(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return {
        "id": token.id,
        "name": token.name,
        "role": token.role,
        "envs": token.envs,
        "created_at": ts(token.created_at),
        "created_by": token.created_by,
        "expires_at": ts(token.expires_at),
        "revoked_at": ts(token.revoked_at),
        "last_used_at": ts(token.last_used_at),
    }


def audit_view(record: AuditRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "at": record.at.isoformat(),
        "actor": record.actor,
        "role": record.role,
        "action": record.action,
        "app": record.app,
        "env": record.env,
        "source": record.source,
        "status": record.status,
        "detail": record.detail,
    }


@router.post("/tokens", tags=["auth"])
def create_token(body: TokenBody, request: Request) -> dict[str, Any]:
    """Create a token. Its text is in this answer only: it is stored as a hash."""
    require_admin_of(request, body.envs, "creating a token")
    days = body.expires_in_days
    record, text = new_token(
        body.name, body.role, sorted(set(body.envs)), principal(request).actor,
        expires_in=None if days is None else days * 86400.0,
    )  # fmt: skip
    runtime(request).store.add_token(record)
    request.state.audit_detail = f"token {record.id} ({record.name}, {record.role})"
    return {**token_view(record), "token": text}


@router.get("/tokens", tags=["auth"])
def list_tokens(request: Request) -> list[dict[str, Any]]:
    """Every token (never their secrets)."""
    require(request, "admin", None, "listing tokens")
    return [token_view(t) for t in runtime(request).store.list_tokens()]


@router.delete("/tokens/{token_id}", tags=["auth"])
def revoke_token(token_id: str, request: Request) -> dict[str, Any]:
    """Revoke a token at once; it is kept, revoked, for the audit trail."""
    store = runtime(request).store
    token = store.get_token(token_id)
    if token is None:
        raise NotFoundError(f"no token {token_id}", hint="list them with baepo token list")
    require_admin_of(request, token.envs, "revoking a token")
    if token.revoked_at is None:
        token = store.save_token(replace(token, revoked_at=datetime.now(UTC)))
    request.state.audit_detail = f"token {token.id} ({token.name}) revoked"
    return token_view(token)


@router.get("/audit", tags=["auth"])
def audit(
    request: Request,
    app: Annotated[str | None, Query(max_length=128)] = None,
    env: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")] = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> list[dict[str, Any]]:
    """Who did what, when, from where, with which result; oldest first. A caller sees the
    environments they may view (records without an environment: admins only)."""
    caller = require(request, "viewer", env, "reading the audit log")
    found = runtime(request).store.list_audit(after=after, limit=limit, app=app, env=env)
    visible = [
        r
        for r in found
        if (r.env is None and caller.can("admin"))
        or (r.env is not None and all(caller.can("viewer", e) for e in r.env.split(",")))
    ]
    return [audit_view(r) for r in visible]
