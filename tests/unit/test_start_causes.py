"""Causes of a new revision that does not come up: start failed, crash loop, port conflict,
never ready (fail fast at ``health.ready_timeout``), deadline, and the stall in flight."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from simulation import T0, instance, make_rollout, make_spec

from baepo.core.model import CauseKind, Instance, InstancePhase, RolloutPhase
from baepo.strategies import startup
from baepo.strategies.rollout import plan_rollout

TRACEBACK = (
    "Traceback (most recent call last):",
    "ModuleNotFoundError: No module named 'flaskk'",
)


def rolling(replicas: int = 1, **extra: Any) -> Any:
    spec = make_spec(replicas, {"rolling": {"max_surge": 1, "max_unavailable": 0}})
    return spec.model_copy(update=extra) if extra else spec


def failed(revision: int = 2, **changes: Any) -> Instance:
    base = replace(
        instance(revision, is_ready=False),
        phase=InstancePhase.FAILED,
        message="exited with code 1, 3 restarts in 60s",
        exit_code=1,
        output=TRACEBACK,
        restarts=3,
    )
    return replace(base, **changes)


def not_ready(revision: int = 2, answer: str = "GET /health/ready → 404") -> Instance:
    return replace(
        instance(revision, is_ready=False),
        phase=InstancePhase.RUNNING,
        message=f"not ready: {answer}",
    )


def test_an_instance_that_never_became_ready_and_failed_is_a_start_failure_with_its_tail() -> None:
    plan, _ = plan_rollout(make_rollout(), rolling(), [instance(1), failed()], T0)
    assert plan.phase == RolloutPhase.ROLLED_BACK
    assert plan.cause is not None and plan.cause.kind == CauseKind.START_FAILED
    assert "exited with code 1" in plan.cause.summary
    assert "(exit code 1)" in plan.cause.evidence[0]
    assert "  ModuleNotFoundError: No module named 'flaskk'" in plan.cause.evidence


def test_a_start_failure_ends_the_rollout_even_with_the_crash_loop_guard_off() -> None:
    spec = rolling()
    spec = spec.model_copy(
        update={"rollback": spec.rollback.model_copy(update={"crash_loop": False})}
    )
    plan, _ = plan_rollout(make_rollout(stable=None, target=1), spec, [failed(1)], T0)
    assert plan.phase == RolloutPhase.FAILED
    assert plan.cause is not None and plan.cause.kind == CauseKind.START_FAILED


def test_a_missing_command_is_a_start_failure_naming_it() -> None:
    missing = failed(
        message="command 'gunicornn' not found in PATH: install it, or give its "
        "full path in run.command",
        exit_code=None,
        output=(),
        restarts=0,
    )
    plan, _ = plan_rollout(
        make_rollout(stable=None, target=1), rolling(), [replace(missing, revision=1)], T0
    )
    assert plan.cause is not None and plan.cause.kind == CauseKind.START_FAILED
    assert "command 'gunicornn' not found in PATH" in plan.cause.summary


def test_an_instance_that_was_ready_then_kept_crashing_is_a_crash_loop() -> None:
    plan, _ = plan_rollout(make_rollout(), rolling(), [instance(1), failed(ready_after=0.4)], T0)
    assert plan.cause is not None and plan.cause.kind == CauseKind.CRASH_LOOP
    assert "after 3 restarts" in plan.cause.summary


def test_address_in_use_in_a_restarting_instance_is_a_port_conflict_at_once() -> None:
    busy = replace(
        failed(),
        phase=InstancePhase.STARTING,
        message="exited with code 1: port 8123 is taken by pid 77 (python3); restarting",
        output=("OSError: [Errno 98] Address already in use",),
        restarts=1,
    )
    plan, _ = plan_rollout(make_rollout(), rolling(), [instance(1), busy], T0)
    assert plan.phase == RolloutPhase.ROLLED_BACK
    assert plan.cause is not None and plan.cause.kind == CauseKind.PORT_CONFLICT
    assert "port 8123 is taken by pid 77 (python3)" in plan.cause.evidence[0]
    assert "  OSError: [Errno 98] Address already in use" in plan.cause.evidence


def test_never_ready_fails_fast_at_ready_timeout_with_the_probe_answer() -> None:
    spec = rolling()
    spec = spec.model_copy(update={"health": spec.health.model_copy(update={"ready_timeout": 5.0})})
    ro = make_rollout()
    pods = [instance(1), not_ready()]
    plan, status = plan_rollout(ro, spec, pods, T0)
    assert plan.phase == RolloutPhase.PROGRESSING
    assert plan.message.endswith("not ready: GET /health/ready → 404")
    assert plan.cause is not None and plan.cause.kind == CauseKind.NEVER_READY  # a stall
    ro = replace(ro, status=status, phase=RolloutPhase.PROGRESSING)
    plan, status = plan_rollout(ro, spec, pods, T0 + timedelta(seconds=4))
    assert plan.phase is None
    plan, _ = plan_rollout(replace(ro, status=status), spec, pods, T0 + timedelta(seconds=5))
    assert plan.phase == RolloutPhase.ROLLED_BACK
    assert plan.cause is not None and plan.cause.kind == CauseKind.NEVER_READY
    assert "ready_timeout 5s" in plan.cause.summary
    assert any("GET /health/ready → 404" in line for line in plan.cause.evidence)


def test_once_a_new_instance_was_ready_the_progress_deadline_decides() -> None:
    spec = rolling(2)
    spec = spec.model_copy(update={"health": spec.health.model_copy(update={"ready_timeout": 5.0})})
    ro = make_rollout()
    _, status = plan_rollout(ro, spec, [instance(1), instance(1), instance(2)], T0)
    ro = replace(ro, status=status, phase=RolloutPhase.PROGRESSING)
    pods = [instance(1), instance(1), instance(2), not_ready()]
    plan, _ = plan_rollout(ro, spec, pods, T0 + timedelta(seconds=30))
    assert plan.phase is None


def test_the_default_ready_timeout_is_five_times_the_stable_time_to_ready_at_least_60s() -> None:
    slow = [replace(instance(1), ready_after=20.0), replace(instance(1), ready_after=3.0)]
    assert startup.default_ready_timeout(slow, 1) == 100.0
    fast = [replace(instance(1), ready_after=0.5)]
    assert startup.default_ready_timeout(fast, 1) == 60.0
    assert startup.default_ready_timeout(slow, None) == 60.0  # a first deploy
    assert startup.default_ready_timeout([instance(1)], 1) == 60.0  # not reported
    assert startup.default_ready_timeout(slow, 1, initial_delay=30.0) == 130.0
    ro = make_rollout()
    _, status = plan_rollout(ro, rolling(), [*slow, not_ready()], T0)
    assert status["ready_timeout"] == 100.0


def test_the_progress_deadline_records_what_it_waited_for() -> None:
    spec = rolling(2, progress_deadline=30.0)
    spec = spec.model_copy(
        update={"health": spec.health.model_copy(update={"ready_timeout": 600.0})}
    )
    ro = make_rollout()
    pods = [instance(1), instance(1), instance(2), not_ready(answer="no answer within 1 s")]
    _, status = plan_rollout(ro, spec, pods, T0)
    ro = replace(ro, status=status, phase=RolloutPhase.PROGRESSING)
    _, status = plan_rollout(ro, spec, [*pods[:2], replace(pods[2], ready=True), pods[3]], T0)
    plan, _ = plan_rollout(replace(ro, status=status), spec, pods, T0 + timedelta(seconds=31))
    assert plan.phase == RolloutPhase.ROLLED_BACK
    assert plan.cause is not None and plan.cause.kind == CauseKind.DEADLINE
    assert plan.cause.evidence[0] == "1 of 2 instances of revision 2 ready"
    assert any("no answer within 1 s" in line for line in plan.cause.evidence)
