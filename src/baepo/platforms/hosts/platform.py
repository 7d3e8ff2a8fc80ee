"""HostsPlatform: app instances on plain Linux servers, reached over SSH.

On each host, baepo's agent (``agent.py``, uploaded on first use) supervises the instances and
keeps their files under ``<path>/<app>/<env>/instances/<id>/``; releases are unpacked beside
them as ``r<revision>/``. The hosts' files are the truth about instances; this object keeps
only, under ``state_dir/hosts/``, which hosts each app+env was placed on (``groups/``) and on
which host each instance is (``instances/``), so a new controller finds them again.
Readiness is probed over HTTP from this machine (where the router runs) to ``host:port``.
Callers: ``platforms.dispatch.Platforms`` (the controller's platform), through the
``baepo.core.ports.Platform`` port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from baepo.core.model import Instance, InstancePhase
from baepo.core.ports import HostConfig, HostsTarget, InstanceSpec, Platform, ProbeConfig
from baepo.errors import ConfigError, ExternalError
from baepo.platforms.hosts import commands, plan
from baepo.platforms.hosts.commands import Probe, where
from baepo.platforms.hosts.runner import Runner, SSHRunner

PREFIX = "h-"  # every instance id of this platform starts with it
# How long an agent's status report is reused: the controller lists instances many times a
# second while busy, and each report is an SSH command on every host. Starting, stopping or
# restarting an instance of app+env drops its reports, so a listing never misses those.
STATUS_TTL = 0.5
# A host that did not answer is not asked again for this long (a connection attempt may take
# up to the connect timeout, and listing must stay fast).
DOWN_RETRY = 5.0
T = TypeVar("T")


def new_instance_id(revision: int) -> str:
    """``h-r<revision>-<6 hex digits>``, e.g. ``h-r3-ab12cd``."""
    return f"{PREFIX}r{revision}-{secrets.token_hex(3)}"


def agent_source() -> bytes:
    """The agent script uploaded to each host (``agent.py`` beside this module)."""
    return resources.files("baepo.platforms.hosts").joinpath("agent.py").read_bytes()


@dataclass
class _Probes:
    """One app process's probes, run from this machine: tasks and their last verdicts.

    ``pid`` is the app process they watch: a new process (after a restart) gets new probes.
    """

    pid: int | None
    readiness: ProbeConfig
    liveness: ProbeConfig | None
    ready: bool = False
    failures: int = 0  # readiness checks failed in a row
    tasks: tuple[asyncio.Task[None], ...] = ()


class HostsPlatform:
    """The ``Platform`` port over SSH hosts (the ``target: hosts`` of a spec)."""

    def __init__(self, state_dir: Path, *, runner: Runner | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.root = self.state_dir / "hosts"
        self.runner: Runner = runner if runner is not None else SSHRunner()
        self._released: set[tuple[str, int, str, str, str, int]] = set()
        self._agents: set[tuple[str, int, str]] = set()
        self._locks: dict[object, asyncio.Lock] = {}
        self._probes: dict[str, _Probes] = {}
        self._http: httpx.AsyncClient | None = None
        self._generations: dict[tuple[str, str], int] = {}
        self._down: dict[tuple[str, int], float] = {}
        self._reports: dict[tuple[str, int, str, str, str], tuple[float, list[dict[str, Any]]]] = {}

    # -- the port ---------------------------------------------------------------------------

    async def start_instance(self, spec: InstanceSpec) -> Instance:
        """Place the instance on the least busy reachable host, ship the release there (once
        per host and revision), start it under the agent; phase STARTING."""
        target = spec.target
        if target is None:
            raise ConfigError("the hosts platform needs a spec with `target: {kind: hosts}`")
        self._remember_group(spec.app, spec.env, target)
        async with self._lock(("place", spec.app, spec.env)):
            host = await self._place(spec, target)
            await self._ship(spec, target, host)
            instance_id = new_instance_id(spec.revision)
            request = plan.instance_request(spec, target, host)
            action = commands.start(host, target.path, spec.app, spec.env, instance_id, request)
            done = await self.runner.run(action)
            if done.exit_code != 0:
                raise ExternalError(
                    f"{where(host)}: cannot start an instance of {spec.app}: "
                    f"{(done.stderr or done.stdout).strip()[-500:]}"
                )
            port = int(json.loads(done.stdout.strip().splitlines()[-1])["port"])
            self._remember_instance(instance_id, spec.app, spec.env, host, target.path)
            self._changed(spec.app, spec.env)
        return Instance(
            id=instance_id,
            app=spec.app,
            env=spec.env,
            revision=spec.revision,
            host=host.address,
            port=port,
            phase=InstancePhase.STARTING,
            started_at=datetime.now().astimezone(),
        )

    async def list_instances(self, app: str, env: str) -> list[Instance]:
        """Every instance the hosts' agents report; readiness from this machine's probes."""
        group = self._group(app, env)
        if group is None:
            return []
        path, hosts = group
        reports = await asyncio.gather(
            *(self._status(host, path, app, env) for host in hosts), return_exceptions=True
        )
        found: list[Instance] = []
        for host, report in zip(hosts, reports, strict=True):
            if isinstance(report, BaseException):
                continue  # unreachable: its instances are unknown until it answers again
            for item in report:
                found.append(self._instance(app, env, host, path, item))
        seen = {instance.id for instance in found}
        for instance_id in [i for i in self._probes if i not in seen and self._owned(i, app, env)]:
            self._forget_probe(instance_id)
        return found

    async def stop_instance(self, instance_id: str, *, grace: float | None = None) -> None:
        """Ask the host's agent to stop it (SIGTERM, grace, SIGKILL); forget it. Idempotent."""
        where_ = self._where(instance_id)
        if where_ is None:
            return
        app, env, host, path = where_
        self._forget_probe(instance_id)
        done = await self.runner.run(commands.stop(host, path, app, env, instance_id, grace))
        self._changed(app, env)
        if done.exit_code != 0:
            raise ExternalError(f"{where(host)}: cannot stop {instance_id}: {done.stderr.strip()}")
        with contextlib.suppress(OSError):
            (self.root / "instances" / f"{instance_id}.json").unlink()

    async def restart_instance(self, instance_id: str) -> None:
        """Ask the host's agent (SIGUSR1) to restart the app. Idempotent."""
        where_ = self._where(instance_id)
        if where_ is not None:
            app, env, host, path = where_
            await self.runner.run(commands.restart(host, path, app, env, instance_id))
            self._changed(app, env)

    def read_logs(
        self, app: str, env: str, *, revision: int | None = None, tail: int = 100
    ) -> list[str]:
        """The last ``tail`` lines of the instances on every host, fetched over SSH."""
        group = self._group(app, env)
        if group is None:
            return []
        path, hosts = group

        async def fetch(runner: Runner) -> list[str]:
            lines: list[str] = []
            for host in hosts:
                with contextlib.suppress(ExternalError):
                    done = await runner.run(commands.logs(host, path, app, env, tail, revision))
                    lines += [f"{host.address} {line}" for line in done.stdout.splitlines()]
            lines.sort(key=lambda line: line.split(" ", 3)[2:3])  # by timestamp, stable
            return lines[-tail:] if tail > 0 else []

        return _in_thread(lambda: _with_runner(fetch))

    async def follow_logs(
        self, app: str, env: str, *, revision: int | None = None
    ) -> AsyncIterator[str]:
        """New lines of every host's instances, as ``<address> <id> <line>``."""
        group = self._group(app, env)
        if group is None:
            return
        path, hosts = group
        queue: asyncio.Queue[str] = asyncio.Queue()

        async def pump(host: HostConfig) -> None:
            with contextlib.suppress(ExternalError):
                async for line in self.runner.stream(commands.follow(host, path, app, env)):
                    await queue.put(f"{host.address} {line}")

        tasks = [asyncio.create_task(pump(host)) for host in hosts]
        try:
            while True:
                line = await queue.get()
                fields = line.split(" ", 2)
                if revision is None or (
                    len(fields) > 1 and fields[1].startswith(f"{PREFIX}r{revision}-")
                ):
                    yield line
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        for instance_id in list(self._probes):
            self._forget_probe(instance_id)
        if self._http is not None:
            await self._http.aclose()
        await self.runner.close()

    # -- placing and shipping ---------------------------------------------------------------

    def _lock(self, key: object) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _place(self, spec: InstanceSpec, target: HostsTarget) -> HostConfig:
        reports = await asyncio.gather(
            *(self._status(h, target.path, spec.app, spec.env, fresh=True) for h in target.hosts),
            return_exceptions=True,
        )
        failed = [
            h for h, r in zip(target.hosts, reports, strict=True) if isinstance(r, BaseException)
        ]
        if len(failed) > target.max_failed_hosts or len(failed) == len(target.hosts):
            names = ", ".join(where(h) for h in failed)
            raise ExternalError(
                f"{len(failed)} host(s) unreachable ({names}); max_failed_hosts is "
                f"{target.max_failed_hosts}"
            )
        counts: dict[str, tuple[int, int]] = {}
        for host, report in zip(target.hosts, reports, strict=True):
            if isinstance(report, BaseException):
                continue
            live = [i for i in report if i.get("phase") != "failed"]
            same = sum(1 for i in live if i.get("revision") == spec.revision)
            counts[host.address] = (same, len(live))
        reachable = [h for h in target.hosts if h.address in counts]
        return min(reachable, key=lambda h: counts[h.address])

    async def _ship(self, spec: InstanceSpec, target: HostsTarget, host: HostConfig) -> None:
        """Upload the agent and the release to ``host`` unless this process already did."""
        agent_key = (host.address, host.port, target.path)
        release_key = (host.address, host.port, target.path, spec.app, spec.env, spec.revision)
        async with self._lock(release_key):
            actions: list[commands.Action] = []
            if agent_key not in self._agents:
                actions += commands.prepare_host(host, target.path, agent_source())
            if release_key not in self._released:
                archive = await asyncio.to_thread(plan.archive_folder, Path(target.source))
                actions += commands.upload_release(
                    host, target.path, spec.app, spec.env, spec.revision, archive, target.source
                )
            for action in actions:
                await self._apply(action)
            self._agents.add(agent_key)
            self._released.add(release_key)

    async def _apply(self, action: commands.Action) -> None:
        if isinstance(action, commands.Upload):
            await self.runner.upload(action)
        elif isinstance(action, commands.Exec):
            done = await self.runner.run(action)
            if done.exit_code != 0:
                raise ExternalError(
                    f"{where(action.host)}: `{action.command}` exited with {done.exit_code}: "
                    f"{(done.stderr or done.stdout).strip()[-500:]}"
                )

    async def _status(
        self, host: HostConfig, path: str, app: str, env: str, *, fresh: bool = False
    ) -> list[dict[str, Any]]:
        """What the host's agent reports, at most ``STATUS_TTL`` old unless ``fresh``."""
        key = (host.address, host.port, path, app, env)
        cached = self._reports.get(key)
        if not fresh and cached is not None and time.monotonic() - cached[0] < STATUS_TTL:
            return cached[1]
        down_since = self._down.get((host.address, host.port))
        if down_since is not None and time.monotonic() - down_since < DOWN_RETRY:
            raise ExternalError(
                f"{where(host)} is unreachable (trying again every {DOWN_RETRY:g}s)"
            )
        generation = self._generations.get((app, env), 0)
        try:
            report = await self._ask_status(host, path, app, env)
        except ExternalError:
            self._down[(host.address, host.port)] = time.monotonic()
            raise
        self._down.pop((host.address, host.port), None)
        if self._generations.get((app, env), 0) == generation:  # nothing changed meanwhile
            self._reports[key] = (time.monotonic(), report)
        return report

    def _changed(self, app: str, env: str) -> None:
        """Forget cached reports of app+env: the next listing asks the hosts again."""
        self._generations[(app, env)] = self._generations.get((app, env), 0) + 1
        for key in [k for k in self._reports if k[3:] == (app, env)]:
            del self._reports[key]

    async def _ask_status(
        self, host: HostConfig, path: str, app: str, env: str
    ) -> list[dict[str, Any]]:
        done = await self.runner.run(commands.status(host, path, app, env))
        if done.exit_code != 0:
            if "No such file" in done.stderr:
                return []  # nothing deployed there yet: no agent
            raise ExternalError(f"{where(host)}: status failed: {done.stderr.strip()[-300:]}")
        items = json.loads(done.stdout or "[]")
        return [i for i in items if isinstance(i, dict)]

    # -- observing --------------------------------------------------------------------------

    def _instance(
        self, app: str, env: str, host: HostConfig, path: str, item: dict[str, Any]
    ) -> Instance:
        instance_id = str(item["id"])
        phase = InstancePhase(item.get("phase", "starting"))
        port = int(item.get("port") or 0)
        if not (self.root / "instances" / f"{instance_id}.json").exists():
            self._remember_instance(instance_id, app, env, host, path)
        probe = self._probes.get(instance_id)
        if probe is not None and (
            phase is not InstancePhase.RUNNING or probe.pid != item.get("pid")
        ):
            self._forget_probe(instance_id)  # the process it watched is gone
            probe = None
        if phase is InstancePhase.RUNNING and probe is None and item.get("readiness"):
            probe = self._start_probes(instance_id, (host, path, app, env), port, item)
        ready = bool(probe and probe.ready and phase is InstancePhase.RUNNING)
        message = str(item.get("message", ""))
        if phase is InstancePhase.RUNNING and probe is not None and not probe.ready:
            message = message or "not ready"
        started = item.get("started_at") or item.get("created_at")
        return Instance(
            id=instance_id,
            app=app,
            env=env,
            revision=int(item.get("revision") or 0),
            host=host.address,
            port=port,
            phase=phase,
            ready=ready,
            restarts=int(item.get("restarts") or 0),
            started_at=datetime.fromisoformat(started.replace("Z", "+00:00")) if started else None,
            pid=item.get("pid"),
            message=message,
            probe_failures=probe.failures if probe else 0,
        )

    def _start_probes(
        self,
        instance_id: str,
        place: tuple[HostConfig, str, str, str],
        port: int,
        item: dict[str, Any],
    ) -> _Probes:
        host, path, app, env = place
        liveness = ProbeConfig(**item["liveness"]) if item.get("liveness") else None
        state = _Probes(item.get("pid"), ProbeConfig(**item["readiness"]), liveness)
        tasks = [asyncio.create_task(self._readiness_loop(state, host.address, port))]
        if liveness is not None:
            restart = commands.restart(host, path, app, env, instance_id)
            tasks.append(
                asyncio.create_task(self._liveness_loop(liveness, host.address, port, restart))
            )
        state.tasks = tuple(tasks)
        self._probes[instance_id] = state
        return state

    def _forget_probe(self, instance_id: str) -> None:
        state = self._probes.pop(instance_id, None)
        for task in state.tasks if state is not None else ():
            task.cancel()

    async def _readiness_loop(self, state: _Probes, address: str, port: int) -> None:
        config = state.readiness
        action = Probe(address, port, config.path, config.timeout)
        successes = 0
        await asyncio.sleep(config.initial_delay)
        while True:
            if await self._probe(action):
                successes, state.failures = successes + 1, 0
                if successes >= config.success_threshold:
                    state.ready = True
            else:
                successes, state.failures = 0, state.failures + 1
                if state.failures >= config.failure_threshold:
                    state.ready = False
            await asyncio.sleep(config.interval)

    async def _liveness_loop(
        self, config: ProbeConfig, address: str, port: int, restart: commands.Exec
    ) -> None:
        """After ``failure_threshold`` failures in a row, ask the agent to restart the app
        (the new process then gets new probes, and this task is cancelled)."""
        action = Probe(address, port, config.path, config.timeout)
        failures = 0
        await asyncio.sleep(config.initial_delay)
        while True:
            failures = 0 if await self._probe(action) else failures + 1
            if failures >= config.failure_threshold:
                with contextlib.suppress(ExternalError):
                    await self.runner.run(restart)
                failures = 0
                await asyncio.sleep(max(config.initial_delay, config.interval))
            await asyncio.sleep(config.interval)

    async def _probe(self, action: Probe) -> bool:
        if self._http is None:
            self._http = httpx.AsyncClient(trust_env=False)
        try:
            response = await self._http.get(action.url, timeout=action.timeout)
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 400

    # -- this machine's records -------------------------------------------------------------

    def _group_file(self, app: str, env: str) -> Path:
        return self.root / "groups" / f"{app}.{env}.json"

    def _remember_group(self, app: str, env: str, target: HostsTarget) -> None:
        hosts = {(h.address, h.port): h for h in self._group_hosts(app, env)}
        hosts.update({(h.address, h.port): h for h in target.hosts})
        data = {"path": target.path, "hosts": [asdict(h) for h in hosts.values()]}
        _write_json(self._group_file(app, env), data)

    def _group_hosts(self, app: str, env: str) -> list[HostConfig]:
        group = self._group(app, env)
        return group[1] if group else []

    def _group(self, app: str, env: str) -> tuple[str, list[HostConfig]] | None:
        data = _read_json(self._group_file(app, env))
        if data is None:
            return None
        return str(data["path"]), [_host(h) for h in data.get("hosts", [])]

    def _remember_instance(
        self, instance_id: str, app: str, env: str, host: HostConfig, path: str
    ) -> None:
        data = {"app": app, "env": env, "host": asdict(host), "path": path}
        _write_json(self.root / "instances" / f"{instance_id}.json", data)

    def _where(self, instance_id: str) -> tuple[str, str, HostConfig, str] | None:
        if not instance_id.startswith(PREFIX) or "/" in instance_id or ".." in instance_id:
            raise ConfigError(f"{instance_id!r} is not an instance id of the hosts platform")
        data = _read_json(self.root / "instances" / f"{instance_id}.json")
        if data is None:
            return None
        return str(data["app"]), str(data["env"]), _host(data["host"]), str(data["path"])

    def _owned(self, instance_id: str, app: str, env: str) -> bool:
        data = _read_json(self.root / "instances" / f"{instance_id}.json")
        return data is None or (data.get("app"), data.get("env")) == (app, env)


def _host(data: dict[str, Any]) -> HostConfig:
    labels = tuple((str(k), str(v)) for k, v in data.get("labels", ()))
    return HostConfig(
        address=str(data["address"]),
        port=int(data.get("port", 22)),
        user=str(data.get("user", "root")),
        key=data.get("key"),
        labels=labels,
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    tmp.replace(path)


async def _with_runner(work: Callable[[Runner], Awaitable[T]]) -> T:
    runner = SSHRunner()
    try:
        return await work(runner)
    finally:
        await runner.close()


def _in_thread(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on its own event loop in a worker thread (for the
    port's synchronous ``read_logs``, which may be called from inside a running loop)."""
    result: list[T] = []
    errors: list[BaseException] = []

    def work() -> None:
        async def main() -> T:
            return await make()

        try:
            result.append(asyncio.run(main()))
        except BaseException as exc:  # handed to the caller
            errors.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


if TYPE_CHECKING:

    def _implements_the_port(hosts: HostsPlatform) -> Platform:
        return hosts  # mypy checks HostsPlatform against the Platform protocol here
