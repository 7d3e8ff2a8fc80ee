"""The probes of instances on hosts, run from the controller's machine over HTTP.

Readiness decides whether an instance is ``ready`` (the router only sends traffic to ready
ones); after ``failure_threshold`` liveness failures in a row the app is restarted through its
agent. One ``ProbeState`` per app process: a new process (after a restart) gets new probes.

The probes live in the controller's process, so a restarted controller starts with no verdict
about instances that were serving all along. Such an *adopted* instance is probed at once
(no ``initial_delay``) and is ready after its first success (not ``success_threshold``), and
the platform waits for that first verdict (at most the probe's timeout) before reporting it:
reporting it "not ready" meanwhile would take it out of the router and let a rolling deploy
stop old instances it believes unavailable.
Callers: ``platform.HostsPlatform``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import httpx

from baepo.core.ports import ProbeConfig
from baepo.errors import ExternalError
from baepo.platforms.hosts.commands import Probe

Restart = Callable[[], Awaitable[object]]


@dataclass
class ProbeState:
    """One app process's probes: their tasks and the last readiness verdict."""

    pid: int | None
    readiness: ProbeConfig
    liveness: ProbeConfig | None
    ready: bool = False
    failures: int = 0  # readiness checks failed in a row
    detail: str = ""  # the last failed readiness check, e.g. ``GET /health/ready → 404``
    began: float = field(default_factory=time.monotonic)  # when these probes started
    ready_after: float | None = None  # seconds from ``began`` to the first readiness
    tasks: tuple[asyncio.Task[None], ...] = ()
    adopted: bool = False  # already running when first seen: ready after one success
    probed: asyncio.Event = field(default_factory=asyncio.Event)  # set after the first check


class Prober:
    """Runs probe tasks on the controller's event loop, one set per instance id."""

    def __init__(self) -> None:
        self._states: dict[str, ProbeState] = {}
        self._http: httpx.AsyncClient | None = None

    def get(self, instance_id: str) -> ProbeState | None:
        return self._states.get(instance_id)

    def ids(self) -> list[str]:
        return list(self._states)

    def start(
        self,
        instance_id: str,
        target: tuple[str, int],
        pid: int | None,
        readiness: ProbeConfig,
        liveness: ProbeConfig | None,
        restart: Restart,
        *,
        adopted: bool = False,
    ) -> ProbeState:
        """Start probing ``target`` (address, port) for the process ``pid``; ``adopted``: it
        was already running when first seen (see the module's docstring)."""
        self.forget(instance_id)
        state = ProbeState(pid, readiness, liveness, adopted=adopted)
        tasks = [asyncio.create_task(self._readiness_loop(state, target))]
        if liveness is not None:
            tasks.append(asyncio.create_task(self._liveness_loop(liveness, target, restart)))
        state.tasks = tuple(tasks)
        self._states[instance_id] = state
        return state

    async def settle(self, instance_ids: Iterable[str]) -> None:
        """Wait until each of these probes has its first readiness verdict, at most the
        longest of their timeouts (plus a little): a probe that hangs is left running."""
        states = [s for i in instance_ids if (s := self._states.get(i)) is not None]
        if not states:
            return
        limit = max(s.readiness.timeout for s in states) + 0.5
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.probed.wait() for s in states)), limit)

    def forget(self, instance_id: str) -> None:
        state = self._states.pop(instance_id, None)
        for task in state.tasks if state is not None else ():
            task.cancel()

    async def close(self) -> None:
        for instance_id in self.ids():
            self.forget(instance_id)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _readiness_loop(self, state: ProbeState, target: tuple[str, int]) -> None:
        config = state.readiness
        action = Probe(*target, config.path, config.timeout)
        successes = 0
        needed = 1 if state.adopted else config.success_threshold
        await asyncio.sleep(0 if state.adopted else config.initial_delay)
        while True:
            passed, detail = await self.check(action)
            if passed:
                successes, state.failures, state.detail = successes + 1, 0, ""
                if successes >= needed:
                    state.ready = True
                    if state.ready_after is None and not state.adopted:
                        state.ready_after = round(time.monotonic() - state.began, 3)
            else:
                successes, state.failures, state.detail = 0, state.failures + 1, detail
                if state.failures >= config.failure_threshold:
                    state.ready = False
            needed = config.success_threshold
            state.probed.set()
            await asyncio.sleep(config.interval)

    async def _liveness_loop(
        self, config: ProbeConfig, target: tuple[str, int], restart: Restart
    ) -> None:
        """After ``failure_threshold`` failures in a row, restart the app (the new process
        then gets new probes, and this task is cancelled)."""
        action = Probe(*target, config.path, config.timeout)
        failures = 0
        await asyncio.sleep(config.initial_delay)
        while True:
            failures = 0 if await self.probe(action) else failures + 1
            if failures >= config.failure_threshold:
                with contextlib.suppress(ExternalError):
                    await restart()
                failures = 0
                await asyncio.sleep(max(config.initial_delay, config.interval))
            await asyncio.sleep(config.interval)

    async def probe(self, action: Probe) -> bool:
        """True for a 2xx or 3xx answer within the timeout."""
        return (await self.check(action))[0]

    async def check(self, action: Probe) -> tuple[bool, str]:
        """``(passed, detail)``: a 2xx or 3xx answer within the timeout passes; the detail
        says what answered, e.g. ``GET /health/ready → 404`` or ``connection refused``."""
        if self._http is None:
            self._http = httpx.AsyncClient(trust_env=False)
        what = f"GET {action.path}"
        try:
            response = await self._http.get(action.url, timeout=action.timeout)
        except httpx.TimeoutException:
            return False, f"{what}: no answer within {action.timeout:g} s"
        except httpx.ConnectError:
            return False, f"{what}: connection refused (nothing listens on the port)"
        except httpx.HTTPError as exc:
            return False, f"{what}: {type(exc).__name__}"
        return 200 <= response.status_code < 400, f"{what} → {response.status_code}"
