"""The HAProxy router with a real HAProxy: start, weights, adoption, table changes under load
through the runtime API (no reload), draining, stats, reload for a new address, stop; and a
canary of the sample app behind HAProxy through the real CLI."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import SampleProject, serving, versions
from upstreams import UpstreamServer, free_port

from baepo.cli.loadgen import LoadGenerator
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


async def _load(url: str, total: int, concurrency: int) -> Counter[str]:
    """``total`` keep-alive GETs over ``concurrency`` connections; counts by upstream or failure."""
    seen: Counter[str] = Counter()
    remaining = [total]
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:

        async def worker() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                try:
                    response = await client.get("/hello")
                except httpx.HTTPError as exc:
                    seen[f"failed:{type(exc).__name__}"] += 1
                    continue
                if response.status_code == 200:
                    seen[response.headers["x-upstream"]] += 1
                else:
                    seen[f"status:{response.status_code}"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return seen


def test_weights_adoption_stats_reload_and_stop(tmp_path: Path) -> None:
    port, moved = free_port(), free_port()

    async def scenario(a: UpstreamServer, b: UpstreamServer) -> None:
        router = HAProxyRouter(tmp_path)
        await router.ensure_running(_config(port))
        await router.ensure_running(_config(port))  # idempotent
        assert await router.listeners("shop", "prod") == ["main"]
        table = [Backend(1, 80, (a.address,)), Backend(2, 20, (b.address,))]
        await router.set_backends("shop", "prod", table)
        seen = await _load(f"http://127.0.0.1:{port}", 500, 4)
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
        seen = await _load(f"http://127.0.0.1:{moved}", 100, 2)
        assert seen == Counter(a=80, b=20), seen

        with pytest.raises(ConfigError) as error:
            await again.set_backends(
                "shop", "prod", table, header_routes=[HeaderRoute("X-Canary", "1", 2)]
            )
        assert error.value.problems[0].path == "router.kind"
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
            seen = await _load(url, 3000, 8)
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
    canary = (
        "{canary: {steps: [{set_weight: 25}, {pause: {}}, {set_weight: 50}, {pause: {}}], "
        "abort_scale_down_delay: 2s}}"
    )

    def write(version: str, strategy: str | None = None) -> None:
        if strategy is None:
            project.write(version, replicas=2)
        else:
            project.write(version, replicas=2, strategy=strategy)
        text = project.spec.read_text().replace("router:\n", "router:\n  kind: haproxy\n", 1)
        project.spec.write_text(text)

    def paused_at(weight: int) -> Callable[[dict[str, Any]], bool]:
        def check(s: dict[str, Any]) -> bool:
            rollout, state = s.get("rollout"), s.get("canary")
            return bool(
                rollout and state and rollout["phase"] == "paused" and state["weight"] == weight
            )

        return check

    def served(revision: int) -> int | None:
        for path in (project.state_dir / "routers" / "haproxy").glob("sample.*.main/table.json"):
            for backend in json.loads(path.read_text())["backends"]:
                if backend["revision"] == revision:
                    return int(backend["weight"])
        return None

    write("1.0.0")
    project.ok("deploy", "--wait")
    project.wait_for(lambda s: serving(s, 1, 2), what="revision 1 serving")
    [pid_file] = (project.state_dir / "routers" / "haproxy").glob("sample.*.main/haproxy.pid")
    pid = pid_file.read_text()
    write("2.0.0", canary)
    gen = LoadGenerator("127.0.0.1", project.port, rate=40, workers=2, max_seconds=180).start()
    measured: dict[int, float] = {}
    try:
        project.ok("deploy", "--no-wait")
        for weight in (25, 50):
            project.wait_for(paused_at(weight), what=f"paused at weight {weight}")
            deadline = time.monotonic() + 10
            while served(2) != weight:
                assert time.monotonic() < deadline, f"HAProxy never served weight {weight}"
                time.sleep(0.05)
            seen = versions(project.port, 400)
            measured[weight] = 100 * seen["2.0.0"] / sum(seen.values())
            project.ok("promote")
        project.wait_for(lambda s: serving(s, 2, 2), what="revision 2 serving")
    finally:
        report = gen.stop()
    assert report.failed == 0, report
    for weight, share in measured.items():
        assert abs(share - weight) <= 7, measured
    assert set(versions(project.port, 20)) == {"2.0.0"}
    stats = {s["revision"]: s for s in project.status()["stats"]}
    assert stats[1]["requests"] > 0
    assert stats[2]["requests"] > 0
    assert sum(s["status"]["5xx"] + s["status"]["error"] for s in stats.values()) == 0

    project.kill_server()
    assert set(versions(project.port, 5)) == {"2.0.0"}
    project.ok("status")
    assert pid_file.read_text() == pid
