"""Platforms: each instance goes to the platform of its target; ids find their platform."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

from baepo.core.model import Instance, InstancePhase
from baepo.core.ports import HostConfig, HostsTarget, InstanceSpec, ProbeConfig
from baepo.platforms.dispatch import Platforms


class FakePlatform:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.instances: dict[str, Instance] = {}
        self.calls: list[str] = []

    async def start_instance(self, spec: InstanceSpec) -> Instance:
        instance = Instance(
            id=f"{self.prefix}r{spec.revision}-{len(self.instances)}",
            app=spec.app,
            env=spec.env,
            revision=spec.revision,
            host="h",
            port=1,
            phase=InstancePhase.STARTING,
        )
        self.instances[instance.id] = instance
        return instance

    async def list_instances(self, app: str, env: str) -> list[Instance]:
        return [i for i in self.instances.values() if (i.app, i.env) == (app, env)]

    async def stop_instance(self, instance_id: str, *, grace: float | None = None) -> None:
        self.calls.append(f"stop {instance_id}")
        self.instances.pop(instance_id, None)

    async def restart_instance(self, instance_id: str) -> None:
        self.calls.append(f"restart {instance_id}")

    def read_logs(
        self, app: str, env: str, *, revision: int | None = None, tail: int = 100
    ) -> list[str]:
        return [f"{self.prefix} line"]

    async def follow_logs(
        self, app: str, env: str, *, revision: int | None = None
    ) -> AsyncIterator[str]:
        yield f"{self.prefix} new"


SPEC = InstanceSpec(
    app="shop",
    env="prod",
    revision=1,
    command=["app"],
    cwd="/src",
    env_vars={},
    stop_grace_period=1.0,
    backoff_initial=0.1,
    backoff_max=1.0,
    crash_loop_restarts=3,
    crash_loop_window=60.0,
    log_max_bytes=1024,
    log_backups=1,
    readiness=ProbeConfig("/", 1.0, 1.0, 3, 1, 0.0),
)
ON_HOSTS = dataclasses.replace(
    SPEC, revision=2, target=HostsTarget((HostConfig("10.0.0.1"),), "/srv/baepo", 0, "/src")
)


def test_instances_go_where_their_target_says_and_ids_find_them_again() -> None:
    local, hosts = FakePlatform(""), FakePlatform("h-")
    made: list[str] = []

    def factory(name: str, platform: FakePlatform) -> FakePlatform:
        made.append(name)
        return platform

    platforms = Platforms(
        {"local": lambda: factory("local", local), "hosts": lambda: factory("hosts", hosts)}
    )

    async def scenario() -> list[str]:
        a = await platforms.start_instance(SPEC)
        b = await platforms.start_instance(ON_HOSTS)
        assert (a.id, b.id) == ("r1-0", "h-r2-0")
        listed = await platforms.list_instances("shop", "prod")
        assert sorted(i.id for i in listed) == ["h-r2-0", "r1-0"]
        await platforms.stop_instance(b.id, grace=1)
        await platforms.restart_instance(a.id)
        follow = platforms.follow_logs("shop", "prod")
        seen = {await anext(follow), await anext(follow)}
        await follow.aclose()
        return sorted(seen)

    assert asyncio.run(scenario()) == [" new", "h- new"]
    assert hosts.calls == ["stop h-r2-0"] and local.calls == ["restart r1-0"]
    assert platforms.read_logs("shop", "prod") == [" line", "h- line"]
    assert made == ["local", "hosts"]  # each made once, on first use
