"""The local platform when things go wrong: crash loops, missing programs, failing liveness,
a supervisor killed from outside, a supervisor that cannot start. Real processes."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

import pytest
from test_local_platform import (
    APP,
    ENV,
    group_pids,
    platform,
    run,
    sample_spec,
    wait_instance,
)

from baepo.core.model import InstancePhase
from baepo.core.ports import ProbeConfig
from baepo.errors import ExternalError
from baepo.platforms.local.platform import LocalPlatform
from baepo.shell import process
from baepo.shell.process import pid_alive

__all__ = ["platform"]  # the fixture, shared


def started_times(lines: list[str]) -> list[datetime]:
    """When the supervisor started the app, from ``read_logs`` lines."""
    return [
        datetime.fromisoformat(line.split()[1].replace("Z", "+00:00"))
        for line in lines
        if "[baepo] started" in line
    ]


def test_crash_on_start_restarts_with_backoff_then_fails(platform: LocalPlatform) -> None:
    spec = sample_spec(
        env_vars={"SAMPLE_CRASH_ON_START": "true"}, backoff_initial=0.2, backoff_max=5.0
    )

    async def scenario() -> None:
        instance = await platform.start_instance(spec)
        failed = await wait_instance(
            platform, instance.id, lambda i: i.phase is InstancePhase.FAILED
        )
        assert failed.message == "exited with code 3, 3 restarts in 60s"
        assert failed.restarts == 3
        assert failed.exit_code == 3
        assert failed.output and "crashing on start" in failed.output[-1]
        assert failed.ready_after is None
        assert not failed.ready
        assert failed.pid is None
        lines = platform.read_logs(APP, ENV)
        starts = started_times(lines)
        assert len(starts) == 4
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
        for gap, backoff in zip(gaps, [0.2, 0.4, 0.8], strict=True):
            assert gap >= backoff - 0.01
        assert sum("crashing on start" in line for line in lines) == 4
        assert any("giving up: exited with code 3" in line for line in lines)
        # Still listed as failed while its supervisor has exited, until stopped.
        [listed] = await platform.list_instances(APP, ENV)
        assert listed.phase is InstancePhase.FAILED
        await platform.stop_instance(instance.id)
        assert await platform.list_instances(APP, ENV) == []

    run(scenario())


def test_program_not_found_fails_with_a_clear_message(platform: LocalPlatform) -> None:
    async def scenario() -> None:
        instance = await platform.start_instance(
            sample_spec(command=["no-such-program-baepo", "--port", "{port}"])
        )
        failed = await wait_instance(
            platform, instance.id, lambda i: i.phase is InstancePhase.FAILED
        )
        assert failed.message == (
            "command 'no-such-program-baepo' not found in PATH: install it, or give its full "
            "path in run.command"
        )
        assert any("[baepo] PATH is /" in line for line in platform.read_logs(APP, ENV))
        assert failed.restarts == 0
        await platform.stop_instance(instance.id)
        assert await platform.list_instances(APP, ENV) == []

    run(scenario())


def test_missing_working_directory_fails_with_a_clear_message(
    platform: LocalPlatform, tmp_path: Path
) -> None:
    async def scenario() -> None:
        instance = await platform.start_instance(sample_spec(cwd=str(tmp_path / "gone")))
        failed = await wait_instance(
            platform, instance.id, lambda i: i.phase is InstancePhase.FAILED
        )
        assert "working directory" in failed.message
        assert str(tmp_path / "gone") in failed.message

    run(scenario())


def test_liveness_failure_restarts_the_app(platform: LocalPlatform) -> None:
    spec = sample_spec(
        env_vars={"SAMPLE_HEALTH_FAIL_AFTER": "0.5"},
        liveness=ProbeConfig("/health", 0.1, 1.0, 2, 1, 1.0),
        crash_loop_restarts=50,
        stop_grace_period=2.0,
    )

    async def scenario() -> None:
        instance = await platform.start_instance(spec)
        first = await wait_instance(platform, instance.id, lambda i: i.pid is not None)
        again = await wait_instance(
            platform, instance.id, lambda i: i.restarts >= 1 and i.pid not in (None, first.pid)
        )
        assert again.phase is InstancePhase.RUNNING
        assert first.pid is not None
        assert group_pids(first.pid) == []
        lines = platform.read_logs(APP, ENV)
        assert any("liveness probe failed: GET /health → 500" in line for line in lines)
        assert any("stopped (drained)" in line for line in lines)  # SIGTERM first

    run(scenario())


def test_a_killed_supervisor_is_reported_and_its_app_not_left_behind(
    platform: LocalPlatform,
) -> None:
    async def scenario() -> None:
        instance = await platform.start_instance(sample_spec())
        ready = await wait_instance(platform, instance.id, lambda i: i.ready)
        directory = platform.instances_root / f"{APP}.{ENV}" / instance.id
        supervisor = json.loads((directory / "state.json").read_text())["supervisor_pid"]
        os.kill(supervisor, signal.SIGKILL)
        failed = await wait_instance(
            platform, instance.id, lambda i: i.phase is InstancePhase.FAILED
        )
        assert f"supervisor (pid {supervisor}) is gone" in failed.message
        assert not failed.ready
        assert ready.pid is not None
        for _ in range(100):
            if not group_pids(ready.pid):
                break
            await asyncio.sleep(0.05)
        assert group_pids(ready.pid) == []
        await platform.stop_instance(instance.id)
        assert await platform.list_instances(APP, ENV) == []
        assert not pid_alive(supervisor)

    run(scenario())


def test_a_supervisor_that_cannot_start_is_an_external_error(
    platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        process, "python_module_argv", lambda module, *args: ["/no/such/python", *args]
    )

    async def scenario() -> None:
        with pytest.raises(ExternalError, match="cannot start '/no/such/python'"):
            await platform.start_instance(sample_spec())
        assert await platform.list_instances(APP, ENV) == []

    run(scenario())


def test_sigterm_to_the_supervisor_alone_stops_cleanly(platform: LocalPlatform) -> None:
    """What an operator's ``kill`` does: the app drains, state says stopped, nothing is left."""

    async def scenario() -> None:
        instance = await platform.start_instance(sample_spec())
        ready = await wait_instance(platform, instance.id, lambda i: i.ready)
        directory = platform.instances_root / f"{APP}.{ENV}" / instance.id
        supervisor = json.loads((directory / "state.json").read_text())["supervisor_pid"]
        os.kill(supervisor, signal.SIGTERM)
        for _ in range(200):
            process.reap_children()
            if not pid_alive(supervisor):
                break
            await asyncio.sleep(0.05)
        assert not pid_alive(supervisor)
        assert ready.pid is not None
        assert group_pids(ready.pid) == []
        assert await platform.list_instances(APP, ENV) == []  # stopped: archived
        assert any("[baepo] stopped" in line for line in platform.read_logs(APP, ENV))

    run(scenario())


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))


def test_the_output_tail_of_a_failed_start_blanks_the_instance_secrets(
    platform: LocalPlatform,
) -> None:
    program = (
        "import os, sys; print('connecting with', os.environ['API_KEY']); "
        "print('\\x1b[31mboom\\x1b[0m'); sys.exit(4)"
    )
    spec = sample_spec(
        command=[sys.executable, "-c", program], secret_env={"API_KEY": "s3cr3t-v4lue"}
    )

    async def scenario() -> None:
        instance = await platform.start_instance(spec)
        failed = await wait_instance(
            platform, instance.id, lambda i: i.phase is InstancePhase.FAILED
        )
        assert failed.exit_code == 4
        assert failed.output[-2:] == ("connecting with ***", "boom")
        state = platform.instances_root / f"{APP}.{ENV}" / instance.id / "state.json"
        assert "s3cr3t-v4lue" not in state.read_text()

    run(scenario())


def test_the_time_to_ready_is_reported(platform: LocalPlatform) -> None:
    spec = sample_spec(env_vars={"SAMPLE_START_DELAY": "0.5"})

    async def scenario() -> None:
        instance = await platform.start_instance(spec)
        ready = await wait_instance(platform, instance.id, lambda i: i.ready)
        assert ready.ready_after is not None and 0.5 <= ready.ready_after < 30

    run(scenario())
