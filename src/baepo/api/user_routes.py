"""Dashboard users under ``/api/v1/users``: create one (password stored as a scrypt hash),
list them, disable one.

Managing users needs the ``admin`` role in every environment the user covers, as for tokens.
Callers: ``api.app``; ``baepo user`` (``cli.user_commands``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from baepo.api import passwords
from baepo.api.auth import principal, require, require_admin_of
from baepo.api.routes import runtime
from baepo.api.schemas import Body
from baepo.core.model import User
from baepo.errors import ConfigError, NotFoundError, Problem

router = APIRouter(prefix="/api/v1")

EnvOrAll = Annotated[str, Field(pattern=r"^(\*|[a-z0-9][a-z0-9-]{0,62})$")]
Username = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
]


class UserBody(Body):
    """A new dashboard user: name, password, role, and where the role applies."""

    username: Username
    password: str = Field(min_length=1, max_length=1024, repr=False)
    role: Literal["viewer", "deployer", "approver", "admin"]
    envs: list[EnvOrAll] = Field(min_length=1, description="Environments, or `*` for all.")


def user_view(user: User) -> dict[str, Any]:
    """A user's record without its password hash."""
    return {
        "username": user.username,
        "role": user.role,
        "envs": user.envs,
        "created_at": user.created_at.isoformat(),
        "created_by": user.created_by,
        "disabled": user.disabled,
    }


@router.post("/users", tags=["auth"])
def create_user(body: UserBody, request: Request) -> dict[str, Any]:
    """Create a dashboard user; StateError (409) when the name is taken."""
    require_admin_of(request, body.envs, "creating a user")
    weak = passwords.weakness(body.password)
    if weak is not None:
        raise ConfigError("the password is too weak", problems=[Problem("password", weak)])
    user = User(
        username=body.username,
        password_hash=passwords.hash_password(body.password),
        role=body.role,
        envs=sorted(set(body.envs)),
        created_at=datetime.now(UTC),
        created_by=principal(request).actor,
    )
    runtime(request).store.add_user(user)
    request.state.audit_detail = f"user {user.username} ({user.role})"
    return user_view(user)


@router.get("/users", tags=["auth"])
def list_users(request: Request) -> list[dict[str, Any]]:
    """Every dashboard user (never their password hashes)."""
    require(request, "admin", None, "listing users")
    return [user_view(u) for u in runtime(request).store.list_users()]


@router.post("/users/{username}/disable", tags=["auth"])
def disable_user(username: str, request: Request) -> dict[str, Any]:
    """Disable a user at once: their sessions stop working; the record is kept."""
    store = runtime(request).store
    user = store.get_user(username)
    if user is None:
        raise NotFoundError(f"no user {username}", hint="list them with baepo user list")
    require_admin_of(request, user.envs, "disabling a user")
    if not user.disabled:
        user = store.save_user(replace(user, disabled=True))
    request.state.audit_detail = f"user {user.username} disabled"
    return user_view(user)
