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
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from baepo.core import evidence
from baepo.core.model import Instance, InstancePhase
from baepo.core.ports import HostConfig, HostsTarget, InstanceSpec, Platform, ProbeConfig
from baepo.errors import ConfigError, ExternalError
from baepo.platforms.hosts import commands, plan
from baepo.platforms.hosts.commands import where
from baepo.platforms.hosts.probes import Prober
from baepo.platforms.hosts.records import PREFIX, Records
from baepo.platforms.hosts.reports import LOST_AFTER, PLACE_WAIT, Reports
from baepo.platforms.hosts.runner import Runner, SSHRunner

# A release whose build failed on a host is not built there again for this long: the
# controller retries a failed start on every pass, and a build may take minutes.
BUILD_RETRY = 60.0
T = TypeVar("T")
log = logging.getLogger(__name__)


def new_instance_id(revision: int) -> str:
    """``h-r<revision>-<6 hex digits>``, e.g. ``h-r3-ab12cd``."""
    return f"{PREFIX}r{revision}-{secrets.token_hex(3)}"


def agent_source() -> bytes:
    """The agent script uploaded to each host (``agent.py`` beside this module)."""
    return resources.files("baepo.platforms.hosts").joinpath("agent.py").read_bytes()


class HostsPlatform:
    """The ``Platform`` port over SSH hosts (the ``target: hosts`` of a spec)."""

    def __init__(self, state_dir: Path, *, runner: Runner | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.root = self.state_dir / "hosts"
        self.runner: Runner = runner if runner is not None else SSHRunner()
        self._released: set[tuple[str, int, str, str, str, int]] = set()
        self._agents: set[tuple[str, int, str]] = set()
        # Builds that failed, by release: not run again for BUILD_RETRY (the same error).
        self._failed_builds: dict[tuple[str, int, str, str, str, int], tuple[float, str]] = {}
        self._locks: dict[object, asyncio.Lock] = {}
        # Hosts where a start of a release failed (ship, build or start), and when: an
        # instance placed freely goes elsewhere for BUILD_RETRY while another host can take it.
        self._refused: dict[tuple[str, int, str, str, str, int], float] = {}
        self.records = Records(self.root)
        self.prober = Prober()
        # The agents' status reports, asked in the background: a listing waits for a host
        # at most a moment (see reports.py), so a lost host does not hold the controller up.
        self.reports = Reports(self._ask_status)
        # Instances this object started or saw before they ran; any other one found running
        # was running before this controller started: its probes adopt it (see probes.py).
        self._known: set[str] = set()

    # -- the port ---------------------------------------------------------------------------

    async def start_instance(self, spec: InstanceSpec) -> Instance:
        """Place the instance on ``spec.host``, or else on the least busy reachable host (one
        that refused this release in the last ``BUILD_RETRY`` seconds only if all did); ship
        the release there (once per host and revision), start it under the agent; phase
        STARTING. An unreachable ``spec.host`` is an ``ExternalError``."""
        target = spec.target
        if target is None:
            raise ConfigError("the hosts platform needs a spec with `target: {kind: hosts}`")
        self.records.remember_group(spec.app, spec.env, target)
        async with self._lock(("place", spec.app, spec.env)):
            host = await self._place(spec, target)
            refusal = (host.address, host.port, target.path, spec.app, spec.env, spec.revision)
            try:
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
            except ExternalError:
                self._refused[refusal] = time.monotonic()
                raise
            self._refused.pop(refusal, None)
            port = int(json.loads(done.stdout.strip().splitlines()[-1])["port"])
            self.records.remember_instance(instance_id, spec.app, spec.env, host, target.path)
            self._known.add(instance_id)
            self.reports.changed(host, target.path, spec.app, spec.env)
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
        """Every instance the hosts' agents report; readiness from this machine's probes
        (for an instance adopted from an earlier controller, after its first probe). A host
        late to answer counts with its last report (its instances ready only while their
        probes pass); the instances of an unreachable host are left out until it answers."""
        group = self.records.group(app, env)
        if group is None:
            return []
        path, hosts = group
        reports = await asyncio.gather(
            *(self.reports.get(host, path, app, env) for host in hosts), return_exceptions=True
        )
        items: list[tuple[HostConfig, dict[str, Any]]] = []
        for host, report in zip(hosts, reports, strict=True):
            if isinstance(report, BaseException):
                continue  # unreachable: its instances are unknown until it answers again
            items += [(host, item) for item in report]
        adopted = [str(i["id"]) for h, i in items if self._watch(app, env, h, path, i)]
        await self.prober.settle(adopted)
        found = [self._instance(app, env, host, path, item) for host, item in items]
        seen = {instance.id for instance in found}
        for instance_id in self.prober.ids():
            if instance_id not in seen and self.records.belongs(instance_id, app, env):
                self.prober.forget(instance_id)
        return found

    async def stop_instance(self, instance_id: str, *, grace: float | None = None) -> None:
        """Ask the host's agent to stop it (SIGTERM, grace, SIGKILL); forget it. Idempotent."""
        where_ = self.records.where(instance_id)
        if where_ is None:
            return
        app, env, host, path = where_
        self.prober.forget(instance_id)
        done = await self.runner.run(commands.stop(host, path, app, env, instance_id, grace))
        self.reports.changed(host, path, app, env)
        if done.exit_code != 0:
            raise ExternalError(f"{where(host)}: cannot stop {instance_id}: {done.stderr.strip()}")
        self.records.forget_instance(instance_id)
        self._known.discard(instance_id)

    async def restart_instance(self, instance_id: str) -> None:
        """Ask the host's agent (SIGUSR1) to restart the app. Idempotent."""
        where_ = self.records.where(instance_id)
        if where_ is not None:
            app, env, host, path = where_
            await self.runner.run(commands.restart(host, path, app, env, instance_id))
            self.reports.changed(host, path, app, env)

    def read_logs(
        self, app: str, env: str, *, revision: int | None = None, tail: int = 100
    ) -> list[str]:
        """The last ``tail`` lines of the instances on every host, fetched over SSH."""
        group = self.records.group(app, env)
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
        group = self.records.group(app, env)
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
        """Stop probing and close the SSH connections. Idempotent."""
        await self.prober.close()
        await self.reports.close()
        await self.runner.close()

    # -- placing and shipping ---------------------------------------------------------------

    def _lock(self, key: object) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _place(self, spec: InstanceSpec, target: HostsTarget) -> HostConfig:
        if spec.host is not None:
            return await self._placed(spec, target)
        reports = await asyncio.gather(
            *(
                self.reports.get(h, target.path, spec.app, spec.env, fresh=True, wait=PLACE_WAIT)
                for h in target.hosts
            ),
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
        counts: dict[str, tuple[bool, int, int]] = {}
        now = time.monotonic()
        for host, report in zip(target.hosts, reports, strict=True):
            if isinstance(report, BaseException):
                continue
            live = [i for i in report if i.get("phase") != "failed"]
            same = sum(1 for i in live if i.get("revision") == spec.revision)
            key = (host.address, host.port, target.path, spec.app, spec.env, spec.revision)
            refused = key in self._refused and now - self._refused[key] < BUILD_RETRY
            counts[host.address] = (refused, same, len(live))
        reachable = [h for h in target.hosts if h.address in counts]
        return min(reachable, key=lambda h: counts[h.address])

    async def _placed(self, spec: InstanceSpec, target: HostsTarget) -> HostConfig:
        """The host ``spec.host`` names (host batches), once it has answered a status."""
        host = next((h for h in target.hosts if h.address == spec.host), None)
        if host is None:
            raise ConfigError(f"cannot place an instance on {spec.host}: not in target.hosts")
        # A host of a batch that does not answer fails for the rest of the rollout: give a
        # slow one up to the bound after which a host counts as lost.
        await self.reports.get(host, target.path, spec.app, spec.env, fresh=True, wait=LOST_AFTER)
        return host

    async def _ship(self, spec: InstanceSpec, target: HostsTarget, host: HostConfig) -> None:
        """Upload the agent and the release to ``host`` unless this process already did."""
        agent_key = (host.address, host.port, target.path)
        release_key = (host.address, host.port, target.path, spec.app, spec.env, spec.revision)
        async with self._lock(release_key):
            actions: list[commands.Action] = []
            if agent_key not in self._agents:
                actions += commands.prepare_host(host, target.path, agent_source())
            if release_key not in self._released:
                failed = self._failed_builds.get(release_key)
                if failed is not None and time.monotonic() - failed[0] < BUILD_RETRY:
                    raise ExternalError(failed[1])
                payload = await asyncio.to_thread(plan.release_payload, target)
                actions += plan.ship_release(spec, target, host, payload)
            for action in actions:
                try:
                    await self._apply(action)
                except ExternalError as exc:
                    if isinstance(action, commands.Exec) and commands.is_build(action):
                        self._failed_builds[release_key] = (time.monotonic(), exc.message)
                    raise
            self._failed_builds.pop(release_key, None)
            self._agents.add(agent_key)
            self._released.add(release_key)

    async def _apply(self, action: commands.Action) -> None:
        if isinstance(action, commands.Upload):
            await self.runner.upload(action)
        elif isinstance(action, commands.Exec):
            done = await self.runner.run(action)
            if done.exit_code != 0:
                output = (done.stderr or done.stdout).strip()
                if action.what:  # the agent's own message, with the last lines of output
                    raise ExternalError(
                        f"{where(action.host)}: {action.what} failed: {output[-2000:]}"
                    )
                raise ExternalError(
                    f"{where(action.host)}: `{action.command}` exited with {done.exit_code}: "
                    f"{output[-500:]}"
                )

    async def _ask_status(
        self, host: HostConfig, path: str, app: str, env: str
    ) -> list[dict[str, Any]]:
        action = commands.status(host, path, app, env)
        done = await self.runner.run(action)
        if done.exit_code != 0 and "No such file" not in done.stderr:
            # Asked once more: a failed status would hide every instance of a host that is
            # there, and a host that looks empty gets new instances.
            log.warning("%s: status failed, asking again: %s", where(host), done.stderr.strip())
            done = await self.runner.run(action)
        if done.exit_code != 0:
            if "No such file" in done.stderr:
                return []  # nothing deployed there yet: no agent
            raise ExternalError(f"{where(host)}: status failed: {done.stderr.strip()[-300:]}")
        items = json.loads(done.stdout or "[]")
        return [i for i in items if isinstance(i, dict)]

    # -- observing --------------------------------------------------------------------------

    def _watch(self, app: str, env: str, host: HostConfig, path: str, item: dict[str, Any]) -> bool:
        """Remember where an agent's instance is and keep probes on its running process.
        True while it is adopted (see probes.py) and its first readiness check is still to
        come: a listing waits for that check, whoever started the probes."""
        instance_id = str(item["id"])
        phase = InstancePhase(item.get("phase", "starting"))
        self.records.remember_instance(instance_id, app, env, host, path)
        probe = self.prober.get(instance_id)
        if probe is not None and (
            phase is not InstancePhase.RUNNING or probe.pid != item.get("pid")
        ):
            self.prober.forget(instance_id)  # the process it watched is gone
            probe = None
        if probe is not None:
            return probe.adopted and not probe.probed.is_set()
        adopted = instance_id not in self._known
        if phase is not InstancePhase.RUNNING or not item.get("readiness"):
            if phase is not InstancePhase.RUNNING:
                self._known.add(instance_id)
            return False
        restart = commands.restart(host, path, app, env, instance_id)
        self.prober.start(
            instance_id,
            (host.address, int(item.get("port") or 0)),
            item.get("pid"),
            ProbeConfig(**item["readiness"]),
            ProbeConfig(**item["liveness"]) if item.get("liveness") else None,
            lambda: self.runner.run(restart),
            adopted=adopted,
        )
        self._known.add(instance_id)
        return adopted

    def _instance(
        self, app: str, env: str, host: HostConfig, path: str, item: dict[str, Any]
    ) -> Instance:
        """The platform's view of an agent's instance (its probes started by ``_watch``)."""
        instance_id = str(item["id"])
        phase = InstancePhase(item.get("phase", "starting"))
        port = int(item.get("port") or 0)
        probe = self.prober.get(instance_id)
        ready = bool(probe and probe.ready and phase is InstancePhase.RUNNING)
        message = str(item.get("message", ""))
        if phase is InstancePhase.RUNNING and probe is not None and not probe.ready:
            message = message or (f"not ready: {probe.detail}" if probe.detail else "not ready")
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
            exit_code=code if isinstance(code := item.get("last_exit_code"), int) else None,
            output=evidence.output_tail(str(line) for line in item.get("output") or ()),
            ready_after=probe.ready_after if probe else None,
        )


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
