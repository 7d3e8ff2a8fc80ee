"""The sample app: a tiny HTTP/1.1 service whose behaviour per version comes from its config.

Used by the demo (``examples/sample/baepo.yaml``) and by the tests of platforms and routers.
Stdlib only. Run ``python3 app.py --port 8000`` (or set ``PORT``).

Config, from environment variables (a JSON file named by ``SAMPLE_CONFIG`` or ``--config``
gives defaults for the same keys, lower-case without the prefix, e.g. ``{"latency_ms": 50}``):

- ``SAMPLE_VERSION``: echoed in responses and in the ``X-Sample-Version`` header
- ``SAMPLE_LATENCY_MS``: added to every non-health response
- ``SAMPLE_ERROR_RATE``: fraction (0..1) of non-health requests answered with 500
- ``SAMPLE_START_DELAY``: seconds to wait before listening (a slow start)
- ``SAMPLE_CRASH_ON_START``: true → print an error and exit with code 3 at start
- ``SAMPLE_READY``: false → ``/health/ready`` answers 503
- ``SAMPLE_HEALTH_FAIL_AFTER``: seconds after start from which ``/health`` answers 500
- ``SAMPLE_IGNORE_SIGTERM``: true → SIGTERM is ignored (to test SIGKILL after a grace period)
- ``SAMPLE_ACCESS_LOG``: true → one line per request on stdout
- ``SAMPLE_FAULT_AFTER_S``: seconds after start (when it listens) before ``SAMPLE_ERROR_RATE``
  and ``SAMPLE_LATENCY_MS`` apply; until then it answers at once and never fails. At start
  it prints ``fault onset at <unix time>`` (wall clock, microseconds) so a benchmark can time
  what follows the onset
- ``SAMPLE_FAULT_FILE``: a path; ``SAMPLE_ERROR_RATE`` and ``SAMPLE_LATENCY_MS`` apply only
  while that file exists (a test turns the fault on when it wants, whatever the machine's speed)
- ``SAMPLE_LATENCY_JITTER``: fraction (0..1); each request's added latency is drawn uniformly
  from ``SAMPLE_LATENCY_MS`` times (1 - jitter) to (1 + jitter)

Endpoints: ``/`` (JSON: version, pid, instance, port), ``/status/<code>`` (answers that
status on every version, as Flagger's podinfo does: a fault no release causes), ``/health``
(liveness), ``/health/ready`` (readiness; 503 while draining), ``/events`` (server-sent events,
``?count=5&interval_ms=100``, chunked); POST to any other path echoes the body size.
On SIGTERM it stops accepting connections, finishes requests in flight and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TRUE = {"1", "true", "yes", "on"}


class Config:
    """The app's behaviour, from a JSON file overlaid by ``SAMPLE_*`` environment variables."""

    def __init__(self, file_values: dict[str, Any], env: dict[str, str]) -> None:
        def get(key: str, default: str) -> str:
            value = env.get(f"SAMPLE_{key.upper()}")
            return str(file_values.get(key, default)) if value is None else value

        self.version = get("version", "dev")
        self.latency = float(get("latency_ms", "0")) / 1000.0
        self.error_rate = float(get("error_rate", "0"))
        self.start_delay = float(get("start_delay", "0"))
        self.crash_on_start = get("crash_on_start", "false").lower() in TRUE
        self.ready = get("ready", "true").lower() in TRUE
        fail_after = get("health_fail_after", "")
        self.health_fail_after = float(fail_after) if fail_after else None
        self.ignore_sigterm = get("ignore_sigterm", "false").lower() in TRUE
        self.access_log = get("access_log", "false").lower() in TRUE
        fault_after = get("fault_after_s", "")
        self.fault_after = float(fault_after) if fault_after else None
        self.latency_jitter = float(get("latency_jitter", "0"))
        self.fault_file = get("fault_file", "")


class State:
    """Shared by request threads: counts requests in flight so SIGTERM can wait for them."""

    def __init__(self, config: Config, port: int) -> None:
        self.config = config
        self.port = port
        self.started = time.monotonic()
        self.fault_at = None if config.fault_after is None else self.started + config.fault_after
        self.instance = os.environ.get("BAEPO_INSTANCE", f"127.0.0.1:{port}")
        self.draining = False
        self.in_flight = 0
        self.cond = threading.Condition()

    def enter(self) -> None:
        with self.cond:
            self.in_flight += 1

    def leave(self) -> None:
        with self.cond:
            self.in_flight -= 1
            self.cond.notify_all()

    def faulty(self) -> bool:
        """Whether the configured errors and latency apply now (always without a delay or a
        fault file)."""
        if self.config.fault_file and not os.path.exists(self.config.fault_file):
            return False
        return self.fault_at is None or time.monotonic() >= self.fault_at

    def latency(self) -> float:
        """Seconds to add to this request: the configured latency, jittered."""
        latency = self.config.latency
        jitter = self.config.latency_jitter
        if latency and jitter:
            latency *= 1 + random.uniform(-jitter, jitter)
        return max(0.0, latency)

    def wait_idle(self, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.in_flight == 0, timeout)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus a delayed
    # ACK on the other side would hold each body back ~40 ms.
    disable_nagle_algorithm = True
    server_version = "baepo-sample"
    state: State  # set on the subclass made in main()

    def do_GET(self) -> None:
        self._handle(body=b"")

    def do_HEAD(self) -> None:
        self._handle(body=b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(body=self.rfile.read(length) if length else b"")

    def _handle(self, body: bytes) -> None:
        state = self.state
        state.enter()
        try:
            if state.draining:
                self.close_connection = True
            path = urlsplit(self.path).path
            if path == "/health":
                failing = state.config.health_fail_after is not None and (
                    time.monotonic() - state.started >= state.config.health_fail_after
                )
                self._send(500 if failing else 200, {"status": "failing" if failing else "ok"})
            elif path == "/health/ready":
                ready = state.config.ready and not state.draining
                self._send(200 if ready else 503, {"ready": ready})
            else:
                faulty = state.faulty()
                delay = state.latency() if faulty else 0.0
                if delay:
                    time.sleep(delay)
                if faulty and random.random() < state.config.error_rate:
                    self._send(500, {"error": "injected failure", "version": state.config.version})
                elif path == "/events" and self.command == "GET":
                    self._events()
                elif path.startswith("/status/") and path[8:].isdigit():
                    self._send(int(path[8:]), {"status": int(path[8:])})
                elif path == "/" or self.command == "POST":
                    self._send(200, self._identity(received=len(body)))
                else:
                    self._send(404, {"error": "not found", "path": path})
        finally:
            state.leave()

    def _identity(self, received: int) -> dict[str, Any]:
        return {
            "version": self.state.config.version,
            "pid": os.getpid(),
            "instance": self.state.instance,
            "port": self.state.port,
            "path": self.path,
            "received": received,
        }

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = (json.dumps(payload) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Sample-Version", self.state.config.version)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _events(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        count = int(query.get("count", ["5"])[0])
        interval = float(query.get("interval_ms", ["100"])[0]) / 1000.0
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Sample-Version", self.state.config.version)
        self.end_headers()
        for number in range(count):
            event = f"id: {number}\nevent: tick\ndata: {self.state.config.version} {number}\n\n"
            chunk = event.encode()
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
            if number + 1 < count:
                time.sleep(interval)
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        if self.state.config.access_log:
            print(f"{self.address_string()} {format % args}", flush=True)


def load_file(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    with open(path) as handle:
        data = json.load(handle)
    return data if isinstance(data, dict) else {}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="baepo's sample HTTP service")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--config", default=os.environ.get("SAMPLE_CONFIG"))
    args = parser.parse_args(argv)
    config = Config(load_file(args.config), dict(os.environ))
    if config.crash_on_start:
        print(f"sample {config.version}: crashing on start as configured", flush=True)
        return 3
    if config.start_delay:
        print(f"sample {config.version}: starting in {config.start_delay:g}s", flush=True)
        time.sleep(config.start_delay)

    state = State(config, args.port)
    handler = type("SampleHandler", (Handler,), {"state": state})
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer((args.host, args.port), handler)

    def on_sigterm(signum: int, frame: object) -> None:
        if config.ignore_sigterm:
            print("SIGTERM ignored as configured", flush=True)
            return
        state.draining = True
        # shutdown() waits for serve_forever, which runs in this very thread: use another one.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    if state.fault_at is not None:
        onset = time.time() + (state.fault_at - time.monotonic())
        print(f"sample {config.version}: fault onset at {onset:.6f}", flush=True)
    print(f"sample {config.version} listening on {args.host}:{args.port}", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()  # stop accepting at once; requests in flight go on in their threads
    drained = state.wait_idle(timeout=30.0)
    print(
        f"sample {config.version}: stopped ({'drained' if drained else 'drain timed out'})",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
