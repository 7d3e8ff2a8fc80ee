"""Unit tests of spec value types: durations, counts or percentages, and rolling's resolve()."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baepo.errors import ConfigError
from baepo.spec.loader import parse_spec
from baepo.spec.strategies import RollingSpec
from baepo.spec.units import MAX_DURATION, format_duration, parse_duration, resolve_count

BASE = "app: shop\nrun:\n  command: [x]\n"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("2m", 120.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("0s", 0.0),
        ("90", 90.0),
        ("0.25", 0.25),
        (" 3s ", 3.0),
        (10, 10.0),
        (2.5, 2.5),
    ],
)
def test_durations_parse(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad", ["", "soon", "-1s", "1d", "s", "1.s", "1 s s", "1e3s", "inf", True, -1, float("nan")]
)
def test_bad_durations_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.5, "500ms"),
        (0.2, "200ms"),
        (0.0005, "0.0005s"),
        (1e-05, "0.00001s"),
        (1.5, "1.5s"),
        (30.0, "30s"),
        (120.0, "2m"),
        (3600.0, "1h"),
        (90.0, "90s"),
        (1000.001, "1000.001s"),
    ],
)
def test_durations_format_shortly(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=10**7).map(lambda ms: ms / 1000)
    | st.floats(min_value=0, max_value=MAX_DURATION, allow_nan=False)
)
def test_formatted_durations_parse_back(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, rel=1e-12)


def test_durations_in_a_spec() -> None:
    spec = parse_spec(BASE + "health:\n  readiness: {interval: 500ms, timeout: 2}\n")
    assert spec.health.readiness.interval == 0.5
    assert spec.health.readiness.timeout == 2.0
    with pytest.raises(ConfigError) as caught:
        parse_spec(BASE + "progress_deadline: 1.5x\n")
    problem = caught.value.problems[0]
    assert (problem.path, problem.line) == ("progress_deadline", 4)
    assert problem.message == "expected a duration such as 30s, 2m or 500ms, got '1.5x'"


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("25%", "25%"),
        ("0%", "0%"),
        ("100%", "100%"),
        (3, 3),
        (0, 0),
    ],
)
def test_counts_and_percentages(value: Any, accepted: Any) -> None:
    spec = parse_spec(BASE + f"strategy:\n  rolling:\n    max_surge: {value}\n")
    assert spec.strategy.rolling is not None
    assert spec.strategy.rolling.max_surge == accepted


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("101%", "from 0% to 100%"),
        ("-1", "0 or more, got -1"),
        ("'3'", "got '3'"),
        ("-5%", "got '-5%'"),
        ("25 %", "got '25 %'"),
        ("1.5", "got 1.5"),
        ("true", "expected a count"),
        ("[]", "got []"),
    ],
)
def test_bad_counts_and_percentages(value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec(BASE + f"strategy:\n  rolling:\n    max_unavailable: {value}\n")
    problem = caught.value.problems[0]
    assert (problem.path, problem.line) == ("strategy.rolling.max_unavailable", 6)
    assert fragment in problem.message


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "expected"),
    [
        ("25%", "25%", 4, (1, 1)),
        ("25%", "25%", 3, (1, 0)),  # surge rounds up, unavailable rounds down
        ("25%", "25%", 10, (3, 2)),
        ("10%", "10%", 5, (1, 0)),
        ("0%", "0%", 10, (1, 0)),  # both zero: surge becomes 1
        (0, 0, 3, (1, 0)),
        (0, 1, 3, (0, 1)),
        (2, "50%", 5, (2, 2)),
        ("100%", "100%", 4, (4, 4)),
        ("25%", "25%", 0, (1, 0)),
        (5, 5, 2, (5, 5)),  # counts are not clamped to replicas
    ],
)
def test_rolling_resolve(
    surge: int | str, unavailable: int | str, replicas: int, expected: tuple[int, int]
) -> None:
    rolling = RollingSpec(max_surge=surge, max_unavailable=unavailable)
    assert rolling.resolve(replicas) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0, max_value=100),
    st.integers(min_value=0, max_value=100),
    st.integers(min_value=0, max_value=100),
)
def test_rolling_resolve_properties(surge: int, unavailable: int, replicas: int) -> None:
    rolling = RollingSpec(max_surge=f"{surge}%", max_unavailable=f"{unavailable}%")
    got_surge, got_unavailable = rolling.resolve(replicas)
    assert got_surge + got_unavailable >= 1
    assert got_unavailable <= replicas * unavailable / 100
    assert got_surge >= min(replicas * surge / 100, replicas)
    assert resolve_count(f"{surge}%", replicas, round_up=True) <= replicas
