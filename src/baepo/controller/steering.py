"""Steering a rollout in progress: promote, pause, resume, abort, retry.

Each operation records what a person asked for in the rollout's ``status`` (or ends it) and
wakes the controller; the strategy reads the request on its next pass, so a crash between the
two loses nothing. Callers: the API.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from baepo.controller.operations import Operations, Outcome
from baepo.core import causes
from baepo.core.model import Rollout, RolloutPhase
from baepo.errors import ConfigError, ConflictError, Problem, StateError
from baepo.spec.models import Spec

STEERABLE = ("canary", "blue_green")
ATTEMPTS = 5


class Steering(Operations):
    """Promote, pause, resume, abort and retry for every app+environment of one store."""

    def promote(self, app: str, env: str, actor: str, *, full: bool = False) -> Outcome:
        """Go past the current step (a pause, an analysis), or to the end with ``full``."""
        return self._retrying(lambda: self._promote(app, env, actor, full))

    def _promote(self, app: str, env: str, actor: str, full: bool) -> Outcome:
        with self._lock:
            active = self._active(app, env, "promote")
            if active.strategy not in STEERABLE:
                raise StateError(
                    f"rollout {active.id} is {active.strategy}: it has no steps to promote",
                    hint="canary and blue_green rollouts can be promoted",
                )
            key = "promote_full" if full else "promote_step"
            status = {**active.status, key: True, "manual_pause": False}
            phase = RolloutPhase.PROGRESSING if active.phase == RolloutPhase.PAUSED else None
            words = f"{actor} promoted rollout {active.id}{' in full' if full else ''}"
            self._update(active, status, phase, "rollout.promoted", words, actor)
            what = "to the end" if full else "past the current step"
            return Outcome(
                app, env, True, f"rollout {active.id} promoted {what}", active.revision, active.id
            )

    def pause(self, app: str, env: str, actor: str) -> Outcome:
        """Hold the rollout where it is: no scaling, no weight change, until resumed."""
        return self._retrying(lambda: self._pause(app, env, actor))

    def _pause(self, app: str, env: str, actor: str) -> Outcome:
        with self._lock:
            active = self._active(app, env, "pause")
            if active.status.get("manual_pause"):
                return Outcome(app, env, False, f"rollout {active.id} is already paused")
            status = {**active.status, "manual_pause": True, "paused_by": actor}
            words = f"rollout {active.id} paused by {actor}"
            self._update(active, status, RolloutPhase.PAUSED, "rollout.paused", words, actor)
            return Outcome(
                app, env, True, f"rollout {active.id} paused", active.revision, active.id
            )

    def resume(self, app: str, env: str, actor: str) -> Outcome:
        """Undo ``pause``. A step that waits for a person still needs ``promote``."""
        return self._retrying(lambda: self._resume(app, env, actor))

    def _resume(self, app: str, env: str, actor: str) -> Outcome:
        with self._lock:
            active = self._active(app, env, "resume")
            if not active.status.get("manual_pause"):
                raise StateError(
                    f"rollout {active.id} was not paused with baepo pause",
                    hint="a step waiting for a person goes on with baepo promote",
                )
            status = {**active.status, "manual_pause": False}
            words = f"rollout {active.id} resumed by {actor}"
            self._update(active, status, RolloutPhase.PROGRESSING, "rollout.resumed", words, actor)
            return Outcome(
                app, env, True, f"rollout {active.id} resumed", active.revision, active.id
            )

    def abort(self, app: str, env: str, actor: str) -> Outcome:
        """All traffic back to stable in one router operation; the new revision's instances
        stay up, unrouted, for the strategy's ``abort_scale_down_delay``, then stop."""
        return self._retrying(lambda: self._abort(app, env, actor))

    def _abort(self, app: str, env: str, actor: str) -> Outcome:
        with self._lock:
            active = self._active(app, env, "abort")
            if active.stable_revision is None:
                raise StateError(
                    f"rollout {active.id} is the first deploy of {app}: there is no stable "
                    "revision to return to",
                    hint="stop the app with baepo down",
                )
            delay = self._abort_delay(app, env, active.revision)
            status = {
                **active.status,
                "keep": {
                    "revision": active.revision,
                    "until": (self.timer() + timedelta(seconds=delay)).isoformat(),
                },
            }
            message = (
                f"aborted by {actor}: revision {active.stable_revision} serves all traffic; "
                f"revision {active.revision} stops in {delay:g}s"
            )
            cause = causes.by_person(actor, "baepo abort")
            self._end(replace(active, status=status), RolloutPhase.ABORTED, message, cause)
            self.wake()
            return Outcome(app, env, True, message, active.revision, active.id)

    def retry(self, app: str, env: str, actor: str) -> Outcome:
        """Start an aborted (or rolled back) rollout again, from its first step."""
        with self._lock:
            record = self.store.get_app(app, env)
            if record is None:
                raise StateError(f"{app} has never been deployed in {env}")
            if self.store.active_rollout(app, env) is not None:
                raise StateError(f"a rollout of {app} is in progress in {env}")
            last = self.store.latest_rollout(app, env)
            if last is None or last.phase not in (RolloutPhase.ABORTED, RolloutPhase.ROLLED_BACK):
                raise StateError(
                    f"the last rollout of {app} was not aborted or rolled back: nothing to retry",
                    hint="deploy a new revision with baepo deploy",
                )
            revision = self.store.get_revision(app, env, last.revision)
            return self._roll_out(record, revision, actor)

    def approve(self, app: str, env: str, actor: str, *, reason: str = "") -> Outcome:
        """Let a rollout waiting in ``awaiting_approval`` start. The one who asked for the
        deploy may not approve it unless the environment's policy allows self-approval."""
        return self._retrying(lambda: self._decide(app, env, actor, reason, approve=True))

    def reject(self, app: str, env: str, actor: str, *, reason: str) -> Outcome:
        """End a rollout waiting in ``awaiting_approval``: nothing of it ever ran."""
        if not reason.strip():
            raise ConfigError(
                "a rejection needs a reason",
                problems=[Problem("reason", "say why, e.g. --reason 'not during the sale'")],
            )
        return self._retrying(lambda: self._decide(app, env, actor, reason, approve=False))

    def _decide(self, app: str, env: str, actor: str, reason: str, *, approve: bool) -> Outcome:
        verb = "approve" if approve else "reject"
        with self._lock:
            active = self._active(app, env, verb)
            if active.phase != RolloutPhase.AWAITING_APPROVAL:
                raise StateError(
                    f"rollout {active.id} of {app} in {env} is {active.phase.value}, not "
                    "awaiting approval: nothing to " + verb,
                    hint="see baepo status",
                )
            requested = self.store.get_revision(app, env, active.revision)
            policy = Spec.model_validate(requested.config).approval
            if (
                approve
                and _identity(actor) == _identity(requested.created_by)
                and not policy.allow_self_approval
            ):
                raise StateError(
                    f"{actor} asked for revision {active.revision} and may not approve it as well",
                    hint="another approver runs baepo approve, or the environment's policy "
                    "sets approval: {required: true, allow_self_approval: true}",
                )
            decision = {
                **active.status.get("approval", {}),
                "decision": "approved" if approve else "rejected",
                "by": actor,
                "at": self.clock().isoformat(),
                "reason": reason,
            }
            status = {**active.status, "approval": decision}
            because = f": {reason}" if reason else ""
            if approve:
                words = f"{actor} approved revision {active.revision}{because}"
                self._update(active, status, RolloutPhase.PENDING, "approval.granted", words, actor)
                return Outcome(
                    app, env, True, f"{words}; it rolls out now", active.revision, active.id
                )
            words = f"{actor} rejected revision {active.revision}{because}"
            self._update(active, status, None, "approval.rejected", words, actor)
            rejected = self.store.get_rollout(active.id)
            cause = causes.by_person(actor, "baepo reject", reason)
            self._end(rejected, RolloutPhase.ABORTED, f"rejected by {actor}{because}", cause)
            return Outcome(app, env, True, words, active.revision, active.id)

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _retrying(operation: Callable[[], Outcome]) -> Outcome:
        """Run ``operation`` again when the controller wrote the rollout in between."""
        for _ in range(ATTEMPTS - 1):
            try:
                return operation()
            except ConflictError:
                time.sleep(0.01)
        return operation()

    def _abort_delay(self, app: str, env: str, number: int) -> float:
        strategy = Spec.model_validate(self.store.get_revision(app, env, number).config).strategy
        for section in (strategy.canary, strategy.blue_green):
            if section is not None:
                return section.abort_scale_down_delay
        return 0.0

    def _update(
        self,
        rollout: Rollout,
        status: dict[str, Any],
        phase: RolloutPhase | None,
        kind: str,
        message: str,
        actor: str,
    ) -> None:
        now = self.clock()
        saved = self.store.save_rollout(
            replace(rollout, status=status, phase=phase or rollout.phase, updated_at=now)
        )
        record = self.store.get_app(rollout.app, rollout.env)
        assert record is not None
        self._event(record, kind, message, actor, rollout=saved)
        self.wake()


def _identity(actor: str) -> str:
    """Who acted, as the server knows them: the credential's name. Records from before the
    actor came from the credential say ``alice via token ci`` or ``token ci``: the token
    ``ci``, whatever name its holder claimed."""
    return actor.rsplit(" via ", 1)[-1].removeprefix("token ")
