"""Stored secrets of an app+environment: set, list (names and versions), delete.

Values go in (encrypted by the server's keyring before they reach the store) and never come
out: no route returns, logs or audits a value. Setting or deleting needs the deployer role in
the environment, listing needs viewer. Callers: ``api.app`` includes the router.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from pydantic import Field

from baepo.api.auth import require
from baepo.api.routes import done, runtime
from baepo.api.schemas import Body
from baepo.controller.secret_rollout import SecretRollouts
from baepo.core.model import DEFAULT_ENV, Secret
from baepo.errors import NotFoundError
from baepo.secrets.keys import Keyring

router = APIRouter(prefix="/api/v1")

ENV_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
SecretName = Annotated[str, PathParam(pattern=NAME_PATTERN)]


class SecretBody(Body):
    """The new value of a secret in one environment."""

    env: str = Field(default=DEFAULT_ENV, pattern=ENV_PATTERN)
    value: str = Field(max_length=65_536, description="The value; stored encrypted.")


def secret_view(secret: Secret) -> dict[str, Any]:
    """What may be shown of a secret: never its value or ciphertext."""
    return {
        "app": secret.app,
        "env": secret.env,
        "name": secret.name,
        "version": secret.version,
        "updated_at": secret.updated_at.isoformat(),
        "updated_by": secret.updated_by,
    }


def keyring(request: Request) -> Keyring:
    """The server's keyring, checked at start (``secrets.keys.check_key``): a key file
    deleted since is not replaced by a new key."""
    rt = runtime(request)
    return rt.releases.keyring or Keyring(rt.state_dir)


@router.put("/apps/{app}/secrets/{name}", tags=["secrets"])
@router.post("/apps/{app}/secrets/{name}", tags=["secrets"], include_in_schema=False)
def put_secret(app: str, name: SecretName, body: SecretBody, request: Request) -> dict[str, Any]:
    """Set a secret (a new version); the response has its metadata, not the value."""
    caller = require(request, "deployer", body.env, "setting a secret")
    ciphertext = keyring(request).encrypt(body.value)
    stored = runtime(request).store.put_secret(
        Secret(
            app=app,
            env=body.env,
            name=name,
            ciphertext=ciphertext,
            version=0,
            updated_at=datetime.now(UTC),
            updated_by=caller.actor,
        )
    )
    request.state.audit_detail = f"secret {name} set (version {stored.version})"
    return secret_view(stored)


@router.post("/apps/{app}/secrets/{name}/rotate", tags=["secrets"])
def rotate_secret(app: str, name: SecretName, body: SecretBody, request: Request) -> dict[str, Any]:
    """Set a secret, then roll out the stable config again so every instance gets the value."""
    caller = require(request, "deployer", body.env, "rotating a secret")
    put_secret(app, name, body, request)
    rt = runtime(request)
    rollouts = SecretRollouts(
        rt.store, rt.controller.wake, lock=rt.releases.lock, keyring=rt.releases.keyring
    )
    rollouts.secret_scope = rt.releases.secret_scope
    return done(request, rollouts.redeploy(app, body.env, caller.actor, name))


@router.get("/apps/{app}/secrets", tags=["secrets"])
def list_secrets(
    app: str, request: Request, env: Annotated[str, Query(pattern=ENV_PATTERN)] = DEFAULT_ENV
) -> list[dict[str, Any]]:
    """The secrets of an app in an environment: names, versions, who changed them when."""
    require(request, "viewer", env, "listing secrets")
    return [secret_view(s) for s in runtime(request).store.list_secrets(app, env)]


@router.get("/apps/{app}/secrets/{name}", tags=["secrets"])
def get_secret(
    app: str,
    name: SecretName,
    request: Request,
    env: Annotated[str, Query(pattern=ENV_PATTERN)] = DEFAULT_ENV,
) -> dict[str, Any]:
    """One secret's metadata (version, when and by whom it changed); never its value."""
    require(request, "viewer", env, "reading a secret's metadata")
    secret = runtime(request).store.get_secret(app, env, name)
    if secret is None:
        raise NotFoundError(f"no secret {name} for {app} in {env}")
    return secret_view(secret)


@router.delete("/apps/{app}/secrets/{name}", tags=["secrets"])
def delete_secret(
    app: str,
    name: SecretName,
    request: Request,
    env: Annotated[str, Query(pattern=ENV_PATTERN)] = DEFAULT_ENV,
) -> dict[str, Any]:
    """Delete a secret; instances already running keep the value they started with."""
    require(request, "deployer", env, "deleting a secret")
    if not runtime(request).store.delete_secret(app, env, name):
        raise NotFoundError(f"no secret {name} for {app} in {env}")
    request.state.audit_detail = f"secret {name} deleted"
    return {"app": app, "env": env, "name": name, "deleted": True}
