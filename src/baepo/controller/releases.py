"""Release operations asked for by users: deploy, undo, down.

Each one validates against the current state, then writes revisions, rollouts and events and
wakes the controller, which does the work. They run in the API's worker threads; a lock makes
the check-then-write of one server atomic, and the store's one-active-rollout constraint
guards against other servers. Callers: the API.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from baepo.controller.reconciler import Clock, utcnow
from baepo.core.model import (
    App,
    AppState,
    Event,
    Revision,
    Rollout,
    RolloutPhase,
    config_hash,
)
from baepo.core.ports import Store
from baepo.errors import ConfigError, Problem, StateError
from baepo.spec.models import Spec


@dataclass(frozen=True)
class DeployRequest:
    """A validated request to release ``spec`` (from the file in ``spec_dir``)."""

    spec: Spec
    spec_dir: str
    env: str
    actor: str
    version: str | None = None
    message: str = ""
    supersede: bool = False


@dataclass(frozen=True)
class Outcome:
    """What a release operation did, in words and numbers, for the CLI and the API."""

    app: str
    env: str
    changed: bool
    message: str
    revision: int | None = None
    rollout_id: int | None = None


class Releases:
    """Deploy, undo and down for every app+environment of one store."""

    def __init__(self, store: Store, wake: Callable[[], None], clock: Clock = utcnow) -> None:
        self.store = store
        self.wake = wake
        self.clock = clock
        self._lock = threading.Lock()

    def deploy(self, request: DeployRequest) -> Outcome:
        """Make a revision of ``request.spec`` and start rolling it out (or say why not)."""
        spec = request.spec
        version = request.version or spec.version
        if not version:
            raise ConfigError(
                "nothing to deploy: no version given",
                problems=[Problem("version", "set `version:` in the spec or pass --version")],
            )
        config = spec.model_copy(update={"version": version}).model_dump(mode="json")
        digest = config_hash({"config": config, "spec_dir": request.spec_dir})
        with self._lock:
            app = self._app(spec.app, request.env)
            active = self.store.active_rollout(spec.app, request.env)
            stable = self._revision(app, app.stable_revision)
            if active is not None:
                target = self.store.get_revision(spec.app, request.env, active.revision)
                if target.config_hash == digest:
                    return Outcome(
                        spec.app,
                        request.env,
                        False,
                        f"revision {target.number} ({target.version}) with this config is "
                        f"already rolling out (rollout {active.id})",
                        target.number,
                        active.id,
                    )
                if not request.supersede:
                    raise StateError(
                        f"rollout {active.id} of {spec.app} (revision {active.revision}) is "
                        f"{active.phase.value}",
                        hint="wait for it (baepo status --watch), undo it (baepo undo), "
                        "or replace it with baepo deploy --supersede",
                    )
                self._end(active, RolloutPhase.SUPERSEDED, f"superseded by {request.actor}")
            elif stable is not None and stable.config_hash == digest:
                if app.state == AppState.DOWN:
                    self._save_app(replace(app, state=AppState.RUNNING))
                    self._event(
                        app, "app.up", f"starting revision {stable.number} again", request.actor
                    )
                    self.wake()
                    return Outcome(
                        spec.app,
                        request.env,
                        True,
                        f"starting revision {stable.number} ({stable.version}) again",
                        stable.number,
                    )
                return Outcome(
                    spec.app,
                    request.env,
                    False,
                    f"nothing to deploy: revision {stable.number} already runs version "
                    f"{stable.version} with this config",
                    stable.number,
                )
            revision = self.store.add_revision(
                Revision(
                    app=spec.app,
                    env=request.env,
                    number=0,
                    version=version,
                    config=config,
                    config_hash=digest,
                    spec_dir=request.spec_dir,
                    created_by=request.actor,
                    created_at=self.clock(),
                    message=request.message,
                )
            )
            return self._roll_out(app, revision, request.actor)

    def undo(
        self,
        app_name: str,
        env: str,
        actor: str,
        *,
        to_revision: int | None = None,
        message: str = "",
    ) -> Outcome:
        """Go back: stop an in-flight rollout, or roll out a copy of an earlier revision."""
        with self._lock:
            app = self.store.get_app(app_name, env)
            if app is None:
                raise StateError(f"{app_name} has never been deployed in {env}")
            active = self.store.active_rollout(app_name, env)
            if active is not None and to_revision in (None, active.stable_revision):
                if active.stable_revision is None:
                    raise StateError(
                        f"rollout {active.id} is the first deploy of {app_name}: there is "
                        "nothing to go back to",
                        hint="stop the app with baepo down",
                    )
                self._end(active, RolloutPhase.ABORTED, f"undone by {actor}; back to stable")
                self.wake()
                return Outcome(
                    app_name,
                    env,
                    True,
                    f"rollout {active.id} stopped; returning to revision {active.stable_revision}",
                    active.stable_revision,
                    active.id,
                )
            if active is not None:
                raise StateError(
                    f"rollout {active.id} is {active.phase.value}",
                    hint="undo it first (baepo undo), then undo to another revision",
                )
            source = self._undo_source(app, to_revision)
            stable = self._revision(app, app.stable_revision)
            if stable is not None and stable.config_hash == source.config_hash:
                return Outcome(
                    app_name,
                    env,
                    False,
                    f"revision {stable.number} already runs what revision {source.number} had",
                    stable.number,
                )
            revision = self.store.add_revision(
                replace(
                    source,
                    number=0,
                    created_by=actor,
                    created_at=self.clock(),
                    message=message or f"undo to revision {source.number}",
                    origin=f"undo of {source.number}",
                )
            )
            return self._roll_out(app, revision, actor)

    def down(self, app_name: str, env: str, actor: str) -> Outcome:
        """Stop serving: abort any rollout, stop instances and router; keep the history."""
        with self._lock:
            app = self.store.get_app(app_name, env)
            if app is None:
                raise StateError(f"{app_name} has never been deployed in {env}")
            active = self.store.active_rollout(app_name, env)
            if active is not None:
                self._end(active, RolloutPhase.ABORTED, f"stopped by {actor} (baepo down)")
            if app.state == AppState.DOWN and active is None:
                return Outcome(app_name, env, False, f"{app_name} is already down")
            self._save_app(replace(self.store.get_app(app_name, env) or app, state=AppState.DOWN))
            self._event(app, "app.down_requested", f"{actor} asked to stop {app_name}", actor)
            self.wake()
            return Outcome(app_name, env, True, f"stopping {app_name}; history is kept")

    # -- helpers -----------------------------------------------------------------------

    def _roll_out(self, app: App, revision: Revision, actor: str) -> Outcome:
        if app.state == AppState.DOWN:
            app = self._save_app(replace(app, state=AppState.RUNNING))
        strategy = Spec.model_validate(revision.config).strategy.kind
        now = self.clock()
        rollout = self.store.create_rollout(
            Rollout(
                id=0,
                app=revision.app,
                env=revision.env,
                revision=revision.number,
                stable_revision=app.stable_revision,
                strategy=strategy,
                phase=RolloutPhase.PENDING,
                message=f"waiting to roll out revision {revision.number}",
                started_at=now,
                updated_at=now,
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

    def _app(self, name: str, env: str) -> App:
        app = self.store.get_app(name, env)
        if app is not None:
            return app
        return self.store.save_app(
            App(
                app=name,
                env=env,
                state=AppState.RUNNING,
                stable_revision=None,
                updated_at=self.clock(),
            )
        )

    def _revision(self, app: App, number: int | None) -> Revision | None:
        return None if number is None else self.store.get_revision(app.app, app.env, number)

    def _save_app(self, app: App) -> App:
        return self.store.save_app(replace(app, updated_at=self.clock()))

    def _end(self, rollout: Rollout, phase: RolloutPhase, message: str) -> None:
        now = self.clock()
        self.store.save_rollout(
            replace(rollout, phase=phase, message=message, updated_at=now, finished_at=now)
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
