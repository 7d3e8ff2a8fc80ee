"""The ``rollback:`` section: ready-made guards that abort a release, on by default.

Each guard takes a threshold, or ``off`` (also ``false``) to disable it. Rates are written
``5%`` or ``0.05``; ratios to the baseline ``200%`` or ``2.0``; latencies as durations.

Callers: ``spec.models`` (the field), ``spec.reference`` (value kinds for the docs), the
controller (reads the thresholds), ``baepo config show`` (:meth:`RollbackSpec.active_guards`).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

from baepo.spec.base import SpecModel
from baepo.spec.units import MAX_COUNT, MAX_RATIO, Duration, format_duration, parse_duration

_PERCENT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_OFF = "or off"
_OFF_SCHEMA: dict[str, Any] = {"anyOf": [{"enum": ["off", False]}]}


def _is_off(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.strip().lower() == "off")


def _number(value: Any) -> float | None:
    """A finite number from a number or a percentage string, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return float(min(value, 2**53))
    if isinstance(value, str):
        match = _PERCENT_RE.match(value)
        if match:
            return float(match.group(1)) / 100
    return None


def parse_rate(value: Any) -> float | None:
    """``5%`` or ``0.05`` as the fraction 0.05; ``off``/``false`` as None."""
    if _is_off(value):
        return None
    number = _number(value)
    if number is None or not 0 <= number <= 1:
        raise ValueError(f"expected a rate such as 5% or 0.05 (0 to 1), {_OFF}, got {value!r:.40}")
    return number


def parse_margin(value: Any) -> float:
    """``5%`` or ``0.05`` as the share 0.05 (0 to 1); never off (``0%`` is the least)."""
    number = _number(value)
    if number is None or not 0 <= number <= 1:
        raise ValueError(f"expected a share such as 5% or 0.05 (0 to 1), got {value!r:.40}")
    return number


def parse_ratio(value: Any) -> float | None:
    """``200%`` or ``2.0`` as the ratio 2.0 to the baseline; ``off``/``false`` as None."""
    if _is_off(value):
        return None
    number = _number(value)
    if number is None or number <= 0:
        raise ValueError(
            f"expected a ratio such as 200% or 2.0 (above 0), {_OFF}, got {value!r:.40}"
        )
    if number > MAX_RATIO:
        raise ValueError(
            f"a ratio is at most {MAX_RATIO:g} ({MAX_RATIO * 100:g}%), got {value!r:.40}"
        )
    return number


def parse_latency(value: Any) -> float | None:
    """A duration such as ``2s`` in seconds; ``off``/``false`` as None."""
    if _is_off(value):
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(
            f"expected a duration such as 2s or 500ms, {_OFF}, got {value!r}"
        ) from None


def parse_threshold(value: Any) -> int | None:
    """A count of 1 or more; ``off``/``false`` as None."""
    if _is_off(value):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a count of 1 or more, {_OFF}, got {value!r:.40}")
    if value > MAX_COUNT:
        raise ValueError(f"a count must be from 1 to {MAX_COUNT}, got {value!r:.40}")
    return value


def _percent(value: float | None) -> str:
    return "off" if value is None else f"{value * 100:g}%"


def _latency(value: float | None) -> str:
    return "off" if value is None else format_duration(value)


def _threshold(value: int | None) -> int | str:
    return "off" if value is None else value


def _schema(*choices: dict[str, Any]) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [*choices, *_OFF_SCHEMA["anyOf"]]})


_NUMBER_OR_PERCENT = (
    {"type": "number", "minimum": 0},
    {"type": "string", "pattern": r"^\d+(\.\d+)?%$"},
)

Rate = Annotated[
    float | None,
    BeforeValidator(parse_rate),
    PlainSerializer(_percent, return_type=str),
    _schema(*_NUMBER_OR_PERCENT),
]
Ratio = Annotated[
    float | None,
    BeforeValidator(parse_ratio),
    PlainSerializer(_percent, return_type=str),
    _schema(*_NUMBER_OR_PERCENT),
]
Latency = Annotated[
    float | None,
    BeforeValidator(parse_latency),
    PlainSerializer(_latency, return_type=str),
    _schema(
        {"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h)?$"}, {"type": "number", "minimum": 0}
    ),
]
Margin = Annotated[
    float,
    BeforeValidator(parse_margin),
    PlainSerializer(_percent, return_type=str),
    WithJsonSchema({"anyOf": list(_NUMBER_OR_PERCENT)}),
]
Threshold = Annotated[
    int | None,
    BeforeValidator(parse_threshold),
    PlainSerializer(_threshold),
    _schema({"type": "integer", "minimum": 1}),
]

GUARD_KINDS: dict[object, str] = {
    parse_rate: "rate",
    parse_margin: "margin",
    parse_ratio: "ratio",
    parse_latency: "latency",
    parse_threshold: "threshold",
}
"""The value kind of each guard type, by its parser: read by ``spec.reference``."""


class RollbackSpec(SpecModel):
    """Guards that abort the release and roll back when the new revision misbehaves.

    On by default; set a guard to `off` to disable it, or `enabled: false` for all of them.
    Rates and latencies are measured by the router over `window`.
    """

    enabled: bool = Field(default=True, description="`false` turns every guard off.")
    error_rate: Rate = Field(
        default=0.05,
        description="Roll back when the new revision's share of 5xx answers exceeds this "
        "(and, while a stable revision serves too, `error_rate_margin` above its share).",
    )
    error_rate_margin: Margin = Field(
        default=0.05,
        description="While a stable revision serves traffic, the error rate guard also needs "
        "the new revision's share of errors to exceed the stable revision's by more than "
        "this (`5%`: five points), so errors both revisions share (a client calling a path "
        "that fails everywhere) roll nothing back.",
    )
    latency_p95: Latency = Field(
        default=2.0, description="Roll back when the new revision's p95 latency exceeds this."
    )
    latency_vs_baseline: Ratio = Field(
        default=2.0,
        description="Roll back when the new revision's p95 latency exceeds this share of the "
        "stable revision's (`200%`: twice as slow).",
    )
    latency_margin: Duration = Field(
        default=0.02,
        description="The p95 latency guard against the baseline also needs the new revision "
        "to be more than this much slower (so a cold process at 3 ms against 1 ms is not a "
        "fault).",
    )
    failed_health_checks: Threshold = Field(
        default=3,
        description="Roll back when an instance of the new revision fails this many health "
        "checks in a row.",
    )
    crash_loop: bool = Field(
        default=True, description="Roll back when an instance of the new revision crash-loops."
    )
    min_throughput_vs_baseline: Ratio = Field(
        default=None,
        description="Roll back when the new revision's request rate per instance falls below "
        "this share of the stable revision's (e.g. `50%`). Off unless set.",
    )
    window: Duration = Field(
        default=30.0, description="Rates and latencies are measured over this."
    )
    watch: Duration = Field(
        default=120.0, description="How long the guards keep watching after promotion."
    )

    def active_guards(self) -> list[str]:
        """Each guard that is on, in plain words, in declaration order. Pure."""
        if not self.enabled:
            return []
        window = format_duration(self.window)
        guards: list[str] = []
        if self.error_rate is not None:
            points = f"{self.error_rate_margin * 100:g} points"
            guards.append(
                f"error rate above {_percent(self.error_rate)} (and {points} above the "
                f"baseline's) over {window}"
            )
        if self.latency_p95 is not None:
            guards.append(f"p95 latency above {_latency(self.latency_p95)} over {window}")
        if self.latency_vs_baseline is not None:
            ratio = _percent(self.latency_vs_baseline)
            margin = format_duration(self.latency_margin)
            guards.append(
                f"p95 latency above {ratio} of the baseline's (and {margin} more) over {window}"
            )
        if self.failed_health_checks is not None:
            guards.append(f"{self.failed_health_checks} failed health checks in a row")
        if self.crash_loop:
            guards.append("crash loop")
        if self.min_throughput_vs_baseline is not None:
            ratio = _percent(self.min_throughput_vs_baseline)
            guards.append(f"request rate below {ratio} of the baseline's over {window}")
        return guards
