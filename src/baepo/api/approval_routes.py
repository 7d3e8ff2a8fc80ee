"""Approving or rejecting a deploy that waits in ``awaiting_approval``.

Both need the approver role in the environment; who approved or rejected, and why, goes to
the history and the audit log. Callers: ``api.app`` includes the router.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from baepo.api.auth import require
from baepo.api.routes import done, runtime
from baepo.api.schemas import Body
from baepo.core.model import DEFAULT_ENV
from baepo.spec.base import Text

router = APIRouter(prefix="/api/v1")


class DecisionBody(Body):
    """Approve or reject the rollout of an app waiting for approval in one environment."""

    env: str = Field(default=DEFAULT_ENV, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    reason: Text = Field(default="", max_length=2000, description="Why; required to reject.")


@router.post("/apps/{app}/approve", tags=["steering"])
def approve(app: str, body: DecisionBody, request: Request) -> dict[str, Any]:
    """Let the rollout waiting for approval start."""
    caller = require(request, "approver", body.env, "approve")
    steering = runtime(request).steering
    return done(request, steering.approve(app, body.env, caller.actor, reason=body.reason))


@router.post("/apps/{app}/reject", tags=["steering"])
def reject(app: str, body: DecisionBody, request: Request) -> dict[str, Any]:
    """End the rollout waiting for approval, with a reason; nothing of it ran."""
    caller = require(request, "approver", body.env, "reject")
    steering = runtime(request).steering
    return done(request, steering.reject(app, body.env, caller.actor, reason=body.reason))
