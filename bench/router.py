"""Benchmark: the data planes side by side: direct, HAProxy, nginx and the built-in router.

Three parts in one run, one table at the end (a column per plane, ratios vs HAProxy):

- **max throughput**: wrk closed loop (``--connections``, ``--seconds``). Two nginx upstreams
  (100-byte bodies) and wrk share CPU 1; the proxy under test (HAProxy with one thread, nginx
  with one worker, or the built-in router with per-revision stats) gets CPU 0 alone, each
  splitting 80/20 over the two upstreams. Runs are interleaved (direct, haproxy, nginx,
  router) ``--runs`` times; req/s, p50/p99, failures and the proxy's CPU time per request;
- **at a fixed rate**: the same processes, wrk paced by ``bench/haproxy.py``'s Lua script to
  about ``--rate`` requests/s in total (the same for every plane), ``--runs`` interleaved runs
  of ``--rate-seconds``; req/s achieved, p50/p99, failures;
- **weight changes**: for HAProxy, nginx and the built-in router, each started and driven by
  the adapter the controller uses (``HAProxyRouter``, ``NginxRouter``, ``BuiltinRouter``) in
  front of two nginx upstreams naming themselves in ``X-Upstream``: ``--flips`` changes
  between "all to a" and "all to b" at ``--flip-rate`` a second, timed by
  ``bench/haproxy.py``'s prober (a process of its own): call -> return and call -> first
  answer from the new side. "direct" has no weights.

Medians go to ``bench/results/router.json``. Prints figures, asserts nothing. Exit 2 when
haproxy, nginx, wrk or taskset is missing; exit 1 when a request through the built-in router
failed (in any part). See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from baepo.core.ports import Router, RouterConfig
from baepo.routers.builtin.adapter import BuiltinRouter
from baepo.routers.haproxy.adapter import HAProxyRouter
from baepo.routers.nginx.adapter import NginxRouter

BODY = "x" * 99 + "\n"  # 100 bytes
TOOLS = {"haproxy": "haproxy", "nginx": "nginx", "wrk": "wrk", "taskset": "util-linux"}
RESULTS = Path(__file__).parent / "results" / "router.json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout} s")


def nginx_http_common(folder: Path, prefix: str) -> str:
    """No access log, and temp paths of their own (``prefix``) inside ``folder``."""
    temp = "".join(
        f"    {kind}_temp_path {folder}/{prefix}{name};\n"
        for kind, name in (("client_body", "body"), ("proxy", "proxy"), ("fastcgi", "fastcgi"),
                           ("uwsgi", "uwsgi"), ("scgi", "scgi"))
    )  # fmt: skip
    return "    access_log off;\n" + temp


def nginx_conf(folder: Path, ports: list[int]) -> str:
    servers = "".join(
        f"""
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        keepalive_requests 1000000;
        location / {{ default_type text/plain; return 200 "{BODY[:-1]}\\n"; }}
    }}"""
        for port in ports
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


def haproxy_conf(port: int, upstreams: list[int]) -> str:
    return f"""
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    balance roundrobin
    server a 127.0.0.1:{upstreams[0]} weight 80
    server b 127.0.0.1:{upstreams[1]} weight 20
"""


def nginx_proxy_conf(folder: Path, port: int, upstreams: list[int]) -> str:
    """nginx as the weighted proxy under test: one worker, keep-alive to the upstreams."""
    return f"""
worker_processes 1;
daemon off;
pid {folder}/proxy.pid;
error_log {folder}/proxy-error.log warn;
events {{ worker_connections 4096; }}
http {{
{nginx_http_common(folder, "p")}
    upstream be {{
        server 127.0.0.1:{upstreams[0]} weight=80;
        server 127.0.0.1:{upstreams[1]} weight=20;
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        keepalive_requests 1000000;
        location / {{
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def parse_wrk(text: str) -> dict[str, float]:
    """Requests/s, p50/p99 (ms) and failures from ``wrk --latency`` output."""

    def ms(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not match:
            raise SystemExit(f"cannot find {label} latency in wrk output:\n{text}")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    failed = int(non2xx.group(1)) if non2xx else 0
    if sock:
        failed += sum(int(g) for g in sock.groups())
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": float(total.group(1)) if total else 0.0,
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "failed": float(failed),
    }


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def run_wrk(
    url: str,
    seconds: int,
    connections: int,
    pid: int | None,
    script: Path | None = None,
    script_args: Sequence[str] = (),
) -> dict[str, float]:
    """One wrk run; with ``pid``, also the CPU time that process spent per request (µs).
    With ``script``, wrk runs that Lua script with ``script_args`` (the paced load).

    The system part is mostly the kernel's loopback TCP work, about the same for any proxy;
    the user part is the proxy's own code.
    """
    argv = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        argv += ["-s", str(script)]
    tail = ["--", *script_args] if script_args else []
    user0, sys0 = cpu_seconds(pid) if pid else (0.0, 0.0)
    done = subprocess.run([*argv, url, *tail], capture_output=True, text=True, check=True)
    result = parse_wrk(done.stdout)
    result["cpu_us_per_request"] = 0.0
    result["cpu_user_us_per_request"] = 0.0
    result["cpu_sys_us_per_request"] = 0.0
    if pid and result["requests"]:
        user1, sys1 = cpu_seconds(pid)
        scale = 1e6 / result["requests"]
        result["cpu_user_us_per_request"] = (user1 - user0) * scale
        result["cpu_sys_us_per_request"] = (sys1 - sys0) * scale
        result["cpu_us_per_request"] = (user1 - user0 + sys1 - sys0) * scale
    return result


def worker_pid(pid_file: Path, timeout: float = 10.0) -> int:
    """The pid of the one worker of the nginx whose master wrote ``pid_file`` (the worker
    does the proxying, so its CPU time is what counts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_file.exists() and pid_file.read_text().strip():
            return only_child(int(pid_file.read_text().strip()), timeout)
        time.sleep(0.05)
    raise SystemExit(f"no nginx worker for {pid_file} after {timeout} s")


def only_child(master: int, timeout: float = 10.0) -> int:
    """The pid of the one worker of a master process (nginx's, or the built-in router's)."""
    children = Path(f"/proc/{master}/task/{master}/children")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if children.exists() and children.read_text().split():
            return int(children.read_text().split()[0])
        time.sleep(0.05)
    raise SystemExit(f"no worker of process {master} after {timeout} s")


def router_stats(admin: Path) -> Any:
    """GET /stats from the router's admin socket (plain socket: no third-party imports)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(admin))
        sock.sendall(b"GET /stats HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def put_table(admin: Path, table: dict[str, Any]) -> None:
    body = json.dumps(table).encode()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(admin))
        sock.sendall(
            b"PUT /backends HTTP/1.1\r\nHost: r\r\nConnection: close\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        answer = sock.recv(65536)
    if not answer.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"router rejected the table: {answer!r}")


def at_rate(
    targets: dict[str, str], pids: dict[str, int | None], folder: Path, args: argparse.Namespace
) -> dict[str, list[dict[str, float]]]:
    """wrk paced to about ``--rate`` requests/s in total, the same for every plane (the Lua
    script of ``bench/haproxy.py``: each connection waits 0.5-1.5x connections/rate after each
    answer), interleaved ``--runs`` times; the samples by plane."""
    from haproxy import WRK_SCRIPT  # imported here: bench/haproxy.py imports this module

    script = folder / "paced.lua"
    script.write_text(WRK_SCRIPT)
    pause = [f"{1000 * args.connections / args.rate:g}"]
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    for run in range(args.runs):
        for name, url in targets.items():
            result = run_wrk(url, args.rate_seconds, args.connections, pids[name], script, pause)
            samples[name].append(result)
            print(
                f"run {run + 1} {name:8s} at {args.rate:g}/s offered: {result['rps']:6.0f} req/s  "
                f"p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms  "
                f"failed {result['failed']:.0f}  "
                f"proxy CPU {result['cpu_us_per_request']:.1f} µs/req "
                f"(user {result['cpu_user_us_per_request']:.1f})",
                flush=True,
            )
    return samples


FLIP_APP = "bench"
ADAPTERS: dict[str, tuple[str, type[BuiltinRouter | HAProxyRouter | NginxRouter]]] = {
    "haproxy": ("haproxy", HAProxyRouter),
    "nginx": ("nginx", NginxRouter),
    "router": ("builtin", BuiltinRouter),
}


async def weight_changes(folder: Path, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Per plane, ``--flips`` changes of the whole table through the adapter the controller
    uses, in front of two nginx upstreams that name themselves in ``X-Upstream``."""
    from haproxy import upstreams_conf  # imported here: bench/haproxy.py imports this module

    marked = folder / "marked"
    marked.mkdir()
    ports = {"a": free_port(), "b": free_port()}
    (marked / "nginx.conf").write_text(upstreams_conf(marked, ports))
    upstreams = subprocess.Popen(
        ["nginx", "-c", str(marked / "nginx.conf"), "-p", str(marked)], stderr=subprocess.DEVNULL
    )
    results: dict[str, dict[str, Any]] = {}
    try:
        for port in ports.values():
            wait_port(port)
        a, b = (f"127.0.0.1:{ports[name]}" for name in ("a", "b"))
        for plane, (kind, adapter) in ADAPTERS.items():
            results[plane] = await flips(adapter(folder / "state"), kind, a, b, folder, args)
            flipped = results[plane]
            print(
                f"{plane:8s} {flipped['flips']} changes in {flipped['seconds']:.2f} s: "
                f"set_backends returned {describe(flipped['set_backends_ms'])} ms, "
                f"first answer from the new side {describe(flipped['first_new_answer_ms'])} ms "
                f"({flipped['seen']}/{flipped['flips']} seen); prober "
                f"{flipped['prober_answers']} answers, {flipped['prober_failed']} failed "
                f"{flipped['prober_failures'] or ''}",
                flush=True,
            )
    finally:
        upstreams.send_signal(signal.SIGTERM)
        upstreams.wait(15)
    return results


async def flips(
    router: Router, kind: str, a: str, b: str, folder: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Flip the table between "all to a" and "all to b" ``--flips`` times, ``--flip-rate`` a
    second, while ``bench/haproxy.py``'s prober (a process of its own, so no client shares
    this event loop) sends GETs back to back on one keep-alive connection and timestamps each
    answer with its upstream; per change, the call's duration and the time from the call to
    the first answer from the new side (to a request sent after the call), in ms."""
    from haproxy import changes, first_answers  # imported here: haproxy.py imports this module
    from nginx import table
    from weights import summary

    port = free_port()
    probed_file = folder / f"probe-{kind}.json"
    await router.ensure_running(
        RouterConfig(FLIP_APP, kind, f"127.0.0.1:{port}", 30.0, 75.0, kind=kind)
    )
    prober = None
    try:
        await router.set_backends(FLIP_APP, kind, table(a, b, 0))
        prober = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).with_name("haproxy.py")),
            "--probe", str(port), str(probed_file), stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        if prober.stdout is not None:
            await asyncio.wait_for(prober.stdout.readline(), 10)
        await asyncio.sleep(0.2)
        schedule = argparse.Namespace(
            seconds=args.flips / args.flip_rate, per_second=args.flip_rate
        )
        calls, elapsed = await changes(router, a, b, schedule, app=FLIP_APP, env=kind)
        await asyncio.sleep(0.2)
    finally:
        if prober is not None and prober.returncode is None:
            prober.terminate()
            await prober.wait()
        await router.stop(FLIP_APP, kind)
    probed = json.loads(probed_file.read_text())
    firsts, settled = first_answers(calls, probed)
    seen = [1000 * x for x in firsts if x is not None]
    applied = [1000 * x for x in settled if x is not None]
    return {
        "flips": len(calls),
        "seconds": round(elapsed, 3),
        "set_backends_ms": summary([1000 * (done - called) for called, done, _ in calls]),
        "first_new_answer_ms": summary(seen) if seen else None,
        "every_answer_new_ms": summary(applied) if applied else None,
        "seen": len(seen),
        "prober_answers": len(probed["sent"]),
        "prober_failed": sum(probed["failures"].values()),
        "prober_failures": probed["failures"],
    }


DASH = "\u2013"  # what a plane without the figure shows


def describe(figures: dict[str, float] | None) -> str:
    """``median / p95 / max`` of a summary, or a dash when there is none."""
    if figures is None:
        return DASH
    return f"{figures['median']:.1f} / {figures['p95']:.1f} / {figures['max']:.1f}"


def side_by_side(
    medians: dict[str, dict[str, float]],
    failed: dict[str, float],
    rated: dict[str, dict[str, float]],
    rate_failed: dict[str, float],
    changed: dict[str, dict[str, Any]],
    args: argparse.Namespace,
) -> None:
    """One table: a column per plane, a row per figure."""
    planes = list(medians)

    def latency(m: dict[str, float]) -> str:
        return f"{m['p50_ms']:.2f} / {m['p99_ms']:.2f}"

    def cpu(name: str, m: dict[str, float]) -> str:
        if name == "direct":
            return DASH
        return f"{m['cpu_us_per_request']:.1f} ({m['cpu_user_us_per_request']:.1f})"

    def flip(name: str, key: str) -> str:
        return describe(changed[name][key]) if name in changed else DASH

    def count(name: str) -> str:
        if name not in changed:
            return DASH
        c = changed[name]
        return f"{c['seen']}/{c['flips']}, {c['prober_failed']}"

    rows = [
        (f"max, {args.connections} conn.: req/s", [f"{medians[n]['rps']:.0f}" for n in planes]),
        ("  p50 / p99 ms", [latency(medians[n]) for n in planes]),
        ("  failed", [f"{failed[n]:.0f}" for n in planes]),
        ("  proxy CPU µs/req (user)", [cpu(n, medians[n]) for n in planes]),
        (f"at {args.rate:g}/s offered: req/s", [f"{rated[n]['rps']:.0f}" for n in planes]),
        ("  p50 / p99 ms", [latency(rated[n]) for n in planes]),
        ("  failed", [f"{rate_failed[n]:.0f}" for n in planes]),
        ("  proxy CPU µs/req (user)", [cpu(n, rated[n]) for n in planes]),
        (f"{args.flips} changes: call → return", [flip(n, "set_backends_ms") for n in planes]),
        ("  call → first new answer", [flip(n, "first_new_answer_ms") for n in planes]),
        ("  (ms, median / p95 / max)", ["" for n in planes]),
        ("  changes seen, prober failed", [count(n) for n in planes]),
    ]  # fmt: skip
    print(f"{'':32s}" + "".join(f"{n:>24s}" for n in planes))
    for label, cells in rows:
        print(f"{label:32s}" + "".join(f"{cell:>24s}" for cell in cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rate", type=float, default=5000.0, help="req/s offered to every plane")
    parser.add_argument("--rate-seconds", type=int, default=5, help="each paced wrk run (s)")
    parser.add_argument("--flips", type=int, default=50, help="weight changes per plane")
    parser.add_argument("--flip-rate", type=float, default=10.0, help="weight changes a second")
    args = parser.parse_args()
    missing = [
        f"{tool} (apt-get install -y {pkg})"
        for tool, pkg in TOOLS.items()
        if not shutil.which(tool)
    ]
    if missing:
        print("missing tools: " + ", ".join(missing), file=sys.stderr)
        return 2

    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="baepo-bench-") as tmp:
        folder = Path(tmp)
        try:
            ups = [free_port(), free_port()]
            (folder / "nginx.conf").write_text(nginx_conf(folder, ups))
            procs.append(
                subprocess.Popen(
                    ["taskset", "-c", "1", "nginx", "-c", str(folder / "nginx.conf"), "-p", tmp],
                    stderr=subprocess.DEVNULL,
                )
            )
            hport, rport = free_port(), free_port()
            (folder / "haproxy.cfg").write_text(haproxy_conf(hport, ups))
            procs.append(
                subprocess.Popen(
                    ["taskset", "-c", "0", "haproxy", "-db", "-f", str(folder / "haproxy.cfg")],
                    stderr=subprocess.DEVNULL,
                )
            )
            nport = free_port()
            (folder / "proxy.conf").write_text(nginx_proxy_conf(folder, nport, ups))
            procs.append(
                subprocess.Popen(
                    ["taskset", "-c", "0", "nginx", "-c", str(folder / "proxy.conf"), "-p", tmp],
                    stderr=subprocess.DEVNULL,
                )
            )
            admin = folder / "admin.sock"
            router_argv = [sys.executable, "-m", "baepo.routers.builtin", "--listen"]
            router_argv += [f"127.0.0.1:{rport}", "--admin", str(admin)]
            router_argv += ["--state", str(folder / "table.json")]
            log = (folder / "router.log").open("wb")
            procs.append(subprocess.Popen(["taskset", "-c", "0", *router_argv], stderr=log))
            for port in (*ups, hport, nport, rport):
                wait_port(port)
            put_table(
                admin,
                {
                    "backends": [
                        {"revision": 1, "weight": 80, "upstreams": [f"127.0.0.1:{ups[0]}"]},
                        {"revision": 2, "weight": 20, "upstreams": [f"127.0.0.1:{ups[1]}"]},
                    ]
                },
            )
            targets = {
                "direct": f"http://127.0.0.1:{ups[0]}/",
                "haproxy": f"http://127.0.0.1:{hport}/",
                "nginx": f"http://127.0.0.1:{nport}/",
                "router": f"http://127.0.0.1:{rport}/",
            }
            pids = {
                "direct": None,
                "haproxy": procs[1].pid,
                "nginx": worker_pid(folder / "proxy.pid"),
                "router": only_child(procs[3].pid),
            }
            for url in targets.values():
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.read() == BODY.encode(), url
                run_wrk(url, 1, args.connections, None)  # warm up
            samples: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            for run in range(args.runs):
                for name, url in targets.items():
                    result = run_wrk(url, args.seconds, args.connections, pids[name])
                    samples[name].append(result)
                    print(
                        f"run {run + 1} {name:8s} {result['rps']:9.0f} req/s  "
                        f"p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms  "
                        f"failed {result['failed']:.0f}  "
                        f"proxy CPU {result['cpu_us_per_request']:.1f} µs/req "
                        f"(user {result['cpu_user_us_per_request']:.1f})",
                        flush=True,
                    )
            print(flush=True)
            rate_samples = at_rate(targets, pids, folder, args)
            stats = router_stats(admin)
        finally:
            for proc in reversed(procs):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        print(flush=True)
        changed = asyncio.run(weight_changes(folder, args))

    medians = {
        name: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for name, runs in samples.items()
    }
    failed = {name: sum(s["failed"] for s in runs) for name, runs in samples.items()}
    rated = {
        name: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for name, runs in rate_samples.items()
    }
    rate_failed = {name: sum(s["failed"] for s in runs) for name, runs in rate_samples.items()}
    h, r = medians["haproxy"], medians["router"]
    n = medians["nginx"]
    ratios = {
        "nginx_throughput_vs_haproxy": round(n["rps"] / h["rps"], 3),
        "nginx_cpu_per_request_vs_haproxy": round(
            n["cpu_us_per_request"] / h["cpu_us_per_request"], 3
        ),
        "throughput_vs_haproxy": round(r["rps"] / h["rps"], 3),
        "cpu_per_request_vs_haproxy": round(r["cpu_us_per_request"] / h["cpu_us_per_request"], 3),
        "p50_minus_haproxy_ms": round(r["p50_ms"] - h["p50_ms"], 3),
        "p99_vs_haproxy": round(r["p99_ms"] / h["p99_ms"], 3),
    }
    for prefix, name in (("nginx_", "nginx"), ("", "router")):
        ratios[f"{prefix}at_rate_p50_minus_haproxy_ms"] = round(
            rated[name]["p50_ms"] - rated["haproxy"]["p50_ms"], 3
        )
        ratios[f"{prefix}at_rate_p99_vs_haproxy"] = round(
            rated[name]["p99_ms"] / rated["haproxy"]["p99_ms"], 3
        )
        for key, label in (
            ("set_backends_ms", "change_call"),
            ("first_new_answer_ms", "change_first_answer"),
        ):
            mine, theirs = changed[name][key], changed["haproxy"][key]
            if mine and theirs:
                ratios[f"{prefix}{label}_median_vs_haproxy"] = round(
                    mine["median"] / theirs["median"], 3
                )
    goals = {
        "throughput_vs_haproxy >= 0.7": ratios["throughput_vs_haproxy"] >= 0.7,
        "p50 <= haproxy + 0.5 ms": ratios["p50_minus_haproxy_ms"] <= 0.5,
        "p99 <= 2x haproxy": ratios["p99_vs_haproxy"] <= 2.0,
        "0 failed": failed["router"] == 0,
    }
    routed = sum(rev["requests"] for rev in stats["revisions"])
    print()
    side_by_side(medians, failed, rated, rate_failed, changed, args)
    print()
    for key, value in ratios.items():
        print(f"{key:44s} {value}")
    for goal, ok in goals.items():
        print(f"{'met' if ok else 'MISSED':6s} {goal}")
    print(
        f"router stats: {routed} requests over revisions "
        + ", ".join(f"{rev['revision']}: {rev['requests']}" for rev in stats["revisions"])
    )
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "runs": args.runs,
                "seconds": args.seconds,
                "connections": args.connections,
                "load_average_at_end": [round(x, 2) for x in load],
                "medians": medians,
                "failed": failed,
                "ratios": ratios,
                "goals": goals,
                "samples": samples,
                "router_stats": stats,
                "at_rate": {
                    "offered_per_second": args.rate,
                    "seconds": args.rate_seconds,
                    "connections": args.connections,
                    "medians": rated,
                    "failed": rate_failed,
                    "samples": rate_samples,
                },
                "weight_changes": {
                    "flips": args.flips,
                    "per_second": args.flip_rate,
                    "planes": changed,
                },
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    router_failed = failed["router"] + rate_failed["router"] + changed["router"]["prober_failed"]
    return 0 if router_failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
