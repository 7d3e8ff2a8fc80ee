"""The agents' status reports, asked in the background and waited for within a bound.

Listing the instances of an app asks each host's agent for its report (an SSH command). A
host whose link went down does not answer: its command hangs until the SSH keepalive gives up
on the connection. ``Reports`` keeps each host's request running as a task and waits for it at
most ``wait`` seconds; while it is late, the host's last report is used (the probes, run from
the controller's machine, say meanwhile whether its instances are ready), and once a request
is ``LOST_AFTER`` seconds late the host counts as unreachable until it answers again. So a
lost host costs a listing about ``wait`` seconds, once, and a slow host (a status taking a
second or two under load) is neither waited for long nor taken for a lost one.

Starting or stopping an instance on a host bumps that host's generation (``changed``): a
report asked before the change is not used after it (it would miss the change), so the next
listing waits for a new one, up to ``LOST_AFTER``.
Callers: ``platform.HostsPlatform``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from baepo.core.ports import HostConfig
from baepo.errors import ExternalError
from baepo.platforms.hosts.commands import where

Report = list[dict[str, Any]]
Ask = Callable[[HostConfig, str, str, str], Awaitable[Report]]
Key = tuple[str, int, str, str, str]  # address, port, path, app, env

# How long a report is reused: the controller lists instances many times a second while busy.
STATUS_TTL = 0.5
# How long a listing waits for a host's report before using its last one.
REPORT_WAIT = 1.5
# How long placing an instance waits for a host's report (it needs a new one) before passing
# the host over: longer than a status under load takes, short enough not to hold up a pass.
PLACE_WAIT = 3.0
# A host whose request is this late is unreachable (an SSH keepalive round gives up sooner
# on a dead connection; a status under load takes a second or two).
LOST_AFTER = 8.0
# An unreachable host is asked again this often (in the background).
DOWN_RETRY = 5.0


@dataclass
class _Request:
    task: asyncio.Task[Report]
    generation: int
    started: float


class Reports:
    """Each host's last report of an app+env, and the request in flight for a new one."""

    def __init__(self, ask: Ask, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._ask = ask
        self._clock = clock
        self._reports: dict[Key, tuple[float, int, Report]] = {}  # (when, generation, report)
        self._requests: dict[Key, _Request] = {}
        self._generations: dict[Key, int] = {}
        # Unreachable hosts: when their last request failed (or was found late).
        self._down: dict[tuple[str, int], float] = {}

    def changed(self, host: HostConfig, path: str, app: str, env: str) -> None:
        """An instance of app+env started or stopped on ``host``: earlier reports are stale."""
        key = _key(host, path, app, env)
        self._generations[key] = self._generations.get(key, 0) + 1
        self._reports.pop(key, None)

    def down(self, host: HostConfig) -> bool:
        """Whether ``host`` counts as unreachable now."""
        return (host.address, host.port) in self._down

    async def get(
        self,
        host: HostConfig,
        path: str,
        app: str,
        env: str,
        *,
        wait: float = REPORT_WAIT,
        fresh: bool = False,
    ) -> Report:
        """The host's report. Without ``fresh``: a report less than ``STATUS_TTL`` old, else a
        new one if it comes within ``wait``, else the last one since the last change (none
        since: the new one, up to ``LOST_AFTER``). With ``fresh``: a new report within
        ``wait``. ExternalError when the host is unreachable (it did not answer, or its request
        is ``LOST_AFTER`` late), or a fresh report did not come within ``wait``."""
        key = _key(host, path, app, env)
        generation = self._generations.get(key, 0)
        last = self._reports.get(key)
        if not fresh and last is not None and self._clock() - last[0] < STATUS_TTL:
            return last[2]
        request = self._request(key, host, path, app, env, generation)
        down = self.down(host)
        # A request already late was waited for by an earlier listing: not again.
        budget = 0.0 if down else max(0.0, wait - (self._clock() - request.started))
        done = await _wait(request.task, budget)
        if not done and not down and not fresh:
            late = self._clock() - request.started
            if last is None:  # nothing to fall back on: wait up to the bound
                done = await _wait(request.task, max(0.0, LOST_AFTER - late))
            elif late < LOST_AFTER:
                return last[2]  # late: its last report stands, the probes judge readiness
        if done:
            return request.task.result()  # the report, or the host's ExternalError
        late = self._clock() - request.started
        if fresh and not down and late < LOST_AFTER:  # late, not yet lost
            raise ExternalError(f"{where(host)} did not answer within {late:.1f}s")
        self._down.setdefault((host.address, host.port), self._clock())
        raise ExternalError(f"{where(host)} is unreachable (no answer for {late:.0f}s)")

    async def close(self) -> None:
        """Cancel the requests in flight. Idempotent."""
        tasks = [request.task for request in self._requests.values()]
        self._requests.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _request(
        self, key: Key, host: HostConfig, path: str, app: str, env: str, generation: int
    ) -> _Request:
        """The request of this generation in flight, or a new one. A host that is down is
        asked again only every ``DOWN_RETRY`` seconds (meanwhile its failed request stands)."""
        request = self._requests.get(key)
        now = self._clock()
        if request is not None and request.generation == generation:
            if not request.task.done():
                return request
            failed = self._down.get((host.address, host.port))
            if failed is not None and now - failed < DOWN_RETRY and request.task.exception():
                return request  # its error stands until the next try
        task = asyncio.create_task(self._run(key, host, path, app, env, generation))
        task.add_done_callback(_retrieve)
        request = _Request(task, generation, now)
        self._requests[key] = request
        return request

    async def _run(
        self, key: Key, host: HostConfig, path: str, app: str, env: str, generation: int
    ) -> Report:
        try:
            report = await self._ask(host, path, app, env)
        except ExternalError:
            self._down[(host.address, host.port)] = self._clock()  # tried again from then
            raise
        self._down.pop((host.address, host.port), None)
        if self._generations.get(key, 0) == generation:  # nothing changed meanwhile
            self._reports[key] = (self._clock(), generation, report)
        return report


def _key(host: HostConfig, path: str, app: str, env: str) -> Key:
    return (host.address, host.port, path, app, env)


async def _wait(task: asyncio.Task[Report], timeout: float) -> bool:
    """Whether ``task`` is done within ``timeout`` seconds (it keeps running either way)."""
    if not task.done() and timeout > 0:
        await asyncio.wait({task}, timeout=timeout)
    return task.done()


def _retrieve(task: asyncio.Task[Report]) -> None:
    """Mark a failed request's error as seen (a listing may never wait for it)."""
    if not task.cancelled():
        with contextlib.suppress(ExternalError):
            task.exception()
