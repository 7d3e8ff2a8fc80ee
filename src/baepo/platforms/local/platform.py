"""LocalPlatform: app instances as supervised processes on this machine.

Layout under ``state_dir``::

    instances/<app>.<env>/<instance id>/   one directory per instance, the only truth
        instance.json   what to run (written here, read by the supervisor)
        state.json      what is (written by the supervisor)
        supervisor.pid  the supervisor's pid, written right after it starts
        stop.json       a grace period override for the next stop
        output.log[.N]  the app's output, timestamped and rotated
        supervisor.log  the supervisor's own stderr (tracebacks)
    logs/<app>.<env>/<instance id>/        logs of stopped instances (the newest few kept)

Each instance runs under its own ``supervisor`` process (detached, so it outlives the
controller), which restarts the app and runs its probes. This object keeps no state of its
own: a new one (after a controller restart) re-adopts every instance by reading the directories.
Callers: the controller, through the ``baepo.core.ports.Platform`` port; the CLI for logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import secrets
import shutil
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from baepo.core.model import Instance, InstancePhase
from baepo.core.ports import InstanceSpec, Platform
from baepo.errors import ConfigError
from baepo.platforms.local import addresses, logs, records
from baepo.platforms.local.proctable import group_alive
from baepo.shell import accounts, process

SUPERVISOR_MODULE = "baepo.platforms.local.supervisor"
STOP_MARGIN = 1.0  # seconds past the grace period before the platform SIGKILLs everything
SUPERVISOR_START_TIMEOUT = 10.0  # an instance with no supervisor after this long has failed
_INSTANCE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def new_instance_id(revision: int) -> str:
    """``r<revision>-<6 hex digits>``, e.g. ``r3-ab12cd``."""
    return f"r{revision}-{secrets.token_hex(3)}"


def assess(
    state: records.InstanceState | None,
    *,
    supervisor_pid: int | None,
    supervisor_alive: bool,
    age: float,
) -> tuple[InstancePhase, str] | None:
    """The phase and message to report for an instance; None when it has stopped for good.

    ``age`` is the time since ``instance.json`` was written.
    """
    if state is None:
        if supervisor_alive or (supervisor_pid is None and age < SUPERVISOR_START_TIMEOUT):
            return InstancePhase.STARTING, ""
        return InstancePhase.FAILED, (
            f"the supervisor exited before it started the app; see {records.SUPERVISOR_LOG}"
        )
    if supervisor_alive:
        if state.phase is InstancePhase.STOPPED:
            return InstancePhase.STOPPING, state.message
        return state.phase, state.message
    if state.phase in (InstancePhase.STOPPED, InstancePhase.STOPPING):
        return None
    if state.phase is InstancePhase.FAILED:
        return InstancePhase.FAILED, state.message
    return InstancePhase.FAILED, (
        f"the supervisor (pid {supervisor_pid}) is gone; the app is no longer supervised"
    )


class LocalPlatform:
    """The ``Platform`` port on this machine: one supervised process per instance."""

    def __init__(self, state_dir: Path, *, host: str = "127.0.0.1", keep_logs: int = 20) -> None:
        self.state_dir = Path(state_dir)
        self.host = host
        self.keep_logs = keep_logs
        self.instances_root = self.state_dir / "instances"
        self.logs_root = self.state_dir / "logs"

    # -- the port ---------------------------------------------------------------------------

    async def start_instance(self, spec: InstanceSpec) -> Instance:
        """Allocate a port, write ``instance.json``, start the supervisor; phase STARTING."""
        process.reap_children()
        account = accounts.run_as(spec.user)
        instance_id = new_instance_id(spec.revision)
        cwd = str(Path(spec.cwd).resolve())
        record = records.InstanceRecord(
            id=instance_id,
            host=self.host,
            port=addresses.allocate_port(self.host, self._ports_in_use()),
            spec=dataclasses.replace(spec, cwd=cwd, secret_env={}),
            created_at=records.utc_now(),
            account=account,
        )
        directory = self._group_dir(spec.app, spec.env) / instance_id
        directory.mkdir(parents=True)
        records.write_json_atomic(directory / records.INSTANCE_FILE, record.to_json())
        argv = process.python_module_argv(SUPERVISOR_MODULE, str(directory))
        # Secrets reach the app through the supervisor's environment, which the app inherits
        # at every (re)start, so they are never written to instance.json.
        env = {
            **os.environ,
            **spec.secret_env,
            records.SECRET_NAMES_VAR: ",".join(sorted(spec.secret_env)),
        }
        try:
            pid = process.spawn_detached(
                argv, cwd=directory, env=env, output=directory / records.SUPERVISOR_LOG
            )
        except Exception:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        (directory / records.SUPERVISOR_PID_FILE).write_text(f"{pid}\n")
        return Instance(
            id=instance_id,
            app=spec.app,
            env=spec.env,
            revision=spec.revision,
            host=record.host,
            port=record.port,
            phase=InstancePhase.STARTING,
            started_at=records.parse_time(record.created_at),
        )

    async def list_instances(self, app: str, env: str) -> list[Instance]:
        """Every instance directory of app+env, read afresh; stopped ones are archived."""
        process.reap_children()
        found: list[Instance] = []
        for directory in _subdirs(self._group_dir(app, env)):
            instance = self._observe(directory)
            if instance is not None:
                found.append(instance)
        return found

    def highest_revision(self, app: str, env: str) -> int:
        """The highest revision number among app+env's instance folders (0 when none): a
        database that lost its revisions numbers new ones after it (``api.orphans``)."""
        numbers = [
            record.spec.revision
            for directory in _subdirs(self._group_dir(app, env))
            if (record := records.load_record(directory)) is not None
        ]
        return max(numbers, default=0)

    async def stop_instance(self, instance_id: str, *, grace: float | None = None) -> None:
        """SIGTERM the supervisor (which drains the app), wait, SIGKILL leftovers, archive."""
        directory = self._find(instance_id)
        if directory is None:
            return
        record = records.load_record(directory)
        if grace is not None:
            records.write_json_atomic(directory / records.STOP_FILE, {"grace": grace})
        grace = grace if grace is not None else (record.spec.stop_grace_period if record else 0)
        supervisor = self._supervisor_pid(directory)
        if supervisor is not None and process.pid_alive(supervisor):
            with contextlib.suppress(ProcessLookupError):
                os.kill(supervisor, signal.SIGTERM)
        if not await self._wait_gone(directory, supervisor, grace + STOP_MARGIN):
            state = records.load_state(directory)
            if state is not None and state.pid is not None:
                process.signal_group(state.pid, signal.SIGKILL)
            if supervisor is not None and process.pid_alive(supervisor):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(supervisor, signal.SIGKILL)
            await self._wait_gone(directory, supervisor, STOP_MARGIN)
        self._archive(directory)

    async def restart_instance(self, instance_id: str) -> None:
        """Ask the supervisor (SIGUSR1) to stop the app gracefully and start it again."""
        directory = self._find(instance_id)
        if directory is None:
            return
        supervisor = self._supervisor_pid(directory)
        if supervisor is not None and process.pid_alive(supervisor):
            with contextlib.suppress(ProcessLookupError):
                os.kill(supervisor, signal.SIGUSR1)

    def read_logs(
        self, app: str, env: str, *, revision: int | None = None, tail: int = 100
    ) -> list[str]:
        """The last ``tail`` lines of running and archived instances, oldest first."""
        return logs.read_logs(self._log_dirs(app, env, revision), tail)

    def follow_logs(self, app: str, env: str, *, revision: int | None = None) -> AsyncIterator[str]:
        """New lines of app+env instances (also ones started later) as they are written."""
        return logs.follow(lambda: self._log_dirs(app, env, revision))

    # -- helpers ----------------------------------------------------------------------------

    def _group_dir(self, app: str, env: str) -> Path:
        return self.instances_root / f"{app}.{env}"

    def _find(self, instance_id: str) -> Path | None:
        if not _INSTANCE_ID_RE.match(instance_id):
            raise ConfigError(f"{instance_id!r} is not an instance id")
        for group in _subdirs(self.instances_root):
            candidate = group / instance_id
            if candidate.is_dir():
                return candidate
        return None

    def _ports_in_use(self) -> set[int]:
        ports: set[int] = set()
        for group in _subdirs(self.instances_root):
            for directory in _subdirs(group):
                data = records.read_json(directory / records.INSTANCE_FILE)
                if data is not None and isinstance(data.get("port"), int):
                    ports.add(data["port"])
        return ports

    def _supervisor_pid(self, directory: Path) -> int | None:
        state = records.load_state(directory)
        if state is not None and state.supervisor_pid is not None:
            return state.supervisor_pid
        return records.read_pid(directory / records.SUPERVISOR_PID_FILE)

    def _observe(self, directory: Path) -> Instance | None:
        record = records.load_record(directory)
        if record is None:
            return None  # being created, or not an instance
        state = records.load_state(directory)
        supervisor = self._supervisor_pid(directory)
        alive = supervisor is not None and process.pid_alive(supervisor)
        created = records.parse_time(record.created_at)
        age = time.time() - created.timestamp() if created else 0.0
        verdict = assess(state, supervisor_pid=supervisor, supervisor_alive=alive, age=age)
        if verdict is None:
            self._archive(directory)
            return None
        phase, message = verdict
        if not alive and state is not None and state.pid is not None and group_alive(state.pid):
            process.signal_group(state.pid, signal.SIGKILL)  # orphaned by a dead supervisor
        return Instance(
            id=record.id,
            app=record.spec.app,
            env=record.spec.env,
            revision=record.spec.revision,
            host=record.host,
            port=record.port,
            phase=phase,
            ready=bool(state and state.ready and alive and phase is InstancePhase.RUNNING),
            restarts=state.restarts if state else 0,
            started_at=records.parse_time(state.started_at if state else None) or created,
            pid=state.pid if state and alive else None,
            message=message,
            probe_failures=state.probe_failures if state else 0,
            exit_code=state.last_exit_code if state else None,
            output=state.output if state else (),
            ready_after=state.ready_after if state else None,
        )

    async def _wait_gone(self, directory: Path, supervisor: int | None, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            process.reap_children()
            state = records.load_state(directory)
            app_pid = state.pid if state is not None else None
            supervisor_alive = supervisor is not None and process.pid_alive(supervisor)
            if not supervisor_alive and not group_alive(app_pid):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)

    def _archive(self, directory: Path) -> None:
        """Move a stopped instance's logs under ``logs/``; keep the newest ``keep_logs``."""
        target_group = self.logs_root / directory.parent.name
        target = target_group / directory.name
        try:
            target_group.mkdir(parents=True, exist_ok=True)
            if target.exists():
                shutil.rmtree(target, ignore_errors=True)
            directory.rename(target)
        except FileNotFoundError:
            return  # archived meanwhile by another caller
        for leftover in (records.SUPERVISOR_PID_FILE, records.STOP_FILE):
            with contextlib.suppress(OSError):
                (target / leftover).unlink()
        archived = sorted(_subdirs(target_group), key=_mtime, reverse=True)
        for old in archived[self.keep_logs :]:
            shutil.rmtree(old, ignore_errors=True)

    def _log_dirs(self, app: str, env: str, revision: int | None) -> list[tuple[str, Path]]:
        found: dict[str, Path] = {}
        group = f"{app}.{env}"
        for root in (self.logs_root / group, self.instances_root / group):
            for directory in _subdirs(root):
                record = records.load_record(directory)
                if record is None or (revision is not None and record.spec.revision != revision):
                    continue
                found[record.id] = directory  # a live directory wins over an archived one
        return sorted(found.items())


def _subdirs(path: Path) -> list[Path]:
    try:
        return sorted(entry for entry in path.iterdir() if entry.is_dir())
    except OSError:
        return []


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


if TYPE_CHECKING:

    def _implements_the_port(local: LocalPlatform) -> Platform:
        return local  # mypy checks LocalPlatform against the Platform protocol here
