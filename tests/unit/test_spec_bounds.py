"""Whatever `validate` accepts must deploy: numbers, durations, schedules and listeners that
would break a rollout later are located spec errors naming the key and the allowed range."""

from __future__ import annotations

import pytest

from baepo.errors import ConfigError
from baepo.spec.listeners import clash
from baepo.spec.loader import parse_spec

BASE = 'app: shop\nrun: {command: ["x"]}\n'
DIGITS = "9" * 400


def problems(extra: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_spec(BASE + extra, source="baepo.yaml")
    return [problem.render() for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            'freeze: [{reason: r, schedule: "0 18 * * 5", duration: 99999999999h}]\n',
            "baepo.yaml:3: freeze[0].duration: a duration is at most 8784h (366 days), "
            "got '99999999999h'",
        ),
        (
            f'progress_deadline: "{DIGITS}s"\n',
            "baepo.yaml:3: progress_deadline: a duration is at most 8784h (366 days), got '999",
        ),
        (
            f"progress_deadline: {DIGITS}\n",
            "baepo.yaml:3: progress_deadline: a duration is at most 8784h (366 days), got 999",
        ),
        ("health: {readiness: {interval: 1e308}}\n", "health.readiness.interval: a duration is"),
        (f"logs: {{max_bytes: {DIGITS}}}\n", "logs.max_bytes: must be from 1024 to 1099511627776"),
        (f"logs: {{backups: {DIGITS}}}\n", "logs.backups: must be from 0 to 100, got 999"),
        (f"replicas: {DIGITS}\n", "replicas: must be from 0 to 100, got 999"),
        (
            f"strategy: {{rolling: {{max_surge: {DIGITS}}}}}\n",
            "strategy.rolling.max_surge: a count must be from 0 to 1000, got 999",
        ),
        (
            f"health: {{readiness: {{failure_threshold: {DIGITS}}}}}\n",
            "health.readiness.failure_threshold: must be from 1 to 100",
        ),
        (
            f"rollback: {{failed_health_checks: {DIGITS}}}\n",
            "rollback.failed_health_checks: a count must be from 1 to 10000, got 999",
        ),
        (
            f"rollback: {{latency_vs_baseline: {DIGITS}}}\n",
            "rollback.latency_vs_baseline: a ratio is at most 1000 (100000%), got 999",
        ),
        (
            f"checks: {{before: [{{name: c, command: [x], retries: {DIGITS}}}]}}\n",
            "checks.before[0].retries: must be from 0 to 100",
        ),
        (
            'checks: {before: [{name: c, http: {url: "http://x", expect_status: [2000]}}]}\n',
            "checks.before[0].http.expect_status[0]: must be 599 or less, got 2000",
        ),
        (
            f"restart: {{crash_loop_restarts: {DIGITS}}}\n",
            "restart.crash_loop_restarts: must be from 1 to 1000",
        ),
    ],
)
def test_numbers_and_durations_are_bounded(extra: str, expected: str) -> None:
    found = problems(extra)
    assert any(expected in problem for problem in found), found


def test_a_duration_of_a_year_is_accepted() -> None:
    spec = parse_spec(BASE + "progress_deadline: 8784h\n")
    assert spec.progress_deadline == 366 * 24 * 3600


@pytest.mark.parametrize("schedule", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 11 *"])
def test_a_freeze_schedule_that_never_fires_is_refused(schedule: str) -> None:
    found = problems(f'freeze: [{{reason: r, schedule: "{schedule}", duration: 1h}}]\n')
    assert found == [
        f"baepo.yaml:3: freeze[0].schedule: {schedule!r} never fires (no such date, e.g. "
        "30 February); check the day and month fields"
    ]


def test_a_freeze_on_29_february_fires_every_leap_year() -> None:
    spec = parse_spec(BASE + 'freeze: [{reason: r, schedule: "0 0 29 2 *", duration: 1h}]\n')
    assert spec.freeze[0].schedule == "0 0 29 2 *"


@pytest.mark.parametrize(
    ("router", "preview", "expected"),
    [
        (
            'listen: "127.0.0.1:8080"',
            '"127.0.0.1:8080"',
            "baepo.yaml:4: strategy.blue_green.preview_listen: preview_listen must differ from "
            "listen (router.listen: 127.0.0.1:8080)",
        ),
        (
            'listen: "0.0.0.0:8080"',
            '"127.0.0.1:8080"',
            "strategy.blue_green.preview_listen: preview_listen must differ from listen",
        ),
        (
            'listen: "127.0.0.1:8080", metrics_listen: "127.0.0.1:9464"',
            '"[::]:9464"',
            "strategy.blue_green.preview_listen: preview_listen must differ from metrics_listen "
            "(router.metrics_listen: 127.0.0.1:9464)",
        ),
        (
            'listen: "localhost:8080"',
            '"127.0.0.1:8080"',
            "strategy.blue_green.preview_listen: preview_listen must differ from listen",
        ),
    ],
)
def test_clashing_listeners_are_refused(router: str, preview: str, expected: str) -> None:
    found = problems(
        f"router: {{{router}}}\nstrategy: {{blue_green: {{preview_listen: {preview}}}}}\n"
    )
    assert any(expected in problem for problem in found), found


def test_the_metrics_listener_may_not_share_the_app_port_on_a_wildcard() -> None:
    found = problems('router: {listen: "127.0.0.1:8080", metrics_listen: "0.0.0.0:8080"}\n')
    assert any("router.metrics_listen: metrics_listen must differ from listen" in p for p in found)


def test_a_clash_made_by_an_overlay_points_into_the_overlay() -> None:
    found = problems(
        'strategy: {blue_green: {preview_listen: "127.0.0.1:8081"}}\n'
        'environments: {production: {router: {listen: "0.0.0.0:8081"}}}\n'
    )
    assert found == [
        "baepo.yaml:4: environments.production.router.listen: listen must differ from "
        "preview_listen (strategy.blue_green.preview_listen: 127.0.0.1:8081): both would listen "
        "on port 8081 of the same address; give it another port"
    ]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("127.0.0.1:8080", "127.0.0.1:8081", False),
        ("127.0.0.1:8080", "127.0.0.2:8080", False),
        ("127.0.0.1:8080", "[::1]:8080", False),
        ("0.0.0.0:8080", "10.0.0.1:8080", True),
        ("[::]:8080", "127.0.0.1:8080", True),
        ("LOCALHOST:8080", "[::1]:8080", True),
        ("example.com:8080", "Example.COM:8080", True),
    ],
)
def test_clash(first: str, second: str, expected: bool) -> None:
    assert clash(first, second) is expected
    assert clash(second, first) is expected
