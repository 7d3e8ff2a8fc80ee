"""The canary strategy: shift traffic to the new revision step by step.

Steps run in order: ``set_weight`` (route that share to the canary once it has ready
instances), ``pause`` (for a duration, or until ``baepo promote``), ``set_canary_scale`` (a
number of canary instances independent of the weight) and ``analysis`` (asks for an analysis
run keyed ``step-N`` and goes on when it is successful; failed or error rolls back,
inconclusive or cancelled pauses until ``baepo promote`` or ``baepo abort``).
``background_analysis`` is asked for from its ``starting_step`` until the final switch, and
rolls back on failure. A failed run ends the rollout with an ``analysis`` cause.
A canary without steps runs ``default_canary.DEFAULT_STEPS``, whose judge steps compare
the canary with stable on the router's counters (``counters``) until they decide.
After the last step — or on ``baepo promote --full`` — the canary is scaled to ``replicas``,
receives all traffic in one router operation, and the stable revision is drained and stopped.

The weight is a share of *requests*, whatever the instance counts: the router splits by
revision first, then balances within one. Without an explicit scale, the canary runs
``ceil(replicas * weight / 100)`` instances (at least one), started ``max_surge`` at a time.
With ``dynamic_stable_scale`` the stable revision shrinks to the complement of the weight, but
never below ``replicas - max_unavailable`` ready instances overall.

Everything a pass needs to resume after a crash is in the rollout's ``status``: the step index,
the weight, the scale override, the absolute end of a timed pause, and pending promote
requests. Callers: ``strategies.rollout``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from baepo.core.model import (
    AnalysisPhase,
    AnalysisRequest,
    AnalysisRun,
    Cause,
    CauseKind,
    Instance,
    InstancePhase,
    RolloutPhase,
)
from baepo.core.ports import Backend, HeaderRoute, RevisionStats, Sticky
from baepo.spec.models import Spec
from baepo.spec.strategies import AnalysisStepSpec, CanarySpec
from baepo.strategies import default_canary
from baepo.strategies.default_canary import JudgeStep
from baepo.strategies.plan import Plan, live, ready


def canary_replicas(replicas: int, weight: int, scale: dict[str, Any] | None) -> int:
    """How many canary instances a step wants."""
    if scale:
        if "replicas" in scale:
            return min(int(scale["replicas"]), replicas)
        if "weight" in scale:
            return math.ceil(replicas * int(scale["weight"]) / 100)
    if weight <= 0:
        return 0
    return max(1, min(replicas, math.ceil(replicas * weight / 100)))


def weighted_traffic(
    stable: int, canary: int, weight: int, instances: Sequence[Instance]
) -> tuple[Backend, ...]:
    """Stable and canary backends at ``100 - weight`` / ``weight``; a side without ready
    instances gets nothing and the other side everything."""
    by_rev: dict[int, list[str]] = {stable: [], canary: []}
    for instance in sorted(ready(instances), key=lambda i: i.id):
        if instance.revision in by_rev:
            by_rev[instance.revision].append(instance.address)
    weights = {stable: 100 - weight, canary: weight}
    if not by_rev[canary]:
        weights = {stable: 100, canary: 0}
    elif not by_rev[stable]:
        weights = {stable: 0, canary: 100}
    # A side with ready instances stays in the table even at weight 0: header routes (testers'
    # `X-Canary: always`) reach it there while ordinary requests do not.
    return tuple(
        Backend(revision=rev, weight=weights[rev], upstreams=tuple(by_rev[rev]))
        for rev in (stable, canary)
        if by_rev[rev]
    )


def routing_rules(
    canary: CanarySpec, target: int, traffic: Sequence[Backend] | None
) -> dict[str, Any]:
    """The sticky and header-route rules of a canary, for ``Plan``. A header route is only
    given while the canary is in the table (it has ready instances)."""
    sticky = None
    if canary.sticky is not None:
        sticky = Sticky(cookie=canary.sticky.cookie, header=canary.sticky.header)
    routes: tuple[HeaderRoute, ...] = ()
    in_table = any(b.revision == target for b in traffic or ())
    if canary.header_route is not None and in_table:
        route = canary.header_route
        routes = (HeaderRoute(header=route.header, value=route.value, revision=target),)
    return {"sticky": sticky, "header_routes": routes}


def analysis_request(
    key: str, kind: str, section: AnalysisStepSpec, target: int, stable: int | None,
    *, blocking: bool = True,
) -> AnalysisRequest:  # fmt: skip
    """The request for the run of ``section``'s templates against ``target``."""
    return AnalysisRequest(
        key=key, kind=kind, templates=tuple(section.templates), revision=target,
        baseline=stable, args=tuple(sorted(section.args.items())), blocking=blocking,
    )  # fmt: skip


FAILING = (AnalysisPhase.FAILED, AnalysisPhase.ERROR)
WAITING = (AnalysisPhase.INCONCLUSIVE, AnalysisPhase.CANCELLED)  # for a person to decide


def analysis_cause(run: AnalysisRun) -> Cause:
    """The cause of a rollout ended by ``run``'s verdict: its message, then for each metric
    that decided it the condition, the counts and the latest measurements."""
    evidence: list[str] = []
    for key, summary in run.metrics.get("metrics", {}).items():
        if summary.get("phase") != run.phase.value or summary.get("dry_run"):
            continue
        evidence.append(f"{key}: {summary.get('condition') or 'no condition'}")
        evidence.append(f"{key}: {summary.get('reason', '')}")
        evidence += [f"  {line}" for line in summary.get("recent", [])]
    return Cause(CauseKind.ANALYSIS, run.message, tuple(evidence))


def analysis_failed(run: AnalysisRun) -> Plan:
    """The plan that rolls back because ``run`` failed (or could not measure)."""
    return Plan(phase=RolloutPhase.ROLLED_BACK, message=run.message, cause=analysis_cause(run))


def canary_step(
    spec: Spec, canary: CanarySpec, stable: int, target: int, phase: RolloutPhase,
    status: dict[str, Any], instances: Sequence[Instance], now: datetime,
    analyses: Mapping[str, AnalysisRun] | None = None,
    counters: Mapping[int, RevisionStats] | None = None,
) -> tuple[Plan, dict[str, Any]]:  # fmt: skip
    """One pass of a canary rollout from ``stable`` to ``target``. ``counters`` are the
    router's cumulative counters per revision, for the default canary's judgement."""
    before = status
    plan, status = _canary_step(
        spec, canary, stable, target, phase, status, instances, now, analyses or {}, counters
    )
    background = canary.background_analysis
    if background is None or plan.phase in (RolloutPhase.ROLLED_BACK, RolloutPhase.FAILED):
        return plan, status
    run = (analyses or {}).get("background")
    if run is not None and run.phase in FAILING:  # wins over a step this pass completed
        return analysis_failed(run), dict(before)
    index = int(status.get("step", 0))
    if index >= background.starting_step and not status.get("switched"):
        request = analysis_request("background", "background", background, target, stable,
                                   blocking=False)  # fmt: skip
        plan = replace(plan, analyses=(*plan.analyses, request))
    return plan, status


def _canary_step(
    spec: Spec, canary: CanarySpec, stable: int, target: int, phase: RolloutPhase,
    status: dict[str, Any], instances: Sequence[Instance], now: datetime,
    analyses: Mapping[str, AnalysisRun], counters: Mapping[int, RevisionStats] | None,
) -> tuple[Plan, dict[str, Any]]:  # fmt: skip
    status = dict(status)
    steps = default_canary.effective_steps(canary)
    replicas = spec.replicas
    surge, unavailable = canary.resolve(replicas)
    notes: list[str] = []
    index = int(status.get("step", 0))
    canary_ready = len([i for i in ready(instances) if i.revision == target])

    if status.pop("promote_full", False):
        index = len(steps)
        notes.append("promoted in full: skipping the remaining steps")
    promote_once = bool(status.pop("promote_step", False))

    waiting = ""
    while index < len(steps) and not waiting:
        step = steps[index]
        label = f"step {index + 1}/{len(steps)}: {step.describe()}"
        if isinstance(step, JudgeStep):
            if promote_once:
                promote_once = False
            else:
                status["step"] = index
                if step.prepares is not None:
                    matched = default_canary.matched_replicas(replicas, step.prepares)
                    status["scale"] = {"replicas": matched}
                judged = default_canary.judge(step, index, stable, target, status, counters, now)
                if judged.verdict == "regressed":
                    message = f"{label}: regression: {judged.message}"
                    return (
                        Plan(phase=RolloutPhase.ROLLED_BACK, message=message, cause=judged.cause),
                        status,
                    )
                if judged.verdict != "passed":
                    plan = _scaled(
                        spec, canary, stable, target, status, instances, surge, unavailable
                    )
                    going = RolloutPhase.PAUSED if judged.verdict else RolloutPhase.PROGRESSING
                    return (
                        Plan(
                            traffic=plan.traffic, stop=plan.stop, start=plan.start,
                            phase=going if phase != going else None,
                            message=f"{label}: {judged.message}", notes=tuple(notes),
                        ),
                        status,
                    )  # fmt: skip
                notes.append(f"{label}: {judged.message}")
                index += 1
                continue
        elif step.set_weight is not None:
            status["weight"] = step.set_weight
            if not canary.steps:  # the default canary: as much load per instance as stable
                matched = default_canary.matched_replicas(replicas, step.set_weight)
                status["scale"] = {"replicas": matched}
            wanted = canary_replicas(replicas, step.set_weight, status.get("scale"))
            if canary_ready < wanted:
                waiting = f"{label}: {canary_ready}/{wanted} canary instances ready"
                break
        elif step.set_canary_scale is not None:
            scale = step.set_canary_scale.model_dump(exclude_none=True)
            status["scale"] = None if scale.get("match_traffic_weight") else scale
            wanted = canary_replicas(replicas, int(status.get("weight", 0)), status["scale"])
            if canary_ready < wanted:
                waiting = f"{label}: {canary_ready}/{wanted} canary instances ready"
                break
        elif step.pause is not None and step.pause.duration is not None:
            if promote_once:
                promote_once = False
            else:
                until = status.setdefault(
                    "pause_until", (now + timedelta(seconds=step.pause.duration)).isoformat()
                )
                left = (datetime.fromisoformat(until) - now).total_seconds()
                if left > 0:
                    waiting = f"{label}, {math.ceil(left)}s left"
                    break
        elif promote_once:  # an indefinite pause or an analysis step: a person said go on
            promote_once = False
        elif step.analysis is not None:
            key = f"step-{index}"
            run = analyses.get(key)
            if run is None or run.phase == AnalysisPhase.RUNNING:
                status["step"] = index
                request = analysis_request(key, "step", step.analysis, target, stable)
                plan = _scaled(spec, canary, stable, target, status, instances, surge, unavailable)
                running = run.message if run is not None else "starting"
                return (
                    Plan(
                        traffic=plan.traffic, stop=plan.stop, start=plan.start,
                        phase=RolloutPhase.PROGRESSING if phase != RolloutPhase.PROGRESSING
                        else None,
                        message=f"{label}: {running}", notes=tuple(notes), analyses=(request,),
                    ),
                    status,
                )  # fmt: skip
            if run.phase in FAILING:
                return analysis_failed(run), status
            if run.phase in WAITING:
                status["step"] = index
                plan = _scaled(spec, canary, stable, target, status, instances, surge, unavailable)
                return (
                    Plan(
                        traffic=plan.traffic, stop=plan.stop, start=plan.start,
                        phase=RolloutPhase.PAUSED if phase != RolloutPhase.PAUSED else None,
                        message=f"{label}: {run.message}", notes=tuple(notes),
                    ),
                    status,
                )  # fmt: skip
        else:
            status["step"] = index
            plan = _scaled(spec, canary, stable, target, status, instances, surge, unavailable)
            return (
                Plan(
                    traffic=plan.traffic, stop=plan.stop, start=plan.start,
                    phase=RolloutPhase.PAUSED if phase != RolloutPhase.PAUSED else None,
                    message=f"{label}: waiting for `baepo promote`", notes=tuple(notes),
                ),
                status,
            )  # fmt: skip
        status.pop("pause_until", None)
        notes.append(f"{label}: done")
        index += 1
    status["step"] = index

    if index >= len(steps):
        return _promote_fully(spec, stable, target, status, instances, notes)

    plan = _scaled(spec, canary, stable, target, status, instances, surge, unavailable)
    return (
        Plan(
            traffic=plan.traffic, stop=plan.stop, start=plan.start,
            phase=RolloutPhase.PROGRESSING if phase != RolloutPhase.PROGRESSING else None,
            message=waiting, notes=tuple(notes),
        ),
        status,
    )  # fmt: skip


def _scaled(
    spec: Spec, canary: CanarySpec, stable: int, target: int, status: dict[str, Any],
    instances: Sequence[Instance], surge: int, unavailable: int,
) -> Plan:  # fmt: skip
    """Instances and traffic for the current weight and scale."""
    replicas = spec.replicas
    weight = int(status.get("weight", 0))
    wanted = canary_replicas(replicas, weight, status.get("scale"))
    canaries = [i for i in live(instances) if i.revision == target]
    stables = [i for i in live(instances) if i.revision == stable]
    others = [i for i in instances if i.revision not in (stable, target)]
    stop = [i.id for i in others]
    stop += [
        i.id
        for i in instances
        if i.revision in (stable, target) and i.phase == InstancePhase.FAILED
    ]
    starting = len([i for i in canaries if not i.ready])
    start = max(0, min(wanted - len(canaries), max(1, surge) - starting))
    if len(canaries) > wanted:
        surplus = sorted(canaries, key=lambda i: (i.ready, i.id))[: len(canaries) - wanted]
        stop += [i.id for i in surplus]
    if canary.dynamic_stable_scale:
        stable_wanted = math.ceil(replicas * (100 - weight) / 100)
        ready_total = len(ready(instances)) - len([i for i in others if i.ready])
        removable = max(0, ready_total - max(0, replicas - unavailable))
        excess = max(0, len(stables) - stable_wanted)
        ordered = sorted(stables, key=lambda i: (i.ready, i.id))
        stop += [i.id for i in ordered[: min(excess, removable)]]
    remaining = [i for i in instances if i.id not in stop]
    return Plan(
        traffic=weighted_traffic(stable, target, weight, remaining),
        stop=tuple(dict.fromkeys(stop)),
        start=start,
    )


def _promote_fully(
    spec: Spec, stable: int, target: int, status: dict[str, Any],
    instances: Sequence[Instance], notes: list[str],
) -> tuple[Plan, dict[str, Any]]:  # fmt: skip
    """Scale the canary to ``replicas``, switch all traffic at once, then retire stable."""
    replicas = spec.replicas
    canaries = [i for i in live(instances) if i.revision == target]
    ready_canaries = [i for i in ready(instances) if i.revision == target]
    if len(ready_canaries) < replicas and not status.get("switched"):
        status["weight"] = int(status.get("weight", 0))
        plan_traffic = weighted_traffic(stable, target, status["weight"], instances)
        return (
            Plan(
                traffic=plan_traffic, start=max(0, replicas - len(canaries)),
                phase=RolloutPhase.PROMOTING,
                message=f"promoting: {len(ready_canaries)}/{replicas} canary instances ready",
                notes=tuple(notes),
            ),
            status,
        )  # fmt: skip
    status["switched"] = True
    status["weight"] = 100
    keep = sorted(ready_canaries, key=lambda i: i.id)[:replicas]
    stop = [i.id for i in instances if i not in keep]
    traffic = weighted_traffic(stable, target, 100, keep)
    return (
        Plan(
            traffic=traffic, stop=tuple(stop), phase=RolloutPhase.PROMOTING,
            message=f"promoting: revision {target} takes all traffic; retiring revision {stable}",
            notes=tuple(notes),
        ),
        status,
    )  # fmt: skip
