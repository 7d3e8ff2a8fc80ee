"""The sample app (``examples/sample``) on its own, and its ``baepo.yaml``."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from baepo.platforms.local.addresses import allocate_port
from baepo.spec.models import Spec

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "sample"


class Sample:
    """A running sample app."""

    def __init__(self, env: dict[str, str], args: list[str] | None = None) -> None:
        self.port = allocate_port("127.0.0.1", set())
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", *(args or ["--port", str(self.port)])],
            cwd=SAMPLE_DIR,
            env={**os.environ, "PORT": str(self.port), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def wait_listening(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.request("/health")
            except OSError:
                time.sleep(0.05)
                continue
            return
        raise AssertionError("the sample app never listened")

    def request(
        self, path: str, method: str = "GET", body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = self.connect()
        try:
            connection.request(method, path, body=body)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            output, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            output, _ = self.proc.communicate()
        return self.proc.returncode, output


@pytest.fixture
def start() -> Iterator[type[Sample]]:
    started: list[Sample] = []

    class Tracked(Sample):
        def __init__(self, env: dict[str, str], args: list[str] | None = None) -> None:
            super().__init__(env, args)
            started.append(self)

    yield Tracked
    for sample in started:
        sample.stop()


def test_the_example_spec_is_valid() -> None:
    spec = Spec.model_validate(yaml.safe_load((SAMPLE_DIR / "baepo.yaml").read_text()))
    assert spec.app == "sample"
    assert spec.replicas == 3
    assert spec.strategy.kind == "rolling"
    assert spec.health.readiness.path == "/health/ready"
    assert spec.health.readiness.interval <= 0.5
    assert spec.router.listen == "127.0.0.1:8080"
    assert spec.run.command == ["python3", "app.py", "--port", "{port}"]


def test_endpoints(start: type[Sample]) -> None:
    sample = start({"SAMPLE_VERSION": "2.1.0"})
    sample.wait_listening()
    status, headers, body = sample.request("/")
    assert status == 200
    assert headers["X-Sample-Version"] == "2.1.0"
    identity = json.loads(body)
    assert identity["version"] == "2.1.0"
    assert identity["pid"] == sample.proc.pid
    assert identity["port"] == sample.port
    assert sample.request("/health")[0] == 200
    assert sample.request("/health/ready")[0] == 200
    assert sample.request("/nope")[0] == 404
    status, _, body = sample.request("/upload", "POST", b"x" * 1000)
    assert status == 200
    assert json.loads(body)["received"] == 1000
    status, headers, body = sample.request("/events?count=3&interval_ms=10")
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    assert body.decode().count("event: tick") == 3
    assert "data: 2.1.0 2" in body.decode()


def test_keep_alive_serves_several_requests_on_one_connection(start: type[Sample]) -> None:
    sample = start({})
    sample.wait_listening()
    connection = sample.connect()
    try:
        pids = set()
        for _ in range(5):
            connection.request("GET", "/")
            response = connection.getresponse()
            assert response.status == 200
            assert response.version == 11
            pids.add(json.loads(response.read())["pid"])
            connection.request("GET", "/events?count=2&interval_ms=1")
            assert connection.getresponse().read().count(b"event: tick") == 2
        assert connection.sock is not None  # never closed by the server
    finally:
        connection.close()


def test_not_ready_errors_and_failing_health(start: type[Sample]) -> None:
    sample = start(
        {"SAMPLE_READY": "false", "SAMPLE_ERROR_RATE": "1", "SAMPLE_HEALTH_FAIL_AFTER": "0"}
    )
    sample.wait_listening()
    assert sample.request("/health/ready")[0] == 503
    assert sample.request("/")[0] == 500
    assert sample.request("/health")[0] == 500


def test_config_file_with_environment_on_top(start: type[Sample], tmp_path: Path) -> None:
    config = tmp_path / "sample.json"
    config.write_text(json.dumps({"version": "from-file", "ready": False, "latency_ms": 1}))
    sample = start({"SAMPLE_CONFIG": str(config), "SAMPLE_VERSION": "from-env"})
    sample.wait_listening()
    assert json.loads(sample.request("/")[2])["version"] == "from-env"
    assert sample.request("/health/ready")[0] == 503


def test_port_from_the_environment(start: type[Sample]) -> None:
    sample = start({}, args=[])
    sample.wait_listening()
    assert json.loads(sample.request("/")[2])["port"] == sample.port


def test_crash_on_start_exits_3(start: type[Sample]) -> None:
    sample = start({"SAMPLE_CRASH_ON_START": "1"})
    assert sample.proc.wait(timeout=15) == 3


def test_start_delay(start: type[Sample]) -> None:
    began = time.monotonic()
    sample = start({"SAMPLE_START_DELAY": "0.5"})
    sample.wait_listening()
    assert time.monotonic() - began >= 0.5


def test_sigterm_finishes_requests_in_flight_and_exits_0(start: type[Sample]) -> None:
    sample = start({"SAMPLE_LATENCY_MS": "1000"})
    sample.wait_listening()
    answers: list[int] = []
    clients = [
        threading.Thread(target=lambda: answers.append(sample.request("/")[0])) for _ in range(3)
    ]
    for client in clients:
        client.start()
    time.sleep(0.4)
    sample.proc.send_signal(signal.SIGTERM)
    for client in clients:
        client.join(timeout=15)
    returncode = sample.proc.wait(timeout=15)  # no second SIGTERM: it is already stopping
    _, output = sample.stop()
    assert answers == [200, 200, 200]
    assert returncode == 0
    assert "stopped (drained)" in output
    with pytest.raises(OSError):
        sample.request("/health")  # no longer accepting
