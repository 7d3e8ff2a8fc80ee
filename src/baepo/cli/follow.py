"""Following work to its end: ``deploy --wait``, ``undo --wait``, ``down``, ``status --watch``.

On a terminal the whole status is redrawn live (steps, ready/desired per revision, traffic,
instances, events); otherwise each change is printed once as one line (a new event, a timed
pause starting), which suits CI logs: the same line is never printed twice.

Every wait for a rollout ends (``RolloutWatch``): when the rollout has ended and the app has
settled after it (or ``SETTLE_SECONDS`` later, when what stays up is not the outcome's
business: a revision kept warm, an instance that could not start), or at once when the
rollout waits for a person (an indefinite pause, an approval), as ``kubectl argo rollouts
status`` returns at a pause. Callers: the release, promotion, steering and view commands.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from baepo.cli.render import event_text, status_view
from baepo.errors import ExternalError

if TYPE_CHECKING:  # the client (http.client, asyncio) loads when a command talks to a server
    from baepo.cli.client import Client

POLL_SECONDS = 0.1
# After a rollout ends, how long --wait waits for the app to settle (old instances drained
# and stopped) before it reports the outcome anyway. Above the 30 s defaults of
# scale_down_delay and abort_scale_down_delay, so a default rollout is followed to its end.
SETTLE_SECONDS = 60.0
# Phases of a rollout that wait for a person: --wait returns (exit code 8).
HELD_PHASES = frozenset({"paused", "awaiting_approval"})
# How many printed lines a log remembers so as not to print one again.
RECENT_LINES = 500
# Instance phases of a process that is gone: not something to wait for.
GONE_PHASES = frozenset({"failed", "stopped"})


def settled(status: dict[str, Any]) -> bool:
    """No rollout in flight, and exactly the stable revision's desired instances, all ready.

    An instance that is gone (could not start, gave up, stopped) of a revision that should
    not run is no longer waited for: after a failed first deploy it stays listed, with its
    message, but nothing more will happen to it.
    """
    if status.get("rollout"):
        return False
    desired: dict[str, int] = status.get("desired", {})
    instances = [
        i
        for i in status.get("instances", [])
        if not (i["phase"] in GONE_PHASES and not desired.get(str(i["revision"])))
    ]
    if status["state"] == "down":
        return not instances
    stable = (status.get("stable") or {}).get("number")
    if stable is None:
        return not instances
    return all(i["revision"] == stable and i["ready"] for i in instances) and len(
        instances
    ) == desired.get(str(stable), 0)


def _warm_switch(status: dict[str, Any], rollout_id: int) -> bool:
    """A blue-green rollout ended healthy and every request goes to its revision's ready
    instances: the previous revision is kept warm on purpose (``scale_down_delay``, for an
    instant undo), which is nothing to wait for."""
    last = status.get("last_rollout") or {}
    if last.get("id") != rollout_id or last.get("phase") != "healthy":
        return False
    if last.get("strategy") != "blue_green" or status.get("rollout"):
        return False
    target = last["revision"]
    ready = [i for i in status.get("instances", []) if i["revision"] == target and i["ready"]]
    routed = {t["revision"] for t in status.get("traffic", []) if t["percent"] > 0}
    return routed == {target} and len(ready) >= status.get("desired", {}).get(str(target), 1)


@dataclass
class RolloutWatch:
    """``done`` for one rollout: it waits for a person (``held`` is then the rollout), or it
    has ended and the app has settled, or ``settle_seconds`` have passed since it ended
    (``unsettled`` then says so)."""

    rollout_id: int
    settle_seconds: float = SETTLE_SECONDS
    clock: Callable[[], float] = time.monotonic
    held: dict[str, Any] | None = None
    unsettled: bool = False
    ended_at: float | None = field(default=None, repr=False)

    def __call__(self, status: dict[str, Any]) -> bool:
        current = status.get("rollout")
        if current is not None and current["id"] == self.rollout_id:
            self.held = current if current["phase"] in HELD_PHASES else None
            return self.held is not None
        self.held = None
        if settled(status) or _warm_switch(status, self.rollout_id):
            self.unsettled = False
            return True
        now = self.clock()
        if self.ended_at is None:
            self.ended_at = now
        self.unsettled = now - self.ended_at >= self.settle_seconds
        return self.unsettled


def rollout_finished(client: Client, rollout_id: int) -> RolloutWatch:
    """``done`` for a rollout (see ``RolloutWatch``); ``client`` is kept for callers' sake."""
    del client
    return RolloutWatch(rollout_id)


@dataclass
class Narration:
    """The lines of a followed status in a log: each new event, and each timed pause as it
    starts, printed once; a line among the last ``RECENT_LINES`` printed is not printed again
    (a wait shows each change once; an endless ``status --watch`` may show a later rollout's
    "routing: r2 100% on 1" again)."""

    console: Console
    said: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_LINES))

    def say(self, at: str, text: Text) -> None:
        if text.plain in self.said:
            return
        self.said.append(text.plain)
        self.console.print(f"{at}  ", text, sep="", soft_wrap=True)

    def status(self, status: dict[str, Any]) -> None:
        line = pause_line(status)
        if line is not None:
            now = datetime.now(UTC).isoformat()
            self.say(now[11:23], Text(line, style="yellow"))


def pause_line(status: dict[str, Any]) -> str | None:
    """ "step 2: paused for 30 s, until 10:04:31" while a canary waits out a timed pause."""
    canary = status.get("canary") or {}
    until = canary.get("pause_until")
    if not until or status.get("rollout") is None:
        return None
    step = next((s for s in canary.get("steps", []) if s["state"] == "current"), None)
    if step is None or step.get("pause_seconds") is None:
        return None
    return f"step {step['index'] + 1}: paused for {step['pause_seconds']:g} s, until {until[11:19]}"


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
        narration = Narration(console)
        while True:
            for event in client.get(f"/api/v1/apps/{app}/events", env=env, after=last_event):
                narration.say(event["at"][11:23], event_text(event))
                last_event = event["id"]
            narration.status(status)
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
