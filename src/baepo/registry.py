"""The plugin registry: maps platform and router kinds to their classes.

An unknown kind is a ConfigError that lists the known ones. ``Routers`` is the one router the
controller talks to: it hands each listener to the router of the kind its spec names
(``router.kind``). Callers: ``api.server``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

from baepo.core.ports import (
    Backend,
    HeaderRoute,
    Platform,
    RevisionStats,
    Router,
    RouterConfig,
    Sticky,
)
from baepo.errors import ConfigError, Problem
from baepo.platforms.dispatch import Platforms
from baepo.platforms.hosts.platform import HostsPlatform
from baepo.platforms.local.platform import LocalPlatform
from baepo.routers.builtin.adapter import BuiltinRouter
from baepo.routers.haproxy.adapter import HAProxyRouter
from baepo.routers.nginx.adapter import NginxRouter

PLATFORMS: dict[str, Callable[[Path], Platform]] = {"local": LocalPlatform, "hosts": HostsPlatform}
ROUTERS: dict[str, Callable[[Path], Router]] = {
    "builtin": BuiltinRouter,
    "haproxy": HAProxyRouter,
    "nginx": NginxRouter,
}

T = TypeVar("T")


def _pick(table: dict[str, Callable[[Path], T]], kind: str, what: str) -> Callable[[Path], T]:
    if kind not in table:
        known = ", ".join(sorted(table))
        raise ConfigError(
            f"unknown {what} kind {kind!r}",
            problems=[Problem(what, f"unknown kind {kind!r}; known kinds: {known}")],
        )
    return table[kind]


def make_platform(kind: str, state_dir: Path) -> Platform:
    """``"local"`` is the controller's platform: each app's ``target`` picks local or hosts."""
    if kind == "local":
        return Platforms({name: partial(make, state_dir) for name, make in PLATFORMS.items()})
    return _pick(PLATFORMS, kind, "platform")(state_dir)


def make_router(kind: str, state_dir: Path) -> Router:
    return _pick(ROUTERS, kind, "router")(state_dir)


def make_routers(state_dir: Path) -> Router:
    """The controller's router: every kind, each listener served by the one its spec names."""
    return Routers(state_dir)


class Routers:
    """A Router that dispatches each listener to the router of its kind.

    ``ensure_running`` learns a listener's kind from its config; after a controller restart,
    the first call about a listener finds the kind whose router runs it (the built-in router
    when none does). A listener whose kind changes (``router.kind`` edited) is stopped on the
    old router before the new one starts on the same address: a short gap, as with any proxy
    swap. Routers are created on first use, so a kind nobody uses needs nothing installed.
    """

    def __init__(
        self, state_dir: Path, kinds: dict[str, Callable[[Path], Router]] | None = None
    ) -> None:
        self.state_dir = state_dir
        self._factories = kinds if kinds is not None else ROUTERS
        self._routers: dict[str, Router] = {}
        self._kinds: dict[tuple[str, str, str], str] = {}

    def router(self, kind: str) -> Router:
        if kind not in self._routers:
            self._routers[kind] = _pick(self._factories, kind, "router.kind")(self.state_dir)
        return self._routers[kind]

    async def _kind_of(self, app: str, env: str, listener: str) -> str:
        key = (app, env, listener)
        if key not in self._kinds:
            self._kinds[key] = "builtin"
            for kind in self._factories:
                if listener in await self.router(kind).listeners(app, env):
                    self._kinds[key] = kind
                    break
        return self._kinds[key]

    async def _for(self, app: str, env: str, listener: str) -> Router:
        return self.router(await self._kind_of(app, env, listener))

    async def ensure_running(self, config: RouterConfig) -> None:
        key = (config.app, config.env, config.listener)
        target = self.router(config.kind)  # an unknown kind fails before anything stops
        current = await self._kind_of(*key)
        if current != config.kind:
            await self.router(current).stop(config.app, config.env, listener=config.listener)
        self._kinds[key] = config.kind
        await target.ensure_running(config)

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
        router = await self._for(app, env, listener)
        await router.set_backends(
            app, env, backends, sticky=sticky, header_routes=header_routes, listener=listener
        )

    async def get_backends(self, app: str, env: str, *, listener: str = "main") -> list[Backend]:
        return await (await self._for(app, env, listener)).get_backends(app, env, listener=listener)

    async def in_flight(self, app: str, env: str, *, listener: str = "main") -> dict[str, int]:
        return await (await self._for(app, env, listener)).in_flight(app, env, listener=listener)

    async def stats(self, app: str, env: str, *, listener: str = "main") -> list[RevisionStats]:
        return await (await self._for(app, env, listener)).stats(app, env, listener=listener)

    async def stop(self, app: str, env: str, *, listener: str = "main") -> None:
        await (await self._for(app, env, listener)).stop(app, env, listener=listener)
        self._kinds.pop((app, env, listener), None)

    async def listeners(self, app: str, env: str) -> list[str]:
        found: list[str] = []
        for kind in self._factories:
            for listener in await self.router(kind).listeners(app, env):
                if listener not in found:
                    found.append(listener)
                    self._kinds.setdefault((app, env, listener), kind)
        return sorted(found, key=lambda name: (name != "main", name))
