"""Routers hands each listener to the router of its kind, and finds it again after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from baepo.core.ports import Backend, HeaderRoute, RevisionStats, Router, RouterConfig, Sticky
from baepo.errors import ConfigError
from baepo.registry import Routers


class Recorder:
    """A router that keeps its tables in memory and records what it was asked."""

    def __init__(self, kind: str, calls: list[str]) -> None:
        self.kind = kind
        self.calls = calls
        self.tables: dict[tuple[str, str, str], list[Backend]] = {}

    async def ensure_running(self, config: RouterConfig) -> None:
        self.calls.append(f"{self.kind} start {config.listener}")
        self.tables.setdefault((config.app, config.env, config.listener), [])

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
        self.calls.append(f"{self.kind} set {listener}")
        self.tables[(app, env, listener)] = list(backends)

    async def get_backends(self, app: str, env: str, *, listener: str = "main") -> list[Backend]:
        return self.tables.get((app, env, listener), [])

    async def in_flight(self, app: str, env: str, *, listener: str = "main") -> dict[str, int]:
        return {}

    async def stats(self, app: str, env: str, *, listener: str = "main") -> list[RevisionStats]:
        return [RevisionStats(revision=1, requests=len(self.kind))]

    async def stop(self, app: str, env: str, *, listener: str = "main") -> None:
        if self.tables.pop((app, env, listener), None) is not None:
            self.calls.append(f"{self.kind} stop {listener}")

    async def listeners(self, app: str, env: str) -> list[str]:
        return [key[2] for key in self.tables if key[:2] == (app, env)]


def routers(calls: list[str], shared: dict[str, Recorder] | None = None) -> Routers:
    made = shared if shared is not None else {}

    def factory(kind: str):  # type: ignore[no-untyped-def]
        def make(state_dir: Path) -> Router:
            made.setdefault(kind, Recorder(kind, calls))
            return made[kind]

        return make

    return Routers(Path("/nonexistent"), {k: factory(k) for k in ("builtin", "haproxy")})


def config(kind: str, listener: str = "main") -> RouterConfig:
    return RouterConfig(
        app="shop", env="prod", listen="127.0.0.1:1", upstream_timeout=1, idle_timeout=1,
        listener=listener, kind=kind,
    )  # fmt: skip


BACKEND = Backend(revision=1, weight=100, upstreams=("127.0.0.1:2",))


def test_each_listener_goes_to_its_kind() -> None:
    calls: list[str] = []
    r = routers(calls)

    async def go() -> None:
        await r.ensure_running(config("haproxy"))
        await r.ensure_running(config("builtin", "preview"))
        await r.set_backends("shop", "prod", [BACKEND])
        await r.set_backends("shop", "prod", [BACKEND], listener="preview")
        assert [s.requests for s in await r.stats("shop", "prod")] == [len("haproxy")]
        assert await r.listeners("shop", "prod") == ["main", "preview"]

    asyncio.run(go())
    assert calls == ["haproxy start main", "builtin start preview", "haproxy set main",
                     "builtin set preview"]  # fmt: skip


def test_a_restarted_controller_finds_the_running_kind() -> None:
    calls: list[str] = []
    shared: dict[str, Recorder] = {}

    async def go() -> None:
        await routers(calls, shared).ensure_running(config("haproxy"))
        again = routers(calls, shared)
        await again.set_backends("shop", "prod", [BACKEND])
        assert await again.get_backends("shop", "prod") == [BACKEND]

    asyncio.run(go())
    assert calls == ["haproxy start main", "haproxy set main"]


def test_changing_kind_stops_the_old_router_first() -> None:
    calls: list[str] = []
    r = routers(calls)

    async def go() -> None:
        await r.ensure_running(config("builtin"))
        await r.ensure_running(config("haproxy"))
        await r.stop("shop", "prod")

    asyncio.run(go())
    assert calls == ["builtin start main", "builtin stop main", "haproxy start main",
                     "haproxy stop main"]  # fmt: skip


def test_an_unknown_kind_names_the_field_and_stops_nothing() -> None:
    calls: list[str] = []
    r = routers(calls)

    async def go() -> None:
        await r.ensure_running(config("builtin"))
        with pytest.raises(ConfigError) as error:
            await r.ensure_running(config("nginx"))
        assert error.value.problems[0].path == "router.kind"
        assert "known kinds: builtin, haproxy" in error.value.problems[0].message

    asyncio.run(go())
    assert calls == ["builtin start main"]
