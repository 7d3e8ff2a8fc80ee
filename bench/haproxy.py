"""Benchmark: weight changes through the HAProxy router (``router: {kind: haproxy}``).

A real HAProxy driven by ``HAProxyRouter`` (the adapter the controller uses) in front of two
nginx upstreams ``a`` and ``b`` (each answer names its upstream in ``X-Upstream``), all on
loopback. This process only makes the changes; everything that sends requests runs in a
process of its own, so that the figures measure HAProxy and the adapter, not a shared event loop:

- **references**: sequential keep-alive GETs straight to upstream ``a`` and through HAProxy
  (p50/p99), one admin-socket round trip, and ``set_backends`` (read the servers, send the
  changes) with nothing else running;
- **changes at the target rate**: the table flips between "all to a" and "all to b"
  ``--per-second`` times a second for ``--seconds`` seconds (every change moves all the
  traffic), while
  - ``wrk`` (``--connections`` keep-alive connections, about ``--rate`` requests/s in total,
    paced by a Lua script that also counts answers by upstream) is the background load; it
    reports socket errors and non-2xx answers;
  - a prober (this file with ``--probe``) sends GETs back to back on one keep-alive connection
    and timestamps each answer by upstream with ``time.monotonic`` (``CLOCK_MONOTONIC``, the
    same clock in every process). A change's latency is the time from the ``set_backends``
    call to the first answer from the new side to a request sent after the call.
  The HAProxy worker's pid is compared before and after (a reload would change it).

The issue's goals: a change applied end to end in ≤ 10 ms, 0 failures at 100 changes/s.
Prints the numbers and makes no assertions. Exit 2 when haproxy, nginx or wrk is missing.
Run: ``.venv/bin/python bench/haproxy.py`` (about 15 s). See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

from nginx import sequential_ms, table
from router import free_port, nginx_http_common, parse_wrk, wait_port

from baepo.core.ports import Router, RouterConfig
from baepo.routers.haproxy.adapter import HAProxyRouter, admin_socket, command

APP, ENV = "bench", "haproxy"
TOOLS = ("haproxy", "nginx", "wrk")

# Paced background load: each connection waits about ``delay`` ms after each answer (uniform
# jitter so that the connections do not fire together); answers are counted by upstream.
WRK_SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  pause = tonumber(args[1]) or 100
  a, b, other = 0, 0, 0
end
function delay() return pause * (0.5 + math.random()) end
function response(status, headers, body)
  local side = headers["x-upstream"] or headers["X-Upstream"]
  if side == "a" then a = a + 1 elseif side == "b" then b = b + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local sa, sb, so = 0, 0, 0
  for _, t in ipairs(threads) do
    sa, sb, so = sa + t:get("a"), sb + t:get("b"), so + t:get("other")
  end
  io.write(string.format("by upstream: a %d b %d other %d\\n", sa, sb, so))
end
"""


def upstreams_conf(folder: Path, ports: dict[str, int]) -> str:
    """One nginx worker serving ``hello`` with ``X-Upstream: <name>`` on each port."""
    servers = "".join(
        f"""
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        keepalive_requests 1000000;
        location / {{
            default_type text/plain;
            add_header X-Upstream {name};
            return 200 "hello\\n";
        }}
    }}"""
        for name, port in ports.items()
    )
    return f"""
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
{nginx_http_common(folder, "")}
{servers}
}}
"""


# -- the prober (runs in a process of its own) ---------------------------------------------


class Closed(Exception):
    """The connection closed before a whole answer arrived."""


def read_answer(conn: socket.socket, buf: bytes) -> tuple[int, str, bytes, bool]:
    """Status, ``X-Upstream``, what is left in the buffer after one HTTP/1.1 answer, and
    whether the server keeps the connection open (no ``Connection: close``)."""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            raise Closed
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(buf) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise Closed
        buf += chunk
    keep = headers.get("connection", "").lower() != "close"
    return status, headers.get("x-upstream", "?"), buf[length:], keep


def probe(port: int, out: Path) -> None:
    """GETs back to back on one keep-alive connection until SIGTERM; writes each answer's
    send and receive times (``time.monotonic``) and upstream to ``out`` (JSON)."""
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
    sent_at, answered_at = array("d"), array("d")
    sides: list[str] = []
    failures: Counter[str] = Counter()
    conn: socket.socket | None = None
    buf = b""
    while not stopping:
        if conn is None:
            conn = socket.create_connection(("127.0.0.1", port), timeout=10)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buf = b""
        sent = time.monotonic()
        try:
            conn.sendall(request)
            status, side, buf, keep = read_answer(conn, buf)
        except (OSError, Closed) as exc:
            failures[f"failed: {type(exc).__name__}"] += 1
            conn.close()
            conn = None
            continue
        answered = time.monotonic()
        if not keep:  # e.g. nginx's keepalive_requests: a new connection, not a failure
            conn.close()
            conn = None
        if status != 200:
            failures[str(status)] += 1
        if not sides:
            print("ready", flush=True)
        sent_at.append(sent)
        answered_at.append(answered)
        sides.append(side)
    out.write_text(
        json.dumps(
            {
                "sent": sent_at.tolist(),
                "answered": answered_at.tolist(),
                "sides": "".join(s[:1] for s in sides),
                "failures": dict(failures),
            }
        )
    )


# -- the changes (this process) --------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def first_answers(
    calls: list[tuple[float, float, str]], probed: dict[str, Any]
) -> tuple[list[float | None], list[float | None]]:
    """Per change, seconds from the call (None when not seen) to the first answer from the new
    side to a request sent after the call and before the change after next (the next change
    only lowers that side), and to the first answer after which, until the next change, every
    answer comes from the new side (the change fully applied)."""
    sent, answered, sides = probed["sent"], probed["answered"], probed["sides"]
    first: list[float | None] = []
    settled: list[float | None] = []
    j = 0
    for i, (called, _, side) in enumerate(calls):
        after_next = calls[i + 2][0] if i + 2 < len(calls) else math.inf
        following = calls[i + 1][0] if i + 1 < len(calls) else math.inf
        while j < len(sent) and sent[j] < called:
            j += 1
        k = j
        while k < len(sent) and sent[k] < after_next and sides[k] != side:
            k += 1
        first.append(answered[k] - called if k < len(sent) and sent[k] < after_next else None)
        end = j
        while end < len(sent) and sent[end] < following:
            end += 1
        last_old = max((n for n in range(j, end) if sides[n] != side), default=j - 1)
        settled.append(answered[last_old + 1] - called if last_old + 1 < end else None)
    return first, settled


def cpu_waiting() -> float:
    """Seconds so far during which some runnable task waited for a CPU (Linux PSI), or NaN."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return math.nan
    return int(line.rpartition("total=")[2]) / 1e6


async def worker_pid(sock: Path) -> str:
    answer = await command(sock, "show info")
    match = re.search(r"^Pid: (\d+)$", answer, re.M)
    return match.group(1) if match else "?"


async def changes(
    router: Router,
    a: str,
    b: str,
    args: argparse.Namespace,
    *,
    app: str = APP,
    env: str = ENV,
) -> tuple[list[tuple[float, float, str]], float]:
    """Flip the table ``--per-second`` times a second for ``--seconds`` seconds through any
    router adapter; per change (called, returned, side). ``bench/router.py`` uses it too."""
    calls: list[tuple[float, float, str]] = []
    count = round(args.seconds * args.per_second)
    started = time.monotonic()
    for i in range(count):
        await asyncio.sleep(max(0.0, started + i / args.per_second - time.monotonic()))
        side = "b" if i % 2 == 0 else "a"
        called = time.monotonic()
        await router.set_backends(app, env, table(a, b, 100 if side == "b" else 0))
        calls.append((called, time.monotonic(), side))
    return calls, time.monotonic() - started


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.2f}, p95 {percentile(values, 0.95):.2f}, "
        f"max {max(values):.2f}"
    )


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="baepo-bench-haproxy-") as tmp:
        folder = Path(tmp)
        ports = {"a": free_port(), "b": free_port()}
        (folder / "nginx.conf").write_text(upstreams_conf(folder, ports))
        nginx = subprocess.Popen(
            ["nginx", "-c", str(folder / "nginx.conf"), "-p", tmp], stderr=subprocess.DEVNULL
        )
        for port in ports.values():
            wait_port(port)
        a, b = (f"127.0.0.1:{ports[name]}" for name in ("a", "b"))
        port = free_port()
        router = HAProxyRouter(folder / "state")
        config = RouterConfig(APP, ENV, f"127.0.0.1:{port}", 30.0, 75.0, kind="haproxy")
        try:
            await router.ensure_running(config)
            sock = admin_socket(router.folder(APP, ENV))
            await router.set_backends(APP, ENV, table(a, b, 0))
            alone = await reference(router, sock, a, b, port, args)
            await under_load(router, sock, a, b, port, folder, alone, args)
        finally:
            await router.stop(APP, ENV)
            nginx.terminate()
            nginx.wait(10)


async def reference(
    router: HAProxyRouter, sock: Path, a: str, b: str, port: int, args: argparse.Namespace
) -> float:
    """Prints the quiet figures; returns the median of ``set_backends`` alone (ms)."""
    direct = sequential_ms("127.0.0.1", int(a.rpartition(":")[2]), args.sequential)
    proxied = sequential_ms("127.0.0.1", port, args.sequential)
    print(f"{args.sequential} sequential keep-alive GETs, nothing else running, p50 / p99 ms:")
    print(f"  direct to upstream a: {direct[0]:.3f} / {direct[1]:.3f}")
    print(f"  through HAProxy:      {proxied[0]:.3f} / {proxied[1]:.3f} "
          f"({proxied[0] - direct[0]:+.3f} ms at p50)")  # fmt: skip
    alone = []
    for i in range(100):
        started = time.perf_counter()
        await router.set_backends(APP, ENV, table(a, b, [10, 50, 90, 30][i % 4]))
        alone.append(1000 * (time.perf_counter() - started))
    command_ms = []
    for _ in range(100):
        started = time.perf_counter()
        await command(sock, "show info")
        command_ms.append(1000 * (time.perf_counter() - started))
    await router.set_backends(APP, ENV, table(a, b, 0))
    print("calls with nothing else running (ms, 100 each):")
    print(f"  one admin-socket round trip:         {summary(command_ms)}")
    print(f"  set_backends (read servers, apply):  {summary(alone)}")
    return statistics.median(alone)


async def under_load(
    router: HAProxyRouter,
    sock: Path,
    a: str,
    b: str,
    port: int,
    folder: Path,
    alone: float,
    args: argparse.Namespace,
) -> None:
    script = folder / "paced.lua"
    script.write_text(WRK_SCRIPT)
    pause_ms = 1000 * args.connections / args.rate
    wrk_seconds = math.ceil(args.seconds + 2 * args.settle + 1)
    probed_file = folder / "probe.json"
    prober = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--probe", str(port), str(probed_file),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert prober.stdout is not None
    await asyncio.wait_for(prober.stdout.readline(), 10)
    wrk = await asyncio.create_subprocess_exec(
        "wrk", "-t1", f"-c{args.connections}", f"-d{wrk_seconds}s", "--timeout", "5s",
        "--latency", "-s", str(script), f"http://127.0.0.1:{port}/", "--", f"{pause_ms:g}",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await asyncio.sleep(args.settle)
    before = await worker_pid(sock)
    waited = cpu_waiting()
    calls, elapsed = await changes(router, a, b, args)
    waited = cpu_waiting() - waited
    after = await worker_pid(sock)
    await asyncio.sleep(args.settle)
    prober.terminate()
    await prober.wait()
    wrk_out, _ = await wrk.communicate()
    await router.set_backends(APP, ENV, table(a, b, 0))

    probed = json.loads(probed_file.read_text())
    text = wrk_out.decode()
    load = parse_wrk(text)
    by_side = re.search(r"by upstream: (.*)", text)
    returned = [1000 * (done - called) for called, done, _ in calls]
    firsts, settles = first_answers(calls, probed)
    seen = [1000 * x for x in firsts if x is not None]
    applied = [1000 * x for x in settles if x is not None]
    window = [
        (s, r)
        for s, r in zip(probed["sent"], probed["answered"], strict=True)
        if calls[0][0] <= s <= calls[-1][1]
    ]
    rtt = [1000 * (r - s) for s, r in window]
    gaps = [1000 * (y[1] - x[1]) for x, y in pairwise(window)]
    late = max(called - (calls[0][0] + i / args.per_second) for i, (called, _, _) in
               enumerate(calls))  # fmt: skip

    print(
        f"{len(calls)} changes (all to a <-> all to b) in {elapsed:.2f} s: "
        f"{len(calls) / elapsed:.1f} changes/s applied (target {args.per_second:g}/s; "
        f"latest call {1000 * late:.1f} ms behind schedule)"
    )
    print(
        f"  set_backends returned (ms):            {summary(returned)} "
        f"(median {statistics.median(returned) / alone:.1f}x set_backends alone)"
    )
    if seen:
        print(
            f"  first answer from the new side (ms):   {summary(seen)} "
            f"({len(seen)}/{len(calls)} changes seen)"
        )
    if applied:
        print(
            f"  every answer from the new side (ms):   {summary(applied)} "
            f"({len(applied)}/{len(calls)} changes settled before the next one)"
        )
    slow = [x is None or x > args.goal / 1000 for x in settles]
    print(
        f"  changes not fully applied within {args.goal:g} ms: {sum(slow)}/{len(calls)}; "
        f"machine during the changes: some task waiting for a CPU {100 * waited / elapsed:.0f} % "
        f"of the time, load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)"
    )
    if seen and applied:
        print(
            f"    medians = {statistics.median(seen) / alone:.1f}x / "
            f"{statistics.median(applied) / alone:.1f}x set_backends alone, "
            f"{statistics.median(seen) / statistics.median(rtt):.0f}x / "
            f"{statistics.median(applied) / statistics.median(rtt):.0f}x the prober's round trip"
        )
    print(
        f"  prober (separate process, back to back): {len(window)} answers during the changes, "
        f"round trip median {statistics.median(rtt):.3f} ms, p95 {percentile(rtt, 0.95):.3f} ms; "
        f"longest gap between answers {max(gaps):.2f} ms"
    )
    print(f"  prober failed or not 2xx: {sum(probed['failures'].values())} {probed['failures']}")
    print(
        f"  background load (wrk, {args.connections} keep-alive connections, "
        f"{wrk_seconds} s around the changes): {load['requests']:.0f} requests "
        f"({load['rps']:.0f}/s), p50 {load['p50_ms']:.2f} ms, p99 {load['p99_ms']:.2f} ms, "
        f"{by_side.group(1) if by_side else '?'}"
    )
    print(f"  wrk failed or not 2xx: {load['failed']:.0f}")
    print(f"  reloads: {0 if before == after else 1} (worker pid {before} -> {after})")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--probe":
        probe(int(sys.argv[2]), Path(sys.argv[3]))
        raise SystemExit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-second", type=float, default=100.0, help="weight changes a second")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long the changes go on")
    parser.add_argument("--connections", type=int, default=50, help="wrk's connections")
    parser.add_argument("--rate", type=float, default=500.0, help="wrk's requests/s in total")
    parser.add_argument("--sequential", type=int, default=2000)
    parser.add_argument("--goal", type=float, default=10.0, help="ms, for the count of slow ones")
    parser.add_argument("--settle", type=float, default=0.5, help="load before/after (s)")
    options = parser.parse_args()
    if any(shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()
           for tool in TOOLS):  # fmt: skip
        raise SystemExit(2)
    asyncio.run(main(options))
