"""``POST /apps/{app}/promote-release``: deploy what passed in one environment to the next.

Needs the deployer role in the target environment; forcing a release that has not passed
needs admin there, and its reason goes to the audit log. Callers: ``api.app``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from baepo.api.auth import require
from baepo.api.routes import done, runtime
from baepo.api.schemas import Body
from baepo.controller.promotion import promotion
from baepo.spec.base import Line, Text

router = APIRouter(prefix="/api/v1")
ENV = r"^[a-z0-9][a-z0-9-]{0,62}$"


class PromotionBody(Body):
    """Promote the release that passed in ``from_env`` to ``to_env``."""

    from_env: str = Field(pattern=ENV, description="Where the release passed.")
    to_env: str = Field(pattern=ENV, description="Where to deploy it.")
    version: Line | None = Field(
        default=None, max_length=256, description="Which version (default: from_env's stable)."
    )
    force: Text | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="Promote even if it has not passed, for this reason (needs admin).",
    )
    message: Text = Field(default="", max_length=2000)


@router.post("/apps/{app}/promote-release", tags=["releases"])
def promote_release(app: str, body: PromotionBody, request: Request) -> dict[str, Any]:
    """Deploy the exact version and spec that passed in ``from_env`` to ``to_env``."""
    require(request, "viewer", body.from_env, "read the release to promote")
    caller = require(request, "deployer", body.to_env, "promote a release")
    request.state.audit_app = app
    if body.force is not None:
        require(request, "admin", body.to_env, "force a release that has not passed")
    rt = runtime(request)
    deploy = promotion(
        rt.store,
        app=app,
        from_env=body.from_env,
        to_env=body.to_env,
        version=body.version,
        actor=caller.actor,
        force_reason=body.force,
        message=body.message,
    )
    view = done(request, rt.releases.deploy(deploy))
    if body.force is not None:
        request.state.audit_detail = f"{view['message']}; forced: {body.force}"
    return view
