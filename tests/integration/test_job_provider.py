"""The ``job`` provider and ``shell.process.run_command`` with real commands.

Exit codes, output, placeholders, environment, working folder, timeouts that kill every
process the command started, programs that cannot start, and the conditions users write.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from baepo.analysis.measure import MeasureContext, Measured, MeasurementError
from baepo.errors import ExternalError
from baepo.expressions.conditions import compile_condition
from baepo.providers.job import OUTPUT_CHARS, JobProvider
from baepo.shell import process
from baepo.spec.analysis import MetricSpec


def context(spec_dir: Path, *, baseline: int | None = 6) -> MeasureContext:
    return MeasureContext(
        app="shop",
        env="prod",
        revision=7,
        baseline=baseline,
        window=30.0,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        args={"region": "eu-1"},
        spec_dir=str(spec_dir),
    )


def metric(command: list[str], timeout: str = "30s") -> MetricSpec:
    return MetricSpec.model_validate(
        {
            "name": "smoke",
            "provider": "job",
            "job": {"command": command, "timeout": timeout},
            "success_condition": "result == 0",
        }
    )


def measure(command: list[str], spec_dir: Path, **options: Any) -> Measured:
    return asyncio.run(JobProvider().measure(metric(command, **options), context(spec_dir)))


def failure(command: list[str], spec_dir: Path, **options: Any) -> MeasurementError:
    with pytest.raises(MeasurementError) as caught:
        measure(command, spec_dir, **options)
    return caught.value


def wait_dead(pid: int, deadline: float = 10.0) -> bool:
    """True once ``pid`` is gone (or a zombie), polling for at most ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if not process.pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def read_pid(path: Path, deadline: float = 10.0) -> int:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


def test_exit_code_is_the_result(tmp_path: Path) -> None:
    measured = measure(["sh", "-c", "exit 3"], tmp_path)
    assert measured.value == 3
    assert measured.variables == {"exit_code": 3, "passed": False}
    assert measured.output == ""


def test_success(tmp_path: Path) -> None:
    measured = measure(["echo", "all", "good"], tmp_path)
    assert measured.value == 0
    assert measured.variables == {"exit_code": 0, "passed": True}
    assert measured.output == "all good\n"


def test_conditions_users_write(tmp_path: Path) -> None:
    for command, passes in ((["true"], True), (["sh", "-c", "exit 1"], False)):
        measured = measure(command, tmp_path)
        variables = {"result": measured.value, **measured.variables}
        assert compile_condition("result == 0").evaluate(variables) is passes
        assert compile_condition("passed").evaluate(variables) is passes
        assert compile_condition("exit_code != 0").evaluate(variables) is not passes


def test_stdout_and_stderr_interleaved(tmp_path: Path) -> None:
    script = "echo one; echo two >&2; echo three; echo four >&2; exit 1"
    measured = measure(["sh", "-c", script], tmp_path)
    assert measured.output == "one\ntwo\nthree\nfour\n"
    assert measured.value == 1


def test_output_keeps_its_end(tmp_path: Path) -> None:
    code = "print('x' * 10000); print('the end')"
    measured = measure([sys.executable, "-c", code], tmp_path)
    assert len(measured.output) == OUTPUT_CHARS
    assert measured.output.endswith("x\nthe end\n")


def test_output_that_is_not_utf8(tmp_path: Path) -> None:
    measured = measure(["printf", "caf\\351 ok"], tmp_path)
    assert measured.output == "caf\ufffd ok"


def test_placeholders_are_rendered(tmp_path: Path) -> None:
    command = [
        "printf",
        "%s|",
        "{{app}}",
        "{{env}}",
        "r{{revision}}",
        "{{baseline}}",
        "{{ args.region }}",
    ]
    measured = measure(command, tmp_path)
    assert measured.output == "shop|prod|r7|6|eu-1|"


def test_unknown_placeholder(tmp_path: Path) -> None:
    error = failure(["echo", "{{nope}}"], tmp_path)
    assert "unknown placeholder {{nope}}" in error.message


def test_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job sees what it measures and the server's PATH, never the server's other variables."""
    monkeypatch.setenv("BAEPO_TEST_SERVER_ONLY", "server-only")
    script = 'printf "%s|" "$BAEPO_APP" "$BAEPO_ENV" "$BAEPO_REVISION" "$BAEPO_BASELINE" '
    script += '"$BAEPO_TEST_SERVER_ONLY" "${PATH:+path}"'
    assert measure(["sh", "-c", script], tmp_path).output == "shop|prod|7|6||path|"
    without = asyncio.run(
        JobProvider().measure(metric(["sh", "-c", script]), context(tmp_path, baseline=None))
    )
    assert without.output == "shop|prod|7|||path|"


def test_runs_in_the_spec_folder(tmp_path: Path) -> None:
    spec_dir = tmp_path / "my app"
    spec_dir.mkdir()
    (spec_dir / "check.sh").write_text('#!/bin/sh\necho "checked $1"\nexit 4\n')
    (spec_dir / "check.sh").chmod(0o755)
    assert measure(["pwd"], spec_dir).output.strip() == str(spec_dir.resolve())
    measured = measure(["./check.sh", "{{revision}}"], spec_dir)
    assert (measured.value, measured.output) == (4, "checked 7\n")


def test_missing_spec_folder(tmp_path: Path) -> None:
    error = failure(["echo", "hi"], tmp_path / "gone")
    assert "cannot run 'echo'" in error.message
    assert "does not exist" in error.message


def test_missing_program(tmp_path: Path) -> None:
    error = failure(["baepo-no-such-program", "--flag"], tmp_path)
    assert error.message == "cannot start 'baepo-no-such-program': No such file or directory"


def test_program_not_executable(tmp_path: Path) -> None:
    (tmp_path / "check.sh").write_text("#!/bin/sh\nexit 0\n")
    error = failure(["./check.sh"], tmp_path)
    assert error.message == "cannot start './check.sh': Permission denied"


def test_timeout_kills_the_command_and_its_children(tmp_path: Path) -> None:
    script = "sleep 30 & echo $! > child.pid; echo started; sleep 30"
    started = time.monotonic()
    error = failure(["sh", "-c", script], tmp_path, timeout="300ms")
    assert time.monotonic() - started < 20
    assert error.message.startswith("'sh' timed out after 300ms and was killed")
    assert "last output: 'started'" in error.message
    assert wait_dead(read_pid(tmp_path / "child.pid"))


def test_background_processes_left_behind_are_killed(tmp_path: Path) -> None:
    script = "sleep 30 & echo $! > child.pid; echo done"
    started = time.monotonic()
    measured = measure(["sh", "-c", script], tmp_path)
    assert time.monotonic() - started < 20  # did not wait for the sleep holding the pipe
    assert (measured.value, measured.output) == (0, "done\n")
    assert wait_dead(read_pid(tmp_path / "child.pid"))


def test_ended_by_a_signal(tmp_path: Path) -> None:
    measured = measure(["sh", "-c", "kill -TERM $$"], tmp_path)
    assert measured.value == -15
    assert measured.variables["passed"] is False


def test_run_command_keeps_the_last_bytes(tmp_path: Path) -> None:
    code = "import sys; sys.stdout.write('a' * 300000 + 'b' * 10)"
    done = asyncio.run(
        process.run_command(
            [sys.executable, "-c", code], cwd=tmp_path, timeout=30, output_limit=100
        )
    )
    assert done == process.CommandResult(exit_code=0, output="a" * 90 + "b" * 10, timed_out=False)


def test_run_command_env_replaces_the_environment(tmp_path: Path) -> None:
    done = asyncio.run(
        process.run_command(
            ["/bin/sh", "-c", 'printf "%s" "$ONLY"'], env={"ONLY": "this"}, timeout=30
        )
    )
    assert done.output == "this"


def test_run_command_cannot_start(tmp_path: Path) -> None:
    with pytest.raises(ExternalError, match="cannot start 'baepo-missing'"):
        asyncio.run(process.run_command(["baepo-missing"], timeout=5))


def test_cancelling_run_command_kills_the_group(tmp_path: Path) -> None:
    script = "sleep 30 & echo $! > child.pid; sleep 30"

    async def cancelled() -> None:
        run = process.run_command(["sh", "-c", script], cwd=tmp_path, timeout=60)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(run, 0.5)

    started = time.monotonic()
    asyncio.run(cancelled())
    assert time.monotonic() - started < 20
    assert wait_dead(read_pid(tmp_path / "child.pid"))


def test_environment_is_not_changed_for_this_process(tmp_path: Path) -> None:
    measure(["true"], tmp_path)
    assert "BAEPO_REVISION" not in os.environ
