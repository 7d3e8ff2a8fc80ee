"""The ``builtin`` provider: the router's own per-revision numbers, zero set-up.

A measurement is the revision's value of the metric's query (``error_rate``, ``rate_5xx``,
``request_rate``, ``p50``, ``p95``, ``p99``, ``mean_latency``) over the last ``window``
seconds, from the counters the controller samples from the router. Conditions see it as
``result``, and see every query's value for the revision under analysis as ``canary.NAME``
and for the stable revision over the same window as ``baseline.NAME`` (plus
``canary.requests`` and ``baseline.requests``). A window in which the revision served no
request is :class:`NoData`: the engine retries it and, after a few intervals without data,
records it as inconclusive, never as a pass or a fail. So is a window whose newest snapshot is
more than ``STALE`` seconds old (the controller could not sample for a while): measuring then
would repeat the previous measurement's numbers as if they were new.

Callers: ``providers.make_providers``.
"""

from __future__ import annotations

from typing import Any, Protocol

from baepo.analysis.measure import MeasureContext, Measured, MeasurementError
from baepo.core.latency import WindowRates, query_value
from baepo.spec.analysis import BUILTIN_QUERIES, MetricSpec

STALE = 2.0
"""Seconds after which the newest snapshot of the router's counters is too old to measure."""


class NoData(MeasurementError):
    """The source answered, but had nothing to measure (no requests in the window)."""


class RateSource(Protocol):
    """Per-revision rates of an app's main listener over the last ``seconds``."""

    def rates(self, app: str, env: str, seconds: float | None = None) -> dict[int, WindowRates]:
        """Empty until the source has two snapshots; a shorter window while it has less."""
        ...

    def series(
        self, app: str, env: str, seconds: float, step: float
    ) -> list[dict[int, WindowRates]]:
        """Rates per ``step``-second slice over the last ``seconds``, oldest first."""
        ...

    def sampled_ago(self, app: str, env: str) -> float | None:
        """Seconds since the newest snapshot; None before the first."""
        ...


def values(rates: WindowRates | None) -> dict[str, Any]:
    """Every builtin query's value (None without requests) and ``requests``."""
    if rates is None or not rates.requests:
        return {"requests": 0, **{q: 0.0 if q == "request_rate" else None for q in BUILTIN_QUERIES}}
    return {"requests": rates.requests, **{q: query_value(rates, q) for q in BUILTIN_QUERIES}}


class BuiltinProvider:
    """Measures from the controller's samples of the router counters."""

    kind = "builtin"

    def __init__(self, source: RateSource) -> None:
        self.source = source

    async def measure(self, metric: MetricSpec, context: MeasureContext) -> Measured:
        ago = self.source.sampled_ago(context.app, context.env)
        if ago is not None and ago > STALE:
            raise NoData(
                f"the router's counters were last read {ago:.1f}s ago; waiting for a fresh sample"
            )
        rates = self.source.rates(context.app, context.env, context.window)
        if not rates:
            raise NoData("the router has no counters yet; waiting for the first samples")
        canary = values(rates.get(context.revision))
        baseline = values(rates.get(context.baseline) if context.baseline is not None else None)
        query = metric.query or "error_rate"
        value = canary.get(query)
        if query != "request_rate" and not canary["requests"]:
            raise NoData(f"no requests reached revision {context.revision} in the window")
        return Measured(value=value, variables={"canary": canary, "baseline": baseline})
