"""Freeze windows: validation of ``spec.freeze`` (with the key path of each problem) and
``controller.freeze.active_freeze`` across midnight, weekends, time zones and date ranges."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from baepo.controller.freeze import active_freeze
from baepo.errors import ConfigError
from baepo.spec.loader import parse_spec
from baepo.spec.policy import FreezeWindow

BASE: dict[str, Any] = {"app": "shop", "run": {"command": ["python", "app.py"]}}

INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("four cron fields", {"schedule": "0 18 * 5", "duration": "1h"}, "schedule", "5 fields"),
    ("six cron fields", {"schedule": "0 0 18 * * 5", "duration": "1h"}, "schedule", "5 fields"),
    ("minute out of range", {"schedule": "61 18 * * 5", "duration": "1h"}, "schedule", "cron"),
    ("nickname", {"schedule": "@daily", "duration": "1h"}, "schedule", "5 fields"),
    (
        "unknown zone",
        {"schedule": "0 18 * * 5", "duration": "1h", "timezone": "Mars/Olympus"},
        "timezone",
        "IANA",
    ),
    ("schedule alone", {"schedule": "0 18 * * 5"}, "", "duration"),
    ("zero duration", {"schedule": "0 18 * * 5", "duration": 0}, "", "duration"),
    ("duration alone", {"duration": "1h"}, "", "schedule"),
    ("start alone", {"start": "2026-12-20T00:00:00Z"}, "", "end is missing"),
    ("end alone", {"end": "2026-12-20T00:00:00Z"}, "", "start is missing"),
    (
        "end before start",
        {"start": "2026-12-20T00:00:00Z", "end": "2026-12-19T00:00:00Z"},
        "",
        "must be before end",
    ),
    ("empty range", {"start": "2026-12-20", "end": "2026-12-20"}, "", "must be before end"),
    (
        "both kinds",
        {"schedule": "0 18 * * 5", "duration": "1h", "start": "2026-12-20", "end": "2026-12-21"},
        "",
        "not both",
    ),
    ("neither kind", {}, "", "either schedule"),
    ("no reason", {"reason": "", "start": "2026-12-20", "end": "2026-12-21"}, "reason", ""),
]


@pytest.mark.parametrize(
    ("fields", "path", "words"), [case[1:] for case in INVALID], ids=[c[0] for c in INVALID]
)
def test_invalid_windows_name_the_field(fields: dict[str, Any], path: str, words: str) -> None:
    window = {"reason": "holidays", **fields}
    text = yaml.safe_dump({**BASE, "freeze": [{"reason": "ok", "schedule": "0 0 * * *",
                                                "duration": "1h"}, window]})  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        parse_spec(text, source="baepo.yaml")
    wanted = "freeze[1]" + (f".{path}" if path else "")
    problems = {p.path: p.message for p in caught.value.problems}
    assert wanted in problems, problems
    assert words in problems[wanted]


def test_overlay_sets_freeze_for_one_environment() -> None:
    text = yaml.safe_dump(
        {
            **BASE,
            "environments": {
                "production": {
                    "freeze": [{"reason": "holidays", "start": "2026-12-20", "end": "2027-01-02"}]
                },
                "staging": {},
            },
        }
    )
    production = parse_spec(text, source="baepo.yaml", env="production")
    assert [w.reason for w in production.freeze] == ["holidays"]
    assert production.freeze[0].start == datetime(2026, 12, 20, tzinfo=UTC)
    assert parse_spec(text, source="baepo.yaml", env="staging").freeze == []


def test_naive_datetimes_are_utc_and_offsets_are_kept() -> None:
    naive = FreezeWindow.model_validate(
        {"reason": "r", "start": "2026-12-20T08:00:00", "end": "2026-12-21T08:00:00+09:00"}
    )
    assert naive.start == datetime(2026, 12, 20, 8, tzinfo=UTC)
    assert naive.end == datetime(2026, 12, 20, 23, tzinfo=UTC)


def _window(**fields: Any) -> FreezeWindow:
    return FreezeWindow.model_validate({"reason": "r", **fields})


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


FRIDAY_NIGHT = {"schedule": "0 18 * * 5", "duration": "60h"}  # Fri 18:00 to Mon 06:00
NIGHTLY = {"schedule": "0 22 * * *", "duration": "8h"}  # 22:00 to 06:00 the next day
SEOUL_FRIDAY = {**FRIDAY_NIGHT, "timezone": "Asia/Seoul"}  # Fri 09:00 UTC to Sun 21:00 UTC
NEW_YORK_NIGHTLY = {**NIGHTLY, "timezone": "America/New_York"}
RANGE = {"start": "2026-12-20T00:00:00Z", "end": "2027-01-02T08:00:00Z"}

# 2026-11-20 is a Friday.
ACTIVE: list[tuple[str, dict[str, Any], str, str | None]] = [
    ("weekend: before it opens", FRIDAY_NIGHT, "2026-11-20T17:59:59", None),
    ("weekend: at the firing", FRIDAY_NIGHT, "2026-11-20T18:00:00", "2026-11-23T06:00:00"),
    ("weekend: saturday", FRIDAY_NIGHT, "2026-11-21T12:00:00", "2026-11-23T06:00:00"),
    ("weekend: sunday midnight", FRIDAY_NIGHT, "2026-11-22T00:00:00", "2026-11-23T06:00:00"),
    ("weekend: last second", FRIDAY_NIGHT, "2026-11-23T05:59:59", "2026-11-23T06:00:00"),
    ("weekend: at the end", FRIDAY_NIGHT, "2026-11-23T06:00:00", None),
    ("weekend: wednesday", FRIDAY_NIGHT, "2026-11-25T12:00:00", None),
    ("nightly: before midnight", NIGHTLY, "2026-11-20T23:30:00", "2026-11-21T06:00:00"),
    ("nightly: after midnight", NIGHTLY, "2026-11-21T05:00:00", "2026-11-21T06:00:00"),
    ("nightly: morning", NIGHTLY, "2026-11-21T06:00:00", None),
    ("nightly: evening", NIGHTLY, "2026-11-21T21:59:00", None),
    ("seoul: before 09:00 UTC", SEOUL_FRIDAY, "2026-11-20T08:59:00", None),
    ("seoul: 18:00 KST", SEOUL_FRIDAY, "2026-11-20T09:00:00", "2026-11-22T21:00:00"),
    ("seoul: utc still thursday", SEOUL_FRIDAY, "2026-11-19T20:00:00", None),
    ("seoul: monday 05:59 KST", SEOUL_FRIDAY, "2026-11-22T20:59:00", "2026-11-22T21:00:00"),
    ("new york: 22:00 EST", NEW_YORK_NIGHTLY, "2026-11-21T03:00:00", "2026-11-21T11:00:00"),
    ("new york: 22:00 EDT", NEW_YORK_NIGHTLY, "2026-07-01T02:30:00", "2026-07-01T10:00:00"),
    ("new york: UTC evening", NEW_YORK_NIGHTLY, "2026-11-20T23:00:00", None),
    ("range: before", RANGE, "2026-12-19T23:59:59", None),
    ("range: at start", RANGE, "2026-12-20T00:00:00", "2027-01-02T08:00:00"),
    ("range: new year", RANGE, "2027-01-01T00:00:00", "2027-01-02T08:00:00"),
    ("range: at end", RANGE, "2027-01-02T08:00:00", None),
]


@pytest.mark.parametrize(
    ("fields", "now", "ends"), [case[1:] for case in ACTIVE], ids=[c[0] for c in ACTIVE]
)
def test_active_freeze(fields: dict[str, Any], now: str, ends: str | None) -> None:
    window = _window(**fields)
    found = active_freeze([window], _utc(now))
    if ends is None:
        assert found is None
    else:
        assert found == (window, _utc(ends))


def test_the_window_that_closes_last_wins() -> None:
    short = _window(schedule="0 22 * * *", duration="8h")
    long = _window(start="2026-11-01T00:00:00Z", end="2026-12-01T00:00:00Z")
    now = _utc("2026-11-20T23:00:00")
    assert active_freeze([short, long], now) == (long, _utc("2026-12-01T00:00:00"))
    assert active_freeze([long, short], now) == (long, _utc("2026-12-01T00:00:00"))
    assert active_freeze([], now) is None


def test_the_yaml_examples_of_the_freeze_docs_load() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "pipeline.md").read_text()
    section = text.split("## Freeze windows", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    assert blocks
    for block in blocks:
        spec = parse_spec(block, source="docs/pipeline.md", env="production")
        assert spec.freeze, block
    holidays = _window(start="2026-12-20T00:00:00Z", end="2027-01-04T08:00:00Z")
    assert active_freeze([holidays], _utc("2027-01-01T00:00:00"))
