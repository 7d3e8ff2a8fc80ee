"""Per-revision counters of the built-in router: plain ints, one ``bisect`` per request.

``runtime`` owns one ``RevisionCounters`` per revision ever routed to (counters are monotonic
since the worker started, even when a revision leaves the table); ``forwarding`` counts
when an exchange ends; the admin server serves ``snapshot`` as ``GET /stats``.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

# Prometheus-style upper bounds in seconds ("le"); the last bucket is +Inf. Twenty per
# decade from 1 ms to 10 s, each at most 14 % above the one before (about 2^(1/6), rounded:
# 1, 1.1, 1.25, 1.4, 1.6, 1.8, 2, 2.25, 2.5, 2.8, 3.2, 3.6, 4, 4.5, 5, 5.6, 6.3, 7.1, 8, 9),
# so a p95 interpolated in them errs by a few percent and the rollback guard against the
# baseline (``analysis.guards``) sees a 30 ms service become a 60 ms one. They include every
# bound of earlier versions (1, 2.5, 5 per decade), so a query that names one (``le="0.25"``)
# keeps working.
_PER_DECADE = (
    1,
    1.1,
    1.25,
    1.4,
    1.6,
    1.8,
    2,
    2.25,
    2.5,
    2.8,
    3.2,
    3.6,
    4,
    4.5,
    5,
    5.6,
    6.3,
    7.1,
    8,
    9,
)
BOUNDS: tuple[float, ...] = (
    *(round(m * 10.0**exponent, 6) for exponent in (-3, -2, -1, 0) for m in _PER_DECADE),
    10.0,
)
_LABELS = [f"{b:g}" for b in BOUNDS] + ["+Inf"]
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "error")
ERROR = 6  # index of "error" in ``status`` (router-generated 502/503/504)


class RevisionCounters:
    """Counters of one revision. ``status[k]`` for k in 1..5 counts status classes, ``[6]`` errors.

    Responses the router generates itself (502, 503, 504) count under "error", not "5xx".
    """

    __slots__ = ("buckets", "latency_sum", "requests", "retries", "revision", "status")

    def __init__(self, revision: int) -> None:
        self.revision = revision
        self.requests = 0
        self.status = [0] * 7
        self.buckets = [0] * (len(BOUNDS) + 1)
        self.latency_sum = 0.0
        self.retries = 0  # requests sent once more after their upstream failed (``retry``)

    def record(self, status_index: int, latency: float) -> None:
        """Count one finished exchange: status class index (1..5, or ERROR) and its latency."""
        self.requests += 1
        self.status[status_index] += 1
        self.buckets[bisect_left(BOUNDS, latency)] += 1
        self.latency_sum += latency

    def snapshot(self, in_flight: int) -> dict[str, Any]:
        """The JSON shape of ``core.ports.RevisionStats``; buckets are cumulative (``le``)."""
        cumulative: dict[str, int] = {}
        running = 0
        for label, count in zip(_LABELS, self.buckets, strict=True):
            running += count
            cumulative[label] = running
        return {
            "revision": self.revision,
            "requests": self.requests,
            "status": dict(zip(STATUS_CLASSES, self.status[1:], strict=True)),
            "latency_buckets": cumulative,
            "latency_sum": round(self.latency_sum, 6),
            "in_flight": in_flight,
            "retries": self.retries,
        }
