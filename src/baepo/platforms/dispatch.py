"""Platforms: the controller's one platform, sending each instance to the platform of its target.

``start_instance`` picks the platform from ``InstanceSpec.target`` (None: ``local``, else
``hosts``); instance ids of the hosts platform start with ``h-``, so ``stop_instance`` and
``restart_instance`` find their platform from the id alone. Listing and logs ask every platform
created so far, plus the hosts platform when it has records (an app moving between targets has
instances on both for a while). Platforms are made on first use by injected factories.
Callers: ``registry.make_platform``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING

from baepo.core.model import Instance
from baepo.core.ports import InstanceSpec, Platform
from baepo.errors import ConfigError, Problem
from baepo.platforms.hosts.records import PREFIX as HOSTS_PREFIX


def kind_of_spec(spec: InstanceSpec) -> str:
    return "local" if spec.target is None else "hosts"


def kind_of_id(instance_id: str) -> str:
    return "hosts" if instance_id.startswith(HOSTS_PREFIX) else "local"


class Platforms:
    """A ``Platform`` over several: ``factories`` maps a kind ("local", "hosts") to a maker."""

    def __init__(self, factories: Mapping[str, Callable[[], Platform]]) -> None:
        self._factories = dict(factories)
        self._made: dict[str, Platform] = {}

    def platform(self, kind: str) -> Platform:
        if kind not in self._made:
            if kind not in self._factories:
                known = ", ".join(sorted(self._factories))
                raise ConfigError(
                    f"unknown target kind {kind!r}",
                    problems=[Problem("target.kind", f"unknown kind {kind!r}; known: {known}")],
                )
            self._made[kind] = self._factories[kind]()
        return self._made[kind]

    def _all(self) -> list[Platform]:
        return [self.platform(kind) for kind in self._factories]

    async def start_instance(self, spec: InstanceSpec) -> Instance:
        return await self.platform(kind_of_spec(spec)).start_instance(spec)

    async def list_instances(self, app: str, env: str) -> list[Instance]:
        found: list[Instance] = []
        for platform in self._all():
            found += await platform.list_instances(app, env)
        return found

    async def stop_instance(self, instance_id: str, *, grace: float | None = None) -> None:
        await self.platform(kind_of_id(instance_id)).stop_instance(instance_id, grace=grace)

    async def restart_instance(self, instance_id: str) -> None:
        await self.platform(kind_of_id(instance_id)).restart_instance(instance_id)

    def read_logs(
        self, app: str, env: str, *, revision: int | None = None, tail: int = 100
    ) -> list[str]:
        lines: list[str] = []
        for platform in self._all():
            lines += platform.read_logs(app, env, revision=revision, tail=tail)
        return lines[-tail:] if tail > 0 else []

    async def follow_logs(
        self, app: str, env: str, *, revision: int | None = None
    ) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()

        async def pump(platform: Platform) -> None:
            async for line in platform.follow_logs(app, env, revision=revision):
                await queue.put(line)

        tasks = [asyncio.create_task(pump(platform)) for platform in self._all()]
        try:
            while True:
                yield await queue.get()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


if TYPE_CHECKING:

    def _implements_the_port(platforms: Platforms) -> Platform:
        return platforms
