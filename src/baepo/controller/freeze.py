"""Which freeze window, if any, is open at a given moment.

Pure: no clock and no I/O; the caller passes ``now``. Callers: ``controller.releases``
(a deploy inside an open window is refused unless an admin overrides it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from baepo.spec.policy import FreezeWindow


def window_end(window: FreezeWindow, now: datetime) -> datetime | None:
    """When ``window`` closes if it is open at ``now`` (aware, UTC), else None.

    A date range is open from ``start`` (included) to ``end`` (excluded). A schedule window
    opens at each cron firing in its time zone and stays open for ``duration``: it is open
    when the last firing at or before ``now`` is less than ``duration`` ago.
    """
    if window.start is not None and window.end is not None:
        if window.start <= now < window.end:
            return window.end.astimezone(UTC)
        return None
    if window.schedule is None or not window.duration:
        return None
    local = now.astimezone(ZoneInfo(window.timezone))
    minute = local.replace(second=0, microsecond=0)
    if croniter.match(window.schedule, minute):
        opened = minute
    else:
        opened = croniter(window.schedule, minute).get_prev(datetime)
    ends = opened.astimezone(UTC) + timedelta(seconds=window.duration)
    return ends if now < ends else None


def active_freeze(
    windows: Iterable[FreezeWindow], now: datetime
) -> tuple[FreezeWindow, datetime] | None:
    """The open window that closes last, with when it closes (UTC), or None.

    ``now`` must be timezone-aware.
    """
    found: tuple[FreezeWindow, datetime] | None = None
    for window in windows:
        ends = window_end(window, now)
        if ends is not None and (found is None or ends > found[1]):
            found = (window, ends)
    return found
