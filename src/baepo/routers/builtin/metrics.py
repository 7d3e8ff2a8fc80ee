"""The router's Prometheus endpoint: ``GET /metrics`` on its own address, read at scrape time.

``worker`` starts a :class:`MetricsServer` only when the router runs with ``--metrics-listen``,
and only then imports this module, so a router without metrics never loads
``prometheus_client``. Nothing is counted here: :class:`RouterCollector` reads, at each scrape,
the same per-revision counters the admin API serves as ``GET /stats`` (``Runtime.stats``), so
the request path costs the same with or without metrics. Families, each labelled by ``app``,
``env``, ``listener`` and ``revision``:

- ``baepo_router_requests_total{code}``: finished requests by status class (``1xx``..``5xx``,
  and ``error`` for the router's own 502/503/504);
- ``baepo_router_request_duration_seconds``: histogram of request latency;
- ``baepo_router_in_flight_requests``: requests being served now;
- ``baepo_router_retries_total``: requests sent once more after their upstream failed
  before answering (see ``retry``);

plus ``baepo_router_unrouted_requests_total`` (answers that reached no revision) and
``baepo_router_worker_start_time_seconds``. The counters start from zero with each worker
(``master`` replaces a worker that dies); Prometheus' ``rate()`` and ``increase()`` treat a
drop as a counter reset, and the start time shows when one happened.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from baepo.routers.builtin.control_http import parse_head, serve_connection
from baepo.routers.builtin.runtime import Runtime

MAX_HEAD = 16 * 1024
LABELS = ("app", "env", "listener", "revision")
# The text format every Prometheus server reads; the names here need nothing newer.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Identity:
    """Which router the metrics are about: the first three labels of every sample."""

    app: str
    env: str
    listener: str = "main"


class RouterCollector(Collector):
    """Yields the router's metric families from its counters, at scrape time."""

    def __init__(self, rt: Runtime, identity: Identity) -> None:
        self.rt = rt
        self.identity = identity

    def collect(self) -> Iterator[Metric]:
        stats = self.rt.stats()
        base = [self.identity.app, self.identity.env, self.identity.listener]
        requests = CounterMetricFamily(
            "baepo_router_requests",
            "Requests the router finished, by revision and status class "
            "(error: the router answered 502, 503 or 504 itself).",
            labels=[*LABELS, "code"],
        )
        duration = HistogramMetricFamily(
            "baepo_router_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by revision.",
            labels=list(LABELS),
        )
        in_flight = GaugeMetricFamily(
            "baepo_router_in_flight_requests",
            "Requests being forwarded to the revision's instances now.",
            labels=list(LABELS),
        )
        retries = CounterMetricFamily(
            "baepo_router_retries",
            "Requests sent once more, to an instance of the same revision, after their "
            "upstream failed before answering.",
            labels=list(LABELS),
        )
        for item in stats["revisions"]:
            labels = [*base, str(item["revision"])]
            for code, count in item["status"].items():
                requests.add_metric([*labels, code], count)
            buckets = [(le, float(count)) for le, count in item["latency_buckets"].items()]
            duration.add_metric(labels, buckets, item["latency_sum"])
            in_flight.add_metric(labels, item["in_flight"])
            retries.add_metric(labels, item["retries"])
        unrouted = CounterMetricFamily(
            "baepo_router_unrouted_requests",
            "Requests the router answered itself without reaching a revision "
            "(no backend, malformed request).",
            labels=["app", "env", "listener"],
        )
        unrouted.add_metric(base, stats["unrouted"])
        started = GaugeMetricFamily(
            "baepo_router_worker_start_time_seconds",
            "When the router's worker started (Unix time); the counters above count from then.",
            labels=["app", "env", "listener"],
        )
        started.add_metric(base, stats["started"])
        yield from (requests, duration, in_flight, retries, unrouted, started)


def registry_for(rt: Runtime, identity: Identity) -> CollectorRegistry:
    """A registry holding only this router's collector (no process or platform metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RouterCollector(rt, identity))
    return registry


class MetricsServer:
    """Serves ``GET /metrics`` over HTTP/1.1 (keep-alive) on a TCP address."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.server: asyncio.AbstractServer | None = None
        self.servers: list[asyncio.AbstractServer] = []

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port``; raises OSError when it cannot."""
        self.server = await asyncio.start_server(
            self._serve, host, port, reuse_address=True, limit=MAX_HEAD
        )

    async def serve_on(self, socks: list[socket.socket]) -> None:
        """Serve on already listening sockets (the master's)."""
        self.servers = [
            await asyncio.start_server(self._serve, sock=sock, limit=MAX_HEAD) for sock in socks
        ]

    def stop_accepting(self) -> None:
        """Close the listening sockets (a successor may bind the address); scrapes in
        progress finish."""
        for server in self.servers:
            server.close()

    async def close(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(
            reader,
            writer,
            lambda head: self._one(writer, head),
            lambda: _send(writer, 431, b"request head too large\n", close=True),
            "metrics",
        )

    async def _one(self, writer: asyncio.StreamWriter, head: bytes) -> bool:
        """Answer one request; False when the connection is to be closed."""
        request = parse_head(head)
        if request is None:
            await _send(writer, 400, b"malformed request line\n", close=True)
            return False
        if request.headers.get("content-length", "0") != "0" or (
            "transfer-encoding" in request.headers
        ):
            await _send(writer, 400, b"a scrape has no body\n", close=True)
            return False
        close = request.close
        if request.path != "/metrics":
            await _send(writer, 404, b"the metrics are at /metrics\n", close=close)
        elif request.method != "GET":
            await _send(writer, 405, b"use GET on /metrics\n", close=close)
        else:
            body = generate_latest(self.registry)
            await _send(writer, 200, body, close=close, content_type=CONTENT_TYPE)
        return not close


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS[431] = "Request Header Fields Too Large"


async def _send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    *,
    close: bool,
    content_type: str = "text/plain; charset=utf-8",
) -> None:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
