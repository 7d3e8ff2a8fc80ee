"""The restart policy of one supervised instance: backoff delays and crash-loop counting.

Pure logic, no I/O and no clock of its own (callers pass ``now``), so it is unit-tested without
processes. Callers: ``supervisor`` (decides when and whether to restart the app).
"""

from __future__ import annotations

import signal
from collections import deque


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Delay before restart number ``attempt`` (1-based): initial, 2x, 4x, ... capped at maximum."""
    if attempt <= 1:
        return min(initial, maximum)
    # Cap the exponent so a long-lived crash loop never overflows a float.
    return min(maximum, initial * 2.0 ** min(attempt - 1, 60))


class CrashLoop:
    """Counts restarts inside a sliding window; ``limit`` of them means a crash loop."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._restarts: deque[float] = deque()

    def record(self, now: float) -> None:
        """Note a restart at ``now`` (monotonic seconds)."""
        self._restarts.append(now)
        self._forget(now)

    def count(self, now: float) -> int:
        """Restarts within the window ending at ``now``."""
        self._forget(now)
        return len(self._restarts)

    def exceeded(self, now: float) -> bool:
        """True when one more restart would make the instance a crash loop: give up instead."""
        return self.count(now) >= self.limit

    def _forget(self, now: float) -> None:
        while self._restarts and now - self._restarts[0] > self.window:
            self._restarts.popleft()


def describe_exit(returncode: int) -> str:
    """``exited with code 3`` or ``killed by SIGKILL`` for a Popen return code."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exited with code {returncode}"


def crash_loop_message(returncode: int, restarts: int, window: float) -> str:
    """Why an instance was given up on, e.g. ``exited with code 3, 3 restarts in 60s``."""
    return f"{describe_exit(returncode)}, {restarts} restarts in {window:g}s"


def substitute_port(argv: list[str], port: int) -> list[str]:
    """Replace ``{port}`` in every argument (only that placeholder; other braces stay)."""
    return [arg.replace("{port}", str(port)) for arg in argv]


def app_environment(
    base: dict[str, str], extra: dict[str, str], port: int, identity: dict[str, str]
) -> dict[str, str]:
    """The app's environment, each layer over the previous one: the supervisor's own,
    ``PYTHONUNBUFFERED=1`` (so Python apps' output reaches the log as it is written), the
    instance's identity (``BAEPO_INSTANCE`` etc.), ``PORT``, then the spec's variables."""
    env = dict(base)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(identity)
    env["PORT"] = str(port)
    env.update(extra)
    return env
