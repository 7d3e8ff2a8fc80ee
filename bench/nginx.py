"""Benchmark: weight changes through the nginx router (``router: {kind: nginx}``).

Three measurements on loopback, with two small threaded Python upstreams ``a`` and ``b`` (each
answer names its upstream in ``X-Upstream``) behind a real nginx driven by ``NginxRouter``, the
adapter the controller uses:

- **hop cost**: p50/p99 of sequential keep-alive GETs straight to upstream ``a`` and through
  the router (front and back nginx);
- **change latency**: the table flips between "all to a" and "all to b" ``--flips`` times
  while four keep-alive clients send requests back to back; for each flip, the time from the
  ``set_backends`` call to its return (render, ``nginx -t``, SIGHUP, new workers serving) and
  to the first answer from the new side;
- **reloads under load**: ``--connections`` keep-alive clients (default 50, as in the issue)
  send paced GETs (``--rate`` in total) while the weights change ``--reloads`` times (one
  reload each); failed requests (by error) and non-2xx answers are counted.

Prints the numbers and makes no assertions. Exit 2 when nginx is missing.
Run: ``.venv/bin/python bench/nginx.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from baepo.core.ports import Backend, RouterConfig
from baepo.routers.nginx.adapter import NginxRouter


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class QuietServer(ThreadingHTTPServer):
    """Keep-alive connections the proxy resets (a drained or removed server) are not news."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def upstream(name: str) -> tuple[ThreadingHTTPServer, str]:
    """A keep-alive HTTP/1.1 server answering ``hello`` with ``X-Upstream: name``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            body = b"hello\n"
            self.send_response(200)
            self.send_header("X-Upstream", name)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = QuietServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"127.0.0.1:{server.server_address[1]}"


@dataclass
class Flip:
    """The flip in progress: the side expected, since when, and whether it answered yet."""

    target: str = "a"
    since: float = 0.0
    seen: bool = True


def table(a: str, b: str, weight_b: int) -> list[Backend]:
    return [Backend(1, 100 - weight_b, (a,)), Backend(2, weight_b, (b,))]


async def change_latency(
    router: NginxRouter, url: str, a: str, b: str, flips: int
) -> tuple[list[float], list[float]]:
    """Per flip: (seconds until set_backends returned, seconds until the first new answer)."""
    returned: list[float] = []
    visible: list[float] = []
    state = Flip()
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def probe() -> None:
            while not stop.is_set():
                sent = time.monotonic()
                try:
                    response = await client.get("/")
                except httpx.HTTPError:
                    continue
                if (
                    not state.seen
                    and response.headers.get("x-upstream") == state.target
                    and sent >= state.since
                ):
                    state.seen = True
                    visible.append(time.monotonic() - state.since)

        probes = [asyncio.create_task(probe()) for _ in range(4)]
        for i in range(flips):
            target = "b" if i % 2 == 0 else "a"
            state.target, state.since, state.seen = target, time.monotonic(), False
            await router.set_backends("bench", "nginx", table(a, b, 100 if target == "b" else 0))
            returned.append(time.monotonic() - state.since)
            deadline = time.monotonic() + 5
            while not state.seen and time.monotonic() < deadline:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*probes)
    return returned, visible


async def reloads_under_load(
    router: NginxRouter, url: str, a: str, b: str, connections: int, rate: float, reloads: int
) -> tuple[Counter[str], float]:
    """Counts of answers and failures while ``reloads`` weight changes are applied."""
    seen: Counter[str] = Counter()
    stop = asyncio.Event()
    interval = connections / rate
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:

        async def worker(offset: float) -> None:
            await asyncio.sleep(offset)
            next_at = time.monotonic()
            while not stop.is_set():
                try:
                    response = await client.get("/")
                    key = "2xx" if 200 <= response.status_code < 300 else str(response.status_code)
                except httpx.HTTPError as exc:
                    key = f"failed: {type(exc).__name__}"
                seen[key] += 1
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        workers = [
            asyncio.create_task(worker(i * interval / connections)) for i in range(connections)
        ]
        await asyncio.sleep(1.0)
        started = time.monotonic()
        for i in range(reloads):
            await router.set_backends("bench", "nginx", table(a, b, [10, 50, 90, 30][i % 4]))
            await asyncio.sleep(0.25)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*workers)
    return seen, elapsed


def sequential_ms(host: str, port: int, count: int) -> tuple[float, float]:
    """p50 and p99 in ms of ``count`` sequential GETs on one keep-alive connection."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    times = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            conn.request("GET", "/")
            conn.getresponse().read()
            times.append(1000 * (time.perf_counter() - started))
    finally:
        conn.close()
    times.sort()
    return times[len(times) // 2], times[int(0.99 * (len(times) - 1))]


async def main(args: argparse.Namespace) -> None:
    (server_a, a), (server_b, b) = upstream("a"), upstream("b")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="baepo-bench-nginx-") as tmp:
        router = NginxRouter(Path(tmp))
        config = RouterConfig("bench", "nginx", f"127.0.0.1:{port}", 30.0, 75.0, kind="nginx")
        await router.ensure_running(config)
        try:
            await router.set_backends("bench", "nginx", table(a, b, 0))
            host, _, a_port = a.rpartition(":")
            direct = await asyncio.to_thread(sequential_ms, host, int(a_port), args.sequential)
            proxied = await asyncio.to_thread(sequential_ms, "127.0.0.1", port, args.sequential)
            print(f"{args.sequential} sequential keep-alive GETs, p50/p99 ms:")
            print(f"  direct to the upstream: {direct[0]:.3f} / {direct[1]:.3f}")
            print(f"  through front + back:   {proxied[0]:.3f} / {proxied[1]:.3f}")
            returned, visible = await change_latency(router, url, a, b, args.flips)
            ms = [1000 * x for x in returned]
            vis = [1000 * x for x in visible]
            print(f"change latency over {args.flips} flips (ms):")
            print(f"  set_backends returned: median {statistics.median(ms):.1f}, max {max(ms):.1f}")
            if vis:
                print(
                    f"  first new answer:      median {statistics.median(vis):.1f}, "
                    f"max {max(vis):.1f} ({len(vis)}/{args.flips} seen)"
                )
            seen, elapsed = await reloads_under_load(
                router, url, a, b, args.connections, args.rate, args.reloads
            )
            total = sum(seen.values())
            failed = sum(n for k, n in seen.items() if k != "2xx")
            print(
                f"{args.reloads} reloads in {elapsed:.1f} s under {args.connections} keep-alive "
                f"connections, {total} requests:"
            )
            for key, count in sorted(seen.items()):
                print(f"  {key}: {count}")
            print(f"  not 2xx or failed: {failed} ({failed / max(1, args.reloads):.2f} per reload)")
        finally:
            await router.stop("bench", "nginx")
            server_a.shutdown()
            server_b.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flips", type=int, default=20)
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--sequential", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s over all clients")
    options = parser.parse_args()
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        raise SystemExit(2)
    asyncio.run(main(options))
