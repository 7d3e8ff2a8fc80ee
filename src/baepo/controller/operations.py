"""What every user operation shares: the outcome record, the lock, events, ending rollouts.

Callers: ``controller.releases`` (deploy, undo, down) and ``controller.steering`` (promote,
pause, resume, abort, retry).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from baepo.controller import clock as clocks
from baepo.controller.reconciler import Clock, utcnow
from baepo.core.model import App, AppState, Cause, Event, Revision, Rollout, RolloutPhase
from baepo.core.ports import Store
from baepo.errors import StateError
from baepo.secrets import references
from baepo.secrets.keys import Keyring
from baepo.secrets.resolve import secret_versions
from baepo.spec import sensitive
from baepo.spec.models import Spec


@dataclass(frozen=True)
class Outcome:
    """What a release operation did, in words and numbers, for the CLI and the API."""

    app: str
    env: str
    changed: bool
    message: str
    revision: int | None = None
    rollout_id: int | None = None
    preview: dict[str, Any] | None = None
    """A dry run's description of what it would do (``controller.preview``)."""


class Operations:
    """Shared state and helpers. One lock per server makes check-then-write atomic."""

    def __init__(
        self,
        store: Store,
        wake: Callable[[], None],
        clock: Clock = utcnow,
        lock: threading.Lock | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self.store = store
        self.wake = wake
        self.clock = clock
        # Times scale-down delays on the reconciler's timeline (``controller.clock``).
        self.timer: Clock = clocks.steady if clock is utcnow else clock
        self._lock = lock or threading.Lock()
        self.keyring = keyring  # fingerprints secrets read from files and environment variables
        self.secret_scope = references.SecretScope()  # what specs may reach on this server
        # The highest revision number running without a record (instances taken over after a
        # lost database, ``api.orphans``): new revisions are numbered after it, never as one
        # of them. The server gives the platform's; 0 without one.
        self.unrecorded_revision: Callable[[str, str], int] = lambda app, env: 0

    @property
    def lock(self) -> threading.Lock:
        """The server's one lock: operations built elsewhere share it."""
        return self._lock

    def _with_secrets(self, revision: Revision, spec: Spec) -> Revision:
        """``revision`` stamped with the versions of the secrets its instances will read: its
        ``secrets:`` and its sealed ``run.env`` values."""
        versions = secret_versions(
            self.store, self.keyring, spec, revision.app, revision.env, revision.spec_dir,
            scope=self.secret_scope,
        )  # fmt: skip
        return replace(revision, secrets={**sensitive.sealed_versions(revision.config), **versions})

    def _active(self, app_name: str, env: str, verb: str) -> Rollout:
        """The rollout in progress, or a StateError saying there is nothing to ``verb``."""
        if self.store.get_app(app_name, env) is None:
            raise StateError(f"{app_name} has never been deployed in {env}")
        active = self.store.active_rollout(app_name, env)
        if active is None:
            raise StateError(
                f"no rollout of {app_name} is in progress in {env}: nothing to {verb}",
                hint="see baepo status",
            )
        return active

    # -- helpers -----------------------------------------------------------------------

    def _roll_out(self, app: App, revision: Revision, actor: str) -> Outcome:
        if app.state == AppState.DOWN:
            app = self._save_app(replace(app, state=AppState.RUNNING))
        spec = Spec.model_validate(revision.config)
        strategy = spec.strategy.kind
        approval = spec.approval.required
        now = self.clock()
        rollout = self.store.create_rollout(
            Rollout(
                id=0,
                app=revision.app,
                env=revision.env,
                revision=revision.number,
                stable_revision=app.stable_revision,
                strategy=strategy,
                phase=RolloutPhase.AWAITING_APPROVAL if approval else RolloutPhase.PENDING,
                message=(
                    f"revision {revision.number} waits for an approver (baepo approve)"
                    if approval
                    else f"waiting to roll out revision {revision.number}"
                ),
                started_at=now,
                updated_at=now,
                status={"approval": {"requested_by": actor}} if approval else {},
            )
        )
        source = f" ({revision.origin})" if revision.origin != "deploy" else ""
        self._event(
            app,
            "rollout.created",
            f"{actor} deploys revision {revision.number}{source}: version {revision.version}, "
            f"{strategy}",
            actor,
            rollout=rollout,
        )
        if approval:
            self._event(
                app,
                "approval.requested",
                f"revision {revision.number} ({revision.version}) of {app.app} in {app.env} "
                f"waits for an approver: baepo approve -e {app.env}",
                actor,
                rollout=rollout,
            )
            return Outcome(
                revision.app,
                revision.env,
                True,
                f"revision {revision.number} ({revision.version}) waits for approval: someone "
                f"with the approver role runs baepo approve -e {revision.env} (or baepo reject)",
                revision.number,
                rollout.id,
            )
        self.wake()
        return Outcome(
            revision.app,
            revision.env,
            True,
            f"revision {revision.number} ({revision.version}) is rolling out ({strategy})",
            revision.number,
            rollout.id,
        )

    def _undo_source(self, app: App, to_revision: int | None) -> Revision:
        if to_revision is not None:
            return self.store.get_revision(app.app, app.env, to_revision)
        promoted = [
            r.revision
            for r in self.store.list_rollouts(app.app, app.env)
            if r.phase == RolloutPhase.HEALTHY and r.revision != app.stable_revision
        ]
        if not promoted:
            raise StateError(
                f"{app.app} has no earlier healthy revision to go back to",
                hint="name one with --to-revision N (see baepo history)",
            )
        return self.store.get_revision(app.app, app.env, promoted[-1])

    def _app(self, name: str, env: str, *, create: bool = True) -> App:
        """The app, stored first if it is new (unless ``create`` is false: a dry run)."""
        app = self.store.get_app(name, env)
        if app is not None:
            return app
        new = App(
            app=name, env=env, state=AppState.RUNNING, stable_revision=None, updated_at=self.clock()
        )
        return self.store.save_app(new) if create else new

    def _revision(self, app: App, number: int | None) -> Revision | None:
        return None if number is None else self.store.get_revision(app.app, app.env, number)

    def _save_app(self, app: App) -> App:
        return self.store.save_app(replace(app, updated_at=self.clock()))

    def _end(self, rollout: Rollout, phase: RolloutPhase, message: str, cause: Cause) -> None:
        """End ``rollout`` in ``phase`` at a person's request, with its ``cause``."""
        now = self.clock()
        self.store.save_rollout(
            replace(
                rollout,
                phase=phase,
                message=message,
                updated_at=now,
                finished_at=now,
                cause=cause,
            )
        )
        self.store.append_event(
            Event(
                app=rollout.app,
                env=rollout.env,
                kind=f"rollout.{phase.value}",
                message=f"rollout {rollout.id}: {message}",
                at=now,
                rollout_id=rollout.id,
                revision=rollout.revision,
            )
        )

    def _event(
        self, app: App, kind: str, message: str, actor: str, *, rollout: Rollout | None = None
    ) -> None:
        self.store.append_event(
            Event(
                app=app.app,
                env=app.env,
                kind=kind,
                message=message,
                at=self.clock(),
                actor=actor,
                rollout_id=rollout.id if rollout else None,
                revision=rollout.revision if rollout else None,
            )
        )
