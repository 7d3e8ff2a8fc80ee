"""The controller: an asyncio loop reconciling every app+environment, woken on demand.

It ticks quickly while a rollout or a stop is under way and slowly otherwise; the API wakes
it after every change so nothing waits for a tick, and the idle tick doubles as the poll that
notices changes another server replica wrote to the shared store.

Only the leader acts. Several servers may share one database (see ``controller.leader``):
each runs a Controller, whose elector campaigns for the lease. A follower only observes (the
routing tables and router counters the API shows); when it becomes the leader it builds a
fresh reconciler, which adopts the running data plane like a restarted server would, and
starts its duties (the notifier). A leader whose lease lapses cancels its pass at once, stops
its duties and goes back to following; its platform and router are fenced, so nothing it
started can change the data plane after that. From its start the controller imports, in a
thread, the modules a pass would otherwise import on the event loop (scipy, for the guards
and judges), and it keeps the longest pass it made
(``baepo_controller_longest_pass_seconds``). Callers: ``api.server`` (started in the
server's lifespan).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import Gauge, Histogram

from baepo.analysis import proportions
from baepo.controller.leader import (
    Elector,
    FencedPlatform,
    FencedRouter,
    SoleLease,
    elector_for,
)
from baepo.controller.reconciler import DroppedEvents, Reconciler
from baepo.controller.traffic import MAIN, Table, Traffic
from baepo.core.model import AppState
from baepo.core.ports import Platform, Router, Store
from baepo.errors import BaepoError
from baepo.secrets.keys import Keyring

log = logging.getLogger(__name__)

BUSY_TICK = 0.05
IDLE_TICK = 0.5
# How often a follower looks whether it leads now, and how often it reads the routers.
FOLLOW_TICK = 0.1
OBSERVE_EVERY = 1.0
# Upper bounds of the pass-duration histogram: an idle pass takes milliseconds, a pass that
# starts instances or waits on a router can take seconds.
PASS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Modules a pass may need that take long to import (scipy: about half a second on an idle
# machine, seconds on a busy one). A thread imports them while the passes run, so no pass
# waits on an import holding the event loop, and the first deploy does not wait either; the
# guards judge the router's numbers once ``proportions.loaded()`` (``Reconciler._tripped``).
PRELOAD = ("baepo.analysis.judging",)


def preload() -> None:
    """Import :data:`PRELOAD` and the guards' statistics (blocking: run it in a thread). A
    module that cannot be imported is logged and left to the pass that needs it."""
    try:
        for name in PRELOAD:
            importlib.import_module(name)
        proportions.load()
    except ImportError as exc:
        log.warning("could not load the statistics modules: %s", exc)


class Duty(Protocol):
    """Background work only the leader does (e.g. sending notifications)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class ObservedTraffic(Traffic):
    """A follower's view of the main routing tables: read from the routers, never pushed."""

    def __init__(self, router: Router) -> None:
        super().__init__(router)
        self._observed: dict[tuple[str, str], Table] = {}

    def table(self, app: str, env: str, listener: str = MAIN) -> Table:
        if listener != MAIN:
            return Table()
        return self._observed.get((app, env), Table())

    async def observe(self, app: str, env: str) -> None:
        try:
            backends = await self.router.get_backends(app, env)
        except BaepoError:
            backends = []
        self._observed[(app, env)] = Table(tuple(backends))


class Controller:
    """Owns the reconcile loop. ``wake()`` is safe to call from any thread.

    Without an ``elector`` the controller is alone and always leads. ``reconciler`` is
    replaced at every change of role: give it hooks through :meth:`configure`, not by
    setting attributes on it.
    """

    def __init__(
        self,
        store: Store,
        platform: Platform,
        router: Router,
        *,
        keyring: Keyring | None = None,
        elector: Elector | None = None,
    ) -> None:
        self.store = store
        self.elector = elector or elector_for(SoleLease(), "", shared=False)
        self._platform = FencedPlatform(platform, self.elector)
        self._router = FencedRouter(router, self.elector)
        self._keyring = keyring
        self._setups: list[Callable[[Reconciler], None]] = []
        self._duties: list[Callable[[], Duty]] = []
        self.dropped_events = DroppedEvents()
        self.reconciler = self._new_reconciler()
        self._led = False  # whether self.reconciler has acted (then it is not reused)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._campaign: asyncio.Task[None] | None = None
        self.passes = 0
        self.last_pass_seconds = 0.0
        self.longest_pass_seconds = 0.0
        self.took_over_at: float | None = None  # unix time the current term began
        self.first_pass_at: float | None = None  # ... and its first pass finished
        # Every pass's duration; registered nowhere, ``api.metrics`` serves it at scrape time.
        self.pass_seconds = Histogram(
            "baepo_reconcile_duration_seconds",
            "Time one controller pass over every app+environment took.",
            buckets=PASS_BUCKETS,
            registry=None,
        )
        self.leader_gauge = Gauge(
            "baepo_controller_leader",
            "1 while this server's controller leads (drives rollouts), 0 while it follows.",
            registry=None,
        )
        self.leader_gauge.set_function(lambda: 1.0 if self.leading else 0.0)
        self.longest_pass_gauge = Gauge(
            "baepo_controller_longest_pass_seconds",
            "The longest controller pass since the server started: while a pass runs, no "
            "rollout moves.",
            registry=None,
        )
        self.longest_pass_gauge.set_function(lambda: self.longest_pass_seconds)

    @property
    def leading(self) -> bool:
        return self.elector.leading

    def configure(self, setup: Callable[[Reconciler], None]) -> None:
        """Apply ``setup`` (hooks) to the reconciler now and to every one built later."""
        self._setups.append(setup)
        setup(self.reconciler)

    def while_leading(self, duty: Callable[[], Duty]) -> None:
        """Build and start ``duty()`` at every term as leader; stop it when the term ends."""
        self._duties.append(duty)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._campaign = asyncio.create_task(self.elector.run(), name="baepo-leader-election")
        self._task = asyncio.create_task(self._run(), name="baepo-controller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.reconciler.analysis.close()
        await self.reconciler.wait_draining()
        if self._campaign is not None:
            self._campaign.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._campaign
        await self.elector.resign()

    def wake(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run_once(self) -> bool:
        """One pass over every app; True when any of them has work under way."""
        busy = False
        for app in await asyncio.to_thread(self.store.list_apps):
            self.elector.check(f"reconciling {app.app}/{app.env}")
            try:
                busy = await self.reconciler.reconcile(app) or busy
            except BaepoError as exc:
                log.warning("reconciling %s/%s: %s", app.app, app.env, exc)
                busy = True
        return busy

    def _new_reconciler(self) -> Reconciler:
        reconciler = Reconciler(
            self.store, self._platform, self._router, wake=self.wake, keyring=self._keyring
        )
        reconciler.dropped = self.dropped_events
        reconciler.statistics_loaded = proportions.loaded
        for setup in self._setups:
            setup(reconciler)
        return reconciler

    async def _run(self) -> None:
        loading = asyncio.create_task(asyncio.to_thread(preload), name="baepo-preload")
        try:
            while True:
                await self._follow()
                await self._lead()
        finally:
            loading.cancel()

    async def _follow(self) -> None:
        """Observe the data plane for the API until this server leads."""
        if self._led:
            self.reconciler = self._new_reconciler()
            self._led = False
        mirror = ObservedTraffic(self._router)
        self.reconciler.traffic = mirror
        observed = -OBSERVE_EVERY
        while not self.elector.leading:
            if time.monotonic() - observed >= OBSERVE_EVERY:
                observed = time.monotonic()
                try:
                    await self._observe(mirror)
                except BaepoError as exc:
                    log.info("following: %s", exc)
            await asyncio.sleep(FOLLOW_TICK)

    async def _observe(self, mirror: ObservedTraffic) -> None:
        for app in await asyncio.to_thread(self.store.list_apps):
            if app.state == AppState.DOWN:
                continue
            await mirror.observe(app.app, app.env)
            with contextlib.suppress(BaepoError):
                await self.reconciler.sampler.sample(app.app, app.env)

    async def _lead(self) -> None:
        """Drive every app while the lease holds; stop acting the moment it lapses."""
        self.reconciler = self._new_reconciler()  # adopts the data plane like a restart
        self._led = True
        self.took_over_at, self.first_pass_at = time.time(), None
        duties = [make() for make in self._duties]
        for duty in duties:
            duty.start()
        passes = asyncio.create_task(self._passes(), name="baepo-controller-passes")
        try:
            while self.elector.leading and not passes.done():
                await asyncio.wait({passes}, timeout=FOLLOW_TICK)
            if passes.done() and not passes.cancelled() and passes.exception() is not None:
                log.error("controller passes ended", exc_info=passes.exception())
        finally:
            passes.cancel()
            await asyncio.gather(passes, return_exceptions=True)
            for duty in duties:
                with contextlib.suppress(Exception):
                    await duty.stop()
            if not self.elector.leading:
                await self.reconciler.analysis.close()

    async def _passes(self) -> None:
        while True:
            started = time.monotonic()
            self._wake.clear()  # a wake-up during the pass triggers the next one at once
            try:
                busy = await self.run_once()
            except asyncio.CancelledError:
                raise
            except BaepoError as exc:  # the fence closed mid-pass
                log.warning("controller pass stopped: %s", exc)
                busy = True
            except Exception:
                log.exception("controller pass failed; retrying")
                busy = True
            self.passes += 1
            if self.first_pass_at is None:
                self.first_pass_at = time.time()
            self.last_pass_seconds = time.monotonic() - started
            self.longest_pass_seconds = max(self.longest_pass_seconds, self.last_pass_seconds)
            self.pass_seconds.observe(self.last_pass_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), BUSY_TICK if busy else IDLE_TICK)
