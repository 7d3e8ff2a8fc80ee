"""The controller's side of the routers: listeners kept running, tables pushed only on change.

One ``Traffic`` per controller remembers, per app+environment+listener, the router config it
ensured and the table (with its sticky and header rules) it last pushed, so a pass that plans
the same traffic costs nothing. After a restart the first push reads the router's current
table, so an unchanged table is not pushed again. Callers: ``controller.reconciler``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from baepo.core.ports import Backend, HeaderRoute, Router, RouterConfig, Sticky

MAIN = "main"
PREVIEW = "preview"
RECHECK_SECONDS = 5.0

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Table:
    """What one listener routes: backends and the rules that travel with them."""

    backends: tuple[Backend, ...] = ()
    sticky: Sticky | None = None
    header_routes: tuple[HeaderRoute, ...] = ()

    def describe(self) -> str:
        total = sum(b.weight for b in self.backends) or 1
        return (
            ", ".join(
                f"r{b.revision} {round(100 * b.weight / total)}% on {len(b.upstreams)}"
                for b in self.backends
            )
            or "nothing (no ready instance)"
        )


class Traffic:
    """Routers and routing tables of every app this controller drives."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._configs: dict[Key, tuple[RouterConfig, float]] = {}
        self._tables: dict[Key, Table] = {}

    def table(self, app: str, env: str, listener: str = MAIN) -> Table:
        return self._tables.get((app, env, listener), Table())

    def running(self, app: str, env: str) -> list[str]:
        """Listeners this controller started or adopted for app+env."""
        return [key[2] for key in self._configs if key[:2] == (app, env)]

    async def ensure(self, config: RouterConfig) -> None:
        """Keep the listener's router running (checked again every few seconds)."""
        key = (config.app, config.env, config.listener)
        known = self._configs.get(key)
        if known and known[0] == config and time.monotonic() - known[1] < RECHECK_SECONDS:
            return
        await self.router.ensure_running(config)
        if known is None or known[0] != config:
            self._tables.pop(key, None)  # a new or restarted router needs its table again
        self._configs[key] = (config, time.monotonic())

    async def push(self, app: str, env: str, table: Table, listener: str = MAIN) -> bool:
        """Make the listener route ``table``; True when it changed."""
        key = (app, env, listener)
        if key not in self._tables:
            current = await self.router.get_backends(app, env, listener=listener)
            self._tables[key] = Table(tuple(current), table.sticky, table.header_routes)
        if self._tables[key] == table:
            return False
        await self.router.set_backends(
            app,
            env,
            table.backends,
            sticky=table.sticky,
            header_routes=table.header_routes,
            listener=listener,
        )
        self._tables[key] = table
        return True

    async def in_flight(self, app: str, env: str) -> dict[str, int]:
        """Requests in flight per upstream, summed over every listener of app+env."""
        total: dict[str, int] = {}
        for listener in self.running(app, env) or [MAIN]:
            for address, count in (
                await self.router.in_flight(app, env, listener=listener)
            ).items():
                total[address] = total.get(address, 0) + count
        return total

    async def stop(self, app: str, env: str, listener: str) -> None:
        await self.router.stop(app, env, listener=listener)
        self._configs.pop((app, env, listener), None)
        self._tables.pop((app, env, listener), None)

    async def adopt(self, app: str, env: str) -> None:
        """Learn listeners left running by an earlier controller, so they can be stopped."""
        for listener in await self.router.listeners(app, env):
            key = (app, env, listener)
            if key not in self._configs:
                self._configs[key] = (
                    RouterConfig(app=app, env=env, listen="", upstream_timeout=0, idle_timeout=0,
                                 listener=listener),
                    0.0,
                )  # fmt: skip
