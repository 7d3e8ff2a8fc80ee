"""An event the store cannot take (a full disk) is counted and logged, never lost unseen, and
the controller's pass goes on."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from baepo.controller.loop import Controller
from baepo.core.model import App, AppState, Event
from baepo.errors import TransientError


class FullStore:
    """A store whose disk is full: every event append fails as the SQLite store does."""

    def append_event(self, event: Event) -> Event:
        raise TransientError(
            "cannot append an event (sqlite:////srv/.baepo/state.db): database or disk is full"
        )


def test_a_dropped_event_is_counted_logged_and_shared(caplog: pytest.LogCaptureFixture) -> None:
    controller = Controller(FullStore(), object(), object())  # type: ignore[arg-type]
    app = App("shop", "production", AppState.RUNNING, 1, datetime(2026, 1, 1, tzinfo=UTC))
    with caplog.at_level(logging.WARNING):
        asyncio.run(controller.reconciler.event(app, "instance.ready", "r1-abc is ready"))
        asyncio.run(controller.reconciler.event(app, "instance.ready", "r1-def is ready"))
    assert controller.dropped_events.count == 2
    assert controller.dropped_events.of("shop", "production") == 2
    assert controller.dropped_events.of("shop", "staging") == 0
    assert controller.dropped_events.last_cause is not None
    assert "disk is full" in controller.dropped_events.last_cause
    assert "event not recorded (2 so far): shop/production instance.ready: r1-def is ready" in (
        caplog.text
    )


def test_status_says_how_many_events_of_the_app_were_dropped() -> None:
    from rich.console import Console

    from baepo.cli.render import status_view

    status = {"app": "shop", "env": "production", "state": "running", "events_dropped": 3}
    console = Console(width=200, record=True, color_system=None)
    console.print(status_view({**status, "stable": None, "instances": [], "events": []}))
    assert "3 event(s) of this app could not be recorded" in console.export_text()
