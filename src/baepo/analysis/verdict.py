"""Verdicts: one measurement against its conditions, a metric over its measurements, a run.

The rules, as documented in ``docs/analysis.md``:

- A measurement **fails** when ``failure_condition`` holds; else it **passes** when
  ``success_condition`` holds. When only ``success_condition`` is given and it does not hold,
  the measurement fails; when only ``failure_condition`` is given and it does not hold, it
  passes; when both are given and neither holds, it is **inconclusive**. A condition that
  cannot be evaluated (a missing value, division by zero) and a measurement that could not be
  taken are **errors**; a source that answered with nothing to measure is inconclusive.
- A metric is **failed** when its failed measurements exceed ``failure_limit``
  (``failure_limit: 0`` fails on the first failure, ``3`` on the fourth), **inconclusive**
  when its inconclusive ones exceed ``inconclusive_limit``, **error** when more than
  ``consecutive_error_limit`` measurements in a row were errors, and **successful** once
  ``count`` measurements that are not errors were taken without any of that. Errors never
  count toward ``count``: a source that is down never yields a silent pass.
- A run is failed when any metric that is not ``dry_run`` failed, else error, else
  inconclusive (in that order); successful when every such metric is; running otherwise.
- A run its owner ends before its verdict is judged in one of two ways. At its planned end
  (a background analysis at the final switch) each metric still measuring is successful when
  at least one of its measurements passed and no limit was exceeded, else inconclusive: a
  metric with nothing but failures within ``failure_limit`` has not passed. Ended by
  something else (a guard's rollback, an abort, a newer deploy, ``baepo promote`` skipping
  the step) it is **cancelled**, whatever it measured so far: neither a pass nor a fail.

Pure functions. Callers: the analysis engine, ``baepo analysis`` (reasons), tests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from baepo.analysis.measure import Measured
from baepo.core.model import AnalysisPhase, Measurement
from baepo.expressions.conditions import Condition, ConditionError, describe
from baepo.spec.analysis import MetricSpec

_SEVERITY = (AnalysisPhase.FAILED, AnalysisPhase.ERROR, AnalysisPhase.INCONCLUSIVE)


def assess(
    success: Condition | None, failure: Condition | None, measured: Measured
) -> tuple[AnalysisPhase, str]:
    """The phase of one measurement and the condition with its values, in plain words."""
    variables: dict[str, Any] = {**measured.variables, "result": measured.value}
    try:
        if failure is not None and failure.evaluate(variables):
            return AnalysisPhase.FAILED, describe(failure, variables)
        if success is not None:
            if success.evaluate(variables):
                return AnalysisPhase.SUCCESSFUL, describe(success, variables)
            if failure is None:
                return AnalysisPhase.FAILED, f"not {describe(success, variables)}"
            return (
                AnalysisPhase.INCONCLUSIVE,
                f"neither {describe(success, variables)} nor {describe(failure, variables)}",
            )
        assert failure is not None
        return AnalysisPhase.SUCCESSFUL, f"not {describe(failure, variables)}"
    except ConditionError as exc:
        return AnalysisPhase.ERROR, f"could not evaluate: {exc}"


@dataclass(frozen=True)
class Tally:
    """What a metric's measurements add up to."""

    taken: int  # measurements that are not errors
    successful: int
    failed: int
    inconclusive: int
    errors: int
    consecutive_errors: int

    @classmethod
    def of(cls, measurements: Sequence[Measurement]) -> Tally:
        counts = Counter(m.phase for m in measurements)
        trailing = 0
        for measurement in reversed(measurements):
            if measurement.phase != AnalysisPhase.ERROR:
                break
            trailing += 1
        return cls(
            taken=len(measurements) - counts[AnalysisPhase.ERROR],
            successful=counts[AnalysisPhase.SUCCESSFUL],
            failed=counts[AnalysisPhase.FAILED],
            inconclusive=counts[AnalysisPhase.INCONCLUSIVE],
            errors=counts[AnalysisPhase.ERROR],
            consecutive_errors=trailing,
        )


def metric_phase(metric: MetricSpec, tally: Tally, count: int | None) -> AnalysisPhase:
    """The metric's verdict so far (``count`` None: measured until the run is ended)."""
    if tally.failed > metric.failure_limit:
        return AnalysisPhase.FAILED
    if tally.inconclusive > metric.inconclusive_limit:
        return AnalysisPhase.INCONCLUSIVE
    if tally.consecutive_errors > metric.consecutive_error_limit:
        return AnalysisPhase.ERROR
    if count is not None and tally.taken >= count:
        return AnalysisPhase.SUCCESSFUL
    return AnalysisPhase.RUNNING


def ended_phase(metric: MetricSpec, tally: Tally, *, cancelled: bool = False) -> AnalysisPhase:
    """The verdict of a metric whose run is ended by its owner. At the run's planned end (a
    background analysis at the final switch): failed, inconclusive or error when a limit was
    exceeded, else successful when at least one measurement passed, else inconclusive —
    never a pass by default. ``cancelled`` (ended by something else): CANCELLED unless a limit
    was already exceeded."""
    phase = metric_phase(metric, tally, None)
    if phase != AnalysisPhase.RUNNING:
        return phase
    if cancelled:
        return AnalysisPhase.CANCELLED
    return AnalysisPhase.SUCCESSFUL if tally.successful else AnalysisPhase.INCONCLUSIVE


def _of(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def metric_reason(
    name: str,
    metric: MetricSpec,
    measurements: Sequence[Measurement],
    phase: AnalysisPhase,
    count: int | None,
) -> str:
    """Why the metric is where it is, in plain words, e.g. ``error_rate: 0.31 > 0.05 on 2 of 3
    measurements; failure_limit 1 exceeded``."""
    tally = Tally.of(measurements)
    last = {m.phase: m.message for m in measurements}
    of_taken = f"of {_of(tally.taken, 'measurement')}"
    if phase == AnalysisPhase.FAILED:
        return (
            f"{name}: {last[AnalysisPhase.FAILED]} on {tally.failed} {of_taken}; "
            f"failure_limit {metric.failure_limit} exceeded"
        )
    if phase == AnalysisPhase.INCONCLUSIVE and tally.inconclusive > metric.inconclusive_limit:
        return (
            f"{name}: inconclusive on {tally.inconclusive} {of_taken} "
            f"({last[AnalysisPhase.INCONCLUSIVE]}); "
            f"inconclusive_limit {metric.inconclusive_limit} exceeded"
        )
    if phase == AnalysisPhase.INCONCLUSIVE and not tally.taken:
        return f"{name}: no measurement could be taken before the analysis ended"
    if phase == AnalysisPhase.INCONCLUSIVE:
        failed = f"; {tally.failed} failed, within failure_limit" if tally.failed else ""
        return (
            f"{name}: no measurement passed before the analysis ended "
            f"({_of(tally.taken, 'measurement')}{failed})"
        )
    if phase == AnalysisPhase.ERROR:
        return (
            f"{name}: {_of(tally.consecutive_errors, 'measurement')} in a row could not be taken "
            f"(last: {last[AnalysisPhase.ERROR]}); "
            f"consecutive_error_limit {metric.consecutive_error_limit} exceeded"
        )
    passed = f"passed {tally.successful} {of_taken}"
    if tally.failed:
        passed += f"; {tally.failed} failed, within failure_limit {metric.failure_limit}"
    if tally.inconclusive:
        passed += f"; {tally.inconclusive} inconclusive"
    if tally.errors:
        passed += f"; {_of(tally.errors, 'error')}"
    if AnalysisPhase.SUCCESSFUL in last:
        passed += f" (last: {last[AnalysisPhase.SUCCESSFUL]})"
    if phase == AnalysisPhase.RUNNING:
        wanted = f"{tally.taken}/{count}" if count is not None else f"{tally.taken}"
        return f"{name}: {wanted} measurements so far, {passed}"
    if phase == AnalysisPhase.CANCELLED:
        return f"{name}: cancelled after {_of(tally.taken, 'measurement')}, {passed}"
    return f"{name}: {passed}"


def recent(measurements: Sequence[Measurement], limit: int = 10) -> list[str]:
    """The last ``limit`` measurements in short words, oldest first (``failed: 0.31 > 0.05``):
    the evidence a failure cause quotes."""
    return [f"{m.phase.value}: {m.message}" for m in measurements[-limit:]]


def run_phase(phases: Mapping[str, AnalysisPhase], dry_run: Iterable[str] = ()) -> AnalysisPhase:
    """The run's verdict from its metrics' (metrics named in ``dry_run`` never decide it)."""
    skipped = set(dry_run)
    deciding = [phase for name, phase in phases.items() if name not in skipped]
    for severe in _SEVERITY:
        if severe in deciding:
            return severe
    if AnalysisPhase.CANCELLED in deciding:
        return AnalysisPhase.CANCELLED
    if any(phase == AnalysisPhase.RUNNING for phase in deciding):
        return AnalysisPhase.RUNNING
    if not deciding and any(p == AnalysisPhase.RUNNING for p in phases.values()):
        return AnalysisPhase.RUNNING  # only dry-run metrics: they still run to their end
    return AnalysisPhase.SUCCESSFUL
