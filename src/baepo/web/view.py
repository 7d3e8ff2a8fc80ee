"""What every dashboard page shares: who is looking, the templates, rendering and errors.

Callers: ``web.pages`` and ``web.login``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from baepo.api import auth
from baepo.api.auth import Principal
from baepo.api.runtime import Runtime
from baepo.core import causes
from baepo.core.model import WebSession
from baepo.errors import BaepoError
from baepo.web import sessions

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["cause_label"] = causes.label  # a cause's words, as on every surface
STATIC_DIR = Path(__file__).parent / "static"


@dataclass(frozen=True)
class Visit:
    """Who is looking: their session (None: they must log in), principal, new cookie."""

    session: WebSession | None
    principal: Principal | None
    cookie: str | None = None


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def visit(request: Request) -> Visit:
    """The caller's session, or none (they must log in: with a password or a token, or
    without auth through the one-time link ``baepo ui`` prints)."""
    found = auth.session_of(request)
    if found is not None:
        try:
            return Visit(found, auth.session_principal(request, found))
        except BaepoError:
            return Visit(None, None)
    return Visit(None, None)


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)


def render(
    request: Request, visit: Visit, name: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    page = templates.TemplateResponse(
        request,
        name,
        {
            "principal": visit.principal,
            "csrf": visit.session.csrf if visit.session else "",
            "auth_required": runtime(request).auth_required,
            **context,
        },
        status_code=status,
    )
    if visit.cookie is not None:
        sessions.set_cookie(page, request, visit.cookie)
    return page


def error(request: Request, visit: Visit, status: int, message: str) -> HTMLResponse:
    return render(request, visit, "error.html", {"status": status, "message": message}, status)


async def form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, one value per field."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {key: values[-1] for key, values in parse_qs(body).items()}
