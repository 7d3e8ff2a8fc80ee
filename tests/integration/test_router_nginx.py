"""The nginx router with a real nginx: start, adopt, weights under load, table changes, stats,
bad tables, stop; and a full ``baepo deploy`` of the sample app behind nginx."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from harness import SampleProject, serving, versions
from proxies import canary_through_cli, load
from upstreams import UpstreamServer, free_port, read_ws_frame, ws_frame

from baepo.cli.loadgen import LoadGenerator
from baepo.core.ports import Backend, HeaderRoute, RouterConfig, Sticky
from baepo.errors import ConfigError, ExternalError
from baepo.routers.nginx.adapter import NginxRouter

pytestmark = pytest.mark.timeout(120)

NGINX = shutil.which("nginx") or (
    "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
)


@pytest.fixture(autouse=True)
def _needs_nginx() -> None:
    if NGINX is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed (required in CI)")
        pytest.skip("nginx is not installed")


def _config(port: int, **extra: object) -> RouterConfig:
    return RouterConfig(
        "shop", "prod", f"127.0.0.1:{port}", 30.0, 60.0, kind="nginx", drain_timeout=5.0, **extra
    )  # type: ignore[arg-type]


def test_start_weights_adopt_stats_and_stop(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    async def scenario(a: UpstreamServer, b: UpstreamServer) -> None:
        router = NginxRouter(tmp_path)
        await router.ensure_running(_config(port))
        folder = tmp_path / "routers" / "nginx" / "shop.prod.main"
        pid = int((folder / "nginx.pid").read_text())
        assert await router.listeners("shop", "prod") == ["main"]
        assert await router.get_backends("shop", "prod") == []
        async with httpx.AsyncClient() as client:
            assert (await client.get(url + "/hello")).status_code == 503

        await router.set_backends(
            "shop", "prod", [Backend(1, 80, (a.address,)), Backend(2, 20, (b.address,))]
        )
        seen = await load(url, 1000, 8)
        assert seen["a"] + seen["b"] == 1000, seen
        assert 740 <= seen["a"] <= 860, seen

        # Unchanged table: no reload (same generation).
        generation = (folder / "nginx.conf").read_text()
        await router.set_backends(
            "shop", "prod", [Backend(1, 80, (a.address,)), Backend(2, 20, (b.address,))]
        )
        assert (folder / "nginx.conf").read_text() == generation

        # A recreated adapter (restarted controller) adopts the running nginx.
        again = NginxRouter(tmp_path)
        await again.ensure_running(_config(port))
        assert int((folder / "nginx.pid").read_text()) == pid
        assert await again.get_backends("shop", "prod") == [
            Backend(1, 80, (a.address,)),
            Backend(2, 20, (b.address,)),
        ]
        stats = {s.revision: s for s in await again.stats("shop", "prod")}
        assert stats[1].requests == seen["a"]
        assert stats[2].requests == seen["b"]
        assert stats[1].status["2xx"] == seen["a"]
        assert stats[1].latency_buckets["+Inf"] == seen["a"]

        # Backend set change: all to b; header route to a; a removed upstream's counters stay.
        await again.set_backends(
            "shop",
            "prod",
            [Backend(1, 0, (a.address,)), Backend(2, 100, (b.address,))],
            header_routes=[HeaderRoute("X-Canary", "yes", 1)],
        )
        async with httpx.AsyncClient() as client:
            assert (await client.get(url + "/hello")).headers["x-upstream"] == "b"
            routed = await client.get(url + "/hello", headers={"X-Canary": "yes"})
            assert routed.headers["x-upstream"] == "a"
        # Sticky cookie: the first answer sets it, later requests keep their revision.
        await again.set_backends(
            "shop",
            "prod",
            [Backend(1, 50, (a.address,)), Backend(2, 50, (b.address,))],
            sticky=Sticky(cookie="sid"),
        )
        async with httpx.AsyncClient() as client:
            first = await client.get(url + "/hello")
            assert "sid" in first.cookies
            names = {(await client.get(url + "/hello")).headers["x-upstream"] for _ in range(20)}
            assert names == {first.headers["x-upstream"]}

        # What nginx cannot express or rejects names the field; the table served is unchanged.
        with pytest.raises(ConfigError, match=r"sticky\.cookie"):
            await again.set_backends("shop", "prod", [], sticky=Sticky(cookie="a-b"))
        with pytest.raises(ConfigError, match="host not found"):
            await again.set_backends("shop", "prod", [Backend(3, 1, ("no-such-host.invalid:80",))])
        assert len(await again.get_backends("shop", "prod")) == 2

        # A changed listen address reloads in place (same master).
        other = free_port()
        await again.ensure_running(_config(other))
        assert int((folder / "nginx.pid").read_text()) == pid
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{other}/hello")).status_code == 200

        await again.stop("shop", "prod")
        await again.stop("shop", "prod")
        assert await again.listeners("shop", "prod") == []
        assert await again.stats("shop", "prod") == []
        with pytest.raises(ExternalError, match="not running"):
            await again.set_backends("shop", "prod", [])

    with UpstreamServer("a") as a, UpstreamServer("b") as b:
        asyncio.run(scenario(a, b))


def test_weight_changes_under_load_fail_nothing(tmp_path: Path) -> None:
    """Reloads while 8 keep-alive clients send GETs and 4 send POSTs: every one answered 2xx.

    The front nginx on the listen address is not reloaded; it resends a request that met a
    back connection being closed by a reload's old worker (see docs/router-nginx.md).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    async def scenario(a: UpstreamServer, b: UpstreamServer) -> Counter[str]:
        router = NginxRouter(tmp_path)
        await router.ensure_running(_config(port))
        await router.set_backends("shop", "prod", [Backend(1, 100, (a.address,))])
        done = asyncio.Event()

        async def flip() -> int:
            n = 0
            while not done.is_set():
                weight = [0, 25, 50, 75, 100][n % 5]
                await router.set_backends(
                    "shop",
                    "prod",
                    [Backend(1, 100 - weight, (a.address,)), Backend(2, weight, (b.address,))],
                )
                n += 1
                await asyncio.sleep(0.1)
            return n

        flipper = asyncio.create_task(flip())
        try:
            seen, posted = await asyncio.gather(load(url, 3000, 8), load(url, 600, 4, post=True))
        finally:
            done.set()
            reloads = await flipper
        assert reloads >= 5
        await router.stop("shop", "prod")
        return seen + posted

    with UpstreamServer("a") as a, UpstreamServer("b") as b:
        seen = asyncio.run(scenario(a, b))
    assert sum(seen.values()) == 3600
    assert not [k for k in seen if k not in ("a", "b")], seen
    assert seen["a"] > 0
    assert seen["b"] > 0


@pytest.mark.slow
def test_deploy_through_the_cli_behind_nginx(project: SampleProject) -> None:
    """``baepo deploy`` with ``router: {kind: nginx}``: nginx serves each revision, a rolling
    deploy under load gets no non-2xx answer, and a killed server's successor adopts nginx."""

    def write(version: str) -> None:
        project.write(version, replicas=2)
        text = project.spec.read_text().replace("router:\n", "router:\n  kind: nginx\n", 1)
        project.spec.write_text(text)

    write("1.0.0")
    project.ok("deploy", "--wait")
    project.wait_for(lambda s: serving(s, 1, 2), what="revision 1 serving")
    pid_files = list((project.state_dir / "routers" / "nginx").glob("sample.*.main/nginx.pid"))
    assert len(pid_files) == 1
    pid = int(pid_files[0].read_text())
    assert "nginx: master process" in Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert set(versions(project.port, 10)) == {"1.0.0"}

    gen = LoadGenerator("127.0.0.1", project.port, rate=40, workers=2, max_seconds=120).start()
    try:
        write("2.0.0")
        project.ok("deploy", "--wait")
        project.wait_for(lambda s: serving(s, 2, 2), what="revision 2 serving")
    finally:
        report = gen.stop()
    assert report.sent > 20
    assert report.failed == 0, report
    assert set(versions(project.port, 10)) == {"2.0.0"}

    # The data plane outlives the server; the next server adopts the same nginx.
    project.kill_server()
    assert set(versions(project.port, 5)) == {"2.0.0"}
    project.ok("status")
    assert int(pid_files[0].read_text()) == pid
    stats = project.status()
    assert [t["revision"] for t in stats["traffic"]] == [2]


def test_removed_upstream_finishes_its_request_and_drains(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    async def scenario(a: UpstreamServer, b: UpstreamServer) -> None:
        router = NginxRouter(tmp_path)
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
            assert (await router.in_flight("shop", "prod")).get(a.address, 0) >= 1
            answer = await slow
            assert answer.status_code == 200
            assert answer.headers["x-upstream"] == "a"
            deadline = time.monotonic() + 10
            while (await router.in_flight("shop", "prod")).get(a.address):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            stats = {s.revision: s for s in await router.stats("shop", "prod")}
            assert stats[1].requests == 1
            assert stats[1].latency_sum >= 1.5
            assert stats[1].latency_buckets["1"] == 0
            assert stats[1].latency_buckets["2.5"] == 1
        await router.stop("shop", "prod")

    with UpstreamServer("a") as a, UpstreamServer("b") as b:
        asyncio.run(scenario(a, b))


def test_streams_pass_and_killed_masters_are_replaced(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    async def scenario(a: UpstreamServer) -> None:
        router = NginxRouter(tmp_path)
        await router.ensure_running(_config(port))
        await router.set_backends("shop", "prod", [Backend(1, 100, (a.address,))])
        # Server-sent events arrive one by one through front and back (no buffering).
        started, arrivals = time.monotonic(), []
        async with (
            httpx.AsyncClient() as client,
            client.stream("GET", url + "/sse?n=3&delay=0.3") as response,
        ):
            async for _ in response.aiter_text():
                arrivals.append(time.monotonic() - started)
        assert len(arrivals) == 3
        assert arrivals[2] - arrivals[0] > 0.4
        # WebSocket upgrade through both.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        writer.write(ws_frame(1, b"hi", mask=True))
        assert await read_ws_frame(reader) == (1, b"hi")
        writer.write(ws_frame(8, b"", mask=True))
        assert (await read_ws_frame(reader))[0] == 8
        writer.close()

        # A killed master (its workers left holding the sockets) is replaced, table kept.
        folder = router.folder("shop", "prod")
        for name in ("nginx.pid", "front.pid"):
            os.kill(int((folder / name).read_text()), signal.SIGKILL)
            deadline = time.monotonic() + 5
            while await router.listeners("shop", "prod"):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            await router.ensure_running(_config(port))
            assert await router.listeners("shop", "prod") == ["main"]
            async with httpx.AsyncClient() as client:
                assert (await client.get(url + "/hello")).headers["x-upstream"] == "a"
        await router.stop("shop", "prod")

    with UpstreamServer("a") as a:
        asyncio.run(scenario(a))


def test_a_taken_port_is_a_clear_error_and_the_old_address_keeps_serving(tmp_path: Path) -> None:
    port = free_port()

    async def scenario(a: UpstreamServer, taken: int) -> None:
        router = NginxRouter(tmp_path / "fresh")
        with pytest.raises(ExternalError, match="Address already in use"):
            await router.ensure_running(_config(taken))
        assert await router.listeners("shop", "prod") == []
        assert not (
            tmp_path / "fresh" / "routers" / "nginx" / "shop.prod.main" / "nginx.pid"
        ).exists()

        router = NginxRouter(tmp_path / "moving")
        await router.ensure_running(_config(port))
        await router.set_backends("shop", "prod", [Backend(1, 100, (a.address,))])
        with pytest.raises(ExternalError, match="Address already in use"):
            await router.ensure_running(_config(taken))
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/hello")).status_code == 200
        folder = router.folder("shop", "prod")
        assert json.loads((folder / "settings.json").read_text())["listen"] == f"127.0.0.1:{port}"
        await router.stop("shop", "prod")

    with socket.socket() as sock, UpstreamServer("a") as a:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        asyncio.run(scenario(a, sock.getsockname()[1]))


@pytest.mark.slow
def test_canary_through_the_cli_splits_traffic_behind_nginx(project: SampleProject) -> None:
    """A canary's weights reach nginx: the measured shares match within tolerance, no request
    fails, and the router's per-revision stats count the traffic."""
    canary_through_cli(project, "nginx")
