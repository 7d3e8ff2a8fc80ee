"""Rolling and recreate planning, simulated pass by pass with a fake clock and platform."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from simulation import T0, Cluster, instance, make_rollout, make_spec

from baepo.core.model import InstancePhase, Rollout, RolloutPhase
from baepo.spec.models import Spec
from baepo.strategies.rolling import converge
from baepo.strategies.rollout import plan_rollout


def spec(replicas: int, surge: int | str, unavailable: int | str, kind: str = "rolling") -> Spec:
    strategy: object = (
        {"rolling": {"max_surge": surge, "max_unavailable": unavailable}}
        if kind == "rolling"
        else "recreate"
    )
    return make_spec(replicas, strategy)


def rollout(target: int = 2, stable: int | None = 1) -> Rollout:
    return make_rollout(target, stable)


def drive(s: Spec, cluster: Cluster, ro: Rollout, passes: int = 100) -> tuple[Rollout, list[int]]:
    """Run passes until a terminal phase; return the final rollout and serving counts seen."""
    serving: list[int] = []
    now = T0
    for _ in range(passes):
        plan, status = plan_rollout(ro, s, cluster.instances, now)
        ro = replace(ro, status=status, phase=plan.phase or ro.phase)
        if plan.traffic is not None:
            serving.append(cluster.serving(plan))
        if ro.phase.terminal:
            return ro, serving
        cluster.apply(plan, ro.revision)
        live = [i for i in cluster.instances if i.phase != InstancePhase.FAILED]
        assert len(live) <= s.replicas + _surge(s), cluster.instances
        now += timedelta(seconds=1)
    raise AssertionError(f"rollout did not finish: {ro}")


def _surge(s: Spec) -> int:
    if s.strategy.rolling is None:
        return 0
    return s.strategy.rolling.resolve(s.replicas)[0]


def test_three_replicas_default_strategy_replaces_one_at_a_time() -> None:
    s = spec(3, "25%", "25%")
    cluster = Cluster([instance(1) for _ in range(3)])
    final, serving = drive(s, cluster, rollout())
    assert final.phase == RolloutPhase.HEALTHY
    assert min(serving) >= 3  # 25% of 3 rounds down to 0 unavailable
    assert {i.revision for i in cluster.instances} == {2}


@settings(max_examples=150, deadline=None)
@given(
    replicas=st.integers(1, 8),
    surge=st.integers(0, 4),
    unavailable=st.integers(0, 4),
)
def test_rolling_keeps_capacity_and_finishes(replicas: int, surge: int, unavailable: int) -> None:
    s = spec(replicas, surge, unavailable)
    _, real_unavailable = s.strategy.rolling.resolve(replicas)  # type: ignore[union-attr]
    cluster = Cluster([instance(1) for _ in range(replicas)])
    final, serving = drive(s, cluster, rollout())
    assert final.phase == RolloutPhase.HEALTHY
    assert min(serving) >= replicas - real_unavailable
    assert len(cluster.instances) == replicas
    assert all(i.revision == 2 and i.ready for i in cluster.instances)


def test_first_deploy_starts_everything_at_once() -> None:
    s = spec(3, 1, 0)
    plan, _ = plan_rollout(rollout(target=1, stable=None), s, [], T0)
    assert plan.start == 3
    assert plan.phase == RolloutPhase.PROGRESSING


def test_failed_new_instance_rolls_back() -> None:
    s = spec(3, 1, 0)
    bad = replace(instance(2, is_ready=False), phase=InstancePhase.FAILED, message="exit 3")
    plan, _ = plan_rollout(rollout(), s, [instance(1), instance(1), instance(1), bad], T0)
    assert plan.phase == RolloutPhase.ROLLED_BACK
    assert "exit 3" in plan.message and "revision 1" in plan.message


def test_failed_first_deploy_is_failed() -> None:
    s = spec(1, 1, 0)
    bad = replace(instance(1, is_ready=False), phase=InstancePhase.FAILED)
    plan, _ = plan_rollout(rollout(target=1, stable=None), s, [bad], T0)
    assert plan.phase == RolloutPhase.FAILED


def test_no_progress_past_deadline_rolls_back() -> None:
    s = spec(2, 1, 0).model_copy(update={"progress_deadline": 30.0})
    stuck = [instance(1), instance(1), instance(2, is_ready=False)]
    ro = rollout()
    plan, status = plan_rollout(ro, s, stuck, T0)
    assert plan.phase == RolloutPhase.PROGRESSING
    ro = replace(ro, status=status, phase=RolloutPhase.PROGRESSING)
    plan, _ = plan_rollout(ro, s, stuck, T0 + timedelta(seconds=20))
    assert plan.phase is None
    plan, _ = plan_rollout(ro, s, stuck, T0 + timedelta(seconds=31))
    assert plan.phase == RolloutPhase.ROLLED_BACK
    assert "progress_deadline" in plan.message


def test_recreate_stops_all_then_starts_all() -> None:
    s = spec(3, 0, 0, kind="recreate")
    cluster = Cluster([instance(1) for _ in range(3)])
    plan, _ = plan_rollout(rollout(), s, cluster.instances, T0)
    assert len(plan.stop) == 3 and plan.start == 0 and plan.traffic == ()
    final, _ = drive(s, cluster, rollout())
    assert final.phase == RolloutPhase.HEALTHY


def test_converge_back_to_stable_sends_traffic_to_stable_first() -> None:
    stable = [instance(1)]
    new = [instance(2), instance(2)]
    plan = converge(1, 3, 1, 0, stable + new, traffic_to_target_only=True)
    assert plan.traffic is not None
    assert [b.revision for b in plan.traffic] == [1]
    assert plan.start == 1  # room for one more under the surge cap (3 live + 1)


def test_scale_down_stops_not_ready_first() -> None:
    keep = [instance(1), instance(1)]
    unready = instance(1, is_ready=False)
    plan = converge(1, 2, 0, 0, [*keep, unready])
    assert plan.stop == (unready.id,)
