"""The gates of a rollout: what runs before the strategy moves anything, and after it ends.

Before (while the rollout is ``pending``): ``checks.before``, then ``hooks.pre_deploy``, then
``migrate.up``. Each is recorded as a gate run with its output; the first that fails ends
the rollout ``failed`` before any instance of the new revision starts or any traffic moves,
and runs ``hooks.on_failure``. Once all passed, ``status.gates`` says so and the strategy
starts. A controller restarted meanwhile runs them again (migrations must be idempotent, as
every migration tool's ``up`` is).

After: a rollout that ended ``healthy`` runs ``checks.after`` (a failure undoes the release
through ``on_failure_undo``) and then ``hooks.post_deploy``; ``rolled_back`` runs
``hooks.on_rollback``; ``failed`` runs ``hooks.on_failure``. Callers: ``controller.reconciler``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from baepo.core import causes
from baepo.core.model import (
    Cause,
    Event,
    GatePhase,
    GateRun,
    Revision,
    Rollout,
    RolloutPhase,
)
from baepo.core.ports import Store
from baepo.errors import BaepoError, ConflictError
from baepo.gates.backups import take_backup
from baepo.gates.run import GateResult, release_env, run_argv, run_check
from baepo.secrets import references, sealed
from baepo.secrets.keys import Keyring
from baepo.secrets.resolve import secret_env
from baepo.spec import sensitive
from baepo.spec.gates import CheckSpec
from baepo.spec.models import Spec

log = logging.getLogger(__name__)

Gate = tuple[str, str, str, Callable[[], Awaitable[GateResult]]]
"""kind, stage, name, and how to run it."""


class Gates:
    """Runs the gates of rollouts in background tasks, one set per rollout and moment."""

    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime],
        wake: Callable[[], None],
        keyring: Keyring | None = None,
    ) -> None:
        self.keyring = keyring
        self.state_dir: Path | None = None  # where backups go unless backup.dir says
        self.secret_scope = references.SecretScope()  # what specs may reach on this server
        self.store = store
        self.clock = clock
        self.wake = wake
        self.on_failure_undo: Callable[[str, str, str], object] | None = None
        self._tasks: dict[tuple[int, str], asyncio.Task[None]] = {}

    # -- before ------------------------------------------------------------------------

    def passed_before(self, rollout: Rollout, revision: Revision) -> bool:
        """True once the rollout may start; until then its gates run in the background."""
        spec = Spec.model_validate(revision.config)
        gates = self._before(rollout, revision, spec)
        if not gates or rollout.status.get("gates") == "passed":
            return True
        self._start((rollout.id, "before"), self._run_before(rollout, revision, spec, gates))
        return False

    def _before(self, rollout: Rollout, revision: Revision, spec: Spec) -> list[Gate]:
        if not (spec.checks.before or spec.hooks.pre_deploy or spec.migrate):
            return []
        try:
            env = self._env(rollout, revision, spec)
        except BaepoError as exc:
            failure = GateResult(False, str(exc))
            return [("secrets", "before", "secrets", lambda: _done(failure))]
        cwd = revision.spec_dir
        hidden = _hidden(spec, env)
        gates: list[Gate] = []
        for check in spec.checks.before:
            run = _redacting(self._check(check, cwd, env, spec), hidden)
            gates.append(("check", "before", check.name, run))
        for hook in spec.hooks.pre_deploy:
            name = hook.name or hook.command[0]
            run = _argv(hook.command, cwd, {**env, **hook.env}, hook.timeout, spec.run.user)
            gates.append(
                ("hook", "pre_deploy", name, _redacting(run, hidden + _hidden(spec, hook.env)))
            )
        if spec.migrate is not None and spec.backup is not None and spec.backup.before_migrate:
            backup = _redacting(self._backup(rollout, revision, spec, env), hidden)
            gates.append(("backup", "create", spec.backup.kind, backup))
        if spec.migrate is not None:
            migrate = spec.migrate
            argv = [arg.replace("{target}", "") for arg in migrate.up]
            run = _argv(argv, cwd, {**env, **migrate.env, "BAEPO_MIGRATE_TARGET": ""},
                        migrate.timeout, spec.run.user)  # fmt: skip
            run = _redacting(run, hidden + _hidden(spec, migrate.env))
            gates.append(("migrate", "up", " ".join(argv)[:200], run))
        return gates

    async def _run_before(
        self, rollout: Rollout, revision: Revision, spec: Spec, gates: list[Gate]
    ) -> None:
        for kind, stage, name, run in gates:
            # a backup records its own run, with its file, size and checksum
            recorded = run() if kind == "backup" else self._record(rollout, kind, stage, name, run)
            result = await recorded
            if not result.passed:
                cause = gate_cause(kind, stage, name, result)
                await self._end_failed(rollout, cause.summary, cause)
                await self._run_hooks(rollout, revision, spec, "on_failure")
                return
        await self._save_status(rollout, {"gates": "passed"})
        self.wake()

    def _backup(
        self, rollout: Rollout, revision: Revision, spec: Spec, env: dict[str, str]
    ) -> Callable[[], Awaitable[GateResult]]:
        """The backup taken before an automatic migration (``backup.before_migrate``)."""
        assert spec.backup is not None
        backup = spec.backup

        async def take() -> GateResult:
            if self.state_dir is None:
                return GateResult(False, "this controller has no state folder for backups")
            try:
                made = await take_backup(
                    self.store, backup, app=rollout.app, env=rollout.env,
                    spec_dir=revision.spec_dir, state_dir=self.state_dir, actor="controller",
                    reason=f"before migrating for revision {rollout.revision}",
                    revision=rollout.revision, env_vars={**self._allowed_environ(), **env},
                    user=spec.run.user,
                )  # fmt: skip
            except BaepoError as exc:
                return GateResult(False, str(exc))
            return GateResult(True, f"backup {made.id} taken ({made.size_bytes} bytes)")

        return take

    # -- after -------------------------------------------------------------------------

    def ended(self, rollout: Rollout, revision: Revision) -> None:
        """Start the gates of a rollout that just reached a terminal phase (once)."""
        spec = Spec.model_validate(revision.config)
        if rollout.phase == RolloutPhase.HEALTHY:
            if spec.checks.after or spec.hooks.post_deploy:
                self._start((rollout.id, "after"), self._run_after(rollout, revision, spec))
        elif rollout.phase == RolloutPhase.ROLLED_BACK and spec.hooks.on_rollback:
            self._start(
                (rollout.id, "after"), self._run_hooks(rollout, revision, spec, "on_rollback")
            )
        elif rollout.phase == RolloutPhase.FAILED and spec.hooks.on_failure:
            self._start(
                (rollout.id, "after"), self._run_hooks(rollout, revision, spec, "on_failure")
            )

    async def _run_after(self, rollout: Rollout, revision: Revision, spec: Spec) -> None:
        try:
            env = self._env(rollout, revision, spec)
        except BaepoError as exc:
            await self._event(rollout, "gate.failed", f"checks after not run: {exc}")
            return
        for check in spec.checks.after:
            run = _redacting(self._check(check, revision.spec_dir, env, spec), _hidden(spec, env))
            result = await self._record(rollout, "check", "after", check.name, run)
            if not result.passed:
                reason = (
                    f"check {check.name!r} (after) failed: {result.message} → undoing "
                    f"revision {rollout.revision}"
                )
                await self._event(rollout, "gate.failed", reason)
                if self.on_failure_undo is not None:
                    try:
                        await asyncio.to_thread(
                            self.on_failure_undo, rollout.app, rollout.env, reason
                        )
                    except BaepoError as exc:
                        log.warning("undo after a failed check failed: %s", exc)
                await self._run_hooks(rollout, revision, spec, "on_failure")
                return
        await self._run_hooks(rollout, revision, spec, "post_deploy")

    async def _run_hooks(
        self, rollout: Rollout, revision: Revision, spec: Spec, stage: str
    ) -> None:
        try:
            env = self._env(rollout, revision, spec)
        except BaepoError as exc:
            await self._event(rollout, "gate.failed", f"{stage} hooks not run: {exc}")
            return
        for hook in getattr(spec.hooks, stage):
            name = hook.name or hook.command[0]
            run = _argv(
                hook.command, revision.spec_dir, {**env, **hook.env}, hook.timeout, spec.run.user
            )
            hidden = _hidden(spec, {**env, **hook.env})
            await self._record(rollout, "hook", stage, name, _redacting(run, hidden))

    # -- helpers -----------------------------------------------------------------------

    def _start(self, key: tuple[int, str], work: Awaitable[None]) -> None:
        task = self._tasks.get(key)
        if task is not None:
            if asyncio.iscoroutine(work):
                work.close()
            return
        self._tasks[key] = asyncio.ensure_future(self._guarded(work))

    @staticmethod
    async def _guarded(work: Awaitable[None]) -> None:
        try:
            await work
        except Exception:  # a gate task must never take the controller down
            log.exception("a gate task failed")

    def _check(
        self, check: CheckSpec, cwd: str, env: dict[str, str], spec: Spec
    ) -> Callable[[], Awaitable[GateResult]]:
        return _check_with(check, cwd, env, spec.run.user, self.secret_scope.allowed_env)

    def _allowed_environ(self) -> dict[str, str]:
        """The server variables an admin allowed specs to name (a backup's ``url_env``)."""
        return {k: v for k, v in os.environ.items() if k in self.secret_scope.allowed_env}

    def _env(self, rollout: Rollout, revision: Revision, spec: Spec) -> dict[str, str]:
        """What the app's instances get (``run.env`` and its secrets), and the release's
        ``BAEPO_*`` variables. Raises BaepoError when a secret cannot be resolved."""
        secrets = {}
        keyring = self.keyring or Keyring()
        if spec.secrets:
            secrets = secret_env(
                self.store, keyring, spec, rollout.app, rollout.env, revision.spec_dir,
                scope=self.secret_scope,
            )  # fmt: skip
        return {
            **sealed.open_env(spec.run.env, keyring),
            **secrets,
            **release_env(
                rollout.app, rollout.env, rollout.revision, revision.version,
                rollout.stable_revision,
            ),
        }  # fmt: skip

    async def _record(
        self,
        rollout: Rollout,
        kind: str,
        stage: str,
        name: str,
        run: Callable[[], Awaitable[GateResult]],
    ) -> GateResult:
        started = await asyncio.to_thread(
            self.store.add_gate_run,
            GateRun(
                app=rollout.app,
                env=rollout.env,
                kind=kind,
                stage=stage,
                name=name,
                phase=GatePhase.RUNNING,
                started_at=self.clock(),
                rollout_id=rollout.id,
                revision=rollout.revision,
            ),
        )
        result = await run()
        await asyncio.to_thread(
            self.store.save_gate_run,
            replace(
                started,
                phase=GatePhase.PASSED if result.passed else GatePhase.FAILED,
                finished_at=self.clock(),
                exit_code=result.exit_code,
                message=result.message,
                output=result.output,
            ),
        )
        word = "passed" if result.passed else "failed"
        await self._event(
            rollout, f"gate.{word}", f"{kind} {name!r} ({stage}) {word}: {result.message}"
        )
        return result

    async def _save_status(self, rollout: Rollout, extra: dict[str, str]) -> None:
        for _ in range(10):
            fresh = await asyncio.to_thread(self.store.get_rollout, rollout.id)
            if fresh.phase.terminal:
                return
            try:
                await asyncio.to_thread(
                    self.store.save_rollout,
                    replace(fresh, status={**fresh.status, **extra}, updated_at=self.clock()),
                )
                return
            except ConflictError:
                await asyncio.sleep(0.05)

    async def _end_failed(self, rollout: Rollout, message: str, cause: Cause) -> None:
        for _ in range(10):
            fresh = await asyncio.to_thread(self.store.get_rollout, rollout.id)
            if fresh.phase.terminal:
                return
            now = self.clock()
            try:
                await asyncio.to_thread(
                    self.store.save_rollout,
                    replace(
                        fresh,
                        phase=RolloutPhase.FAILED,
                        message=message,
                        updated_at=now,
                        finished_at=now,
                        cause=cause,
                    ),
                )
            except ConflictError:
                await asyncio.sleep(0.05)
                continue
            await self._event(rollout, "rollout.failed", f"rollout {rollout.id}: {message}")
            self.wake()
            return

    async def _event(self, rollout: Rollout, kind: str, message: str) -> None:
        await asyncio.to_thread(
            self.store.append_event,
            Event(
                app=rollout.app,
                env=rollout.env,
                kind=kind,
                message=message,
                at=self.clock(),
                rollout_id=rollout.id,
                revision=rollout.revision,
            ),
        )


async def _done(result: GateResult) -> GateResult:
    return result


def gate_cause(kind: str, stage: str, name: str, result: GateResult) -> Cause:
    """Why a gate before the rollout ended it: ``gate`` with its output's last lines, or
    ``infrastructure`` when its secrets could not be read (nothing ran)."""
    if kind == "secrets":
        return causes.infrastructure(
            f"the secrets of the gates cannot be read: {result.message}", result.message
        )
    return causes.gate_failed(kind, stage, name, result.message, result.exit_code, result.output)


def _hidden(spec: Spec, env: Mapping[str, str]) -> list[str]:
    """The values in a gate's ``env`` that are secrets: from ``secrets:``, sealed ``run.env``
    values, and variables whose names look secret (``*_TOKEN``, ``*PASSWORD*``, ...)."""
    sealed_names = set(sealed.split_env(spec.run.env)[1])
    secret_names = set(spec.secrets)
    return [
        value
        for name, value in env.items()
        if name in sealed_names or name in secret_names or sensitive.is_secret_name(name)
    ]


def _redacting(
    run: Callable[[], Awaitable[GateResult]], hidden: list[str]
) -> Callable[[], Awaitable[GateResult]]:
    """``run`` whose message and output show the ``hidden`` values as ``***``: what a gate
    prints is recorded, shown and notified, and must not carry a secret."""
    if not hidden:
        return run

    async def redacted() -> GateResult:
        result = await run()
        return replace(
            result,
            message=causes.redact(result.message, hidden),
            output=causes.redact(result.output, hidden),
        )

    return redacted


def _argv(
    argv: list[str], cwd: str, env: dict[str, str], timeout: float, user: str | None
) -> Callable[[], Awaitable[GateResult]]:
    return lambda: run_argv(argv, cwd=cwd, env=env, timeout=timeout, user=user)


def _check_with(
    check: CheckSpec,
    cwd: str,
    env: dict[str, str],
    user: str | None,
    allowed_env: frozenset[str],
) -> Callable[[], Awaitable[GateResult]]:
    return lambda: run_check(check, cwd=cwd, env=env, user=user, allowed_env=allowed_env)
