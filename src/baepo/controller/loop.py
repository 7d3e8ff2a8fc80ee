"""The controller: an asyncio loop reconciling every app+environment, woken on demand.

It ticks quickly while a rollout or a stop is under way and slowly otherwise; the API wakes
it after every change so nothing waits for a tick. Callers: ``api.server`` (started in the
server's lifespan).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from prometheus_client import Histogram

from baepo.controller.reconciler import Reconciler
from baepo.core.ports import Platform, Router, Store
from baepo.errors import BaepoError
from baepo.secrets.keys import Keyring

log = logging.getLogger(__name__)

BUSY_TICK = 0.05
IDLE_TICK = 0.5
# Upper bounds of the pass-duration histogram: an idle pass takes milliseconds, a pass that
# starts instances or waits on a router can take seconds.
PASS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Controller:
    """Owns the reconcile loop. ``wake()`` is safe to call from any thread."""

    def __init__(
        self, store: Store, platform: Platform, router: Router, *, keyring: Keyring | None = None
    ) -> None:
        self.store = store
        self.reconciler = Reconciler(store, platform, router, wake=self.wake, keyring=keyring)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self.last_pass_seconds = 0.0
        # Every pass's duration; registered nowhere, ``api.metrics`` serves it at scrape time.
        self.pass_seconds = Histogram(
            "baepo_reconcile_duration_seconds",
            "Time one controller pass over every app+environment took.",
            buckets=PASS_BUCKETS,
            registry=None,
        )

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="baepo-controller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.reconciler.analysis.close()
        await self.reconciler.wait_draining()

    def wake(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run_once(self) -> bool:
        """One pass over every app; True when any of them has work under way."""
        busy = False
        for app in await asyncio.to_thread(self.store.list_apps):
            try:
                busy = await self.reconciler.reconcile(app) or busy
            except BaepoError as exc:
                log.warning("reconciling %s/%s: %s", app.app, app.env, exc)
                busy = True
        return busy

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            self._wake.clear()  # a wake-up during the pass triggers the next one at once
            try:
                busy = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("controller pass failed; retrying")
                busy = True
            self.passes += 1
            self.last_pass_seconds = time.monotonic() - started
            self.pass_seconds.observe(self.last_pass_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), BUSY_TICK if busy else IDLE_TICK)
