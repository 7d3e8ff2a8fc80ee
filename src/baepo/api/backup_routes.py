"""Database backups of an app: list them, take one, restore one.

Listing needs the viewer role, taking one the deployer role and restoring one the admin role
in the environment. Taking and restoring need the spec (its ``backup`` section), sent like
``POST /deploy`` sends it; its commands run in the server's app folder (``--workdir``), and its
secrets follow the same rules as a deploy's (``secrets.references``). Callers: ``api.app``
includes the router.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from pydantic import Field

from baepo.api.auth import require
from baepo.api.routes import MAX_ID, Env, runtime
from baepo.api.schemas import SPEC_NAME, Body, spec_label
from baepo.core.model import DEFAULT_ENV, Backup
from baepo.errors import ConfigError, NotFoundError, Problem, StateError
from baepo.gates.backups import restore_backup, take_backup
from baepo.secrets import references
from baepo.secrets.keys import Keyring
from baepo.secrets.resolve import secret_env
from baepo.spec.backup import BackupSpec
from baepo.spec.base import Line, Text
from baepo.spec.loader import parse_spec

router = APIRouter(prefix="/api/v1")

ENV_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class BackupBody(Body):
    """Take a backup of the app's database in one environment, as its spec says."""

    spec_yaml: str = Field(max_length=1_000_000, description="The spec file's text.")
    spec_name: Line = SPEC_NAME
    env: str = Field(default=DEFAULT_ENV, pattern=ENV_PATTERN)
    reason: Text = Field(default="", max_length=2000, description="Why, kept with the backup.")


class RestoreBody(Body):
    """Put a backup back into the app's live database."""

    spec_yaml: str = Field(max_length=1_000_000, description="The spec file's text.")
    spec_name: Line = SPEC_NAME
    env: str = Field(default=DEFAULT_ENV, pattern=ENV_PATTERN)


def backup_view(backup: Backup) -> dict[str, Any]:
    return {
        "id": backup.id,
        "app": backup.app,
        "env": backup.env,
        "kind": backup.kind,
        "status": backup.status,
        "location": backup.location,
        "created_at": backup.created_at.isoformat(),
        "created_by": backup.created_by,
        "revision": backup.revision,
        "size_bytes": backup.size_bytes,
        "sha256": backup.sha256,
        "reason": backup.reason,
        "error": backup.detail.get("error"),
    }


def _backup_spec(
    request: Request, app: str, spec_yaml: str, spec_name: str, env: str
) -> tuple[BackupSpec, str, dict[str, str], str | None]:
    """The spec's backup section, the app's folder, the variables its commands get (the
    app's ``run.env`` and its secrets: a ``url_env`` may name a stored secret), and its
    ``run.user``, the account they run as."""
    spec = parse_spec(spec_yaml, source=spec_label(spec_name), env=env)
    if spec.app != app:
        raise ConfigError(
            "invalid input", problems=[Problem("app", f"the spec is of {spec.app}, not {app}")]
        )
    if spec.backup is None:
        raise StateError(
            f"the spec of {app} has no backup section", hint="add `backup:` to the spec"
        )
    rt = runtime(request)
    home = str(rt.home)
    scope = rt.releases.secret_scope
    references.check_references(rt.store, spec, app, env, home, scope)
    keyring = rt.releases.keyring or Keyring(rt.state_dir)  # the one checked at start
    secrets = secret_env(rt.store, keyring, spec, app, env, home, scope=scope)
    server = {k: v for k, v in os.environ.items() if k in scope.allowed_env}  # backup.url_env
    return spec.backup, home, {**server, **spec.run.env, **secrets}, spec.run.user


@router.get("/apps/{app}/backups", tags=["backups"])
def list_backups(app: str, request: Request, env: Env = DEFAULT_ENV) -> list[dict[str, Any]]:
    """Backups of the app in the environment, oldest first, failed ones included."""
    require(request, "viewer", env)
    return [backup_view(b) for b in runtime(request).store.list_backups(app, env)]


@router.post("/apps/{app}/backups", tags=["backups"])
async def create_backup(app: str, body: BackupBody, request: Request) -> dict[str, Any]:
    """Take a backup now, as the spec's ``backup`` section says; keeps the newest ``keep``."""
    caller = require(request, "deployer", body.env, "take a backup")
    request.state.audit_app = app
    backup_spec, spec_dir, env_vars, user = _backup_spec(
        request, app, body.spec_yaml, body.spec_name, body.env
    )
    rt = runtime(request)
    taken = await take_backup(
        rt.store,
        backup_spec,
        app=app,
        env=body.env,
        spec_dir=spec_dir,
        state_dir=rt.state_dir,
        actor=caller.actor,
        reason=body.reason,
        env_vars=env_vars,
        user=user,
    )
    view = backup_view(taken)
    view["message"] = f"backup {taken.id} of {app} in {body.env}: {taken.size_bytes} bytes"
    request.state.audit_detail = view["message"]
    return view


@router.post("/apps/{app}/backups/{backup_id}/restore", tags=["backups"])
async def restore(
    app: str,
    backup_id: Annotated[int, PathParam(ge=1, le=MAX_ID)],
    body: RestoreBody,
    request: Request,
) -> dict[str, Any]:
    """Put a backup back into the live database (admin): what changed since is lost."""
    caller = require(request, "admin", body.env, "restore a backup")
    request.state.audit_app = app
    rt = runtime(request)
    backup = rt.store.get_backup(backup_id)
    if backup.app != app or backup.env != body.env:
        raise NotFoundError(f"backup {backup_id} of {app} in {body.env} does not exist")
    backup_spec, spec_dir, env_vars, user = _backup_spec(
        request, app, body.spec_yaml, body.spec_name, body.env
    )
    await restore_backup(
        rt.store,
        backup,
        backup_spec,
        spec_dir=spec_dir,
        env_vars=env_vars,
        actor=caller.actor,
        user=user,
    )
    view = backup_view(backup)
    view["message"] = f"restored backup {backup_id} of {app} in {body.env}"
    request.state.audit_detail = view["message"]
    return view
