"""Release operations asked for by users: deploy, undo, down.

Each one validates against the current state, then writes revisions, rollouts and events and
wakes the controller, which does the work. They run in the API's worker threads; a lock makes
the check-then-write of one server atomic, and the store's one-active-rollout constraint
guards against other servers. Callers: the API.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from baepo.controller import desired, freeze, locks, preview
from baepo.controller.desired import spec_of
from baepo.controller.operations import Operations, Outcome
from baepo.core import causes
from baepo.core.model import App, AppState, Revision, Rollout, RolloutPhase, config_hash
from baepo.errors import ConfigError, Problem, StateError
from baepo.secrets import references, sealed
from baepo.secrets.keys import Keyring
from baepo.spec import sensitive
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
    source: dict[str, Any] | None = None
    """The spec as written (overlays included), kept so the release can be promoted to
    another environment (``baepo promote-release``)."""
    origin: str = "deploy"
    override_freeze: str | None = None
    """Why this deploy goes ahead inside a freeze window (the caller checked for admin)."""
    dry_run: bool = False
    """Check everything a deploy checks and say what it would do, changing nothing."""


class Releases(Operations):
    """Deploy, undo and down for every app+environment of one store."""

    def deploy(self, request: DeployRequest) -> Outcome:
        """Make a revision of ``request.spec`` and start rolling it out (or say why not).

        A dry run (``request.dry_run``) refuses what a deploy would refuse, but changes
        nothing: its outcome carries a ``preview`` of the revision it would make."""
        self._check_freeze(request)
        spec = request.spec
        version = request.version or spec.version
        if not version:
            raise ConfigError(
                "nothing to deploy: no version given",
                problems=[Problem("version", "set `version:` in the spec or pass --version")],
            )
        desired.check_release(spec, request.spec_dir, version)
        desired.check_run_user(spec, request.spec_dir)  # refused now, not at the start
        references.check_references(
            self.store, spec, spec.app, request.env, request.spec_dir, self.secret_scope
        )
        # Secret-looking run.env values are sealed before anything keeps or shows the config.
        keyring = self.keyring or Keyring()
        config = sealed.seal_spec(
            spec.model_copy(update={"version": version}).model_dump(mode="json"), keyring
        )
        source = sealed.seal_spec(request.source, keyring) if request.source else None
        digest = config_hash({"config": sensitive.hash_view(config), "spec_dir": request.spec_dir})
        with self._lock:
            locks.check(self.store, spec.app, request.env, request.actor)
            app = self._app(spec.app, request.env, create=not request.dry_run)
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
                        locks.in_progress_message(active, target),
                        hint=f"rollout {active.id} is {active.phase.value}: wait for it "
                        "(baepo status --watch), undo it (baepo undo), "
                        "or replace it with baepo deploy --supersede",
                    )
            elif stable is not None and stable.config_hash == digest:
                if app.state == AppState.DOWN and request.dry_run:
                    return Outcome(
                        spec.app,
                        request.env,
                        False,
                        f"dry run: would start revision {stable.number} ({stable.version}) again",
                        stable.number,
                    )
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
            new = self._with_secrets(
                Revision(
                    app=spec.app,
                    env=request.env,
                    number=self.unrecorded_revision(spec.app, request.env) + 1,
                    version=version,
                    config=config,
                    config_hash=digest,
                    spec_dir=request.spec_dir,
                    created_by=request.actor,
                    created_at=self.clock(),
                    message=request.message,
                    origin=request.origin,
                    source=source,
                ),
                spec,
            )
            new = replace(new, number=self._next_number(new))
            if request.dry_run:
                return self._dry_run(new, stable, active)
            if active is not None:  # replaced (``--supersede``): it names what replaced it
                cause = causes.superseded(request.actor, new.number, version)
                self._end(active, RolloutPhase.SUPERSEDED, f"superseded by {request.actor}", cause)
            revision = self.store.add_revision(new)
            return self._roll_out(app, revision, request.actor)

    def _dry_run(self, new: Revision, stable: Revision | None, active: Rollout | None) -> Outcome:
        """The outcome of a deploy that would make ``new``, with its preview; nothing stored."""
        shown = preview.preview(new, stable, supersedes=active.id if active else None)
        wait = " (after an approver approves it)" if shown["approval_required"] else ""
        replacing = f", replacing revision {stable.number} ({stable.version})" if stable else ""
        return Outcome(
            new.app,
            new.env,
            False,
            f"dry run: would make revision {new.number} (version {new.version}) and roll it "
            f"out{wait}{replacing}",
            new.number,
            preview=shown,
        )

    def _next_number(self, new: Revision) -> int:
        """The number ``store.add_revision`` gives ``new``: after the last one, or its own
        when that is higher (instances that run without a record)."""
        numbers = [r.number for r in self.store.list_revisions(new.app, new.env)]
        return max(max(numbers, default=0) + 1, new.number)

    def _check_freeze(self, request: DeployRequest) -> None:
        """Refuse a deploy inside an open freeze window, or record its override."""
        frozen = freeze.active_freeze(request.spec.freeze, self.clock())
        if frozen is None:
            return
        window, ends = frozen
        until = ends.strftime("%Y-%m-%d %H:%M UTC")
        name = request.spec.app
        if not request.override_freeze:
            raise StateError(
                f"deploys of {name} to {request.env} are frozen until {until}: {window.reason}",
                hint="an admin can deploy anyway with baepo deploy --override-freeze REASON",
            )
        if request.dry_run:
            return
        with self._lock:
            app = self._app(name, request.env)
            self._event(
                app,
                "freeze.overridden",
                f"freeze until {until} ({window.reason}) overridden: {request.override_freeze}",
                request.actor,
            )

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
            locks.check(self.store, app_name, env, actor)
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
                cause = causes.by_person(actor, "baepo undo", message)
                self._end(active, RolloutPhase.ABORTED, f"undone by {actor}; back to stable", cause)
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
            warm = self._still_warm(app, to_revision)
            if warm is not None:
                return self._switch_back(app, warm, actor)
            source = self._undo_source(app, to_revision)
            # the copy is a new deploy: its references must still be allowed now
            references.check_references(
                self.store, spec_of(source), app_name, env, source.spec_dir,
                self.secret_scope,
            )  # fmt: skip
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
                self._with_secrets(
                    replace(
                        source,
                        number=0,
                        created_by=actor,
                        created_at=self.clock(),
                        message=message or f"undo to revision {source.number}",
                        origin=f"undo of {source.number}",
                    ),
                    spec_of(source),
                )
            )
            return self._roll_out(app, revision, actor)

    def _still_warm(self, app: App, to_revision: int | None) -> Rollout | None:
        """The last rollout, when it kept the revision to go back to running (blue-green's
        ``scale_down_delay``) and that time is not over."""
        last = self.store.latest_rollout(app.app, app.env)
        keep = (last.status.get("keep") if last else None) or {}
        if not last or last.phase != RolloutPhase.HEALTHY or not keep:
            return None
        if to_revision not in (None, keep["revision"]):
            return None
        if self.timer() >= datetime.fromisoformat(keep["until"]):
            return None
        return last

    def _switch_back(self, app: App, last: Rollout, actor: str) -> Outcome:
        """Fast undo: the previous revision is still running, so only traffic moves back."""
        back = int(last.status["keep"]["revision"])
        now = self.clock()
        until = self.timer().isoformat()
        status = {**last.status, "keep": {"revision": last.revision, "until": until}}
        # Stable moves first: a controller pass that reads the rollout after this never pairs
        # it with the old stable revision (see ``Reconciler._hold``).
        self._save_app(replace(app, stable_revision=back))
        self.store.save_rollout(replace(last, status=status, updated_at=now))
        message = (
            f"{actor} undid revision {last.revision}: revision {back} was still warm and "
            f"serves all traffic again"
        )
        self._event(app, "rollout.undone", message, actor, rollout=last)
        self.wake()
        return Outcome(app.app, app.env, True, message, back)

    def down(self, app_name: str, env: str, actor: str) -> Outcome:
        """Stop serving: abort any rollout, stop instances and router; keep the history."""
        with self._lock:
            app = self.store.get_app(app_name, env)
            if app is None:
                raise StateError(f"{app_name} has never been deployed in {env}")
            active = self.store.active_rollout(app_name, env)
            if active is not None:
                cause = causes.by_person(actor, "baepo down")
                self._end(active, RolloutPhase.ABORTED, f"stopped by {actor} (baepo down)", cause)
            if app.state == AppState.DOWN and active is None:
                return Outcome(app_name, env, False, f"{app_name} is already down")
            self._save_app(replace(self.store.get_app(app_name, env) or app, state=AppState.DOWN))
            self._event(app, "app.down_requested", f"{actor} asked to stop {app_name}", actor)
            self.wake()
            return Outcome(app_name, env, True, f"stopping {app_name}; history is kept")
