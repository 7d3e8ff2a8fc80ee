"""A throwaway Prometheus server for integration tests, and the sample app its router fronts.

Callers: tests of the ``prometheus`` provider and of the router's metrics. ``prometheus_server``
runs the real ``/usr/bin/prometheus`` (Debian package ``prometheus``, installed by
``scripts/install-system-deps test``) with its own config and storage in a temporary folder,
on a free loopback port, scraping the given ``host:port`` targets every second; it waits
(bounded) until every target is up and stops the server at the end. When Prometheus is not
installed the test is skipped, or fails when ``CI=true``. ``SampleApp`` runs
``examples/sample/app.py`` as a real process (``error_rate=1`` answers every ``/`` with 500,
``latency_ms`` delays every answer).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import SAMPLE, free_port

MISSING = "prometheus is not installed: run make test (it installs it)"
START_TIMEOUT = 60.0


def require_binary() -> Path:
    """The Prometheus binary; skips the test (fails it under ``CI=true``) when missing."""
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    return Path(found)


def config_text(
    targets: Sequence[str], scrape_interval: str = "1s", credentials: str | None = None
) -> str:
    """A prometheus.yml scraping ``targets`` (``host:port``, path ``/metrics``) as job baepo,
    sending ``credentials`` (an API token) as a bearer token when given."""
    listed = ", ".join(f'"{t}"' for t in targets)
    auth = f'    authorization: {{credentials: "{credentials}"}}\n' if credentials else ""
    return (
        "global:\n"
        f"  scrape_interval: {scrape_interval}\n"
        f"  evaluation_interval: {scrape_interval}\n"
        "scrape_configs:\n"
        "  - job_name: baepo\n"
        f"{auth}"
        "    static_configs:\n"
        f"      - targets: [{listed}]\n"
    )


class PrometheusServer:
    """A running Prometheus; ``address`` is its base URL."""

    def __init__(self, root: Path, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.port = port
        self.proc = proc

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return (self.root / "prometheus.log").read_text(errors="replace")[-4000:]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result of an instant query (raises on an error answer)."""
        response = httpx.get(f"{self.address}/api/v1/query", params={"query": promql}, timeout=10)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def wait_for(
        self,
        promql: str,
        holds: Callable[[list[dict[str, Any]]], bool],
        *,
        timeout: float = START_TIMEOUT,
        what: str = "",
    ) -> list[dict[str, Any]]:
        """Poll ``promql`` until ``holds(result)``; at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited: {self.log()}"
            try:
                last = self.query(promql)
                if holds(last):
                    return last
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                last = exc
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what or promql}; last: {last}")

    def wait_targets_up(self, count: int, timeout: float = START_TIMEOUT) -> None:
        """Until ``count`` targets have been scraped successfully."""
        self.wait_for(
            'up{job="baepo"} == 1',
            lambda result: len(result) >= count,
            timeout=timeout,
            what=f"{count} target(s) up",
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@contextlib.contextmanager
def prometheus_server(
    root: Path,
    targets: Sequence[str] = (),
    *,
    scrape_interval: str = "1s",
    credentials: str | None = None,
) -> Iterator[PrometheusServer]:
    """Start Prometheus with its files in ``root``, wait until it is ready and every target
    is up, yield it, stop it."""
    binary = require_binary()
    root.mkdir(parents=True, exist_ok=True)
    (root / "prometheus.yml").write_text(config_text(targets, scrape_interval, credentials))
    port = free_port()
    argv = [
        str(binary),
        f"--config.file={root / 'prometheus.yml'}",
        f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
    with (root / "prometheus.log").open("ab") as log:
        proc = subprocess.Popen(argv, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    server = PrometheusServer(root, port, proc)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert proc.poll() is None, f"prometheus exited: {server.log()}"
            try:
                if httpx.get(f"{server.address}/-/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"prometheus not ready: {server.log()}"
            time.sleep(0.1)
        if targets:
            server.wait_targets_up(len(targets))
        yield server
    finally:
        server.stop()


class SampleApp:
    """``examples/sample/app.py`` on a free port; use as a context manager."""

    def __init__(self, version: str, *, error_rate: float = 0.0, latency_ms: int = 0) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "SAMPLE_VERSION": version,
            "SAMPLE_ERROR_RATE": str(error_rate),
            "SAMPLE_LATENCY_MS": str(latency_ms),
        }
        self.proc = subprocess.Popen(
            [sys.executable, str(SAMPLE), "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> SampleApp:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the sample app exited"
            try:
                httpx.get(f"http://{self.address}/health", timeout=2)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("the sample app never listened")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
