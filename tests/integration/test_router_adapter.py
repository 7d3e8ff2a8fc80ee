"""BuiltinRouter adapter: start, adopt, restart on config change, clear errors, stop."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
from upstreams import UpstreamServer, free_port

from baepo.core.ports import Backend, RouterConfig
from baepo.errors import ExternalError
from baepo.routers.builtin.adapter import BuiltinRouter

pytestmark = pytest.mark.timeout(60)


def _config(port: int, upstream_timeout: float = 30.0) -> RouterConfig:
    return RouterConfig("shop", "prod", f"127.0.0.1:{port}", upstream_timeout, 60.0)


def test_start_adopt_restart_and_stop(tmp_path: Path) -> None:
    port = free_port()

    async def scenario(up: UpstreamServer) -> None:
        router = BuiltinRouter(tmp_path)
        await router.ensure_running(_config(port))
        folder = tmp_path / "routers" / "shop.prod"
        pid = int((folder / "router.pid").read_text())
        for name in ("admin.sock", "router.log", "config.json"):
            assert (folder / name).exists()
        await router.set_backends("shop", "prod", [Backend(3, 100, (up.address,))])
        assert (folder / "table.json").exists()
        async with httpx.AsyncClient() as client:
            for _ in range(5):
                assert (await client.get(f"http://127.0.0.1:{port}/hello")).status_code == 200

        # A new adapter object (a restarted controller) adopts the running process.
        again = BuiltinRouter(tmp_path)
        await again.ensure_running(_config(port))
        assert int((folder / "router.pid").read_text()) == pid
        stats = await again.stats("shop", "prod")
        assert [(s.revision, s.requests, s.status["2xx"]) for s in stats] == [(3, 5, 5)]
        assert await again.in_flight("shop", "prod") == {}
        assert await again.get_backends("shop", "prod") == [Backend(3, 100, (up.address,))]

        # Changed timeouts restart the process, which keeps the table.
        await again.ensure_running(_config(port, upstream_timeout=5.0))
        new_pid = int((folder / "router.pid").read_text())
        assert new_pid != pid
        health = await again.health("shop", "prod")
        assert health is not None
        assert health["upstream_timeout"] == 5.0
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/hello")).status_code == 200

        await again.stop("shop", "prod")
        await again.stop("shop", "prod")
        assert await again.stats("shop", "prod") == []
        assert await again.in_flight("shop", "prod") == {}
        with pytest.raises(ExternalError, match="not running"):
            await again.set_backends("shop", "prod", [])

    with UpstreamServer("a") as up:
        asyncio.run(scenario(up))


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        router = BuiltinRouter(tmp_path)
        with pytest.raises(ExternalError, match=f"port {port} is already in use"):
            asyncio.run(router.ensure_running(_config(port)))
