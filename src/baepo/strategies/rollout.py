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
    Instance,
    InstancePhase,
    Rollout,
    RolloutPhase,
)
from baepo.core.ports import RevisionStats
from baepo.spec.models import Spec
from baepo.strategies import default_canary
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

    A failed (crash-looping) instance of the new revision (while the ``crash_loop`` guard is on),
    or no progress within ``spec.progress_deadline``, ends the rollout: ROLLED_BACK when there
    is a stable revision to return to, FAILED otherwise. The controller then converges the app
    back to stable.
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

    failed = [i for i in instances if i.revision == target and i.phase == InstancePhase.FAILED]
    if failed and spec.rollback.enabled and spec.rollback.crash_loop:
        why = f"instance {failed[0].id} of revision {target} failed: {failed[0].message}"
        return _end(rollout, why), status

    idle = (now - datetime.fromisoformat(status["last_progress_at"])).total_seconds()
    if idle > spec.progress_deadline and not waiting_on_purpose:
        why = (
            f"no progress for {idle:.0f}s (progress_deadline {spec.progress_deadline:g}s): "
            f"{marker[0]} of {spec.replicas} new instances ready"
        )
        return _end(rollout, why), status

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


def _end(rollout: Rollout, why: str) -> Plan:
    if rollout.stable_revision is None:
        return Plan(phase=RolloutPhase.FAILED, message=why)
    return Plan(
        phase=RolloutPhase.ROLLED_BACK,
        message=f"{why}; rolling back to revision {rollout.stable_revision}",
    )
