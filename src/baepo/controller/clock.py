"""The controller's timer clock: wall time that a wall-clock jump does not move.

Timed pauses, ``auto_promotion_seconds`` and scale-down delays are stored as instants in the
rollout's status (``pause_until``, ``preview_ready_at``, ``keep.until``), so a restarted server
resumes them. Compared with the wall clock, though, a clock set one hour ahead would end every
running pause at once, and a clock set back would stretch it by an hour. ``SteadyClock`` reads the
wall clock once, at start, and from then on advances that instant by the monotonic clock: within
one server process, elapsed time is monotonic; across a restart the stored instant (compared with
the wall clock read at the new start) is all there is. ``steady`` is the process's one instance,
so every part of a server reads the same timeline. Callers: ``controller.reconciler`` (its
``timer``, given to the strategies and to the scale-down checks), ``controller.operations``
(abort's and undo's scale-down delays).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime


class SteadyClock:
    """``now()`` as an aware UTC datetime: the wall time read at construction, plus the
    monotonic time elapsed since. The two sources can be swapped in tests."""

    def __init__(
        self,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._wall_at_start = wall()
        self._monotonic_at_start = monotonic()

    def __call__(self) -> datetime:
        elapsed = self._monotonic() - self._monotonic_at_start
        return datetime.fromtimestamp(self._wall_at_start + elapsed, UTC)


steady = SteadyClock()
"""The server process's timer clock, anchored when the controller is first imported."""
