"""The dashboard's routes under ``/ui``: overview, app, history, audit, buttons, live (and
the login and report pages of ``web.login`` and ``web.report``).

Pages are rendered on the server from the same views as the REST API (``api.routes``), so
both always agree. A page needs a dashboard session: with ``--auth required`` one logs in
with a username and password or an API token (``web.login``); without it, a visit starts a
session of the local user. Every form carries the session's CSRF token, checked here before
anything else; every button is checked again against the caller's role, whatever the page
showed. The app page follows the server-sent events of ``/ui/apps/{app}/live``, which send
the status fragment every second. Callers: ``api.app`` (``include_router``).
"""

from __future__ import annotations

import asyncio
import difflib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from baepo.api import auth, routes, token_routes, views
from baepo.api.backup_routes import backup_view
from baepo.api.gate_routes import gate_run_view
from baepo.api.lock_routes import lock_view
from baepo.controller import freeze, locks
from baepo.controller.desired import spec_of
from baepo.core.model import DEFAULT_ENV
from baepo.errors import BaepoError
from baepo.spec import sensitive
from baepo.web import login, report, sessions, view

router = APIRouter(prefix="/ui", include_in_schema=False)
router.include_router(login.router)
router.include_router(report.router)
STATIC_DIR = view.STATIC_DIR

ACTIONS = ("promote", "pause", "resume", "abort", "undo", "approve", "reject", "lock", "unlock")
ROLE_OF = {"approve": "approver", "reject": "approver"}  # the others need deployer
PRODUCTION = frozenset({"production", "prod"})
LIVE_EVERY_S = 1.0
LIVE_STREAM_S = 20.0
"""An event stream ends after this long and the browser opens a new one (re-checking the
session): a server stopping waits for open responses, so none may last for ever."""


# -- pages ----------------------------------------------------------------------------------


@router.get("/", response_model=None)
async def overview(request: Request) -> Response:
    """Every app and environment the caller may see: revision, state, health, last deploy."""
    visit = await asyncio.to_thread(view.visit, request)
    if visit.principal is None:
        return view.to_login(request)
    rt = view.runtime(request)
    rows = []
    for record in await asyncio.to_thread(rt.store.list_apps):
        if not visit.principal.can("viewer", record.env):
            continue
        try:
            status = await routes.status(record.app, request, record.env)
        except BaepoError:
            continue  # gone or unreadable this instant: the next visit shows it
        rows.append(_summary(status))
    return view.render(request, visit, "overview.html", {"rows": rows})


@router.get("/apps/{app}", response_model=None)
async def app_page(request: Request, app: str, env: str = DEFAULT_ENV, done: str = "") -> Response:
    """One app: the rollout, live charts, analysis runs, recent events, and the buttons."""
    visit = await asyncio.to_thread(view.visit, request)
    if visit.principal is None:
        return view.to_login(request)
    if not visit.principal.can("viewer", env):
        return view.error(request, visit, 403, f"{visit.principal.name} may not view {env}")
    try:
        context = await _status_context(request, visit, app, env)
    except BaepoError as exc:
        return view.error(request, visit, exc.http_status, exc.message)
    return view.render(request, visit, "app.html", {**context, "done": done})


@router.get("/apps/{app}/live", response_model=None)
async def live(request: Request, app: str, env: str = DEFAULT_ENV) -> Response:
    """Server-sent events: the app's status fragment every second (event ``status``)."""
    visit = await asyncio.to_thread(view.visit, request)
    if visit.principal is None or not visit.principal.can("viewer", env):
        return Response(status_code=401 if visit.principal is None else 403)
    template = view.templates.get_template("_status.html")

    async def events() -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        loop = asyncio.get_running_loop()
        ends = loop.time() + LIVE_STREAM_S
        while loop.time() < ends and not await request.is_disconnected():
            try:
                context = await _status_context(request, visit, app, env)
                html = template.render(
                    {"principal": visit.principal, "csrf": visit.session.csrf if visit.session
                     else "", "request": request, **context}
                )  # fmt: skip
            except BaepoError as exc:
                html = f'<p role="alert">{exc.message}</p>'
            data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
            yield f"event: status\n{data}\n".encode()
            await asyncio.sleep(LIVE_EVERY_S)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
    )


@router.get("/apps/{app}/history", response_model=None)
async def history(
    request: Request, app: str, env: str = DEFAULT_ENV, a: int = 0, b: int = 0
) -> Response:
    """Every revision with its outcome, and the config diff between two of them."""
    visit = await asyncio.to_thread(view.visit, request)
    if visit.principal is None:
        return view.to_login(request)
    if not visit.principal.can("viewer", env):
        return view.error(request, visit, 403, f"{visit.principal.name} may not view {env}")
    rt = view.runtime(request)
    revisions = await asyncio.to_thread(routes.revisions, app, request, env)
    if not revisions:
        return view.error(request, visit, 404, f"{app} has never been deployed in {env}")
    numbers = [r["number"] for r in revisions]
    b = b if b in numbers else numbers[-1]
    a = a if a in numbers else max(b - 1, numbers[0])
    old, new = await asyncio.gather(
        asyncio.to_thread(rt.store.get_revision, app, env, a),
        asyncio.to_thread(rt.store.get_revision, app, env, b),
    )
    diff = list(
        difflib.unified_diff(
            _lines(sensitive.mask_spec(old.config)), _lines(sensitive.mask_spec(new.config)),
            f"revision {a} ({old.version})", f"revision {b} ({new.version})", lineterm="",
        )
    )  # fmt: skip
    context = {"app": app, "env": env, "revisions": list(reversed(revisions)), "a": a, "b": b,
               "diff": diff, "secrets": views.secret_diff(old, new)}  # fmt: skip
    return view.render(request, visit, "history.html", context)


@router.get("/audit", response_model=None)
async def audit_page(request: Request) -> Response:
    """The newest audit records the caller may see, newest first."""
    visit = await asyncio.to_thread(view.visit, request)
    if visit.principal is None:
        return view.to_login(request)
    found = await asyncio.to_thread(
        token_routes.audit, request, app=None, env=None, after=0, limit=10_000
    )
    return view.render(request, visit, "audit.html", {"records": list(reversed(found))[:200]})


# -- buttons --------------------------------------------------------------------------------


@router.post("/apps/{app}/{action}", response_model=None)
async def act(request: Request, app: str, action: str) -> Response:
    """Promote, pause, resume, abort or undo, from a form with the session's CSRF token.

    In a production environment the first post answers a confirmation page; its form posts
    again with ``confirmed=yes``. The caller's role is checked here, whatever was shown.
    """
    form = await view.form(request)
    found = await asyncio.to_thread(auth.session_of, request)
    if not sessions.same_origin(request) or not sessions.check_csrf(found, form.get("csrf", "")):
        await _audit_refusal(request, app, action, form.get("env"))
        return view.error(
            request, view.Visit(None, None), 403, "the form's CSRF token is missing or wrong"
        )
    assert found is not None
    try:
        caller = await asyncio.to_thread(auth.session_principal, request, found)
    except BaepoError:
        return view.to_login(request)
    visit = view.Visit(found, caller)
    env = form.get("env", DEFAULT_ENV)
    if action not in ACTIONS:
        return view.error(request, visit, 404, f"no action {action}")
    role = ROLE_OF.get(action, "deployer")
    if not caller.can(role, env):
        await _audit_refusal(request, app, action, env, status=403)
        message = f"{caller.name} is {caller.role}; {action} in {env} needs {role} or above"
        return view.error(request, visit, 403, message)
    if env in PRODUCTION and form.get("confirmed") != "yes":
        context = {"app": app, "env": env, "action": action, "reason": form.get("reason", "")}
        return view.render(request, visit, "confirm.html", context)
    rt = view.runtime(request)
    actor = caller.actor
    reason = form.get("reason", "").strip()
    status, message = 200, ""
    try:
        message = await asyncio.to_thread(_perform, rt, caller, app, env, action, actor, reason)
    except BaepoError as exc:
        status, message = exc.http_status, exc.message
    request.state.principal = caller
    request.state.audit_env, request.state.audit_detail = env, message
    record = auth.audit_record(request, status, f"POST /ui/apps/{{app}}/{action}")
    await asyncio.to_thread(rt.store.append_audit, record)
    target = f"/ui/apps/{quote(app)}?env={quote(env)}&done={quote(message)}"
    return RedirectResponse(target, status_code=303)


def _perform(
    rt: Any, caller: auth.Principal, app: str, env: str, action: str, actor: str, reason: str
) -> str:
    """Do one button's action; its message for the page."""
    if action == "undo":
        return str(rt.releases.undo(app, env, actor).message)
    if action in ("approve", "reject"):
        return str(getattr(rt.steering, action)(app, env, actor, reason=reason).message)
    if action == "lock":
        taken = locks.take(rt.store, app, env, actor, reason, rt.releases.clock())
        return str(lock_view(app, env, taken)["message"])
    if action == "unlock":
        held = rt.store.get_lock(app, env)
        force = caller.can("admin", env)  # an admin's button also releases another's lock
        released = locks.release(rt.store, app, env, actor, force=force and held is not None)
        return (
            f"{app} in {env} was not locked"
            if released is None
            else f"unlocked {app} in {env} (held by {released.holder})"
        )
    return str(getattr(rt.steering, action)(app, env, actor).message)


async def _audit_refusal(
    request: Request, app: str, action: str, env: str | None, status: int = 403
) -> None:
    request.state.audit_env, request.state.audit_detail = env, "refused by the dashboard"
    record = auth.audit_record(request, status, f"POST /ui/apps/{{app}}/{action}")
    await asyncio.to_thread(view.runtime(request).store.append_audit, record)


# -- helpers --------------------------------------------------------------------------------


async def _status_context(
    request: Request, visit: view.Visit, app: str, env: str
) -> dict[str, Any]:
    status = await routes.status(app, request, env)
    runs = await asyncio.to_thread(
        routes.analysis, app, request, env, revision=None, rollout_id=None, limit=20
    )
    store = view.runtime(request).store
    active = await asyncio.to_thread(store.active_rollout, app, env)
    held, gates, backups = await asyncio.gather(
        asyncio.to_thread(store.get_lock, app, env),
        asyncio.to_thread(
            store.list_gate_runs, app, env, rollout_id=active.id if active else None, limit=10
        ),
        asyncio.to_thread(store.list_backups, app, env, limit=5),
    )
    assert visit.principal is not None
    awaiting = None
    if active is not None and active.phase.value == "awaiting_approval":
        awaiting = {
            "requested_by": active.status.get("approval", {}).get("requested_by", "?"),
            "since": active.started_at.isoformat(timespec="seconds"),
            "revision": active.revision,
            "version": (status["target"] or {}).get("version", "?"),
        }
    return {
        "freeze": await asyncio.to_thread(_freeze, view.runtime(request), app, env, status),
        "awaiting": awaiting,
        "may_approve": visit.principal.can("approver", env),
        "lock": lock_view(app, env, held),
        "gates": [
            {**gate_run_view(run), "duration": _duration(run.started_at, run.finished_at)}
            for run in reversed(gates)
        ],
        "backups": [backup_view(b) for b in reversed(backups)],
        "app": app,
        "env": env,
        "s": status,
        "summary": _summary(status),
        "runs": list(reversed(runs)),
        "may_steer": visit.principal.can("deployer", env),
        "manual_pause": bool(active and active.status.get("manual_pause")),
        "production": env in PRODUCTION,
        "live_json": json.dumps(_live(status)),
    }


def _freeze(rt: Any, app: str, env: str, status: dict[str, Any]) -> dict[str, str] | None:
    """The freeze window of the newest revision's spec open now: its reason and end, or None."""
    newest = status["target"] or status["stable"]
    if newest is None:
        return None
    revision = rt.store.get_revision(app, env, newest["number"])
    frozen = freeze.active_freeze(spec_of(revision).freeze, rt.releases.clock())
    if frozen is None:
        return None
    window, ends = frozen
    return {"reason": window.reason, "until": ends.strftime("%Y-%m-%d %H:%M")}


def _duration(started: datetime, finished: datetime | None) -> str:
    """How long a gate ran, as ``1.2 s``; ``running`` while it has not finished."""
    if finished is None:
        return "running"
    return f"{(finished - started).total_seconds():.1f} s"


def _summary(status: dict[str, Any]) -> dict[str, Any]:
    """One overview row of an app's status."""
    current = status["target"] or status["stable"]
    ready = sum(1 for i in status["instances"] if i["ready"])
    last = status["last_rollout"]
    return {
        "app": status["app"],
        "env": status["env"],
        "revision": current["number"] if current else None,
        "version": current["version"] if current else None,
        "state": status["state"],
        "phase": (status["rollout"] or last or {}).get("phase", "-"),
        "ready": ready,
        "desired": sum(int(v) for v in status["desired"].values()),
        "last_deploy": (last or {}).get("started_at"),
        "last_actor": current["created_by"] if current else None,
    }


def _live(status: dict[str, Any]) -> dict[str, Any]:
    """What the charts plot: per revision, requests/s, error rate and p95 now."""
    points = {}
    for stat in status["stats"]:
        live_rates = stat.get("live")
        if live_rates is None:
            continue
        points[str(stat["revision"])] = {
            "rps": live_rates["requests_per_second"],
            "errors": live_rates["error_rate"],
            "p95": live_rates["p95_ms"],
        }
    return {"at": datetime.now(UTC).timestamp(), "revisions": points}


def _lines(config: dict[str, Any]) -> list[str]:
    return json.dumps(config, indent=2, sort_keys=True).splitlines()


root = APIRouter(include_in_schema=False)


@root.get("/", response_model=None)
def index() -> Response:
    """The server's root: the dashboard."""
    return RedirectResponse("/ui/", status_code=307)
