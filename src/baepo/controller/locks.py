"""Deploy locks of one app+environment (``baepo lock`` / ``baepo unlock``), and the messages
that say who holds a deploy back.

``take`` and ``release`` change the lock in the store; ``check`` refuses a deploy or undo by
anyone but the holder; ``lock_message`` and ``in_progress_message`` word the refusals.
Callers: ``controller.releases`` (deploy, undo) and ``api.lock_routes``.
"""

from __future__ import annotations

from datetime import datetime

from baepo.core.model import DeployLock, Revision, Rollout
from baepo.core.ports import Store
from baepo.errors import StateError

UNLOCK_HINT = "ask them to run baepo unlock, or an admin can run baepo unlock --force"


def lock_message(lock: DeployLock) -> str:
    """``shop in production is locked by alice since 2026-11-22 07:40:12 UTC: reason``."""
    text = (
        f"{lock.app} in {lock.env} is locked by {lock.holder} since "
        f"{lock.since:%Y-%m-%d %H:%M:%S} UTC"
    )
    return f"{text}: {lock.reason}" if lock.reason else text


def in_progress_message(rollout: Rollout, revision: Revision) -> str:
    """``shop in production is being deployed by alice (rollout 5, revision 3) since
    07:40:12 UTC``: who started the rollout in the way, and when."""
    return (
        f"{rollout.app} in {rollout.env} is being deployed by {revision.created_by} "
        f"(rollout {rollout.id}, revision {revision.number}) since "
        f"{rollout.started_at:%H:%M:%S} UTC"
    )


def check(store: Store, app: str, env: str, actor: str) -> None:
    """StateError when app+env is locked by someone other than ``actor``."""
    lock = store.get_lock(app, env)
    if lock is not None and lock.holder != actor:
        raise StateError(lock_message(lock), hint=UNLOCK_HINT)


def take(store: Store, app: str, env: str, actor: str, reason: str, now: datetime) -> DeployLock:
    """Lock app+env for ``actor``; StateError naming the holder when it is already locked."""
    return store.add_lock(DeployLock(app=app, env=env, holder=actor, reason=reason, since=now))


def release(store: Store, app: str, env: str, actor: str, *, force: bool) -> DeployLock | None:
    """Unlock app+env; the released lock, or None when it was not locked.

    Someone else's lock needs ``force`` (the caller checks that ``force`` comes from an admin).
    """
    lock = store.get_lock(app, env)
    if lock is None:
        return None
    if lock.holder != actor and not force:
        raise StateError(
            f"{lock_message(lock)}; only {lock.holder} may unlock it",
            hint="an admin can run baepo unlock --force",
        )
    return store.delete_lock(app, env)
