"""Planning one rollout pass: failure checks shared by every strategy, then the strategy's step.

``plan_rollout`` is pure: the rollout record, the target revision's spec, the observed
instances and the time in; a ``Plan`` out. The controller persists the phase and status it
returns and applies its actions. Callers: the controller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from baepo.core import causes
from baepo.core.model import (
    AnalysisPhase,
    AnalysisRequest,
    AnalysisRun,
    Cause,
    CauseKind,
    Instance,
    InstancePhase,
    Rollout,
    RolloutPhase,
)
from baepo.core.ports import RevisionStats
from baepo.spec.models import Spec
from baepo.strategies import default_canary, startup
from baepo.strategies.bluegreen import blue_green_step
from baepo.strategies.canary import canary_step, routing_rules
from baepo.strategies.host_batches import host_batch_step
from baepo.strategies.plan import Plan, live, ready
from baepo.strategies.recreate import recreate_step
from baepo.strategies.rolling import converge, is_complete


def progress_marker(target: int, instances: Sequence[Instance], waiting: bool) -> list[int]:
    """What counts as progress: more target instances ready, fewer others live, and entering
    or leaving a deliberate wait (so time spent paused never counts against the deadline)."""
    new_ready = len([i for i in ready(instances) if i.revision == target])
    others = len([i for i in live(instances) if i.revision != target])
    return [new_ready, -others, int(waiting)]


def plan_rollout(
    rollout: Rollout,
    spec: Spec,
    instances: Sequence[Instance],
    now: datetime,
    analyses: Mapping[str, AnalysisRun] | None = None,
    counters: Mapping[int, RevisionStats] | None = None,
) -> tuple[Plan, dict[str, Any]]:
    """The next step of ``rollout`` and its updated ``status``. ``counters`` are the router's
    cumulative counters per revision (the default canary judges from them).

    These end the rollout, each with its cause (``strategies.startup``): an instance of the
    new revision whose address is taken (port conflict), that the platform gave up on before
    it was ever ready (start failed) or, while the ``crash_loop`` guard is on, after it had
    been ready (crash loop); no instance of it ready within ``health.ready_timeout`` (never
    ready); no progress within ``spec.progress_deadline`` (deadline). It ends ROLLED_BACK when
    there is a stable revision to return to, FAILED otherwise; the controller then converges
    the app back to stable. While new instances are not ready, the message and the cause say
    what their probes answer.
    """
    target = rollout.revision
    status = dict(rollout.status)
    blocking = [f"step-{status.get('step', 0)}", "pre-promotion", "post-promotion"]
    measuring = any(
        run.phase == AnalysisPhase.RUNNING
        for key, run in (analyses or {}).items()
        if key in blocking
    )
    judging = default_canary.judging(spec.strategy.canary, status)
    waiting_on_purpose = (
        rollout.phase == RolloutPhase.PAUSED or "pause_until" in status or measuring or judging
    )
    marker = progress_marker(target, instances, waiting_on_purpose)
    progressed = status.get("marker") != marker
    if progressed or "last_progress_at" not in status:
        status["marker"] = marker
        status["last_progress_at"] = now.isoformat()

    ended = _start_failure(rollout, spec, instances, status, now)
    if ended is not None:
        return ended, status

    idle = (now - datetime.fromisoformat(status["last_progress_at"])).total_seconds()
    if idle > spec.progress_deadline and not waiting_on_purpose:
        cause = startup.deadline(instances, target, spec.replicas, idle, spec.progress_deadline)
        why = (
            f"no progress for {idle:.0f}s (progress_deadline {spec.progress_deadline:g}s): "
            f"{marker[0]} of {spec.replicas} new instances ready"
        )
        return _end(rollout, why, cause), status

    plan, status = _step(
        rollout, spec, instances, now, analyses, counters, status, marker, progressed
    )
    return _with_stall(plan, instances, target), status


def _step(
    rollout: Rollout,
    spec: Spec,
    instances: Sequence[Instance],
    now: datetime,
    analyses: Mapping[str, AnalysisRun] | None,
    counters: Mapping[int, RevisionStats] | None,
    status: dict[str, Any],
    marker: list[int],
    progressed: bool,
) -> tuple[Plan, dict[str, Any]]:
    """The strategy's step, once no failure ended the rollout."""
    target = rollout.revision
    if status.get("manual_pause"):
        who = status.get("paused_by", "a person")
        message = f"paused by {who}: nothing changes until baepo resume"
        phase = RolloutPhase.PAUSED if rollout.phase != RolloutPhase.PAUSED else None
        # A pause freezes traffic, not judgement: running analyses go on measuring.
        return Plan(phase=phase, message=message, analyses=still_running(analyses)), status

    if is_complete(target, spec.replicas, instances):
        plan = converge(target, spec.replicas, 0, 0, instances)
        message = f"revision {target} is serving on {spec.replicas} ready instances"
        return Plan(traffic=plan.traffic, phase=RolloutPhase.HEALTHY, message=message), status

    if spec.strategy.canary is not None and rollout.stable_revision is not None:
        plan, status = canary_step(
            spec, spec.strategy.canary, rollout.stable_revision, target, rollout.phase,
            status, instances, now, analyses, counters,
        )  # fmt: skip
        if plan.phase == rollout.phase:
            plan = replace(plan, phase=None)
        rules = routing_rules(spec.strategy.canary, target, plan.traffic)
        return replace(plan, progressed=progressed, **rules), status
    if spec.strategy.blue_green is not None and rollout.stable_revision is not None:
        plan, status = blue_green_step(
            spec, spec.strategy.blue_green, rollout.stable_revision, target, rollout.phase,
            status, instances, now, analyses,
        )  # fmt: skip
        if plan.phase == rollout.phase:
            plan = replace(plan, phase=None)
        return replace(plan, progressed=progressed), status
    if spec.strategy.kind == "recreate":
        step = recreate_step(target, spec.replicas, instances)
    elif spec.strategy.rolling is None:  # a first deploy of a progressive strategy
        step = converge(target, spec.replicas, spec.replicas, 0, instances)
    else:
        assert spec.strategy.rolling is not None
        size = spec.strategy.rolling.host_batch_size(len(spec.target.hosts))
        if size is not None and spec.target.kind == "hosts" and rollout.stable_revision is not None:
            return _host_batches(rollout, spec, size, instances, status, progressed)
        surge, unavailable = spec.strategy.rolling.resolve(spec.replicas)
        if rollout.stable_revision is None:
            surge = spec.replicas  # a first deploy has nothing to protect: start all at once
        step = converge(target, spec.replicas, surge, unavailable, instances)
    phase = RolloutPhase.PROGRESSING if rollout.phase == RolloutPhase.PENDING else None
    new_ready = marker[0]
    message = f"{new_ready}/{spec.replicas} new instances ready, {-marker[1]} old live"
    return (
        Plan(
            traffic=step.traffic,
            stop=step.stop,
            start=step.start,
            phase=phase,
            message=message,
            progressed=progressed,
        ),
        status,
    )


def _host_batches(
    rollout: Rollout,
    spec: Spec,
    size: int,
    instances: Sequence[Instance],
    status: dict[str, Any],
    progressed: bool,
) -> tuple[Plan, dict[str, Any]]:
    """A rolling step host batch by host batch (``strategy.rolling.hosts_at_a_time``).

    ``status["failed_hosts"]`` (filled by the controller when a start placed on a host fails)
    names the hosts to skip; more of them than ``target.max_failed_hosts`` ends the rollout.
    """
    hosts = [host.address for host in spec.target.hosts]
    failed = [host for host in hosts if host in status.get("failed_hosts", [])]
    if len(failed) > spec.target.max_failed_hosts:
        why = (
            f"{len(failed)} host(s) failed ({', '.join(failed)}); max_failed_hosts is "
            f"{spec.target.max_failed_hosts}"
        )
        cause = causes.infrastructure(
            f"instances of revision {rollout.revision} could not start on {len(failed)} "
            f"host(s), more than max_failed_hosts ({spec.target.max_failed_hosts})",
            *(
                f"{host}: {status.get('host_errors', {}).get(host, 'start failed')}"
                for host in failed
            ),
        )
        return replace(_end(rollout, why), cause=cause), status
    step = host_batch_step(rollout.revision, spec.replicas, hosts, size, instances, failed)
    notes: tuple[str, ...] = ()
    if step.number and status.get("batch") != step.number:
        status["batch"] = step.number
        notes = (f"batch {step.number}/{step.total}: {', '.join(step.hosts)}",)
    phase = RolloutPhase.PROGRESSING if rollout.phase == RolloutPhase.PENDING else None
    skipped = f"; skipped: {', '.join(failed)}" if failed else ""
    if step.number:
        message = (
            f"batch {step.number}/{step.total} ({', '.join(step.hosts)}): "
            f"{step.new_ready}/{step.wanted} new instances ready{skipped}"
        )
    else:
        message = f"every host runs revision {rollout.revision}; stopping the rest{skipped}"
    plan = replace(step.plan, phase=phase, message=message, progressed=progressed, notes=notes)
    return plan, status


def still_running(analyses: Mapping[str, AnalysisRun] | None) -> tuple[AnalysisRequest, ...]:
    """The requests that keep the running runs of ``analyses`` running as they are."""
    return tuple(
        AnalysisRequest(
            key=run.key,
            kind=run.kind,
            templates=tuple(run.templates),
            revision=run.revision,
            baseline=run.baseline,
            args=tuple(sorted(run.metrics.get("args", {}).items())),
            blocking=bool(run.metrics.get("blocking", True)),
        )
        for run in (analyses or {}).values()
        if run.phase == AnalysisPhase.RUNNING
    )


def _start_failure(
    rollout: Rollout,
    spec: Spec,
    instances: Sequence[Instance],
    status: dict[str, Any],
    now: datetime,
) -> Plan | None:
    """The end of a rollout whose new instances cannot start or never become ready, else
    None. Notes in ``status`` when the first new instance was seen, whether one was ever
    ready, and the ``ready_timeout`` in force (the default is fixed at the first pass, from
    the stable instances of that moment)."""
    target = rollout.revision
    mine = [i for i in instances if i.revision == target]
    for instance in mine:
        conflict = startup.port_conflict(instance)
        if conflict is not None:
            return _end(rollout, conflict.summary, conflict)
    failed = [i for i in mine if i.phase == InstancePhase.FAILED]
    if failed:
        cause = startup.failed_instance(failed[0])
        guarded = spec.rollback.enabled and spec.rollback.crash_loop
        if cause.kind != CauseKind.CRASH_LOOP or guarded:
            return _end(rollout, cause.summary, cause)
    if "ready_timeout" not in status:
        status["ready_timeout"] = spec.health.ready_timeout or startup.default_ready_timeout(
            instances, rollout.stable_revision, spec.health.readiness.initial_delay
        )
    if any(i.ready for i in mine):
        status["new_ready_seen"] = True
    if status.get("new_ready_seen") or not startup.waiting(instances, target):
        return None
    since = datetime.fromisoformat(status.setdefault("new_started_at", now.isoformat()))
    waited = (now - since).total_seconds()
    timeout = float(status["ready_timeout"])
    if waited < timeout or status.get("manual_pause"):
        return None
    cause = startup.never_ready(instances, target, waited, timeout)
    return _end(rollout, cause.summary, cause)


def _with_stall(plan: Plan, instances: Sequence[Instance], target: int) -> Plan:
    """A plan that leaves the rollout waiting on new instances that are not ready says what
    their probes answer, in its message and (a likely cause while in flight) its cause."""
    if plan.phase is not None and plan.phase.terminal:
        return plan
    stalled = startup.stall(instances, target)
    if stalled is None:
        return plan
    message = f"{plan.message}; {stalled.evidence[0]}" if plan.message else stalled.evidence[0]
    return replace(plan, message=message, cause=plan.cause or stalled)


def _end(rollout: Rollout, why: str, cause: Cause | None = None) -> Plan:
    if rollout.stable_revision is None:
        return Plan(phase=RolloutPhase.FAILED, message=why, cause=cause)
    return Plan(
        phase=RolloutPhase.ROLLED_BACK,
        message=f"{why}; rolling back to revision {rollout.stable_revision}",
        cause=cause,
    )
