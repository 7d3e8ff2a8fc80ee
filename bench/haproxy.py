"""Benchmark: weight changes through the HAProxy router (``router: {kind: haproxy}``).

Three measurements on loopback, with two small threaded Python upstreams ``a`` and ``b`` (each
answer names its upstream in ``X-Upstream``) behind a real HAProxy driven by ``HAProxyRouter``,
the adapter the controller uses (the upstreams and probes are those of ``bench/nginx.py``):

- **call cost**: one admin-socket round trip, and ``set_backends`` (read the servers, send
  the changes) with nothing else running in this process;
- **change latency**: the table flips between "all to a" and "all to b" ``--flips`` times
  while four keep-alive clients send requests back to back; for each flip, the time from the
  ``set_backends`` call to its return (admin-socket commands) and to the first answer from
  the new side;
- **changes under load**: ``--connections`` keep-alive clients send paced GETs (``--rate`` in
  total) while the weights change ``--per-second`` times a second for ``--seconds`` seconds;
  failed requests and non-2xx answers are counted, and the HAProxy worker's pid is compared
  before and after (a reload would change it).

The issue's goals: a change applied end to end in ≤ 10 ms, 0 failures at 100 changes/s.
Prints the numbers and makes no assertions. Exit 2 when haproxy is missing.
Run: ``.venv/bin/python bench/haproxy.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from nginx import change_latency, free_port, table, upstream

from baepo.core.ports import RouterConfig
from baepo.routers.haproxy.adapter import HAProxyRouter, admin_socket, command

APP, ENV = "bench", "nginx"  # the names bench/nginx.py's helpers use


async def changes_under_load(
    router: HAProxyRouter, url: str, a: str, b: str, args: argparse.Namespace
) -> tuple[Counter[str], int, float]:
    """Answers by outcome, and how many changes were applied in how many seconds."""
    seen: Counter[str] = Counter()
    stop = asyncio.Event()
    interval = args.connections / args.rate
    limits = httpx.Limits(max_connections=args.connections)
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
            asyncio.create_task(worker(i * interval / args.connections))
            for i in range(args.connections)
        ]
        await asyncio.sleep(0.5)
        started = time.monotonic()
        changes = 0
        while time.monotonic() - started < args.seconds:
            await router.set_backends(APP, ENV, table(a, b, [10, 50, 90, 30][changes % 4]))
            changes += 1
            await asyncio.sleep(max(0.0, started + changes / args.per_second - time.monotonic()))
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*workers)
    return seen, changes, elapsed


async def main(args: argparse.Namespace) -> None:
    (server_a, a), (server_b, b) = upstream("a"), upstream("b")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="baepo-bench-haproxy-") as tmp:
        router = HAProxyRouter(Path(tmp))
        config = RouterConfig(APP, ENV, f"127.0.0.1:{port}", 30.0, 75.0, kind="haproxy")
        await router.ensure_running(config)
        sock = admin_socket(router.folder(APP, ENV))
        try:
            await router.set_backends(APP, ENV, table(a, b, 0))
            alone = []
            for i in range(args.flips * 5):
                started = time.perf_counter()
                await router.set_backends(APP, ENV, table(a, b, [10, 50, 90, 30][i % 4]))
                alone.append(1000 * (time.perf_counter() - started))
            command_ms = []
            for _ in range(args.flips * 5):
                started = time.perf_counter()
                await command(sock, "show info")
                command_ms.append(1000 * (time.perf_counter() - started))
            print("with no client in this process (ms):")
            print(f"  one admin-socket round trip: median {statistics.median(command_ms):.2f}")
            print(f"  set_backends (read servers, apply): median {statistics.median(alone):.2f}, "
                  f"max {max(alone):.2f}")  # fmt: skip
            returned, visible = await change_latency(router, url, a, b, args.flips)  # type: ignore[arg-type]
            ms = [1000 * x for x in returned]
            vis = [1000 * x for x in visible]
            print(f"change latency over {args.flips} flips (ms):")
            print(f"  set_backends returned: median {statistics.median(ms):.2f}, max {max(ms):.2f}")
            if vis:
                print(
                    f"  first new answer:      median {statistics.median(vis):.2f}, "
                    f"max {max(vis):.2f} ({len(vis)}/{args.flips} seen)"
                )
            before = await command(sock, "show info")
            seen, changes, elapsed = await changes_under_load(router, url, a, b, args)
            after = await command(sock, "show info")
            total = sum(seen.values())
            failed = sum(n for k, n in seen.items() if k != "2xx")
            print(
                f"{changes} changes in {elapsed:.1f} s ({changes / elapsed:.0f}/s) under "
                f"{args.connections} keep-alive connections, {total} requests:"
            )
            for key, count in sorted(seen.items()):
                print(f"  {key}: {count}")
            pid = [line for line in before.splitlines() if line.startswith("Pid: ")]
            reloaded = pid != [line for line in after.splitlines() if line.startswith("Pid: ")]
            print(f"  not 2xx or failed: {failed}; reloads: {1 if reloaded else 0}")
        finally:
            await router.stop(APP, ENV)
            server_a.shutdown()
            server_b.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flips", type=int, default=20)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rate", type=float, default=500.0, help="requests/s over all clients")
    parser.add_argument("--per-second", type=float, default=100.0, help="weight changes a second")
    parser.add_argument("--seconds", type=float, default=3.0)
    options = parser.parse_args()
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        raise SystemExit(2)
    asyncio.run(main(options))
