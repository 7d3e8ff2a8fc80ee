"""Verdict rules: one measurement, a metric's limits (table-driven), a run's verdict."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from baepo.analysis.measure import Measured
from baepo.analysis.verdict import (
    Tally,
    assess,
    ended_phase,
    metric_phase,
    metric_reason,
    run_phase,
)
from baepo.core.model import AnalysisPhase, Measurement
from baepo.expressions.conditions import compile_condition
from baepo.spec.analysis import MetricSpec

S, F, INC, E, R = (
    AnalysisPhase.SUCCESSFUL,
    AnalysisPhase.FAILED,
    AnalysisPhase.INCONCLUSIVE,
    AnalysisPhase.ERROR,
    AnalysisPhase.RUNNING,
)
CODES = {"s": S, "f": F, "i": INC, "e": E}


def metric(**fields: object) -> MetricSpec:
    base: dict[str, object] = {
        "name": "m",
        "query": "error_rate",
        "success_condition": "result < 1",
    }
    return MetricSpec.model_validate(base | fields)


def measurements(codes: str) -> list[Measurement]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        Measurement(run_id=1, template="t", metric="m", phase=CODES[c], value=None,
                    message=f"msg-{c}", at=at)
        for c in codes
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("success", "failure", "value", "expected"),
    [
        ("result < 0.05", None, 0.01, S),
        ("result < 0.05", None, 0.31, F),
        (None, "result > 0.05", 0.31, F),
        (None, "result > 0.05", 0.01, S),
        ("result < 0.01", "result > 0.05", 0.03, INC),
        ("result < 0.01", "result > 0.05", 0.001, S),
        ("result < 0.01", "result > 0.05", 0.5, F),
        ("result[0] >= 0.95", None, [], E),
        ("result < 0.05", None, None, E),
        ("canary.p95 <= baseline.p95 * 1.2", None, 0, S),
    ],
)
def test_one_measurement(
    success: str | None, failure: str | None, value: object, expected: AnalysisPhase
) -> None:
    measured = Measured(value=value, variables={"canary": {"p95": 0.1}, "baseline": {"p95": 0.1}})
    s = compile_condition(success) if success else None
    f = compile_condition(failure) if failure else None
    phase, message = assess(s, f, measured)
    assert phase == expected, message


def test_failed_measurement_shows_values() -> None:
    phase, message = assess(None, compile_condition("result > 0.05"), Measured(value=0.31))
    assert (phase, message) == (F, "0.31 > 0.05")


@pytest.mark.parametrize(
    ("limits", "count", "codes", "expected"),
    [
        # failure_limit: fails when the failed count exceeds it
        ({"failure_limit": 0}, 3, "f", F),
        ({"failure_limit": 0}, 3, "ss", R),
        ({"failure_limit": 1}, 3, "f", R),
        ({"failure_limit": 1}, 3, "fs", R),
        ({"failure_limit": 1}, 3, "fsf", F),
        ({"failure_limit": 1}, 3, "fss", S),
        ({"failure_limit": 3}, 10, "fff", R),
        ({"failure_limit": 3}, 10, "ffff", F),
        # inconclusive_limit
        ({"inconclusive_limit": 0}, 3, "i", INC),
        ({"inconclusive_limit": 1}, 3, "is", R),
        ({"inconclusive_limit": 1}, 3, "isi", INC),
        ({"inconclusive_limit": 1}, 3, "iss", S),
        # consecutive_error_limit: errors in a row, and errors never count toward count
        ({"consecutive_error_limit": 0}, 3, "e", E),
        ({"consecutive_error_limit": 2}, 3, "ee", R),
        ({"consecutive_error_limit": 2}, 3, "eee", E),
        ({"consecutive_error_limit": 2}, 3, "eesee", R),
        ({"consecutive_error_limit": 2}, 1, "ees", S),
        ({"consecutive_error_limit": 4}, 1, "eeee", R),
        ({"consecutive_error_limit": 4}, 1, "eeeee", E),
        # failed wins over inconclusive and errors
        ({"failure_limit": 0, "inconclusive_limit": 0}, 3, "if", F),
        # no count: runs until ended
        ({}, None, "ssssssss", R),
        ({}, None, "sf", F),
    ],
)
def test_metric_limits(
    limits: dict[str, int], count: int | None, codes: str, expected: AnalysisPhase
) -> None:
    assert metric_phase(metric(**limits), Tally.of(measurements(codes)), count) == expected


@pytest.mark.parametrize(
    ("codes", "expected"),
    [("", INC), ("eee", INC), ("s", S), ("ses", S), ("sf", F), ("i", INC)],
)
def test_ended_metric(codes: str, expected: AnalysisPhase) -> None:
    assert ended_phase(metric(), Tally.of(measurements(codes))) == expected


C = AnalysisPhase.CANCELLED


@pytest.mark.parametrize(
    ("codes", "cancelled", "expected"),
    [
        # Failures within failure_limit and no pass: not a pass (it was recorded successful).
        ("f", False, INC),
        ("fe", False, INC),
        ("fs", False, S),
        # Ended by something else: cancelled, unless a limit was already exceeded.
        ("f", True, C),
        ("ss", True, C),
        ("", True, C),
        ("ff", True, F),
    ],
)
def test_ended_metric_agrees_with_its_measurements(
    codes: str, cancelled: bool, expected: AnalysisPhase
) -> None:
    tally = Tally.of(measurements(codes))
    assert ended_phase(metric(failure_limit=1), tally, cancelled=cancelled) == expected


@pytest.mark.parametrize(
    ("phases", "dry", "expected"),
    [
        ({"a": S, "b": S}, (), S),
        ({"a": S, "b": R}, (), R),
        ({"a": INC, "b": E}, (), E),
        ({"a": E, "b": F}, (), F),
        ({"a": INC, "b": S}, (), INC),
        ({"a": F, "b": S}, ("a",), S),
        ({"a": F, "b": R}, ("a",), R),
        ({"a": R}, ("a",), R),
        ({"a": S}, ("a",), S),
        ({"a": S, "b": C}, (), C),
        ({"a": F, "b": C}, (), F),
        ({"a": C, "b": R}, (), C),
    ],
)
def test_run_phase(
    phases: dict[str, AnalysisPhase], dry: tuple[str, ...], expected: AnalysisPhase
) -> None:
    assert run_phase(phases, dry) == expected


def test_reasons_are_plain_words() -> None:
    spec = metric(failure_limit=1)
    failed = measurements("fsf")
    reason = metric_reason("error_rate", spec, failed, F, 3)
    assert reason == "error_rate: msg-f on 2 of 3 measurements; failure_limit 1 exceeded"
    errored = metric_reason("latency", metric(consecutive_error_limit=1), measurements("see"), E, 3)
    assert "2 measurements in a row could not be taken (last: msg-e)" in errored
    assert "consecutive_error_limit 1 exceeded" in errored
    passed = metric_reason("error_rate", spec, measurements("sfs"), S, 3)
    assert passed.startswith("error_rate: passed 2 of 3 measurements; 1 failed, within")
    running = metric_reason("error_rate", spec, measurements("s"), R, 3)
    assert running.startswith("error_rate: 1/3 measurements so far")
