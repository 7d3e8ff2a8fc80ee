"""The built-in router survives its worker's crash: real processes, real HTTP, SIGKILL.

The router process is a master that owns the listening sockets and one worker that proxies.
After ``kill -9`` of the worker the master forks another at once: the same pid answers
``/healthz``, the table and its weights are the saved ones, and under load the only failed
requests are those that were in flight when the worker died.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from upstreams import RouterProcess, UpstreamServer, eventually, free_port

from baepo.core.ports import Backend, RouterConfig
from baepo.routers.builtin.adapter import BuiltinRouter
from baepo.shell import process

pytestmark = pytest.mark.timeout(90)


def health(router: RouterProcess) -> dict[str, Any] | None:
    try:
        with router.admin_client() as client:
            return dict(client.get("/healthz", timeout=1.0).json())
    except (httpx.HTTPError, OSError):
        return None


def proxying(info: dict[str, Any] | None) -> int:
    """The pid of the process that proxies (a router without workers proxies itself)."""
    assert info is not None
    return int(info.get("worker_pid", info["pid"]))


def new_worker(router: RouterProcess, old: int) -> dict[str, Any]:
    """``/healthz`` once a worker other than ``old`` answers it."""
    return dict(
        eventually(
            lambda: (h := health(router)) is not None and proxying(h) != old and h,
            f"worker to replace {old}",
        )
    )


def gone(pid: int) -> bool:
    return not process.pid_alive(pid)


def test_killed_worker_is_replaced_with_the_same_master_table_and_weights(tmp_path: Path) -> None:
    with (
        UpstreamServer("a") as a,
        UpstreamServer("b") as b,
        RouterProcess(tmp_path) as router,
        httpx.Client(base_url=router.url) as client,
    ):
        router.put((1, 3, [a.address]), (2, 1, [b.address]))
        before = router.get("/backends")
        first = health(router)
        assert first is not None
        assert first["pid"] == router.proc.pid  # type: ignore[union-attr]
        for kill in range(3):
            old = proxying(health(router))
            killed_at = time.time()
            os.kill(old, signal.SIGKILL)
            eventually(lambda pid=old: gone(pid), "death of the killed worker")
            info = new_worker(router, old)
            assert info["pid"] == router.proc.pid  # type: ignore[union-attr]
            assert info["worker_restarts"] == kill + 1
            assert router.proc.poll() is None  # type: ignore[union-attr]
            assert {k: v for k, v in router.get("/backends").items() if k != "version"} == {
                k: v for k, v in before.items() if k != "version"
            }
            served = Counter(client.get("/hello").headers["x-upstream"] for _ in range(40))
            assert served == {"a": 30, "b": 10}  # weights 3:1, smooth round-robin
        # The counters restarted with the worker, and say so.
        stats = router.get("/stats")
        assert stats["started"] >= killed_at - 0.01
        assert [r["requests"] for r in stats["revisions"]] == [30, 10]
        # SIGTERM to the master still stops everything, the worker with it.
        worker = proxying(health(router))
        assert router.stop() == 0
        assert gone(worker)
        assert not router.admin.exists()


def test_adapter_adopts_the_same_master_after_a_worker_crash(tmp_path: Path) -> None:
    port = free_port()
    config = RouterConfig("shop", "prod", f"127.0.0.1:{port}", 30.0, 60.0)

    async def scenario(up: UpstreamServer) -> None:
        router = BuiltinRouter(tmp_path)
        await router.ensure_running(config)
        folder = tmp_path / "routers" / "shop.prod"
        pid = int((folder / "router.pid").read_text())
        await router.set_backends("shop", "prod", [Backend(4, 100, (up.address,))])
        info = await router.health("shop", "prod")
        assert info is not None
        assert info["pid"] == pid != info["worker_pid"]
        os.kill(info["worker_pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (now := await router.health("shop", "prod")) is None or (
            now["worker_pid"] == info["worker_pid"]
        ):
            assert time.monotonic() < deadline, "no new worker"
            await asyncio.sleep(0.01)
        await BuiltinRouter(tmp_path).ensure_running(config)  # a restarted controller
        assert int((folder / "router.pid").read_text()) == pid
        assert await router.get_backends("shop", "prod") == [Backend(4, 100, (up.address,))]
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/hello")).status_code == 200
        await router.stop("shop", "prod")
        assert gone(pid)
        assert gone(now["worker_pid"])

    with UpstreamServer("a") as up:
        asyncio.run(scenario(up))


@dataclass
class Attempt:
    started: float
    ended: float = 0.0
    ok: bool = False


class Load:
    """``threads`` clients, each sending requests back to back on a keep-alive connection;
    every attempt is timed (monotonic) so a failure can be matched to the kill."""

    def __init__(self, url: str, threads: int) -> None:
        self.url = url
        self.attempts: list[Attempt] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while not self.stopping.is_set():
                attempt = Attempt(time.monotonic())
                with self.lock:
                    self.attempts.append(attempt)
                try:
                    attempt.ok = client.get(self.url).status_code == 200
                except httpx.HTTPError:
                    attempt.ok = False
                attempt.ended = time.monotonic()

    def succeeded_since(self, moment: float) -> int:
        with self.lock:
            return sum(1 for a in self.attempts if a.ok and a.started > moment)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(15)


def test_worker_kill_under_load_fails_at_most_the_requests_in_flight(tmp_path: Path) -> None:
    with UpstreamServer("a") as a, RouterProcess(tmp_path) as router:
        router.put((1, 1, [a.address]))
        with Load(f"{router.url}/slow?delay=0.02", threads=6) as load:
            eventually(lambda: load.succeeded_since(0.0) >= 50, "steady load")
            worker = proxying(health(router))
            killed = time.monotonic()
            os.kill(worker, signal.SIGKILL)
            eventually(lambda: gone(worker), "death of the killed worker")
            dead = time.monotonic()
            eventually(lambda: load.succeeded_since(dead) >= 50, "answers from the new worker")
        ended = [a for a in load.attempts if a.ended]
        # In flight at the kill: sent before the worker was gone, not answered before the kill.
        in_flight = [a for a in ended if a.started <= dead and a.ended >= killed]
        failed = [a for a in ended if not a.ok]
        assert {id(a) for a in failed} <= {id(a) for a in in_flight}, (failed, killed, dead)
        assert len(failed) <= 6, failed  # at most one per client: its next one is queued
        assert len(ended) - len(failed) >= 100
