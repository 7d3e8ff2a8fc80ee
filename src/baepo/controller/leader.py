"""Leader election between servers sharing one database, and fencing of what a leader does.

Several ``baepo server`` replicas may run against one PostgreSQL database: all serve the API
and the dashboard, exactly one (the leader) drives rollouts. The :class:`Elector` campaigns
for the store's lease (a PostgreSQL session advisory lock, see ``store.lease``) every
``campaign_every`` seconds and, once it holds it, renews it every ``renew_every`` seconds.

``Elector.leading`` is the fence every action checks: it is True only while the last
successful renewal was *sent* less than ``trust`` seconds ago. The database ends a leader's
session ``ttl`` seconds after its last statement (``idle_session_timeout``), and ``trust`` is
shorter than ``ttl``, so a leader that goes silent stops acting before its lock can pass to
another replica. A session can also end first on the database's side (a restart, a
terminated backend, a reset connection): the lock is free at once while the old leader still
trusts its last renewal. So a replica that wins the lease waits ``settle`` seconds (``trust``
plus time for a port call begun just before the trust ran out to finish) before it acts: by
then the old leader has stopped, whatever happened to it.

:class:`FencedPlatform` and :class:`FencedRouter` wrap the ports the reconciler acts through
and refuse every change while ``leading`` is False, so even work already under way (a drain
about to stop an instance) stops at once.

Callers: ``controller.loop`` (the Controller owns an Elector and fences its ports with it) and
``api.server`` (builds the Elector from the store's lease).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

from baepo.core.model import Instance
from baepo.core.ports import (
    Backend,
    HeaderRoute,
    InstanceSpec,
    Lease,
    Platform,
    RevisionStats,
    Router,
    RouterConfig,
    Sticky,
)
from baepo.errors import BaepoError, StateError

log = logging.getLogger("baepo.leader")

LEASE_NAME = "controller"
# The database ends a silent leader's session (and so frees the lock) after TTL seconds.
TTL = 6.0
# A leader trusts its lease this long after *sending* its last successful renewal; a replica
# that wins a lease other processes may have held waits as long before acting.
TRUST = 2.0
SETTLE = TRUST + 0.5
RENEW_EVERY = 0.5
CAMPAIGN_EVERY = 0.5


class SoleLease:
    """The lease of a process that is alone by construction (tests, a bare Controller)."""

    kind = "sole"

    def acquire(self) -> bool:
        return True

    def renew(self) -> bool:
        return True

    def holder(self) -> str | None:
        return None

    def release(self) -> None:
        return None


class Elector:
    """Campaigns for ``lease`` and keeps it; ``leading`` says whether to act right now."""

    def __init__(
        self,
        lease: Lease,
        identity: str = "",
        *,
        trust: float = TRUST,
        settle: float = 0.0,
        renew_every: float = RENEW_EVERY,
        campaign_every: float = CAMPAIGN_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if trust <= renew_every:
            raise ValueError("trust must be longer than renew_every")
        self.lease = lease
        self.identity = identity
        self.trust = trust
        self.settle = settle
        self.renew_every = renew_every
        self.campaign_every = campaign_every
        self.clock = clock
        self.terms = 0  # how many times this process became the leader
        self.since: datetime | None = None  # when the current term started (wall clock)
        self._held = False
        self._valid_until = -math.inf
        self._acts_from = math.inf

    @property
    def leading(self) -> bool:
        """True while the lease is held, was confirmed less than ``trust`` seconds ago, and
        was won at least ``settle`` seconds ago."""
        now = self.clock()
        return self._held and self._acts_from <= now < self._valid_until

    async def step(self) -> bool:
        """One renewal (when holding the lease) or one campaign; returns ``leading``."""
        sent = self.clock()
        held = self._held
        try:
            ok = await asyncio.to_thread(self.lease.renew if held else self.lease.acquire)
        except BaepoError as exc:
            log.warning("leader lease: %s", exc)
            ok = False
        except Exception:  # the campaign must outlive any failure of the lease
            log.exception("leader lease: unexpected failure")
            ok = False
        if ok:
            self._confirmed(sent)
        elif held:
            self._lose("the lease could not be renewed")
        return self.leading

    def prime(self) -> bool:
        """One blocking campaign, before the event loop runs: the server calls it before it
        serves, so a server alone on its database leads (and notifies) from its first
        request on. Returns ``leading``."""
        sent = self.clock()
        if not self._held and self.lease.acquire():
            self._confirmed(sent)
        return self.leading

    async def run(self) -> None:
        """Campaign and renew until cancelled."""
        while True:
            await self.step()
            await asyncio.sleep(self.renew_every if self._held else self.campaign_every)

    async def resign(self) -> None:
        """Stop leading and free the lease at once, so another replica takes over now."""
        if self._held:
            self._lose("shutting down")
        await asyncio.to_thread(self.lease.release)

    async def holder(self) -> str | None:
        """Who leads now, as the lease tells it (this server's identity when it does)."""
        if self.leading:
            return self.identity
        return await asyncio.to_thread(self.lease.holder)

    def check(self, action: str) -> None:
        """Raise StateError unless this server leads (the fence before ``action``)."""
        if not self.leading:
            raise StateError(
                f"not {action}: this server is not the leader",
                hint="the leading replica acts; this one only serves the API",
            )

    def _confirmed(self, sent: float) -> None:
        self._valid_until = sent + self.trust
        if not self._held:
            self._held = True
            self._acts_from = self.clock() + self.settle
            self.terms += 1
            self.since = datetime.now(UTC)
            log.warning(
                "leading (%s, %s)%s",
                self.identity or "this server",
                self.lease.kind,
                f"; acting in {self.settle:g}s" if self.settle else "",
            )

    def _lose(self, why: str) -> None:
        self._held = False
        self._valid_until = -math.inf
        self._acts_from = math.inf
        self.since = None
        log.warning("no longer leading: %s", why)


def elector_for(lease: Lease, identity: str, *, shared: bool) -> Elector:
    """The elector of a server: ``shared`` when other processes may hold ``lease`` (replicas
    on one PostgreSQL database), else the lease is bound to this process (a SQLite file
    lock, which dies with its holder).

    A process-bound lease cannot pass to another process while this one lives, so there is
    nothing to fence against: its holder leads at once and keeps leading however late a
    renewal is. Trusting it only ``TRUST`` seconds would make a busy machine (a renewal
    queued a few seconds behind other work) stop the controller mid-pass and rebuild it,
    losing what it remembers (a guard that already tripped would trip again).
    """
    if shared:
        return Elector(lease, identity, settle=SETTLE)
    return Elector(lease, identity, trust=math.inf, settle=0.0)


class FencedPlatform:
    """A platform whose changes are refused unless the elector leads; reads pass through."""

    def __init__(self, platform: Platform, elector: Elector) -> None:
        self.inner = platform
        self.elector = elector

    async def start_instance(self, spec: InstanceSpec) -> Instance:
        self.elector.check(f"starting an instance of {spec.app} revision {spec.revision}")
        return await self.inner.start_instance(spec)

    async def list_instances(self, app: str, env: str) -> list[Instance]:
        return await self.inner.list_instances(app, env)

    async def stop_instance(self, instance_id: str, *, grace: float | None = None) -> None:
        self.elector.check(f"stopping instance {instance_id}")
        await self.inner.stop_instance(instance_id, grace=grace)

    async def restart_instance(self, instance_id: str) -> None:
        self.elector.check(f"restarting instance {instance_id}")
        await self.inner.restart_instance(instance_id)

    def read_logs(
        self, app: str, env: str, *, revision: int | None = None, tail: int = 100
    ) -> list[str]:
        return self.inner.read_logs(app, env, revision=revision, tail=tail)

    def follow_logs(self, app: str, env: str, *, revision: int | None = None) -> AsyncIterator[str]:
        return self.inner.follow_logs(app, env, revision=revision)


class FencedRouter:
    """A router whose changes are refused unless the elector leads; reads pass through."""

    def __init__(self, router: Router, elector: Elector) -> None:
        self.inner = router
        self.elector = elector

    async def ensure_running(self, config: RouterConfig) -> None:
        self.elector.check(f"starting the router of {config.app}")
        await self.inner.ensure_running(config)

    async def set_backends(
        self,
        app: str,
        env: str,
        backends: Sequence[Backend],
        *,
        sticky: Sticky | None = None,
        header_routes: Sequence[HeaderRoute] = (),
        listener: str = "main",
    ) -> None:
        self.elector.check(f"routing {app} in {env}")
        await self.inner.set_backends(
            app, env, backends, sticky=sticky, header_routes=header_routes, listener=listener
        )

    async def get_backends(self, app: str, env: str, *, listener: str = "main") -> list[Backend]:
        return await self.inner.get_backends(app, env, listener=listener)

    async def in_flight(self, app: str, env: str, *, listener: str = "main") -> dict[str, int]:
        return await self.inner.in_flight(app, env, listener=listener)

    async def stats(self, app: str, env: str, *, listener: str = "main") -> list[RevisionStats]:
        return await self.inner.stats(app, env, listener=listener)

    async def stop(self, app: str, env: str, *, listener: str = "main") -> None:
        self.elector.check(f"stopping the router of {app} in {env}")
        await self.inner.stop(app, env, listener=listener)

    async def listeners(self, app: str, env: str) -> list[str]:
        return await self.inner.listeners(app, env)
