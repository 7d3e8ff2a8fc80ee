"""Following work to its end: ``deploy --wait``, ``undo --wait``, ``down``, ``status --watch``.

On a terminal the whole status is redrawn live (steps, ready/desired per revision, traffic,
instances, events); otherwise each new event is printed as one line, which suits CI logs.
Callers: the release and view commands.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live

from baepo.cli.client import Client
from baepo.cli.render import event_text, status_view
from baepo.errors import ExternalError

POLL_SECONDS = 0.1


def settled(status: dict[str, Any]) -> bool:
    """No rollout in flight, and exactly the stable revision's desired instances, all ready."""
    if status.get("rollout"):
        return False
    instances = status.get("instances", [])
    if status["state"] == "down":
        return not instances
    stable = (status.get("stable") or {}).get("number")
    if stable is None:
        return not instances
    desired = status.get("desired", {}).get(str(stable), 0)
    return (
        all(i["revision"] == stable and i["ready"] for i in instances) and len(instances) == desired
    )


def follow(
    client: Client,
    app: str,
    env: str,
    console: Console,
    *,
    done: Callable[[dict[str, Any]], bool],
    timeout: float | None,
    live: bool,
    rollout_id: int | None = None,
) -> dict[str, Any]:
    """Poll the app's status until ``done(status)``; show progress; return the last status.

    Events are printed from the start of ``rollout_id`` when given, else from now on.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    status: dict[str, Any] = client.get(f"/api/v1/apps/{app}", env=env)
    last_event = status["events"][-1]["id"] if status.get("events") else 0
    if rollout_id is not None:
        first = client.get(f"/api/v1/apps/{app}/events", env=env, rollout_id=rollout_id, limit=1)
        if first:
            last_event = first[0]["id"] - 1

    def expired() -> bool:
        return deadline is not None and time.monotonic() > deadline

    if live:
        with Live(status_view(status), console=console, refresh_per_second=8) as view:
            while not done(status) and not expired():
                time.sleep(POLL_SECONDS)
                status = client.get(f"/api/v1/apps/{app}", env=env)
                view.update(status_view(status))
    else:
        while True:
            for event in client.get(f"/api/v1/apps/{app}/events", env=env, after=last_event):
                console.print(f"{event['at'][11:23]}  ", event_text(event), sep="")
                last_event = event["id"]
            if done(status) or expired():
                break
            time.sleep(POLL_SECONDS)
            status = client.get(f"/api/v1/apps/{app}", env=env)
    if not done(status):
        raise ExternalError(
            f"gave up waiting after {timeout:g}s; the work goes on in the server",
            hint="watch it with baepo status --watch",
        )
    return status


def rollout_finished(client: Client, rollout_id: int) -> Callable[[dict[str, Any]], bool]:
    """``done`` for a rollout: it is terminal and the app has settled after it."""

    def done(status: dict[str, Any]) -> bool:
        current = status.get("rollout")
        if current is not None and current["id"] == rollout_id:
            return False
        return settled(status)

    return done
