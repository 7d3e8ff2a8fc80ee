"""Unit tests of the supervisor's restart policy: backoff, crash-loop window, argv and env."""

from __future__ import annotations

import pytest

from baepo.platforms.local import restarts


def test_backoff_doubles_from_initial_and_caps_at_max() -> None:
    delays = [restarts.backoff_delay(n, 0.2, 1.0) for n in range(1, 7)]
    assert delays == [0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


def test_backoff_never_overflows() -> None:
    assert restarts.backoff_delay(10_000, 0.2, 10.0) == 10.0


def test_backoff_initial_above_max_is_capped() -> None:
    assert restarts.backoff_delay(1, 5.0, 2.0) == 2.0


def test_crash_loop_counts_restarts_within_the_window() -> None:
    loop = restarts.CrashLoop(limit=3, window=60.0)
    for now in (0.0, 10.0, 20.0):
        assert not loop.exceeded(now)
        loop.record(now)
    assert loop.exceeded(30.0)
    assert loop.count(30.0) == 3


def test_crash_loop_forgets_restarts_older_than_the_window() -> None:
    loop = restarts.CrashLoop(limit=3, window=60.0)
    for now in (0.0, 10.0, 20.0):
        loop.record(now)
    assert loop.count(65.0) == 2
    assert not loop.exceeded(65.0)
    assert loop.count(200.0) == 0


@pytest.mark.parametrize(
    ("returncode", "text"),
    [(3, "exited with code 3"), (0, "exited with code 0"), (-9, "killed by SIGKILL")],
)
def test_describe_exit(returncode: int, text: str) -> None:
    assert restarts.describe_exit(returncode) == text


def test_crash_loop_message_names_the_exit_and_the_window() -> None:
    assert restarts.crash_loop_message(3, 3, 60.0) == "exited with code 3, 3 restarts in 60s"
    assert restarts.crash_loop_message(-15, 2, 0.5) == "killed by SIGTERM, 2 restarts in 0.5s"


def test_substitute_port_in_every_argument_only_that_placeholder() -> None:
    argv = ["app", "--port", "{port}", "--bind=127.0.0.1:{port}", "{other}", "{{port}}"]
    assert restarts.substitute_port(argv, 8123) == [
        "app",
        "--port",
        "8123",
        "--bind=127.0.0.1:8123",
        "{other}",
        "{8123}",
    ]


def test_app_environment_layers() -> None:
    env = restarts.app_environment(
        {"PATH": "/bin", "PORT": "1", "KEEP": "x"},
        {"LOG_LEVEL": "debug", "PYTHONUNBUFFERED": "0"},
        8123,
        {"BAEPO_INSTANCE": "r1-abcdef"},
    )
    assert env == {
        "PATH": "/bin",
        "PORT": "8123",
        "KEEP": "x",
        "LOG_LEVEL": "debug",
        "PYTHONUNBUFFERED": "0",
        "BAEPO_INSTANCE": "r1-abcdef",
    }


def test_spec_variables_win_over_port() -> None:
    env = restarts.app_environment({}, {"PORT": "9999"}, 8123, {})
    assert env["PORT"] == "9999"
