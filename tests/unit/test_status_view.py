"""``baepo status`` tells the truth about a rollout: a stuck one's time runs from its start,
and an undone blue-green switch is not shown as serving."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from baepo.cli.render import status_view


def shown(status: dict[str, Any]) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(status_view(status))
    text: str = console.file.getvalue()  # type: ignore[attr-defined]
    return text


def status(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "app": "shop",
        "env": "default",
        "state": "running",
        "stable": {"number": 1, "version": "1.0.0"},
        "rollout": None,
        "last_rollout": None,
        "instances": [],
        "desired": {},
        "events": [],
    }
    return {**base, **overrides}


def test_a_stuck_rollout_shows_the_time_since_it_started() -> None:
    started = datetime.now(UTC) - timedelta(seconds=45)
    rollout = {
        "id": 2,
        "revision": 2,
        "strategy": "rolling",
        "phase": "progressing",
        "message": "0/3 new instances ready",
        "started_at": started.isoformat(),
        "updated_at": (started + timedelta(seconds=0.6)).isoformat(),
        "finished_at": None,
        "duration_seconds": 0.6,
    }
    text = shown(status(rollout=rollout))
    found = re.search(r"progressing  ([\d.]+)s", text)
    assert found is not None and 45 <= float(found[1]) < 120, text


def test_a_finished_rollout_shows_its_duration() -> None:
    rollout = {
        "id": 2,
        "revision": 1,
        "strategy": "rolling",
        "phase": "healthy",
        "message": "revision 1 is serving on 3 ready instances",
        "started_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:02.5+00:00",
        "finished_at": "2026-01-01T00:00:02.5+00:00",
        "duration_seconds": 2.5,
    }
    text = shown(status(last_rollout=rollout))
    assert "healthy  2.5s" in text
    assert "revision 1 is serving on 3 ready instances" in text


def test_an_undone_blue_green_switch_is_not_shown_as_serving() -> None:
    rollout = {
        "id": 2,
        "revision": 2,
        "strategy": "blue_green",
        "phase": "healthy",
        "message": "revision 2 serves all traffic; revision 1 stays warm for 30s",
        "started_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:09+00:00",
        "finished_at": "2026-01-01T00:00:05+00:00",
        "duration_seconds": 5.0,
    }
    text = shown(status(last_rollout=rollout))
    assert "revision 2 serves all traffic" not in text
    assert "rollout 2: revision 2 (blue_green) undone" in text
    assert "undone: revision 1 serves all traffic again" in text
