"""Benchmark: weight changes in the built-in router, and what a weighted split costs.

Three measurements, all on loopback with two nginx upstreams (100-byte bodies, an
``X-Upstream`` header naming each) and the router pinned to CPU 0:

- **change latency**: the table flips between "all to a" and "all to b" through
  ``BuiltinRouter.set_backends`` (the adapter the controller uses) while four keep-alive
  connections send requests back to back; for each flip, the time from the call to its
  return and to the first answer from the new side (the upstream's header is the marker);
- **changes under load**: wrk (bounded: 20 connections) through the router while the
  adapter changes the weights 100 times a second (weights, sticky and header rules vary);
  every request must succeed and the router's counters must account for every one;
- **split cost**: wrk throughput with one backend vs a 90/10 split (and a 90/10 split with
  sticky and header rules), interleaved runs, medians and ratios.

Results go to ``bench/results/weights.json``. Exit 2 when nginx, wrk or taskset is missing,
1 when a request failed. Reuses the helpers of ``bench/router.py``. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from router import free_port, nginx_conf, put_table, router_stats, run_wrk, wait_port

from baepo.core.ports import Backend, HeaderRoute, RouterConfig, Sticky
from baepo.routers.builtin.adapter import BuiltinRouter

TOOLS = {"nginx": "nginx", "wrk": "wrk", "taskset": "util-linux"}
RESULTS = Path(__file__).parent / "results" / "weights.json"
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
KEYS = ("rps", "p50_ms", "p99_ms", "cpu_us_per_request", "cpu_user_us_per_request")


def marked_nginx_conf(folder: Path, ports: list[int]) -> str:
    """``bench/router.py``'s nginx, each server adding ``X-Upstream: a`` or ``b``."""
    conf = nginx_conf(folder, ports)
    for name, port in zip("ab", ports, strict=True):
        conf = conf.replace(
            f"listen 127.0.0.1:{port} backlog=4096;",
            f"listen 127.0.0.1:{port} backlog=4096;\n        add_header X-Upstream {name};",
        )
    return conf


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    """Keep-alive connections sending GETs back to back; answers by upstream and failures."""

    def __init__(self, port: int, connections: int) -> None:
        self.port = port
        self.connections = connections
        self.failed = 0
        self.requests = 0
        self.waiters: list[tuple[bytes, asyncio.Future[float]]] = []
        self.running = True
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._worker()) for _ in range(self.connections)]

    async def stop(self) -> None:
        self.running = False
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def first_from(self, upstream: bytes) -> asyncio.Future[float]:
        """Resolves with the time the next answer from ``upstream`` arrives."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters.append((upstream, future))
        return future

    async def _worker(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            while self.running:
                writer.write(REQUEST)
                head = await reader.readuntil(b"\r\n\r\n")
                now = time.perf_counter()
                length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
                await reader.readexactly(length)
                self.requests += 1
                if not head.startswith(b"HTTP/1.1 200"):
                    self.failed += 1
                    continue
                upstream = head.split(b"X-Upstream: ", 1)[1][:1]
                if self.waiters:
                    keep = []
                    for wanted, future in self.waiters:
                        if wanted == upstream and not future.done():
                            future.set_result(now)
                        elif not future.done():
                            keep.append((wanted, future))
                    self.waiters = keep
        except (OSError, asyncio.IncompleteReadError, IndexError, ValueError):
            self.failed += 1
        finally:
            writer.close()


async def change_latency(
    router: BuiltinRouter, port: int, ups: list[str], flips: int
) -> dict[str, Any]:
    """Flip all traffic between the two upstreams ``flips`` times; per-flip timings in ms."""
    load = Load(port, 4)
    load.start()
    await asyncio.sleep(0.3)
    call_ms: list[float] = []
    seen_ms: list[float] = []
    for i in range(flips):
        side = i % 2
        marker = b"ab"[1 - side : 2 - side]
        table = [Backend(1 + side, 100, (ups[1 - side],))]
        waiter = load.first_from(marker)
        t0 = time.perf_counter()
        await router.set_backends("bench", "weights", table)
        t1 = time.perf_counter()
        seen = await asyncio.wait_for(waiter, 2.0)
        call_ms.append((t1 - t0) * 1000)
        seen_ms.append((seen - t0) * 1000)
        await asyncio.sleep(0.02)
    await load.stop()
    return {
        "flips": flips,
        "set_backends_ms": summary(call_ms),
        "first_new_answer_ms": summary(seen_ms),
        "load_requests": load.requests,
        "load_failed": load.failed,
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 3),
        "p95": round(pct(values, 0.95), 3),
        "max": round(max(values), 3),
    }


async def changes_under_load(
    router: BuiltinRouter, url: str, ups: list[str], seconds: int, rate: int
) -> dict[str, Any]:
    """wrk through the router while the adapter changes the table ``rate`` times a second."""
    wrk = asyncio.create_task(asyncio.to_thread(run_wrk, url, seconds, 20, None))
    sticky = [None, Sticky(cookie="bk"), Sticky(header="X-User")]
    routes = [(), (HeaderRoute("X-Canary", "always", 2),)]
    changes = 0
    call_ms: list[float] = []
    start = time.perf_counter()
    while not wrk.done():
        canary = (changes * 7) % 101
        table = [Backend(1, 100 - canary, (ups[0],)), Backend(2, canary, (ups[1],))]
        t0 = time.perf_counter()
        await router.set_backends(
            "bench",
            "weights",
            table,
            sticky=sticky[changes % 3],
            header_routes=routes[changes % 2],
        )
        call_ms.append((time.perf_counter() - t0) * 1000)
        changes += 1
        # On a fixed schedule: a slow change is followed at once by the next one.
        await asyncio.sleep(max(0.0, start + changes / rate - time.perf_counter()))
    result = wrk.result()
    return {
        "seconds": seconds,
        "changes": changes,
        "changes_per_second": round(changes / seconds, 1),
        "set_backends_ms": summary(call_ms),
        "wrk": result,
    }


def split_cost(
    admin: Path, url: str, ups: list[str], runs: int, seconds: int, pid: int
) -> dict[str, Any]:
    """Throughput with one backend vs a 90/10 split (and with rules), interleaved runs."""
    a, b = ups
    tables: dict[str, dict[str, Any]] = {
        "single": {"backends": [{"revision": 1, "weight": 100, "upstreams": [a]}]},
        "split_90_10": {
            "backends": [
                {"revision": 1, "weight": 90, "upstreams": [a]},
                {"revision": 2, "weight": 10, "upstreams": [b]},
            ]
        },
    }
    tables["split_90_10_rules"] = tables["split_90_10"] | {
        "sticky": {"header": "X-User"},
        "header_routes": [{"header": "X-Canary", "value": "always", "revision": 2}],
    }
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in tables}
    for run in range(runs):
        for name, table in tables.items():
            put_table(admin, table)
            run_wrk(url, 1, 50, None)
            result = run_wrk(url, seconds, 50, pid)
            samples[name].append(result)
            print(
                f"run {run + 1} {name:18s} {result['rps']:9.0f} req/s  "
                f"p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms  "
                f"failed {result['failed']:.0f}  "
                f"router CPU {result['cpu_us_per_request']:.1f} µs/req "
                f"(user {result['cpu_user_us_per_request']:.1f})",
                flush=True,
            )
    medians = {
        name: {key: statistics.median(s[key] for s in runs_) for key in KEYS}
        for name, runs_ in samples.items()
    }
    single = medians["single"]
    ratios = {name: round(m["rps"] / single["rps"], 3) for name, m in medians.items()}
    cpu = {
        name: round(m["cpu_user_us_per_request"] / single["cpu_user_us_per_request"], 3)
        for name, m in medians.items()
    }
    paired = [
        round(s["rps"] / one["rps"], 3)
        for s, one in zip(samples["split_90_10"], samples["single"], strict=True)
    ]
    return {
        "medians": medians,
        "ratios_vs_single": ratios,
        "user_cpu_per_request_vs_single": cpu,
        "paired_split_ratios": paired,
        "samples": samples,
    }


async def run_all(args: argparse.Namespace, folder: Path, ups_ports: list[int]) -> dict[str, Any]:
    ups = [f"127.0.0.1:{p}" for p in ups_ports]
    router = BuiltinRouter(folder / "state")
    port = free_port()
    await router.ensure_running(RouterConfig("bench", "weights", f"127.0.0.1:{port}", 30, 60))
    pid = int((router.folder("bench", "weights") / "router.pid").read_text())
    os.sched_setaffinity(pid, {0})
    admin = router.folder("bench", "weights") / "admin.sock"
    url = f"http://127.0.0.1:{port}/"
    try:
        await router.set_backends("bench", "weights", [Backend(1, 100, (ups[0],))])
        latency = await change_latency(router, port, ups, args.flips)
        print(f"change latency: {json.dumps(latency)}", flush=True)
        before = router_stats(admin)
        under_load = await changes_under_load(router, url, ups, args.seconds, args.rate)
        after = router_stats(admin)
        routed = sum(r["requests"] for r in after["revisions"]) - sum(
            r["requests"] for r in before["revisions"]
        )
        under_load["router_counted"] = routed
        print(f"changes under load: {json.dumps(under_load)}", flush=True)
        cost = await asyncio.to_thread(split_cost, admin, url, ups, args.runs, args.seconds, pid)
    finally:
        await router.stop("bench", "weights")
    return {"change_latency": latency, "changes_under_load": under_load, "split_cost": cost}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--flips", type=int, default=200)
    parser.add_argument("--rate", type=int, default=100, help="weight changes per second")
    args = parser.parse_args()
    missing = [f"{t} (apt-get install -y {p})" for t, p in TOOLS.items() if not shutil.which(t)]
    if missing:
        print("missing tools: " + ", ".join(missing), file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {1})  # this script and its load share CPU 1 with wrk and nginx
    with tempfile.TemporaryDirectory(prefix="baepo-bench-") as tmp:
        folder = Path(tmp)
        ups = [free_port(), free_port()]
        (folder / "nginx.conf").write_text(marked_nginx_conf(folder, ups))
        nginx = subprocess.Popen(
            ["taskset", "-c", "1", "nginx", "-c", str(folder / "nginx.conf"), "-p", tmp],
            stderr=subprocess.DEVNULL,
        )
        try:
            for port in ups:
                wait_port(port)
            results = asyncio.run(run_all(args, folder, ups))
        finally:
            nginx.send_signal(signal.SIGTERM)
            nginx.wait(15)

    latency = results["change_latency"]
    load = results["changes_under_load"]
    cost = results["split_cost"]
    failed = latency["load_failed"] + load["wrk"]["failed"]
    goals = {
        "first answer from the new table <= 10 ms (median)": latency["first_new_answer_ms"][
            "median"
        ]
        <= 10,
        f"0 failed requests at {args.rate} changes/s": load["wrk"]["failed"] == 0,
        "router counted every request": load["router_counted"] >= load["wrk"]["requests"],
        "90/10 split costs <= 5 %": cost["ratios_vs_single"]["split_90_10"] >= 0.95,
    }
    print()
    for goal, ok in goals.items():
        print(f"{'met' if ok else 'MISSED':6s} {goal}")
    print(f"split throughput vs single backend: {cost['ratios_vs_single']}")
    print(f"split user CPU per request vs single: {cost['user_cpu_per_request_vs_single']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "args": vars(args),
                "goals": goals,
                **results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
