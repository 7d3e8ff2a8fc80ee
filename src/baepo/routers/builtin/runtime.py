"""The running state of one router process: the current table, upstreams, counters, clients.

``Runtime.apply`` compiles a validated table into ``RouteState`` objects, a ``WeightedCycle``
and, when the table has rules, a ``rules.Matcher``, and swaps them in within one synchronous
call (the next request sees the new table, in-flight ones keep theirs). It also connects to
upstreams (the only task per request, and only when no pooled connection is idle), sweeps
timeouts a few times a second, and drains on shutdown. Callers: ``worker`` (lifecycle),
``admin`` (apply, snapshots), ``forwarding`` (pick, connect, alternative).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from baepo.routers.builtin.client import ClientConnection
from baepo.routers.builtin.exchange import Exchange
from baepo.routers.builtin.forwarding import Forwarder
from baepo.routers.builtin.rules import COUNT_NAMES, Matcher
from baepo.routers.builtin.stats import RevisionCounters
from baepo.routers.builtin.table import Route, Table, WeightedCycle, split_address
from baepo.routers.builtin.upstream import Upstream, UpstreamConnection

log = logging.getLogger("baepo.router")
SWEEP_INTERVAL = 0.25
POOL_IDLE_MAX = 30.0  # idle pooled connections older than this are closed


@dataclass(frozen=True)
class Limits:
    """Timeouts in seconds (from the command line)."""

    upstream_timeout: float = 60.0
    idle_timeout: float = 60.0
    connect_timeout: float = 5.0


class RouteState:
    """A compiled route: its upstream objects, round-robin position and counters."""

    __slots__ = ("counters", "revision", "rr", "upstreams", "weight")

    def __init__(
        self, revision: int, weight: int, upstreams: list[Upstream], counters: RevisionCounters
    ) -> None:
        self.revision = revision
        self.weight = weight
        self.upstreams = upstreams
        self.counters = counters
        self.rr = 0


class Runtime:
    """Everything one router process knows; owned by ``worker``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.table = Table()
        self.routes: list[Route] = []
        self.states: list[RouteState] = []
        self.cycle: WeightedCycle[RouteState] = WeightedCycle([], [])
        # None when the table has no rules: the request path then only asks ``cycle``.
        self.rules: Matcher[RouteState] | None = None
        self.rule_counts = [0] * len(COUNT_NAMES)
        self.upstreams: dict[str, Upstream] = {}
        self.counters: dict[int, RevisionCounters] = {}
        self.clients: set[ClientConnection] = set()
        self.unrouted = 0  # router answers to requests that reached no revision (503, 400, 431)
        self.closing = False
        self.version = 0
        # Counters start at zero with each worker; ``started`` tells their readers which run.
        self.started = time.time()
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    # -- table ---------------------------------------------------------------------------

    def apply(self, table: Table | Sequence[Route]) -> None:
        """Swap in a new table and its rules; close idle connections to upstreams no longer
        listed. Synchronous: no request is routed between the first and the last assignment,
        so the next request sees the whole new table and in-flight ones keep what they hold.
        """
        if not isinstance(table, Table):
            table = Table(tuple(table))
        routes = table.routes
        wanted: dict[str, Upstream] = {}
        states: list[RouteState] = []
        for route in routes:
            ups: list[Upstream] = []
            for address in route.upstreams:
                up = wanted.get(address) or self.upstreams.get(address)
                if up is None:
                    host, port = split_address(address)
                    up = Upstream(address, host, port)
                up.removed = False
                wanted[address] = up
                ups.append(up)
            counters = self.counters.get(route.revision)
            if counters is None:
                counters = self.counters[route.revision] = RevisionCounters(route.revision)
            states.append(RouteState(route.revision, route.weight, ups, counters))
        for address, up in self.upstreams.items():
            if address not in wanted:
                up.removed = True
                up.close_idle()
        # Removed upstreams stay listed while requests to them are in flight.
        for address, up in self.upstreams.items():
            if address not in wanted and up.in_flight > 0:
                wanted.setdefault(address, up)
        weights = [s.weight if s.upstreams else 0 for s in states]
        cycle = WeightedCycle(states, weights)
        rules = None
        if table.has_rules:
            rules = Matcher(table.sticky, table.header_routes, states, weights, self.rule_counts)
        self.upstreams = wanted
        self.table = table
        self.routes = list(routes)
        self.states = states
        self.rules = rules
        self.cycle = cycle
        self.version += 1

    def alternative(self, route: RouteState | None, tried: set[Upstream]) -> Upstream | None:
        """Another instance of ``route``'s revision for a retry, or None: not tried, not
        removed, not marked down. Never one of another revision, so a retry keeps the
        revision's share; the revision's instances are taken from the current table.
        """
        if route is None:
            return None
        revision = route.revision
        now = time.monotonic()
        for state in self.states:
            if state.revision == revision:
                for up in state.upstreams:
                    if up not in tried and not up.removed and up.down_until <= now:
                        return up
        return None

    # -- upstream connections ------------------------------------------------------------

    def connect(self, client: Forwarder, ex: Exchange, up: Upstream) -> None:
        task = asyncio.get_running_loop().create_task(self._connect(client, ex, up))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, client: Forwarder, ex: Exchange, up: Upstream) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.limits.connect_timeout
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: UpstreamConnection(up), up.host, up.port),
                timeout,
            )
        except TimeoutError:
            client.connect_failed(ex, up, f"{up.address}: no answer within {timeout:g} s", True)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            client.connect_failed(ex, up, f"{up.address}: {reason.lower()}", False)
        else:
            client.connected(ex, up, conn)

    # -- timeouts and shutdown -----------------------------------------------------------

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def _sweep_forever(self) -> None:
        limits = self.limits
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            now = time.monotonic()
            for client in list(self.clients):
                try:
                    client.sweep(now, limits.idle_timeout, limits.upstream_timeout)
                except Exception:
                    log.exception("sweeping a connection failed")
            for up in self.upstreams.values():
                if up.idle:
                    up.close_idle(older_than=now - POOL_IDLE_MAX)

    async def drain(self, grace: float) -> None:
        """Close idle client connections, let busy ones finish (at most ``grace`` s)."""
        self.closing = True
        for client in list(self.clients):
            if client.cur is None and client.tunnel is None:
                client.transport.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + grace
        while self.clients and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for client in list(self.clients):
            if client.transport is not None:
                client.transport.abort()
        for up in self.upstreams.values():
            up.close_idle()
        if self._sweeper is not None:
            self._sweeper.cancel()

    # -- snapshots for the admin API -----------------------------------------------------

    def stats(self) -> dict[str, Any]:
        in_flight: dict[int, int] = {}
        for state in self.states:
            in_flight[state.revision] = sum(up.in_flight for up in state.upstreams)
        revisions = [
            counters.snapshot(in_flight.get(revision, 0))
            for revision, counters in sorted(self.counters.items())
        ]
        rules = dict(zip(COUNT_NAMES, self.rule_counts, strict=True))
        return {
            "revisions": revisions,
            "unrouted": self.unrouted,
            "rules": rules,
            "started": round(self.started, 6),
        }

    def in_flight(self) -> dict[str, int]:
        return {address: up.in_flight for address, up in self.upstreams.items()}
