"""How canary and blue-green plans ask for analysis runs and act on their verdicts."""

from __future__ import annotations

from dataclasses import replace as copy
from datetime import timedelta
from typing import Any

import pytest
from simulation import Runner, make_spec

from baepo.core.model import AnalysisPhase, InstancePhase, RolloutPhase

ANALYSIS = {"analysis": {"templates": ["errors"]}}


def canary(steps: list[dict[str, Any]], **extra: Any) -> Runner:
    spec = make_spec(4, {"canary": {"steps": steps, **extra}})
    return Runner(spec.model_copy(update={"progress_deadline": 10.0}), "canary")


def requested(runner: Runner) -> set[str]:
    return {request.key for request in runner.plans[-1].analyses}


def test_an_analysis_step_asks_for_its_run_and_waits_without_a_deadline() -> None:
    d = canary([{"set_weight": 20}, ANALYSIS, {"set_weight": 60}])
    d.until(lambda p, r: p.analyses)
    assert requested(d) == {"step-1"}
    request = d.plans[-1].analyses[0]
    assert (request.revision, request.baseline, request.templates) == (2, 1, ("errors",))
    d.set_analysis("step-1", AnalysisPhase.RUNNING, "analysis running: 1/3 measurements")
    d.now += timedelta(minutes=5)  # far beyond the progress deadline
    plan = d.step()
    assert d.rollout.phase == RolloutPhase.PROGRESSING
    assert "1/3 measurements" in plan.message
    assert d.weight() == 20


def test_a_successful_run_lets_the_canary_go_on() -> None:
    d = canary([{"set_weight": 20}, ANALYSIS, {"set_weight": 60}])
    d.until(lambda p, r: p.analyses)
    d.set_analysis("step-1", AnalysisPhase.SUCCESSFUL)
    plan = d.until(lambda p, r: r.phase.terminal)
    assert plan.phase == RolloutPhase.HEALTHY


def test_a_failed_or_error_run_rolls_back_with_its_reason() -> None:
    for phase in (AnalysisPhase.FAILED, AnalysisPhase.ERROR):
        d = canary([{"set_weight": 20}, ANALYSIS, {"set_weight": 60}])
        d.until(lambda p, r: p.analyses)
        d.set_analysis("step-1", phase, "analysis failed: error_rate 0.31 > 0.05 → rollback")
        plan = d.step()
        assert plan.phase == RolloutPhase.ROLLED_BACK
        assert "0.31 > 0.05" in plan.message


def test_an_inconclusive_run_pauses_until_a_person_promotes() -> None:
    d = canary([{"set_weight": 20}, ANALYSIS, {"set_weight": 60}])
    d.until(lambda p, r: p.analyses)
    d.set_analysis("step-1", AnalysisPhase.INCONCLUSIVE, "analysis inconclusive: no data")
    d.step()
    assert d.rollout.phase == RolloutPhase.PAUSED
    d.now += timedelta(hours=1)
    d.step()
    assert d.rollout.phase == RolloutPhase.PAUSED
    d.promote()
    assert d.until(lambda p, r: r.phase.terminal).phase == RolloutPhase.HEALTHY


def test_background_analysis_runs_from_its_step_until_promotion() -> None:
    d = canary(
        [{"set_weight": 20}, {"pause": {}}, {"set_weight": 60}],
        background_analysis={"templates": ["errors"], "starting_step": 1},
    )
    first = d.step()
    assert not first.analyses
    d.until(lambda p, r: r.phase == RolloutPhase.PAUSED)
    assert requested(d) == {"background"}
    assert not d.plans[-1].analyses[0].blocking
    d.set_analysis("background", AnalysisPhase.FAILED, "background analysis failed: p95")
    assert d.step().phase == RolloutPhase.ROLLED_BACK


def test_background_analysis_is_no_longer_asked_for_once_switched() -> None:
    d = canary([{"set_weight": 50}], background_analysis={"templates": ["errors"]})
    d.set_analysis("background", AnalysisPhase.RUNNING)
    d.until(lambda p, r: r.status.get("switched"))
    assert not d.plans[-1].analyses


def blue_green(**fields: Any) -> Runner:
    return Runner(make_spec(2, {"blue_green": fields}), "blue_green")


def test_pre_promotion_analysis_holds_the_switch_and_rolls_back_on_failure() -> None:
    d = blue_green(pre_promotion_analysis={"templates": ["smoke"]})
    d.until(lambda p, r: p.analyses)
    assert requested(d) == {"pre-promotion"}
    assert {b.revision for b in d.plans[-1].traffic or () if b.weight} == {1}
    d.set_analysis("pre-promotion", AnalysisPhase.FAILED, "pre-promotion analysis failed")
    assert d.step().phase == RolloutPhase.ROLLED_BACK


def test_pre_promotion_success_switches() -> None:
    d = blue_green(pre_promotion_analysis={"templates": ["smoke"]})
    d.until(lambda p, r: p.analyses)
    d.set_analysis("pre-promotion", AnalysisPhase.SUCCESSFUL)
    assert d.until(lambda p, r: r.phase.terminal).phase == RolloutPhase.HEALTHY


def test_post_promotion_analysis_switches_back_on_failure() -> None:
    d = blue_green(post_promotion_analysis={"templates": ["errors"]})
    d.until(lambda p, r: p.analyses)
    assert requested(d) == {"post-promotion"}
    assert d.rollout.phase == RolloutPhase.PROMOTING
    assert {b.revision for b in d.plans[-1].traffic or () if b.weight} == {2}
    assert d.cluster.count(1) == 2  # the old side still runs, ready to take traffic back
    d.set_analysis("post-promotion", AnalysisPhase.FAILED, "post-promotion analysis failed")
    assert d.step().phase == RolloutPhase.ROLLED_BACK


def test_post_promotion_success_or_a_person_finishes_the_rollout() -> None:
    d = blue_green(post_promotion_analysis={"templates": ["errors"]})
    d.until(lambda p, r: p.analyses)
    d.set_analysis("post-promotion", AnalysisPhase.SUCCESSFUL)
    assert d.step().phase == RolloutPhase.HEALTHY

    d = blue_green(post_promotion_analysis={"templates": ["errors"]})
    d.until(lambda p, r: p.analyses)
    d.set_analysis("post-promotion", AnalysisPhase.INCONCLUSIVE)
    d.step()
    assert d.rollout.phase == RolloutPhase.PROMOTING
    d.promote()
    assert d.until(lambda p, r: r.phase.terminal).phase == RolloutPhase.HEALTHY


@pytest.mark.parametrize(("guard", "expected"), [(True, RolloutPhase.ROLLED_BACK), (False, None)])
def test_the_crash_loop_guard_can_be_turned_off(guard: bool, expected: RolloutPhase | None) -> None:
    d = canary([{"set_weight": 20}, {"pause": {}}])
    d.spec = d.spec.model_copy(
        update={"rollback": d.spec.rollback.model_copy(update={"crash_loop": guard})}
    )
    # The canary was ready, then crash-looped (one that never was is a start failure, which
    # ends the rollout whatever the guard says).
    d.until(lambda p, r: any(i.revision == 2 and i.ready for i in d.cluster.instances))
    d.cluster.instances = [
        copy(i, phase=InstancePhase.FAILED, message="exited with code 3") if i.revision == 2 else i
        for i in d.cluster.instances
    ]
    assert d.step().phase == expected


def test_a_failed_background_verdict_wins_over_the_last_step_completing() -> None:
    d = canary([{"set_weight": 50}, {"pause": {}}], background_analysis={"templates": ["errors"]})
    d.set_analysis("background", AnalysisPhase.RUNNING)
    d.until(lambda p, r: r.phase == RolloutPhase.PAUSED)
    d.promote()
    d.until(lambda p, r: len([i for i in d.cluster.instances if i.revision == 2 and i.ready]) == 4)
    assert not d.rollout.status.get("switched")
    # The pass that would switch all traffic to the canary reads a failed background run.
    d.set_analysis("background", AnalysisPhase.FAILED, "background analysis failed: errors")
    plan = d.step()
    assert plan.phase == RolloutPhase.ROLLED_BACK
    assert not d.rollout.status.get("switched")
    assert plan.stop == () and d.cluster.count(1) == 4  # stable was never asked to stop


def test_a_failed_analysis_ends_the_rollout_with_its_cause_and_evidence() -> None:
    d = canary([{"set_weight": 20}, ANALYSIS, {"set_weight": 60}])
    d.until(lambda p, r: p.analyses)
    message = "analysis failed: errors: 0.31 > 0.05 on 2 of 2 measurements → rollback"
    d.set_analysis("step-1", AnalysisPhase.FAILED, message)
    summary = {
        "phase": "failed", "dry_run": False, "condition": "fails when result > 0.05",
        "reason": "errors: 0.31 > 0.05 on 2 of 2 measurements; failure_limit 1 exceeded",
        "recent": ["failed: 0.2 > 0.05", "failed: 0.31 > 0.05"],
    }  # fmt: skip
    other = {**summary, "phase": "successful", "reason": "latency: passed 2 of 2"}
    run = d.analyses["step-1"]
    d.analyses["step-1"] = copy(run, metrics={"metrics": {"t/errors": summary, "t/p95": other}})
    plan = d.step()
    assert plan.phase == RolloutPhase.ROLLED_BACK
    assert plan.cause is not None
    assert (plan.cause.kind, plan.cause.summary) == ("analysis", message)
    assert plan.cause.evidence == (
        "t/errors: fails when result > 0.05",
        "t/errors: errors: 0.31 > 0.05 on 2 of 2 measurements; failure_limit 1 exceeded",
        "  failed: 0.2 > 0.05",
        "  failed: 0.31 > 0.05",
    )


def test_a_pause_by_a_person_keeps_running_analyses_running() -> None:
    d = canary(
        [{"set_weight": 20}, ANALYSIS, {"set_weight": 60}],
        background_analysis={"templates": ["errors"]},
    )
    d.until(lambda p, r: "step-1" in requested(d))
    d.set_analysis("step-1", AnalysisPhase.RUNNING)
    d.set_analysis("background", AnalysisPhase.RUNNING)
    d.rollout = copy(d.rollout, status={**d.rollout.status, "manual_pause": True})
    plan = d.step()
    assert "baepo resume" in plan.message
    assert requested(d) == {"step-1", "background"}


def test_a_cancelled_step_run_is_not_a_pass() -> None:
    d = canary([{"set_weight": 20}, ANALYSIS, {"set_weight": 60}])
    d.until(lambda p, r: p.analyses)
    d.set_analysis("step-1", AnalysisPhase.CANCELLED, "analysis cancelled (skipped)")
    d.step()
    assert d.rollout.phase == RolloutPhase.PAUSED
    assert d.weight() == 20
