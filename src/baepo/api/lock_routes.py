"""Deploy locks: take, read and release the lock of one app+environment.

Taking a lock and releasing one's own need the deployer role in the environment; releasing
someone else's lock needs ``force`` and the admin role. Callers: ``api.app`` includes the
router.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import Field

from baepo.api.auth import require
from baepo.api.routes import runtime
from baepo.api.schemas import Body
from baepo.controller import locks
from baepo.core.model import DEFAULT_ENV, DeployLock
from baepo.spec.base import Text

router = APIRouter(prefix="/api/v1")

ENV_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class LockBody(Body):
    """Lock deploys of an app in one environment."""

    env: str = Field(default=DEFAULT_ENV, pattern=ENV_PATTERN)
    reason: Text = Field(default="", max_length=2000, description="Why, shown to others.")


class UnlockBody(Body):
    """Release the deploy lock of an app in one environment."""

    env: str = Field(default=DEFAULT_ENV, pattern=ENV_PATTERN)
    force: bool = Field(default=False, description="Release someone else's lock (admin).")


def lock_view(app: str, env: str, lock: DeployLock | None) -> dict[str, Any]:
    return {
        "app": app,
        "env": env,
        "locked": lock is not None,
        "holder": None if lock is None else lock.holder,
        "reason": None if lock is None else lock.reason,
        "since": None if lock is None else lock.since.isoformat(),
        "message": f"{app} in {env} is not locked" if lock is None else locks.lock_message(lock),
    }


@router.post("/apps/{app}/lock", tags=["locks"])
def lock(app: str, body: LockBody, request: Request) -> dict[str, Any]:
    """Lock deploys of the app in the environment: only the holder may deploy or undo."""
    caller = require(request, "deployer", body.env, "lock")
    rt = runtime(request)
    taken = locks.take(rt.store, app, body.env, caller.actor, body.reason, rt.releases.clock())
    view = lock_view(app, body.env, taken)
    request.state.audit_detail = view["message"]
    return view


@router.get("/apps/{app}/lock", tags=["locks"])
def get_lock(
    app: str,
    request: Request,
    env: Annotated[str, Query(pattern=ENV_PATTERN, description="Environment.")] = DEFAULT_ENV,
) -> dict[str, Any]:
    """Who holds the deploy lock of the app in the environment, since when and why."""
    require(request, "viewer", env, "read a lock")
    return lock_view(app, env, runtime(request).store.get_lock(app, env))


@router.post("/apps/{app}/unlock", tags=["locks"])
def unlock(app: str, body: UnlockBody, request: Request) -> dict[str, Any]:
    """Release the deploy lock; someone else's needs ``force`` and the admin role."""
    caller = require(request, "deployer", body.env, "unlock")
    if body.force:
        require(request, "admin", body.env, "unlock another's lock")
    actor = caller.actor
    released = locks.release(runtime(request).store, app, body.env, actor, force=body.force)
    view = lock_view(app, body.env, None)
    view["changed"] = released is not None
    view["message"] = (
        f"{app} in {body.env} was not locked"
        if released is None
        else f"unlocked {app} in {body.env} (held by {released.holder})"
    )
    request.state.audit_detail = view["message"]
    return view
