"""The default canary: ``strategy: {canary: {}}`` judged continuously against stable.

A canary without ``steps`` runs ``DEFAULT_STEPS``: 20 % of the requests, a first judgement
(at least ``SMOKE_SECONDS`` and ``sequential.MIN_SAMPLES`` canary requests), 50 %, a
judgement until decided, then all traffic. A judgement compares the canary with the stable
revision on the router's cumulative counters since the step began (``core.sequential``):
errors, and requests slower than a latency bound taken from the stable revision (the bucket
bound from 5 ms up that about ``SLOW_SHARE`` of its requests exceed). Evidence
against the canary carries over from the first judgement to the second. At each weight the
canary runs as many instances as give it the stable revision's load per instance
(``matched_replicas``), so a busier canary is not mistaken for a slower version; the
instances for 50 % start during the first look, so the canary does not wait for them. A
regression rolls back with an ``analysis`` cause; a judgement that has not decided after
``MAX_SECONDS`` (too little traffic) pauses for a person.

What a judgement needs between passes is in the rollout's ``status["judge"]``: the step, when
it began, the counters it counts from, the latency bound, and the log-likelihood ratios of the
steps before. ``status["judgement"]`` holds each metric's standing for ``status`` views.
Pure: the counters come in as ``RevisionStats``. Callers: ``strategies.canary``, the API's
steps view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from baepo.core import sequential
from baepo.core.model import Cause, CauseKind
from baepo.core.ports import RevisionStats
from baepo.spec.strategies import CanarySpec, CanaryStep

SMOKE_WEIGHT = 20  # the first look: as in common Argo examples, and twice the requests of 10 %
MAIN_WEIGHT = 50
SMOKE_SECONDS = 10.0
MAX_SECONDS = 1800.0
SLOW_SHARE = 0.25  # the latency bound: the bucket bound that about this share exceeds...
MAX_SLOW_SHARE = 0.6  # ...and never more
LATENCY_FLOOR = 0.005  # seconds: the latency bound is never below 5 ms
MIN_BOUND_REQUESTS = 100  # stable requests the latency bound is chosen from


@dataclass(frozen=True)
class JudgeStep:
    """Judge the canary against stable at the current weight (``first``: a first look that
    ends after ``SMOKE_SECONDS`` without a regression; otherwise until decided)."""

    first: bool

    @property
    def prepares(self) -> int | None:
        """The weight of the next step, whose instances start during this one (the first
        look lasts long enough for them to become ready), or None."""
        return MAIN_WEIGHT if self.first else None

    def describe(self) -> str:
        if self.first:
            return "judge errors and latency against stable (first look)"
        return "judge errors and latency against stable until decided"


Step = CanaryStep | JudgeStep

DEFAULT_STEPS: tuple[Step, ...] = (
    CanaryStep(set_weight=SMOKE_WEIGHT),
    JudgeStep(first=True),
    CanaryStep(set_weight=MAIN_WEIGHT),
    JudgeStep(first=False),
)


def matched_replicas(replicas: int, weight: int) -> int:
    """Canary instances that carry as many requests each as the stable revision's
    ``replicas`` at ``weight`` %: a fair comparison of latency (at 50 %, as many as stable)."""
    if weight >= 100:
        return replicas
    return max(1, min(replicas, math.ceil(replicas * weight / (100 - weight))))


def effective_steps(canary: CanarySpec) -> Sequence[Step]:
    """The steps a canary runs: its own, or ``DEFAULT_STEPS`` when it has none."""
    return canary.steps or DEFAULT_STEPS


def judging(canary: CanarySpec | None, status: Mapping[str, Any]) -> bool:
    """True while a canary's current step is a judgement (waiting on purpose for data)."""
    if canary is None or canary.steps:
        return False
    index = int(status.get("step", 0))
    return index < len(DEFAULT_STEPS) and isinstance(DEFAULT_STEPS[index], JudgeStep)


@dataclass(frozen=True)
class Judgement:
    """What one pass of a judge step decided: ``verdict`` is "regressed", "passed",
    "paused" or "" (go on judging); ``message`` says where it stands."""

    verdict: str
    message: str
    cause: Cause | None = None


def _errors(stats: RevisionStats) -> sequential.Counts:
    return sequential.Counts(
        stats.requests, stats.status.get("5xx", 0) + stats.status.get("error", 0)
    )


def _bound(label: str) -> float:
    return math.inf if label.lower() in ("+inf", "inf") else float(label)


def _slow(stats: RevisionStats, bound: str) -> sequential.Counts:
    total = stats.latency_buckets.get("+Inf", 0)
    return sequential.Counts(total, total - stats.latency_buckets.get(bound, total))


def latency_bound(stats: RevisionStats) -> str | None:
    """The latency bound to count slow requests over (a bucket label): of the finite bucket
    bounds from ``LATENCY_FLOOR`` up that at most ``MAX_SLOW_SHARE`` of ``stats``' requests
    exceed, the one whose share is closest to ``SLOW_SHARE`` (on a log scale); the largest
    finite bound when none qualifies; None with fewer than ``MIN_BOUND_REQUESTS`` requests.

    The floor keeps sub-millisecond noise (a new connection to a fresh instance, a busy
    scheduler) from being judged as a slower version. A share near a quarter makes many
    requests count, so a shift of the whole distribution is seen soon; the router's buckets
    are coarse (25, 50, 100 ms), so the closest one is taken rather than a fixed quantile.
    """
    total = stats.latency_buckets.get("+Inf", 0)
    if total < MIN_BOUND_REQUESTS:
        return None
    finite = sorted(
        (label for label in stats.latency_buckets if not math.isinf(_bound(label))), key=_bound
    )
    candidates = [label for label in finite if _bound(label) >= LATENCY_FLOOR]
    if not candidates:
        return None

    def share(label: str) -> float:
        return (total - stats.latency_buckets[label]) / total

    eligible = [label for label in candidates if share(label) <= MAX_SLOW_SHARE]
    if not eligible:
        return candidates[-1]
    return min(eligible, key=lambda label: abs(math.log(max(share(label), 1 / total) / SLOW_SHARE)))


def _counts(metric: str, stats: RevisionStats, bound: str | None) -> list[int]:
    counts = _errors(stats) if metric == "errors" else _slow(stats, bound or "+Inf")
    return [counts.requests, counts.bad]


def _since(now: list[int], start: list[int]) -> sequential.Counts:
    return sequential.Counts(max(0, now[0] - start[0]), max(0, now[1] - start[1]))


def _rate(counts: sequential.Counts) -> str:
    rate = counts.rate
    return "-" if rate is None else f"{rate * 100:.3g}% ({counts.bad} of {counts.requests})"


def judge(
    step: JudgeStep,
    index: int,
    stable: int,
    target: int,
    status: dict[str, Any],
    counters: Mapping[int, RevisionStats] | None,
    now: datetime,
) -> Judgement:
    """One pass of the judge step ``index``; updates ``status`` in place."""
    state = status.get("judge")
    if not isinstance(state, dict) or state.get("step") != index:
        carried = state.get("carried", {}) if isinstance(state, dict) else {}
        state = {"step": index, "since": now.isoformat(), "start": {}, "carried": carried}
        status["judge"] = state
    elapsed = (now - datetime.fromisoformat(state["since"])).total_seconds()
    new, old = (counters or {}).get(target), (counters or {}).get(stable)
    if new is None or old is None:
        return _undecided(elapsed, "waiting for the router's counters of both revisions")
    start = state["start"]
    if "errors" in start and (
        new.requests < start["errors"][0][0] or old.requests < start["errors"][1][0]
    ):
        start.clear()  # the router's counters started again from zero: count from here
    if "errors" not in start:
        start["errors"] = [_counts("errors", new, None), _counts("errors", old, None)]
    if "latency" not in start and (bound := latency_bound(old)) is not None:
        state["bound"] = bound
        start["latency"] = [_counts("latency", new, bound), _counts("latency", old, bound)]
    assessments = []
    for metric in sequential.METRICS:
        if metric.name not in start:
            continue
        bound = state.get("bound")
        canary = _since(_counts(metric.name, new, bound), start[metric.name][0])
        base = _since(_counts(metric.name, old, bound), start[metric.name][1])
        carried = state["carried"].get(metric.name, ())
        assessments.append(sequential.assess(metric, canary, base, carried))
    status["judgement"] = [_standing(a, state.get("bound")) for a in assessments]
    standing = "; ".join(a.describe() for a in assessments)
    for a in assessments:
        if a.verdict == sequential.Verdict.REGRESSED:
            cause = _cause(a, state.get("bound"), target, stable)
            message = f"{cause.summary}: {'; '.join(cause.evidence)}"
            return Judgement("regressed", f"{message} → rolling back to revision {stable}", cause)
    errors = assessments[0]
    if step.first:
        done = elapsed >= SMOKE_SECONDS and errors.canary.requests >= sequential.MIN_SAMPLES
        done = done and errors.stable.requests >= sequential.MIN_SAMPLES
    else:
        done = len(assessments) == len(sequential.METRICS) and all(
            a.verdict == sequential.Verdict.NO_REGRESSION for a in assessments
        )
    if done:
        state["carried"] = {a.metric.name: list(a.log_ratios) for a in assessments}
        return Judgement("passed", f"no regression: {standing}")
    return _undecided(elapsed, standing)


def _undecided(elapsed: float, standing: str) -> Judgement:
    if elapsed >= MAX_SECONDS:
        return Judgement(
            "paused",
            f"not enough traffic to decide in {MAX_SECONDS / 60:.0f}m ({standing}): "
            "`baepo promote` to go on, `baepo abort` to roll back",
        )
    return Judgement("", standing)


def _standing(a: sequential.Assessment, bound: str | None) -> dict[str, Any]:
    """One metric's standing, as JSON for ``status`` views."""
    return {
        "metric": a.metric.name,
        "verdict": a.verdict.value,
        "evidence": round(a.evidence, 3),
        "threshold": a.metric.threshold,
        "samples": a.canary.requests,
        "needed": None if a.needed is None else max(a.needed, sequential.MIN_SAMPLES),
        "canary_rate": a.canary.rate,
        "stable_rate": a.stable.rate,
        "latency_bound_ms": None
        if a.metric.name != "latency" or bound is None
        else _bound(bound) * 1000,
    }


def _cause(a: sequential.Assessment, bound: str | None, target: int, stable: int) -> Cause:
    what = "error rate" if a.metric.name == "errors" else f"share of requests over {bound}s"
    return Cause(
        kind=CauseKind.ANALYSIS,
        summary=(
            f"the default canary judged revision {target}'s {what} worse than stable "
            f"revision {stable}'s"
        ),
        evidence=(
            f"{a.metric.name} of revision {target}: {_rate(a.canary)}",
            f"{a.metric.name} of revision {stable} (stable): {_rate(a.stable)}",
            f"evidence {a.evidence:.3g} reached the threshold {a.metric.threshold:g} "
            f"(a false alarm has at most a {a.metric.alpha:g} chance)",
        ),
    )
