"""The HAProxy router with a real HAProxy: start, weights, adoption, table changes under load
through the runtime API (no reload), draining, stats, reload for a new address, stop; and a
canary of the sample app behind HAProxy through the real CLI."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from harness import SampleProject, versions
from proxies import canary_through_cli, load
from upstreams import UpstreamServer, free_port

from baepo.core.ports import Backend, HeaderRoute, RouterConfig
from baepo.errors import ConfigError
from baepo.routers.haproxy.adapter import HAProxyRouter, admin_socket, command

pytestmark = pytest.mark.timeout(120)

HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None
)


@pytest.fixture(autouse=True)
def _needs_haproxy() -> None:
    if HAPROXY is None:
        if os.environ.get("CI") == "true":
            pytest.fail("haproxy is not installed (required in CI): run make test")
        pytest.skip("haproxy is not installed: run make test")


def _config(port: int) -> RouterConfig:
    return RouterConfig(
        "shop", "prod", f"127.0.0.1:{port}", 30.0, 60.0, kind="haproxy", drain_timeout=5.0
    )


def test_weights_adoption_stats_reload_and_stop(tmp_path: Path) -> None:
    port, moved = free_port(), free_port()

    async def scenario(a: UpstreamServer, b: UpstreamServer) -> None:
        router = HAProxyRouter(tmp_path)
        await router.ensure_running(_config(port))
        await router.ensure_running(_config(port))  # idempotent
        assert await router.listeners("shop", "prod") == ["main"]
        table = [Backend(1, 80, (a.address,)), Backend(2, 20, (b.address,))]
        await router.set_backends("shop", "prod", table)
        seen = await load(f"http://127.0.0.1:{port}", 500, 4)
        assert seen == Counter(a=400, b=100), seen  # round robin: exact shares

        again = HAProxyRouter(tmp_path)  # a restarted controller adopts the running HAProxy
        assert await again.get_backends("shop", "prod") == table
        stats = {s.revision: s for s in await again.stats("shop", "prod")}
        assert (stats[1].requests, stats[2].requests) == (400, 100)
        assert stats[1].status["2xx"] == 400
        assert stats[1].latency_buckets["+Inf"] == 400

        # A new address is a seamless reload that keeps the table.
        pid = (tmp_path / "routers/haproxy/shop.prod.main/haproxy.pid").read_text()
        config = RouterConfig("shop", "prod", f"127.0.0.1:{moved}", 30.0, 60.0,
                              kind="haproxy", drain_timeout=5.0)  # fmt: skip
        await again.ensure_running(config)
        assert (tmp_path / "routers/haproxy/shop.prod.main/haproxy.pid").read_text() == pid
        seen = await load(f"http://127.0.0.1:{moved}", 100, 2)
        assert seen == Counter(a=80, b=20), seen

        with pytest.raises(ConfigError) as error:  # as the built-in router judges it
            await again.set_backends(
                "shop", "prod", table, header_routes=[HeaderRoute("X-Canary", "1", 7)]
            )
        assert error.value.problems[0].path == "header_routes[0].revision"
        await again.stop("shop", "prod")
        assert await again.listeners("shop", "prod") == []
        await again.stop("shop", "prod")  # idempotent

    with UpstreamServer("a") as a, UpstreamServer("b") as b:
        asyncio.run(scenario(a, b))


def test_table_changes_under_load_fail_nothing(tmp_path: Path) -> None:
    """Weights and the server set change every 20 ms while 8 keep-alive clients send GETs:
    every request is answered 2xx, with no reload."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    async def scenario(a: UpstreamServer, b: UpstreamServer, c: UpstreamServer) -> int:
        router = HAProxyRouter(tmp_path)
        await router.ensure_running(_config(port))
        worker = await _worker(tmp_path)
        await router.set_backends("shop", "prod", [Backend(1, 100, (a.address,))])
        done = asyncio.Event()

        async def flip() -> int:
            n = 0
            while not done.is_set():
                weight = [0, 25, 50, 75, 100][n % 5]
                table = [Backend(1, 100 - weight, (a.address,))]
                # Every other change brings in or takes away a third revision's server.
                table.append(Backend(2, weight, (b.address, c.address) if n % 2 else (b.address,)))
                await router.set_backends("shop", "prod", table)
                n += 1
                await asyncio.sleep(0.02)
            return n

        flipper = asyncio.create_task(flip())
        try:
            seen = await load(url, 3000, 8)
        finally:
            done.set()
            changes = await flipper
        assert changes >= 20
        assert await _worker(tmp_path) == worker  # no reload happened
        await router.stop("shop", "prod")
        assert sum(seen.values()) == 3000
        assert not [k for k in seen if k not in ("a", "b", "c")], seen
        assert seen["a"] > 0 and seen["b"] > 0 and seen["c"] > 0, seen
        return changes

    with UpstreamServer("a") as a, UpstreamServer("b") as b, UpstreamServer("c") as c:
        asyncio.run(scenario(a, b, c))


async def _worker(state_dir: Path) -> str:
    info = await command(admin_socket(state_dir / "routers/haproxy/shop.prod.main"), "show info")
    return next(line for line in info.splitlines() if line.startswith("Pid: "))


def test_removed_upstream_finishes_its_request_and_is_deleted(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    async def scenario(a: UpstreamServer, b: UpstreamServer) -> None:
        router = HAProxyRouter(tmp_path)
        await router.ensure_running(_config(port))
        await router.set_backends("shop", "prod", [Backend(1, 100, (a.address,))])
        async with httpx.AsyncClient(timeout=10) as client:
            slow = asyncio.create_task(client.get(url + "/slow?delay=1.5"))
            deadline = time.monotonic() + 5
            while not (await router.in_flight("shop", "prod")).get(a.address):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            await router.set_backends("shop", "prod", [Backend(2, 100, (b.address,))])
            assert (await client.get(url + "/hello")).headers["x-upstream"] == "b"
            assert (await router.in_flight("shop", "prod")).get(a.address, 0) == 1
            answer = await slow
            assert answer.status_code == 200
            assert answer.headers["x-upstream"] == "a"
        deadline = time.monotonic() + 10
        while True:  # the drained server goes once nothing uses it
            stats = {s.revision: s for s in await router.stats("shop", "prod")}
            names = await router._servers(admin_socket(tmp_path / "routers/haproxy/shop.prod.main"))
            if all(name.startswith("baepo_r2-") for name in names):
                break
            assert time.monotonic() < deadline, names
            await asyncio.sleep(0.1)
        assert stats[1].requests == 1
        assert stats[1].latency_sum >= 1.5
        assert stats[1].latency_buckets["1"] == 0
        await router.stop("shop", "prod")

    with UpstreamServer("a") as a, UpstreamServer("b") as b:
        asyncio.run(scenario(a, b))


@pytest.mark.slow
def test_canary_through_the_cli_behind_haproxy(project: SampleProject) -> None:
    """``baepo deploy`` with ``router: {kind: haproxy}``: the canary's weights reach HAProxy
    (measured shares within tolerance), no request fails under load, the router's stats count
    the traffic, and a killed server's successor adopts the same HAProxy."""
    canary_through_cli(project, "haproxy")
    [pid_file] = (project.state_dir / "routers" / "haproxy").glob("sample.*.main/haproxy.pid")
    pid = pid_file.read_text()
    project.kill_server()
    assert set(versions(project.port, 5)) == {"2.0.0"}
    project.ok("status")
    assert pid_file.read_text() == pid
