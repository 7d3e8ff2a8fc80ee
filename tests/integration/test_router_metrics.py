"""The router's Prometheus endpoint: a real router process, real requests, a real scrape."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus import SampleApp
from prometheus_client.parser import text_string_to_metric_families
from upstreams import RouterProcess, UpstreamServer, free_port

from baepo.core.ports import Backend, RouterConfig
from baepo.errors import ConfigError, ExternalError
from baepo.routers.builtin.adapter import BuiltinRouter
from baepo.routers.builtin.payloads import router_argv
from baepo.spec.loader import parse_spec

pytestmark = pytest.mark.timeout(60)

LABELS = {"app": "shop", "env": "prod", "listener": "main"}


def scrape(address: str) -> dict[str, list[Any]]:
    """``GET /metrics`` parsed: family name -> its samples."""
    response = httpx.get(f"http://{address}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: f.samples for f in text_string_to_metric_families(response.text)}


def value(samples: list[Any], name: str, **labels: str) -> float:
    """The one sample called ``name`` whose labels include ``labels``."""
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    assert len(found) == 1, (name, labels, samples)
    return float(found[0])


@pytest.fixture
def upstreams() -> Iterator[tuple[UpstreamServer, UpstreamServer]]:
    with UpstreamServer("a") as one, UpstreamServer("b") as two:
        yield one, two


def test_metrics_count_requests_per_revision_and_status_class(tmp_path: Path) -> None:
    metrics = f"127.0.0.1:{free_port()}"
    extra = ("--metrics-listen", metrics, "--app", "shop", "--env", "prod")
    with (
        SampleApp("1") as good,
        SampleApp("2", error_rate=1.0) as bad,
        RouterProcess(tmp_path, *extra) as router,
        httpx.Client(timeout=10) as client,
    ):
        families = scrape(metrics)
        assert families["baepo_router_requests"] == []  # nothing routed yet
        router.put((1, 100, [good.address]), (2, 0, [bad.address]))
        for _ in range(7):
            assert client.get(f"{router.url}/").status_code == 200
        for _ in range(2):
            assert client.get(f"{router.url}/nowhere").status_code == 404
        router.put((1, 0, [good.address]), (2, 100, [bad.address]))
        for _ in range(3):
            assert client.get(f"{router.url}/").status_code == 500
        # Revision 2's instance goes away: the router answers 502 itself, counted as "error".
        bad.stop()
        assert client.get(f"{router.url}/").status_code == 502

        families = scrape(metrics)
        requests = families["baepo_router_requests"]
        total = "baepo_router_requests_total"
        assert value(requests, total, revision="1", code="2xx", **LABELS) == 7
        assert value(requests, total, revision="1", code="4xx", **LABELS) == 2
        assert value(requests, total, revision="1", code="5xx", **LABELS) == 0
        assert value(requests, total, revision="2", code="5xx", **LABELS) == 3
        assert value(requests, total, revision="2", code="error", **LABELS) == 1
        codes = {s.labels["code"] for s in requests}
        assert codes == {"1xx", "2xx", "3xx", "4xx", "5xx", "error"}

        duration = families["baepo_router_request_duration_seconds"]
        name = "baepo_router_request_duration_seconds"
        assert value(duration, f"{name}_count", revision="1") == 9
        assert value(duration, f"{name}_count", revision="2") == 4
        assert value(duration, f"{name}_bucket", revision="1", le="+Inf") == 9
        assert 0 < value(duration, f"{name}_sum", revision="1") < 9 * 5
        buckets = [
            s for s in duration if s.name.endswith("_bucket") and s.labels["revision"] == "1"
        ]
        counts = [s.value for s in buckets]
        assert counts == sorted(counts)  # cumulative

        in_flight = families["baepo_router_in_flight_requests"]
        assert value(in_flight, "baepo_router_in_flight_requests", revision="1", **LABELS) == 0
        # The refused connect to revision 2's instance was tried once more, on that revision.
        retries = families["baepo_router_retries"]
        assert value(retries, "baepo_router_retries_total", revision="2", **LABELS) == 1
        assert value(retries, "baepo_router_retries_total", revision="1", **LABELS) == 0

        # Other paths and methods are refused without disturbing the endpoint.
        assert httpx.get(f"http://{metrics}/", timeout=10).status_code == 404
        assert httpx.post(f"http://{metrics}/metrics", timeout=10).status_code == 405
        assert router.stop() == 0


def test_in_flight_requests_are_a_gauge(
    tmp_path: Path, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    one, _ = upstreams
    metrics = f"127.0.0.1:{free_port()}"
    extra = ("--metrics-listen", metrics, "--app", "shop", "--env", "prod")
    with RouterProcess(tmp_path, *extra) as router:
        router.put((4, 100, [one.address]))
        slow = socket.create_connection(("127.0.0.1", router.port), 10)
        slow.sendall(b"GET /slow?delay=3 HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            seen = 0.0
            for _ in range(100):
                families = scrape(metrics)
                seen = value(
                    families["baepo_router_in_flight_requests"],
                    "baepo_router_in_flight_requests",
                    revision="4",
                )
                if seen == 1:
                    break
                time.sleep(0.02)
            assert seen == 1
        finally:
            slow.close()


def test_the_adapter_passes_metrics_listen_and_restarts_when_it_changes(
    tmp_path: Path, upstreams: tuple[UpstreamServer, UpstreamServer]
) -> None:
    one, _ = upstreams
    port, first, second = free_port(), free_port(), free_port()

    def config(metrics: str | None) -> RouterConfig:
        return RouterConfig("shop", "prod", f"127.0.0.1:{port}", 30.0, 60.0, "main", metrics)

    async def scenario() -> None:
        router = BuiltinRouter(tmp_path)
        await router.ensure_running(config(f"127.0.0.1:{first}"))
        try:
            await router.set_backends("shop", "prod", [Backend(5, 100, (one.address,))])
            async with httpx.AsyncClient(timeout=10) as client:
                assert (await client.get(f"http://127.0.0.1:{port}/hello")).status_code == 200
            requests = (await asyncio.to_thread(scrape, f"127.0.0.1:{first}"))[
                "baepo_router_requests"
            ]
            total = "baepo_router_requests_total"
            assert value(requests, total, revision="5", code="2xx", **LABELS) == 1

            await router.ensure_running(config(f"127.0.0.1:{second}"))
            health = await router.health("shop", "prod")
            assert health is not None
            assert health["metrics_listen"] == f"127.0.0.1:{second}"
            families = await asyncio.to_thread(scrape, f"127.0.0.1:{second}")
            assert "baepo_router_requests" in families

            await router.ensure_running(config(None))
            health = await router.health("shop", "prod")
            assert health is not None
            assert health["metrics_listen"] is None
        finally:
            await router.stop("shop", "prod")

    asyncio.run(scenario())


def test_a_taken_metrics_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        config = RouterConfig(
            "shop", "prod", f"127.0.0.1:{free_port()}", 30.0, 60.0, "main", f"127.0.0.1:{busy}"
        )
        router = BuiltinRouter(tmp_path)
        with pytest.raises(ExternalError, match=f"metrics_listen: .*port {busy} is already in use"):
            asyncio.run(router.ensure_running(config))


def test_the_spec_checks_metrics_listen_like_listen() -> None:
    base = 'app: shop\nrun: {command: ["python3", "app.py"]}\n'
    spec = parse_spec(base + 'router: {listen: "127.0.0.1:8080", metrics_listen: "0.0.0.0:9464"}\n')
    assert spec.router.metrics_listen == "0.0.0.0:9464"
    assert parse_spec(base).router.metrics_listen is None
    with pytest.raises(ConfigError) as caught:
        parse_spec(base + 'router: {metrics_listen: "9464"}\n')
    assert "expected host:port" in str(caught.value.problems)
    with pytest.raises(ConfigError) as caught:
        parse_spec(base + 'router: {listen: "127.0.0.1:8080", metrics_listen: "127.0.0.1:8080"}\n')
    assert "metrics_listen must differ from listen" in str(caught.value.problems)


def test_router_argv_passes_metrics_options_only_when_asked(tmp_path: Path) -> None:
    plain = RouterConfig("shop", "prod", "127.0.0.1:8080", 30.0, 60.0)
    argv = router_argv(tmp_path, plain, 5.0)
    assert "--metrics-listen" not in argv
    with_metrics = RouterConfig("shop", "prod", "127.0.0.1:8080", 30.0, 60.0, "main", ":9464")
    tail = router_argv(tmp_path, with_metrics, 5.0)[len(argv) :]
    assert tail == [
        "--metrics-listen",
        ":9464",
        "--app",
        "shop",
        "--env",
        "prod",
        "--listener",
        "main",
    ]


def test_metrics_survive_a_worker_crash_and_show_the_reset(tmp_path: Path) -> None:
    metrics = f"127.0.0.1:{free_port()}"
    extra = ("--metrics-listen", metrics, "--app", "shop", "--env", "prod")
    with (
        UpstreamServer("a") as up,
        RouterProcess(tmp_path, *extra) as router,
        httpx.Client(timeout=10) as client,
    ):
        router.put((1, 100, [up.address]))
        for _ in range(5):
            assert client.get(f"{router.url}/hello").status_code == 200
        before = scrape(metrics)
        start = "baepo_router_worker_start_time_seconds"
        started = value(before[start], start, **LABELS)
        total = "baepo_router_requests_total"
        assert value(before["baepo_router_requests"], total, code="2xx", **LABELS) == 5
        (worker,) = router.workers()
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while router.workers() in ([], [worker]):
            assert time.monotonic() < deadline, "no new worker"
            time.sleep(0.01)
        # The same address answers (the master kept the socket): counters from zero, and a
        # later start time saying so.
        after = scrape(metrics)
        assert value(after["baepo_router_requests"], total, code="2xx", **LABELS) == 0
        restarted = value(after[start], start, **LABELS)
        assert restarted > started
