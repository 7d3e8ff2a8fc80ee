"""Value types users write in a spec: durations (``30s``, ``2m``) and counts-or-percentages."""

from __future__ import annotations

import decimal
import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

MAX_DURATION = 366 * 24 * 3600.0
"""The longest duration a spec may hold (366 days, ``8784h``): longer waits, timeouts and
freeze windows are typos, and would overflow the clock arithmetic of a rollout."""

MAX_INSTANCES = 1000
"""The largest count of instances or hosts a spec may name (``replicas`` itself is at most 100)."""

MAX_RATIO = 1000.0
"""The largest ratio to a baseline (``100000%``) a spec may hold."""

MAX_COUNT = 10_000
"""The largest count (retries, limits, measurements) a spec may hold where no tighter bound fits."""


def parse_duration(value: Any) -> float:
    """Parse ``30s``, ``2m``, ``1.5h``, ``250ms`` or a bare number of seconds into seconds,
    from 0 to :data:`MAX_DURATION`."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 2m or 500ms")
    if isinstance(value, int | float):
        if (isinstance(value, float) and not math.isfinite(value)) or value < 0:
            raise ValueError("a duration must be a finite number of seconds, 0 or more")
        return _bounded(float(min(value, MAX_DURATION * 2)), value)
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return _bounded(float(match.group(1)) * _UNIT_SECONDS[match.group(2)], value)
    raise ValueError(f"expected a duration such as 30s, 2m or 500ms, got {_shown(value)}")


def _bounded(seconds: float, written: Any) -> float:
    if seconds > MAX_DURATION:
        raise ValueError(
            f"a duration is at most {format_duration(MAX_DURATION)} (366 days), "
            f"got {_shown(written)}"
        )
    return seconds


def _shown(value: Any) -> str:
    """``value`` for an error message, cut short (a spec may hold a 400-digit number)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def format_duration(seconds: float) -> str:
    """The shortest usual spelling of a duration that parses back to the same value."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    if 0 < seconds < 1:
        millis = f"{round(seconds * 1000)}ms"
        if parse_duration(millis) == seconds:
            return millis
    return f"{decimal.Decimal(repr(float(seconds))):f}s"


DURATION_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h)?$"},
        {"type": "number", "minimum": 0, "maximum": MAX_DURATION},
    ],
    "description": "A duration: 500ms, 30s, 2m, 1h, or a number of seconds; at most 366 days.",
}

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(DURATION_JSON_SCHEMA),
]

_PERCENT_RE = re.compile(r"^(\d{1,3})%$")


def _check_count_or_percent(value: Any) -> int | str:
    if isinstance(value, bool):
        raise ValueError("expected a count (2) or a percentage ('25%')")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a count must be 0 or more, got {value}")
        if value > MAX_INSTANCES:
            raise ValueError(f"a count must be from 0 to {MAX_INSTANCES}, got {_shown(value)}")
        return value
    if isinstance(value, str):
        match = _PERCENT_RE.match(value.strip())
        if match and int(match.group(1)) <= 100:
            return value.strip()
    raise ValueError(
        f"expected a count (2) or a percentage from 0% to 100% ('25%'), got {_shown(value)}"
    )


COUNT_OR_PERCENT_JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": MAX_INSTANCES},
        {"type": "string", "pattern": r"^(100|[1-9]?[0-9])%$"},
    ],
    "description": "A count of instances (2) or a percentage of replicas ('25%').",
}

CountOrPercent = Annotated[
    int | str,
    BeforeValidator(_check_count_or_percent),
    WithJsonSchema(COUNT_OR_PERCENT_JSON_SCHEMA),
]


def resolve_count(value: int | str, total: int, *, round_up: bool) -> int:
    """Turn a count or percentage into a count of instances, as Kubernetes does.

    Surge rounds up, unavailability rounds down (so ``25%`` of 3 replicas is a surge of 1 and
    an unavailability of 0).
    """
    if isinstance(value, int):
        return value
    percent = int(value.rstrip("%"))
    exact = total * percent / 100
    return math.ceil(exact) if round_up else math.floor(exact)
