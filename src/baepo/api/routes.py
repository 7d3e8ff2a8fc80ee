"""The REST endpoints under ``/api/v1``.

Reads go straight to the store and ports; writes go through ``controller.releases``, which
wakes the controller. Callers: ``api.app``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from baepo.api import views
from baepo.api.auth import principal, require
from baepo.api.runtime import Runtime
from baepo.api.schemas import DeployBody, DownBody, SteerBody, UndoBody, spec_label
from baepo.controller.operations import Outcome
from baepo.controller.releases import DeployRequest
from baepo.core.model import DEFAULT_ENV, Revision
from baepo.errors import NotFoundError
from baepo.spec import sensitive
from baepo.spec.loader import parse_spec, spec_source
from baepo.strategies.canary import canary_replicas

router = APIRouter(prefix="/api/v1")

Env = Annotated[str, Query(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="Environment.")]
MAX_ID = 2**31 - 1
"""The largest id or number a request may name (every store column holds it)."""


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def done(request: Request, o: Outcome) -> dict[str, Any]:
    """The outcome as JSON; its message also goes to the audit log."""
    request.state.audit_detail = o.message
    return outcome_view(o)


def outcome_view(o: Outcome) -> dict[str, Any]:
    view = {
        "app": o.app,
        "env": o.env,
        "changed": o.changed,
        "message": o.message,
        "revision": o.revision,
        "rollout_id": o.rollout_id,
    }
    return view if o.preview is None else {**view, "preview": o.preview}


@router.get("/healthz", tags=["server"])
async def healthz() -> dict[str, Any]:
    """Liveness of the server, for anyone (a load balancer's or a supervisor's probe): it
    says nothing else. ``GET /api/v1/server`` tells a caller with a credential the rest."""
    return {"ok": True}


@router.post("/deploy", tags=["releases"])
def deploy(body: DeployBody, request: Request) -> dict[str, Any]:
    """Create a revision from a spec and roll it out (a no-op when nothing changed)."""
    caller = require(request, "deployer", body.env, "deploy")
    if body.override_freeze is not None:
        require(request, "admin", body.env, "override a freeze")
        request.state.audit_detail = f"freeze overridden: {body.override_freeze}"
    spec = parse_spec(body.spec_yaml, source=spec_label(body.spec_name), env=body.env)
    request.state.audit_app = spec.app
    source = spec_source(body.spec_yaml)
    outcome = runtime(request).releases.deploy(
        DeployRequest(
            spec=spec,
            spec_dir=str(runtime(request).home),
            env=body.env,
            actor=caller.actor,
            version=body.version,
            message=body.message,
            supersede=body.supersede,
            source=source,
            override_freeze=body.override_freeze,
            dry_run=body.dry_run,
        )
    )
    view = done(request, outcome)
    warnings = sensitive.secret_env_warnings(source)
    if warnings:
        view["warnings"] = warnings
    if body.override_freeze is not None:
        request.state.audit_detail = f"{outcome.message}; freeze overridden: {body.override_freeze}"
    return view


@router.post("/apps/{app}/undo", tags=["releases"])
def undo(app: str, body: UndoBody, request: Request) -> dict[str, Any]:
    """Stop the rollout in flight, or roll out a copy of an earlier revision."""
    caller = require(request, "deployer", body.env, "undo")
    outcome = runtime(request).releases.undo(
        app, body.env, caller.actor, to_revision=body.to_revision,
        message=body.message,
    )  # fmt: skip
    return done(request, outcome)


@router.post("/apps/{app}/down", tags=["releases"])
def down(app: str, body: DownBody, request: Request) -> dict[str, Any]:
    """Stop the app's instances and router; keep its history."""
    caller = require(request, "deployer", body.env, "down")
    return done(request, runtime(request).releases.down(app, body.env, caller.actor))


@router.post("/apps/{app}/promote", tags=["steering"])
def promote(app: str, body: SteerBody, request: Request) -> dict[str, Any]:
    """Go past the current step (a pause, an analysis); with ``full``, to the end."""
    caller = require(request, "deployer", body.env, "promote")
    steering = runtime(request).steering
    return done(request, steering.promote(app, body.env, caller.actor, full=body.full))


@router.post("/apps/{app}/pause", tags=["steering"])
def pause(app: str, body: SteerBody, request: Request) -> dict[str, Any]:
    """Hold the rollout where it is until resumed."""
    caller = require(request, "deployer", body.env, "pause")
    return done(request, runtime(request).steering.pause(app, body.env, caller.actor))


@router.post("/apps/{app}/resume", tags=["steering"])
def resume(app: str, body: SteerBody, request: Request) -> dict[str, Any]:
    """Continue a rollout held with pause."""
    caller = require(request, "deployer", body.env, "resume")
    return done(request, runtime(request).steering.resume(app, body.env, caller.actor))


@router.post("/apps/{app}/abort", tags=["steering"])
def abort(app: str, body: SteerBody, request: Request) -> dict[str, Any]:
    """All traffic back to stable at once; the new revision stops after a delay."""
    caller = require(request, "deployer", body.env, "abort")
    return done(request, runtime(request).steering.abort(app, body.env, caller.actor))


@router.post("/apps/{app}/retry", tags=["steering"])
def retry(app: str, body: SteerBody, request: Request) -> dict[str, Any]:
    """Start an aborted or rolled back rollout again from its first step."""
    caller = require(request, "deployer", body.env, "retry")
    return done(request, runtime(request).steering.retry(app, body.env, caller.actor))


@router.get("/apps", tags=["apps"])
def list_apps(request: Request) -> list[dict[str, Any]]:
    """Every app and environment this server knows (that the caller may see)."""
    caller = principal(request)
    return [
        views.app_view(a) for a in runtime(request).store.list_apps() if caller.can("viewer", a.env)
    ]


@router.get("/apps/{app}", tags=["apps"])
async def status(app: str, request: Request, env: Env = DEFAULT_ENV) -> dict[str, Any]:
    """Everything about an app now: state, rollout, instances, traffic, router numbers."""
    await asyncio.to_thread(require, request, "viewer", env)
    rt = runtime(request)
    record = await asyncio.to_thread(rt.store.get_app, app, env)
    if record is None:
        raise NotFoundError(
            f"{app} has never been deployed in {env}", hint="deploy it with baepo deploy"
        )
    active, last, events, stable, instances = await asyncio.gather(
        asyncio.to_thread(rt.store.active_rollout, app, env),
        asyncio.to_thread(rt.store.latest_rollout, app, env),
        asyncio.to_thread(rt.store.recent_events, app, env, limit=15),
        _revision_or_none(rt, app, env, record.stable_revision),
        rt.controller.reconciler.observe(app, env),
    )
    target = await _revision_or_none(rt, app, env, active.revision if active else None)
    stats = await rt.router.stats(app, env) if last else []
    desired = {}
    for revision in (stable, target):
        if revision is not None:
            desired[revision.number] = revision.config.get("replicas", 1)
    canary = views.steps_view(target, active) if target and active else None
    if canary is not None and target is not None and active is not None and not canary["promoting"]:
        desired[target.number] = canary_replicas(
            int(target.config.get("replicas", 1)), canary["weight"], active.status.get("scale")
        )
    return {
        **views.app_view(record),
        "stable": views.revision_view(stable) if stable else None,
        "target": views.revision_view(target) if target else None,
        "rollout": views.rollout_view(active) if active else None,
        "canary": canary,
        "last_rollout": views.rollout_view(last) if last else None,
        "listen": _listen(target or stable),
        "instances": [views.instance_view(i) for i in instances],
        "desired": {str(k): v for k, v in desired.items()},
        "traffic": views.traffic_view(rt.controller.reconciler.table(app, env)),
        "stats": views.stats_view(stats, rt.controller.reconciler.sampler.rates(app, env)),
        "events": [views.event_view(e) for e in events],
        "events_dropped": rt.controller.dropped_events.of(app, env),
    }


@router.get("/apps/{app}/revisions", tags=["history"])
def revisions(app: str, request: Request, env: Env = DEFAULT_ENV) -> list[dict[str, Any]]:
    """Every revision, oldest first, with the outcome of the rollout that introduced it."""
    require(request, "viewer", env)
    rt = runtime(request)
    outcomes: dict[int, dict[str, Any]] = {}
    for rollout in rt.store.list_rollouts(app, env):
        outcomes[rollout.revision] = views.rollout_view(rollout)
    record = rt.store.get_app(app, env)
    return [
        {
            **views.revision_view(r),
            "rollout": outcomes.get(r.number),
            "stable": record is not None and record.stable_revision == r.number,
        }
        for r in rt.store.list_revisions(app, env)
    ]


@router.get("/apps/{app}/revisions/{number}", tags=["history"])
def revision(
    app: str,
    number: Annotated[int, PathParam(ge=1, le=MAX_ID)],
    request: Request,
    env: Env = DEFAULT_ENV,
) -> dict[str, Any]:
    """One revision with its full resolved config, the previous one's for diffing, and the
    outcome of its last rollout (with its cause)."""
    require(request, "viewer", env)
    rt = runtime(request)
    current = rt.store.get_revision(app, env, number)
    previous = None
    if number > 1:
        previous = rt.store.get_revision(app, env, number - 1)
    rollouts = [r for r in rt.store.list_rollouts(app, env) if r.revision == number]
    return {
        **views.revision_view(current, with_config=True),
        "rollout": views.rollout_view(rollouts[-1]) if rollouts else None,
        "secret_changes": views.secret_diff(previous, current),
        "previous": views.revision_view(previous, with_config=True) if previous else None,
    }


@router.get("/apps/{app}/events", tags=["history"])
def events(
    app: str,
    request: Request,
    env: Env = DEFAULT_ENV,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    rollout_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> list[dict[str, Any]]:
    """History events with id > ``after``, oldest first (optionally of one rollout)."""
    require(request, "viewer", env)
    store = runtime(request).store
    found = store.list_events(app, env, after=after, limit=limit, rollout_id=rollout_id)
    return [views.event_view(e) for e in found]


@router.get("/apps/{app}/analysis", tags=["history"])
def analysis(
    app: str,
    request: Request,
    env: Env = DEFAULT_ENV,
    revision: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Runs against this revision.")
    ] = None,
    rollout_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> list[dict[str, Any]]:
    """Analysis runs, oldest first, each with its metrics, their measurements and the reason
    for every verdict. Without filters: the runs of the latest rollout."""
    require(request, "viewer", env)
    store = runtime(request).store
    if revision is None and rollout_id is None:
        latest = store.latest_rollout(app, env)
        if latest is None:
            return []
        rollout_id = latest.id
    runs = store.list_analysis_runs(app, env, rollout_id=rollout_id, revision=revision, limit=limit)
    return [views.analysis_run_view(run, store.list_measurements(run.id)) for run in runs]


@router.get(
    "/apps/{app}/logs",
    tags=["apps"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Lines of output"}},
)
async def logs(
    app: str,
    request: Request,
    env: Env = DEFAULT_ENV,
    revision: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    tail: Annotated[int, Query(ge=0, le=100_000)] = 100,
    follow: bool = False,
) -> StreamingResponse:
    """Instance output, one line each, prefixed with the instance id; ``follow`` streams."""
    await asyncio.to_thread(require, request, "viewer", env)
    platform = runtime(request).platform

    async def lines() -> AsyncIterator[bytes]:
        for line in platform.read_logs(app, env, revision=revision, tail=tail):
            yield (line + "\n").encode()
        if follow:
            async for line in platform.follow_logs(app, env, revision=revision):
                if await request.is_disconnected():
                    break
                yield (line + "\n").encode()

    return StreamingResponse(lines(), media_type="text/plain; charset=utf-8")


def _listen(revision: Revision | None) -> str | None:
    return str(revision.config["router"]["listen"]) if revision else None


@router.get("/rollouts/{rollout_id}", tags=["history"])
def rollout(
    rollout_id: Annotated[int, PathParam(ge=1, le=MAX_ID)], request: Request
) -> dict[str, Any]:
    """One rollout by id."""
    found = runtime(request).store.get_rollout(rollout_id)
    require(request, "viewer", found.env)
    return views.rollout_view(found)


async def _revision_or_none(rt: Runtime, app: str, env: str, number: int | None) -> Revision | None:
    if number is None:
        return None
    return await asyncio.to_thread(rt.store.get_revision, app, env, number)
