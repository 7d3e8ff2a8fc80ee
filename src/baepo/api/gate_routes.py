"""``GET /apps/{app}/gates``: the checks, hooks and migrations that ran, with their output.

Callers: ``api.app`` includes the router.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from baepo.api.auth import require
from baepo.api.routes import MAX_ID, Env, runtime
from baepo.core.model import DEFAULT_ENV, GateRun

router = APIRouter(prefix="/api/v1")


def gate_run_view(run: GateRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "rollout_id": run.rollout_id,
        "revision": run.revision,
        "kind": run.kind,
        "stage": run.stage,
        "name": run.name,
        "phase": run.phase.value,
        "actor": run.actor,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "exit_code": run.exit_code,
        "message": run.message,
        "output": run.output,
    }


@router.get("/apps/{app}/gates", tags=["history"])
def gates(
    app: str,
    request: Request,
    env: Env = DEFAULT_ENV,
    revision: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    rollout_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Gate runs (checks, hooks, migrations), oldest first, with their output. Without
    filters: those of the latest rollout."""
    require(request, "viewer", env)
    store = runtime(request).store
    if revision is None and rollout_id is None:
        latest = store.latest_rollout(app, env)
        if latest is None:
            return []
        rollout_id = latest.id
    found = store.list_gate_runs(app, env, rollout_id=rollout_id, revision=revision, limit=limit)
    return [gate_run_view(run) for run in found]
