"""``POST /apps/{app}/migrate``: run the app's migration commands by hand.

The commands are those of the revision that serves (``migrate:`` in its spec), run in its
folder with its ``run.env`` and the release's ``BAEPO_*`` variables; ``{target}`` and
``BAEPO_MIGRATE_TARGET`` carry ``--target``. Each run is recorded as a gate run with its
output. ``status`` and ``up`` need the deployer role, ``down`` admin (it may drop data).
Callers: ``api.app``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from baepo.api.auth import require
from baepo.api.gate_routes import gate_run_view
from baepo.api.routes import runtime
from baepo.api.schemas import Body
from baepo.controller.reconciler import utcnow
from baepo.core.model import DEFAULT_ENV, GatePhase, GateRun
from baepo.errors import StateError
from baepo.gates.run import release_env, run_argv
from baepo.secrets import sealed
from baepo.secrets.keys import Keyring
from baepo.spec.models import Spec

router = APIRouter(prefix="/api/v1")


class MigrateBody(Body):
    """Run ``migrate.<action>`` of the serving revision."""

    env: str = Field(default=DEFAULT_ENV, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    action: Literal["status", "up", "down"]
    target: str | None = Field(
        default=None, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$", description="--target."
    )


@router.post("/apps/{app}/migrate", tags=["releases"])
async def migrate(app: str, body: MigrateBody, request: Request) -> dict[str, Any]:
    """Run a migration command; answers with its result and output (exit code in
    ``exit_code``; ``passed`` is false when it failed)."""
    role = "admin" if body.action == "down" else "deployer"
    caller = require(request, role, body.env, f"migrate {body.action}")
    request.state.audit_app = app
    store = runtime(request).store
    record = store.get_app(app, body.env)
    if record is None or record.stable_revision is None:
        raise StateError(
            f"{app} has no serving revision in {body.env}: its migration commands come from it",
            hint="deploy it first (a deploy runs migrate.up as a gate)",
        )
    revision = store.get_revision(app, body.env, record.stable_revision)
    spec = Spec.model_validate(revision.config)
    if spec.migrate is None:
        raise StateError(f"revision {revision.number} of {app} has no migrate: section")
    argv = getattr(spec.migrate, body.action)
    if argv is None:
        raise StateError(
            f"revision {revision.number} of {app} has no migrate.{body.action} command",
            hint=f"add migrate.{body.action} to the spec and deploy it",
        )
    target = body.target or ""
    argv = [arg.replace("{target}", target) for arg in argv]
    keyring = runtime(request).releases.keyring or Keyring(runtime(request).state_dir)
    env = {
        **sealed.open_env(spec.run.env, keyring),
        **spec.migrate.env,
        **release_env(app, body.env, revision.number, revision.version, None),
        "BAEPO_MIGRATE_TARGET": target,
    }
    run = store.add_gate_run(
        GateRun(
            app=app, env=body.env, kind="migrate", stage=body.action,
            name=" ".join(argv)[:200], phase=GatePhase.RUNNING, started_at=utcnow(),
            actor=caller.actor, revision=revision.number,
        )
    )  # fmt: skip
    result = await run_argv(
        argv, cwd=revision.spec_dir, env=env, timeout=spec.migrate.timeout, user=spec.run.user
    )
    run = store.save_gate_run(
        replace(
            run,
            phase=GatePhase.PASSED if result.passed else GatePhase.FAILED,
            finished_at=utcnow(),
            exit_code=result.exit_code,
            message=result.message,
            output=result.output,
        )
    )
    request.state.audit_detail = f"migrate {body.action} {target}: {result.message}".strip()
    return {**gate_run_view(run), "passed": result.passed}
