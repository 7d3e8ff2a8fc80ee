"""The FastAPI application: routes, problem+json errors, and the controller's lifespan.

Callers: ``api.server`` (``baepo server``) and tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from baepo import __version__
from baepo.api import (
    approval_routes,
    auth,
    backup_routes,
    gate_routes,
    lock_routes,
    metrics,
    migrate_routes,
    problems,
    promotion_routes,
    report_routes,
    routes,
    secret_routes,
    token_routes,
    trusted_hosts,
    user_routes,
)
from baepo.api.runtime import Runtime
from baepo.errors import BaepoError
from baepo.web import login, pages

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_PATHS = frozenset({"/api/v1/healthz"})
"""API paths that answer without a credential."""


def create_app(runtime: Runtime) -> FastAPI:
    """An app serving ``runtime``; its lifespan starts and stops the controller."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if runtime.notifier is not None:
            runtime.notifier.start()
        runtime.controller.start()
        try:
            yield
        finally:
            await runtime.controller.stop()
            if runtime.notifier is not None:
                await runtime.notifier.stop()

    app = FastAPI(
        title="baepo",
        version=__version__,
        description="Progressive delivery and release manager: the controller's REST API.",
        lifespan=lifespan,
        responses=problems.RESPONSES,
    )
    app.state.runtime = runtime
    problems.install(app)

    @app.middleware("http")
    async def authenticate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Refuse a request to the API or ``/metrics`` without a valid credential before any
        route runs (routes check the role too); the health check answers anyone."""
        path = request.url.path
        if (path.startswith("/api/") or path == "/metrics") and path not in OPEN_PATHS:
            try:
                await asyncio.to_thread(auth.principal, request)
            except BaepoError as exc:
                return problems.problem(exc.http_status, exc.title, exc.message, hint=exc.hint)
        return await call_next(request)

    @app.middleware("http")
    async def audit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Append every request that changes something to the audit log, with its result."""
        response = await call_next(request)
        if request.method in MUTATING and request.url.path.startswith("/api/"):
            route = request.scope.get("route")
            action = f"{request.method} {getattr(route, 'path', request.url.path)}"
            record = auth.audit_record(request, response.status_code, action)
            await asyncio.to_thread(runtime.store.append_audit, record)
        return response

    app.include_router(routes.router)
    app.include_router(approval_routes.router)
    app.include_router(gate_routes.router)
    app.include_router(migrate_routes.router)
    app.include_router(secret_routes.router)
    app.include_router(lock_routes.router)
    app.include_router(backup_routes.router)
    app.include_router(promotion_routes.router)
    app.include_router(report_routes.router)
    app.include_router(token_routes.router)
    app.include_router(metrics.router)
    app.include_router(user_routes.router)
    app.include_router(pages.router)
    app.include_router(login.links)
    app.include_router(pages.root)
    app.mount("/ui/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    if runtime.hosts is not None:
        app.add_middleware(trusted_hosts.TrustedHosts, names=runtime.hosts)
    return app
