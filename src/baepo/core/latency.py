"""Latency percentiles and per-window rates from the routers' cumulative counters.

``RevisionStats`` (``core.ports``) are monotonic counters with Prometheus-style cumulative
latency buckets (upper bound in seconds -> requests at most that slow, ending with "+Inf").
``histogram_quantile`` estimates a quantile from such buckets exactly as Prometheus' function
of that name does: find the bucket holding the rank, interpolate linearly inside it (from 0
for the first bucket), and answer the largest finite bound when the rank falls in "+Inf".
``window`` turns two snapshots of one revision into the rates of the requests in between
(requests/s, 5xx rate, error rate, percentiles from bucket differences); a counter that went
down means the router restarted, and the later snapshot then counts alone.

Pure functions, no I/O, no clock: callers pass the snapshots and the seconds between them.
Callers: metric providers and analysis (error rate, latency), the dashboard and the benches.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from baepo.core.ports import RevisionStats

QUANTILES: tuple[tuple[str, float], ...] = (
    ("p50", 0.5),
    ("p90", 0.9),
    ("p95", 0.95),
    ("p99", 0.99),
)


def _bound(label: str) -> float:
    return math.inf if label in ("+Inf", "inf", "+inf", "Inf") else float(label)


def histogram_quantile(q: float, buckets: Mapping[str, int]) -> float | None:
    """The ``q``-quantile (0 ≤ q ≤ 1) in seconds of cumulative ``buckets``; None when empty.

    Buckets are ``{upper bound: cumulative count}`` with a "+Inf" bucket holding the total.
    Raises ValueError for ``q`` outside 0..1 or buckets without "+Inf".
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is outside 0..1")
    ordered = sorted((_bound(label), count) for label, count in buckets.items())
    if not ordered or not math.isinf(ordered[-1][0]):
        raise ValueError("latency buckets need a '+Inf' bucket")
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    # The first finite bucket whose cumulative count reaches the rank (Prometheus' search).
    b = next((i for i, (_, count) in enumerate(ordered[:-1]) if count >= rank), len(ordered) - 1)
    if b == len(ordered) - 1:
        return ordered[-2][0] if len(ordered) > 1 else None
    end, count = ordered[b]
    if b == 0 and end <= 0:
        return end
    start = 0.0
    if b > 0:
        start, below = ordered[b - 1]
        count -= below
        rank -= below
    if count <= 0:
        return start
    return start + (end - start) * rank / count


def percentiles(buckets: Mapping[str, int]) -> dict[str, float | None]:
    """p50, p90, p95 and p99 in seconds (None each when there were no requests)."""
    return {name: histogram_quantile(q, buckets) for name, q in QUANTILES}


@dataclass(frozen=True)
class WindowRates:
    """What one revision served between two snapshots ``seconds`` apart.

    ``rate_5xx`` counts 5xx answers of the app; ``error_rate`` adds the router's own failures
    (could not connect, timed out: status class "error"). Rates are None without requests.
    """

    revision: int
    seconds: float
    requests: int
    requests_per_second: float
    rate_5xx: float | None
    error_rate: float | None
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    buckets: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)
    errors: int = 0  # 5xx answers and the router's own failures
    rate_4xx: float | None = None


def query_value(rates: WindowRates, query: str) -> float | None:
    """The value of a builtin query (``error_rate``, ``rate_5xx``, ``rate_4xx``,
    ``request_rate``, ``p50``, ``p95``, ``p99``, ``mean_latency``) in ``rates``; None without
    requests."""
    if query == "request_rate":
        return rates.requests_per_second
    if query == "mean_latency":
        return rates.mean
    value = getattr(rates, query)
    return None if value is None else float(value)


def quantile_bounds(q: float, buckets: Mapping[str, int]) -> tuple[float, float] | None:
    """The bucket the ``q``-quantile falls in, as ``(lower, upper)`` bounds in seconds: the
    true quantile is certainly in between, whatever interpolation says. None when empty."""
    ordered = sorted((_bound(label), count) for label, count in buckets.items())
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower = 0.0
    for bound, count in ordered:
        if count >= rank:
            return lower, bound
        lower = bound
    return lower, math.inf


def slower_than(buckets: Mapping[str, int], seconds: float) -> tuple[float | None, int]:
    """``(bound, count)``: the smallest finite bucket bound at or above ``seconds``, and how
    many requests certainly took longer than it (those in the buckets above it); ``(None,
    0)`` when no finite bound is that high or there are no buckets."""
    ordered = sorted((_bound(label), count) for label, count in buckets.items())
    if not ordered:
        return None, 0
    total = ordered[-1][1]
    for bound, count in ordered:
        if seconds <= bound < math.inf:
            return bound, total - count
    return None, 0


def _minus(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    return {key: value - before.get(key, 0) for key, value in after.items()}


def window(before: RevisionStats | None, after: RevisionStats, seconds: float) -> WindowRates:
    """The rates of ``after.revision`` between ``before`` (None: since the start) and ``after``.

    Raises ValueError when ``seconds`` is not positive or the revisions differ.
    """
    if seconds <= 0:
        raise ValueError("the window must last more than 0 seconds")
    if before is not None and before.revision != after.revision:
        raise ValueError(f"snapshots of revisions {before.revision} and {after.revision}")
    new_run = (
        before is not None
        and before.started > 0
        and after.started > 0
        and before.started != after.started
    )
    if before is None or new_run or after.requests < before.requests:
        before = RevisionStats(after.revision, 0)  # no earlier snapshot, or a restart
    requests = after.requests - before.requests
    status = _minus(after.status, before.status)
    buckets = _minus(after.latency_buckets, before.latency_buckets)
    latency_sum = after.latency_sum - before.latency_sum
    quantiles = percentiles(buckets) if buckets else dict.fromkeys(("p50", "p90", "p95", "p99"))
    server_errors = status.get("5xx", 0)
    return WindowRates(
        revision=after.revision,
        seconds=seconds,
        requests=requests,
        requests_per_second=requests / seconds,
        rate_5xx=server_errors / requests if requests else None,
        error_rate=(server_errors + status.get("error", 0)) / requests if requests else None,
        mean=latency_sum / requests if requests else None,
        p50=quantiles["p50"],
        p90=quantiles["p90"],
        p95=quantiles["p95"],
        p99=quantiles["p99"],
        buckets=buckets,
        errors=server_errors + status.get("error", 0),
        rate_4xx=status.get("4xx", 0) / requests if requests else None,
    )


def windows(
    before: Sequence[RevisionStats], after: Sequence[RevisionStats], seconds: float
) -> dict[int, WindowRates]:
    """``window`` for every revision in ``after`` (one missing from ``before`` is new)."""
    earlier = {stats.revision: stats for stats in before}
    return {s.revision: window(earlier.get(s.revision), s, seconds) for s in after}
