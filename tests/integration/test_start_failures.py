"""End to end: a revision that cannot start, never becomes ready or finds its port taken fails
in seconds with its cause and evidence, through the real CLI, server, router and processes.

Each test asserts the cause's kind and evidence through the API and ``baepo status -o json``,
and how long the failure took to be recorded (printed with ``pytest -s``).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import SampleProject, serving

pytestmark = pytest.mark.slow

CANARY = "{canary: {steps: [{set_weight: 50}, {pause: {duration: 1h}}]}}"


def ended(project: SampleProject, revision: int, timeout: float = 120) -> dict[str, Any]:
    """The rollout of ``revision`` once it has ended (as the API shows it)."""
    status = project.wait_for(
        lambda s: (
            s["rollout"] is None
            and s["last_rollout"] is not None
            and s["last_rollout"]["revision"] == revision
        ),
        timeout=timeout,
        what=f"the rollout of revision {revision} to end",
    )
    rollout: dict[str, Any] = status["last_rollout"]
    return rollout


def shown_took(what: str, took: float, rollout: dict[str, Any]) -> None:
    """How long the failure took, printed (``pytest -s``): from the command, and from the
    rollout's start (a first deploy's command also starts the server)."""
    print(f"{what} {took:.1f}s after the deploy ({rollout['duration_seconds']}s after it began)")


def cli_cause(project: SampleProject) -> dict[str, Any]:
    """The last rollout's cause as ``baepo status -o json`` shows it."""
    data = json.loads(project.ok("status", "-o", "json"))
    cause: dict[str, Any] = data["last_rollout"]["cause"]
    return cause


def edit(project: SampleProject, old: str, new: str) -> None:
    text = project.spec.read_text()
    assert old in text, text
    project.spec.write_text(text.replace(old, new))


def ready_timeout(project: SampleProject, value: str) -> None:
    edit(project, "failure_threshold: 3}\n", f"failure_threshold: 3}}\n  ready_timeout: {value}\n")


@pytest.fixture
def held_port() -> Iterator[tuple[socket.socket, int]]:
    """A port this test process listens on (so it is taken)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server, server.getsockname()[1]


def test_a_first_deploy_of_a_missing_command_fails_at_once_naming_it(
    project: SampleProject,
) -> None:
    project.write("1.0.0", replicas=2)
    edit(project, f'command: ["{sys.executable}", "app.py"', 'command: ["gunicornn", "app.py"')
    began = time.monotonic()
    project.ok("deploy")
    rollout = ended(project, 1)
    took = time.monotonic() - began
    shown_took("missing command: failed", took, rollout)
    assert rollout["phase"] == "failed"
    cause = rollout["cause"]
    assert cause["kind"] == "start_failed"
    assert "command 'gunicornn' not found in PATH" in cause["summary"]
    assert "install it, or give its full path in run.command" in cause["summary"]
    assert cli_cause(project) == cause
    assert took < 30


def test_a_crash_at_import_rolls_back_with_the_traceback_in_the_cause(
    project: SampleProject,
) -> None:
    project.write("1.0.0", replicas=2)
    project.ok("deploy", "--wait")
    project.write("2.0.0", replicas=2)
    (project.root / "broken.py").write_text(
        "import sys\nprint('starting shop 2.0.0', flush=True)\nimport flaskk  # a typo\n"
    )
    edit(project, '"app.py", "--port", "{port}"', '"broken.py", "--port", "{port}"')
    began = time.monotonic()
    project.ok("deploy")
    rollout = ended(project, 2)
    took = time.monotonic() - began
    shown_took("crash at import: rolled back", took, rollout)
    assert rollout["phase"] == "rolled_back"
    cause = rollout["cause"]
    assert cause["kind"] == "start_failed", cause
    assert "exited with code 1" in cause["summary"]
    assert "(exit code 1)" in cause["evidence"][0]
    assert "  ModuleNotFoundError: No module named 'flaskk'" in cause["evidence"]
    assert "  starting shop 2.0.0" in cause["evidence"]
    assert cli_cause(project) == cause
    project.wait_for(lambda s: serving(s, 1, 2), what="revision 1 serving again")


def test_a_wrong_health_path_ends_at_ready_timeout_with_the_404(project: SampleProject) -> None:
    project.write("1.0.0", replicas=2)
    project.ok("deploy", "--wait")
    project.write("2.0.0", replicas=2)
    edit(project, "path: /health/ready,", "path: /health/readyy,")
    ready_timeout(project, "4s")
    began = time.monotonic()
    project.ok("deploy")
    # While it waits, the message says what the probe answers, within seconds.
    waiting = project.wait_for(
        lambda s: (
            s["rollout"] is not None and "GET /health/readyy → 404" in s["rollout"]["message"]
        ),
        timeout=60,
        what="the probe's answer in the rollout's message",
    )
    assert waiting["rollout"]["cause"]["kind"] == "never_ready"
    shown = time.monotonic() - began
    rollout = ended(project, 2)
    took = time.monotonic() - began
    print(f"wrong health path: the 404 shown after {shown:.1f}s, rolled back after {took:.1f}s")
    assert rollout["phase"] == "rolled_back"
    cause = rollout["cause"]
    assert cause["kind"] == "never_ready"
    assert "health.ready_timeout 4s" in cause["summary"]
    assert any("GET /health/readyy → 404" in line for line in cause["evidence"]), cause
    assert cli_cause(project) == cause
    assert cause["summary"] in project.ok("status")
    assert took < 60  # the progress deadline (60s in this spec) did not end it
    project.wait_for(lambda s: serving(s, 1, 2), what="revision 1 serving again")


def test_a_canary_whose_readiness_answers_503_is_rolled_back_at_ready_timeout(
    project: SampleProject,
) -> None:
    project.write("1.0.0", replicas=2, strategy=CANARY, deadline="10m")
    project.ok("deploy", "--wait")
    project.write("2.0.0", replicas=2, strategy=CANARY, deadline="10m",
                  extra_env={"SAMPLE_READY": "false"})  # fmt: skip
    ready_timeout(project, "5s")
    began = time.monotonic()
    project.ok("deploy")
    rollout = ended(project, 2)
    took = time.monotonic() - began
    shown_took("canary answering 503: rolled back", took, rollout)
    assert rollout["phase"] == "rolled_back"
    cause = rollout["cause"]
    assert cause["kind"] == "never_ready"
    assert any("GET /health/ready → 503" in line for line in cause["evidence"]), cause
    assert cli_cause(project) == cause
    assert took < 60
    project.wait_for(lambda s: serving(s, 1, 2), what="revision 1 serving again")


@pytest.mark.parametrize("kind", ["builtin", "haproxy", "nginx"])
def test_a_taken_router_port_fails_the_deploy_naming_what_holds_it(
    project: SampleProject, held_port: tuple[socket.socket, int], kind: str
) -> None:
    _, port = held_port
    project.port = port
    project.write("1.0.0", replicas=1)
    edit(project, "router:\n", f"router:\n  kind: {kind}\n")
    began = time.monotonic()
    project.ok("deploy")
    rollout = ended(project, 1)
    took = time.monotonic() - began
    shown_took(f"router ({kind}) port taken: failed", took, rollout)
    assert rollout["phase"] == "failed"
    cause = rollout["cause"]
    assert cause["kind"] == "port_conflict", cause
    assert cause["summary"] == (
        f"the router cannot listen on 127.0.0.1:{port}: port {port} is taken by pid "
        f"{os.getpid()} ({Path(f'/proc/{os.getpid()}/comm').read_text().strip()})"
    )
    assert any("already in use" in line.lower() for line in cause["evidence"]), cause
    assert cli_cause(project) == cause
    assert cause["summary"] in project.ok("status")
    assert took < 30


def test_an_instance_port_taken_fails_the_deploy_with_address_in_use(
    project: SampleProject, held_port: tuple[socket.socket, int]
) -> None:
    _, taken = held_port
    project.write("1.0.0", replicas=1)
    # The app listens on a fixed port (it ignores {port}), and that port is taken.
    edit(project, '"--port", "{port}"', f'"--port", "{taken}"')
    began = time.monotonic()
    project.ok("deploy")
    rollout = ended(project, 1)
    took = time.monotonic() - began
    shown_took("instance port taken: failed", took, rollout)
    assert rollout["phase"] == "failed"
    cause = rollout["cause"]
    assert cause["kind"] == "port_conflict", cause
    assert "its address is already in use" in cause["summary"]
    assert any("Address already in use" in line for line in cause["evidence"]), cause
    assert cli_cause(project) == cause
    assert took < 30


def test_a_slow_start_shows_what_the_probe_answers_and_leaves_no_cause_once_healthy(
    project: SampleProject,
) -> None:
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait")
    project.write("2.0.0", replicas=1, extra_env={"SAMPLE_START_DELAY": "3"})
    project.ok("deploy")
    waiting = project.wait_for(
        lambda s: s["rollout"] is not None and "connection refused" in s["rollout"]["message"],
        timeout=60,
        what="the probe's answer while the new instance starts",
    )
    assert waiting["rollout"]["cause"]["kind"] == "never_ready"
    rollout = ended(project, 2)
    assert rollout["phase"] == "healthy"
    assert rollout["cause"] is None
