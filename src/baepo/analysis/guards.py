"""Rollback guards: the ``rollback:`` section checked against the router's live numbers.

Every controller pass of a rollout (about four times a second) looks at the new revision's
requests over several windows ending now — 1, 2, 5 and 10 seconds and the guard's
``window`` — so a fault is seen within a second or two of its onset, while one slow or
failed request among few never trips a guard. Every figure is judged by exact (Clopper-
Pearson) 99.5 % bounds (``analysis.proportions``), in a window where the new revision served
at least ``MIN_REQUESTS``:

- **error rate**: trips when even the lower bound of the new revision's error rate is above
  the threshold (5 errors in 20 requests trip a 5 % guard; 4 in 20 do not) and, when a
  stable revision serves too (its *baseline*), when that lower bound is also above the upper
  bound of the stable revision's error rate by more than ``error_rate_margin``: a fault both
  revisions share (a client calling a path that fails everywhere) is not the new revision's
  fault.
- **p95 latency** (absolute): trips when the p95 is certainly above the threshold: more than
  5 % of the requests, by the lower bound, took longer than the largest bucket bound at or
  below the threshold.
- **p95 latency against the baseline**: trips when the new revision's p95 reaches ``ratio``
  times the stable revision's, less ``BUCKET_TOLERANCE`` (both interpolated in the router's
  buckets as Prometheus does, which are at most a third wide from 2 ms to 10 s:
  ``routers.builtin.stats``), and lies more than ``latency_margin`` above it, *and* the new
  revision's share of requests slower than ``B``, the upper bound of the stable revision's
  p95 bucket, is certainly above the stable revision's share (lower bound against upper
  bound). In simulation over stable p95s from 5 ms to 500 ms, a p95 that doubled trips 95 %
  of the time and one 1.5 times as high never; noise both revisions share (jitter, a busy
  machine's stalls) leaves their shares over ``B`` alike and trips nothing.
- **throughput against the baseline**: requests per unit of routing weight, new against
  stable, below the ratio.

The baseline's figures come from the same window, or from the guard's whole ``window`` when
the stable revision served fewer than ``MIN_REQUESTS`` in the short one (a canary at 95 %);
without a baseline at all (a first deploy, the watch after promotion) the thresholds apply
alone. A :class:`Trip` says what fired in one line and gives the figures of both revisions
side by side as its ``evidence``.

Instance failures (a crash loop) are checked by the rollout planner itself. Pure. Callers:
the controller's reconciler.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from baepo.analysis.proportions import CONFIDENCE, exceeds_by, rate_lower_bound
from baepo.core.latency import WindowRates, quantile_bounds, slower_than
from baepo.spec.rollback import RollbackSpec
from baepo.spec.units import format_duration

MIN_REQUESTS = 10
P95_SHARE = 0.05  # the share of requests above the p95
# p95s interpolated in buckets up to a third wide err by up to about a tenth: a p95 that
# doubled must not be missed for it (``latency_vs_baseline``).
BUCKET_TOLERANCE = 0.1
SHORT_WINDOWS = (1.0, 2.0, 5.0, 10.0)

__all__ = ["CONFIDENCE", "MIN_REQUESTS", "Trip", "check_guards", "windows_for"]


def windows_for(spec: RollbackSpec) -> tuple[float, ...]:
    """The window lengths the guards look at, shortest first."""
    return tuple(sorted({w for w in SHORT_WINDOWS if w < spec.window} | {spec.window}))


@dataclass(frozen=True)
class Trip:
    """A guard that fired: which one, why in one line, and the figures behind it (the new
    revision's and, when one served, the stable revision's)."""

    guard: str
    reason: str
    evidence: tuple[str, ...] = ()


def _percent(value: float) -> str:
    return f"{value * 100:.3g}%"


def _points(value: float) -> str:
    return f"{value * 100:.3g} points"


def _seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.3g}ms"
    return format_duration(round(value, 3)) if value < 60 else f"{value:.0f}s"


def _errors(rates: WindowRates) -> str:
    return f"{_percent(rates.errors / rates.requests)} ({rates.errors}/{rates.requests})"


def _span(rates: WindowRates) -> str:
    return f"in the last {_seconds(rates.seconds)}"


def _error_trip(
    spec: RollbackSpec, revision: int, new: WindowRates, old: WindowRates | None, stable: int
) -> Trip | None:
    threshold = spec.error_rate
    if threshold is None or rate_lower_bound(new.errors, new.requests) <= threshold:
        return None
    mine = f"new revision {revision}: {_errors(new)} errors {_span(new)}"
    if old is None:
        return Trip(
            "error_rate",
            f"error rate {_errors(new)} {_span(new)} is above {_percent(threshold)}",
            (mine, "no stable revision served enough requests to compare with"),
        )
    margin = spec.error_rate_margin
    if not exceeds_by((new.errors, new.requests), (old.errors, old.requests), margin):
        return None
    return Trip(
        "error_rate",
        f"error rate: new {_errors(new)} vs stable {_errors(old)} {_span(new)}: above "
        f"{_percent(threshold)} and more than {_points(margin)} worse than stable",
        (
            mine,
            f"stable revision {stable}: {_errors(old)} errors {_span(old)}",
            f"rule: above {_percent(threshold)}, and more than {_points(margin)} above the "
            f"stable revision's rate ({CONFIDENCE:.1%} bounds)",
        ),
    )


def _p95(rates: WindowRates) -> str:
    bounds = quantile_bounds(0.95, rates.buckets)
    if bounds is None:
        return "no p95"
    low, high = bounds
    if high == math.inf:
        return f"p95 over {_seconds(low)}"
    return f"p95 {_seconds(low)}-{_seconds(high)}"


def _latency_trip(spec: RollbackSpec, revision: int, new: WindowRates) -> Trip | None:
    threshold = spec.latency_p95
    if threshold is None:
        return None
    bound, slow = slower_than(new.buckets, threshold)
    if bound is None or rate_lower_bound(slow, new.requests) <= P95_SHARE:
        return None
    return Trip(
        "latency_p95",
        f"p95 latency is over {_seconds(bound)} ({slow} of {new.requests} requests slower "
        f"{_span(new)}), above {_seconds(threshold)}",
        (f"new revision {revision}: {_p95(new)}, {slow} of {new.requests} requests over "
         f"{_seconds(bound)} {_span(new)}",),
    )  # fmt: skip


def _baseline_latency_trip(
    spec: RollbackSpec, revision: int, new: WindowRates, old: WindowRates, stable: int
) -> Trip | None:
    ratio = spec.latency_vs_baseline
    old_bounds = quantile_bounds(0.95, old.buckets)
    new_p95, old_p95 = new.p95, old.p95
    if ratio is None or old_bounds is None or new_p95 is None or old_p95 is None:
        return None
    bound = old_bounds[1]
    if (
        bound == math.inf
        or new_p95 < ratio * (1 - BUCKET_TOLERANCE) * old_p95
        or new_p95 - old_p95 <= spec.latency_margin
    ):
        return None
    _, slow_new = slower_than(new.buckets, bound)
    _, slow_old = slower_than(old.buckets, bound)
    if not exceeds_by((slow_new, new.requests), (slow_old, old.requests), 0.0):
        return None
    return Trip(
        "latency_vs_baseline",
        f"p95 latency: new {_seconds(new_p95)} vs stable {_seconds(old_p95)} {_span(new)}: "
        f"{_percent(ratio)} of the baseline or more",
        (
            f"new revision {revision}: p95 {_seconds(new_p95)}, {slow_new} of "
            f"{new.requests} requests over {_seconds(bound)} {_span(new)}",
            f"stable revision {stable}: p95 {_seconds(old_p95)}, {slow_old} of "
            f"{old.requests} requests over {_seconds(bound)} {_span(old)}",
            f"rule: p95 at {_percent(ratio)} of the stable revision's or more (less "
            f"{BUCKET_TOLERANCE:.0%} for the router's buckets), more than "
            f"{_seconds(spec.latency_margin)} slower, and certainly more requests over "
            f"{_seconds(bound)} than the stable revision ({CONFIDENCE:.1%} bounds)",
        ),
    )


def _throughput_trip(
    spec: RollbackSpec,
    revision: int,
    stable: int,
    new: WindowRates,
    old: WindowRates,
    weights: Mapping[int, int] | None,
) -> Trip | None:
    least = spec.min_throughput_vs_baseline
    if least is None or not weights or not weights.get(revision) or not weights.get(stable):
        return None
    per_weight = new.requests_per_second / weights[revision]
    old_per_weight = old.requests_per_second / weights[stable]
    if per_weight >= least * old_per_weight:
        return None
    return Trip(
        "min_throughput_vs_baseline",
        f"request rate {new.requests_per_second:.3g}/s is below {_percent(least)} of the "
        f"stable revision's for its weight {_span(new)}",
        (
            f"new revision {revision}: {new.requests_per_second:.3g}/s at weight "
            f"{weights[revision]} {_span(new)}",
            f"stable revision {stable}: {old.requests_per_second:.3g}/s at weight "
            f"{weights[stable]} {_span(old)}",
        ),
    )


def _baseline(
    by_window: Mapping[float, Mapping[int, WindowRates]], seconds: float, baseline: int | None
) -> WindowRates | None:
    """The stable revision's rates over ``seconds``, or over the longest window when it
    served too little in this one; None without ``MIN_REQUESTS`` in either."""
    if baseline is None:
        return None
    for length in (seconds, max(by_window)):
        old = by_window[length].get(baseline)
        if old is not None and old.requests >= MIN_REQUESTS:
            return old
    return None


def check_guards(
    spec: RollbackSpec,
    revision: int,
    baseline: int | None,
    by_window: Mapping[float, Mapping[int, WindowRates]],
    weights: Mapping[int, int] | None = None,
) -> Trip | None:
    """The first guard that fires for ``revision`` given its rates (and the baseline's) per
    window length, or None. ``weights`` are the routing weights, for the throughput guard."""
    if not spec.enabled:
        return None
    for seconds in sorted(by_window):
        new = by_window[seconds].get(revision)
        if new is None or new.requests < MIN_REQUESTS:
            continue
        old = _baseline(by_window, seconds, baseline)
        stable = baseline or 0
        trip = _error_trip(spec, revision, new, old, stable) or _latency_trip(spec, revision, new)
        if trip is None and old is not None:
            trip = _baseline_latency_trip(spec, revision, new, old, stable) or (
                _throughput_trip(spec, revision, stable, new, old, weights)
            )
        if trip is not None:
            return trip
    return None
