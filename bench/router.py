"""Benchmark: the data planes side by side: direct, HAProxy, nginx and the built-in router.

Two nginx upstreams (100-byte bodies) and wrk share CPU 1; the proxy under test (HAProxy with
one thread, nginx with one worker, or the built-in router with per-revision stats) gets CPU 0
alone, each splitting 80/20 over the two upstreams. Runs are interleaved (direct, haproxy,
nginx, router) several times; medians and ratios vs HAProxy are printed
and written to ``bench/results/router.json``. Exit 2 when haproxy, nginx, wrk or taskset is
missing; exit 1 when any request failed. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
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
from pathlib import Path
from typing import Any

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


def run_wrk(url: str, seconds: int, connections: int, pid: int | None) -> dict[str, float]:
    """One wrk run; with ``pid``, also the CPU time that process spent per request (µs).

    The system part is mostly the kernel's loopback TCP work, about the same for any proxy;
    the user part is the proxy's own code.
    """
    argv = ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    user0, sys0 = cpu_seconds(pid) if pid else (0.0, 0.0)
    done = subprocess.run([*argv, "--latency", url], capture_output=True, text=True, check=True)
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
            master = pid_file.read_text().strip()
            children = Path(f"/proc/{master}/task/{master}/children")
            if children.exists() and children.read_text().split():
                return int(children.read_text().split()[0])
        time.sleep(0.05)
    raise SystemExit(f"no nginx worker for {pid_file} after {timeout} s")


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
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
                "router": procs[3].pid,
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

    medians = {
        name: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for name, runs in samples.items()
    }
    failed = {name: sum(s["failed"] for s in runs) for name, runs in samples.items()}
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
    goals = {
        "throughput_vs_haproxy >= 0.7": ratios["throughput_vs_haproxy"] >= 0.7,
        "p50 <= haproxy + 0.5 ms": ratios["p50_minus_haproxy_ms"] <= 0.5,
        "p99 <= 2x haproxy": ratios["p99_vs_haproxy"] <= 2.0,
        "0 failed": failed["router"] == 0,
    }
    routed = sum(rev["requests"] for rev in stats["revisions"])
    print()
    header = f"{'target':10s} {'req/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s} {'failed':>7s}"
    print(header + f" {'CPU µs/req':>11s} {'user µs':>8s}")
    for name, m in medians.items():
        print(
            f"{name:10s} {m['rps']:10.0f} {m['p50_ms']:8.3f} {m['p99_ms']:8.3f} {failed[name]:7.0f}"
            f" {m['cpu_us_per_request']:11.1f} {m['cpu_user_us_per_request']:8.1f}"
        )
    print()
    for key, value in ratios.items():
        print(f"{key:34s} {value}")
    for goal, ok in goals.items():
        print(f"{'met' if ok else 'MISSED':6s} {goal}")
    print(
        f"router stats: {routed} requests over revisions "
        + ", ".join(f"{rev['revision']}: {rev['requests']}" for rev in stats["revisions"])
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "runs": args.runs,
                "seconds": args.seconds,
                "connections": args.connections,
                "medians": medians,
                "failed": failed,
                "ratios": ratios,
                "goals": goals,
                "samples": samples,
                "router_stats": stats,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")
    return 0 if failed["router"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
