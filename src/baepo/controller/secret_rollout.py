"""Rolling out the stable config again after a secret changed, so every instance gets it.

A secret's value is read when an instance starts; a new revision with the same config as the
stable one replaces the running instances through the app's usual strategy (and its
approval, if the environment needs one). Callers: ``api.secret_routes`` (``baepo secret
rotate``).
"""

from __future__ import annotations

from dataclasses import replace

from baepo.controller import locks
from baepo.controller.desired import spec_of
from baepo.controller.operations import Operations, Outcome
from baepo.errors import StateError


class SecretRollouts(Operations):
    def redeploy(self, app_name: str, env: str, actor: str, secret: str) -> Outcome:
        """A new revision of the stable config, rolled out: its instances read ``secret``
        (and every other secret) afresh."""
        with self._lock:
            locks.check(self.store, app_name, env, actor)
            app = self.store.get_app(app_name, env)
            if app is None or app.stable_revision is None:
                raise StateError(
                    f"{app_name} has no stable revision in {env}: nothing runs the old value",
                    hint="the next deploy uses the new value",
                )
            active = self.store.active_rollout(app_name, env)
            if active is not None:
                raise StateError(
                    f"rollout {active.id} is {active.phase.value}; its new instances already "
                    "use the new value",
                    hint="roll out again when it has ended: baepo secret rotate",
                )
            stable = self.store.get_revision(app_name, env, app.stable_revision)
            revision = self.store.add_revision(
                self._with_secrets(
                    replace(
                        stable,
                        number=0,
                        created_by=actor,
                        created_at=self.clock(),
                        message=f"secret {secret} rotated",
                        origin=f"rotation of {stable.number}",
                    ),
                    spec_of(stable),
                )
            )
            return self._roll_out(app, revision, actor)
