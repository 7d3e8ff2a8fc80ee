"""Unit tests of probe thresholds and the probe loop (with a fake prober, no sockets)."""

from __future__ import annotations

import threading

from baepo.core.ports import ProbeConfig
from baepo.platforms.local.probe import ProbeLoop, ProbeTracker, http_probe


def config(success: int = 1, failure: int = 3) -> ProbeConfig:
    return ProbeConfig("/health", 0.0, 1.0, failure, success, 0.0)


def test_readiness_passes_after_success_threshold() -> None:
    tracker = ProbeTracker(config(success=2), passing=False)
    assert tracker.observe(True) is None
    assert tracker.observe(False) is None
    assert tracker.observe(True) is None
    assert tracker.observe(True) is True
    assert tracker.passing


def test_fails_after_failure_threshold_consecutive_failures() -> None:
    tracker = ProbeTracker(config(failure=3), passing=True)
    assert tracker.observe(False) is None
    assert tracker.observe(False) is None
    assert tracker.observe(True) is None  # resets the failure count
    assert tracker.observe(False) is None
    assert tracker.observe(False) is None
    assert tracker.observe(False) is False
    assert tracker.failures == 3
    assert tracker.observe(False) is None  # already failed: no second report


def test_probe_loop_reports_changes_until_stopped() -> None:
    results = iter([False, True, True, False, False, False] + [False] * 1000)
    changes: list[bool] = []
    stop = threading.Event()
    lock = threading.Lock()

    def prober(host: str, port: int, path: str, timeout: float) -> tuple[bool, str]:
        with lock:
            return next(results), "detail"

    def on_change(passing: bool, detail: str) -> None:
        changes.append(passing)
        if len(changes) == 2:
            stop.set()

    loop = ProbeLoop(
        "readiness",
        config(failure=3),
        ("127.0.0.1", 1),
        initially_passing=False,
        on_change=on_change,
        stop=stop,
        prober=prober,
    )
    loop.start()
    loop.join(timeout=10)
    assert not loop.is_alive()
    assert changes == [True, False]


def test_http_probe_on_a_closed_port_fails_with_a_reason() -> None:
    ok, detail = http_probe("127.0.0.1", 1, "/health", 1.0)
    assert not ok
    assert detail == "GET /health: connection refused (nothing listens on the port)"


def test_probe_loop_can_report_every_failure_while_not_passing() -> None:
    reports: list[tuple[bool, str]] = []
    stop = threading.Event()
    details = iter(["refused", "HTTP 503", "HTTP 200"])

    def prober(host: str, port: int, path: str, timeout: float) -> tuple[bool, str]:
        detail = next(details, "HTTP 200")
        return detail == "HTTP 200", detail

    def on_change(passing: bool, detail: str) -> None:
        reports.append((passing, detail))
        if passing:
            stop.set()

    loop = ProbeLoop(
        "readiness",
        config(),
        ("127.0.0.1", 1),
        initially_passing=False,
        on_change=on_change,
        stop=stop,
        prober=prober,
        report_failures=True,
    )
    loop.start()
    loop.join(timeout=10)
    assert reports == [(False, "refused"), (False, "HTTP 503"), (True, "HTTP 200")]
