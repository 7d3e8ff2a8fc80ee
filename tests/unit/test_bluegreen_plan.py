"""Blue-green planning, pass by pass with a fake platform and clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from simulation import Runner, make_spec

from baepo.core.model import RolloutPhase
from baepo.spec.models import Spec


def blue_green(replicas: int = 3, **fields: Any) -> Spec:
    return make_spec(replicas, {"blue_green": {"preview_listen": "127.0.0.1:9090", **fields}})


def routed(plan: Any, listener: str = "main") -> set[int]:
    table = plan.traffic if listener == "main" else plan.preview
    return {b.revision for b in table or () if b.weight > 0}


def test_preview_gets_no_production_traffic_until_promoted() -> None:
    run = Runner(blue_green(auto_promotion_enabled=False, preview_replica_count=1), "blue_green")
    plan = run.until(lambda p, r: r.phase == RolloutPhase.PAUSED)
    assert "baepo promote" in plan.message
    assert routed(plan) == {1}
    assert routed(plan, "preview") == {2}
    assert run.cluster.count(2) == 1
    for _ in range(10):
        assert routed(run.step()) == {1}
    run.promote()
    final = run.until(lambda p, r: r.phase.terminal)
    assert final.phase == RolloutPhase.HEALTHY
    assert routed(final) == {2}
    assert run.cluster.count(2) == 3  # scaled to replicas before the switch
    assert run.cluster.count(1) == 3  # the old side stays warm for scale_down_delay
    keep = run.rollout.status["keep"]
    assert keep["revision"] == 1
    switched_at = run.now - timedelta(seconds=1)
    assert datetime.fromisoformat(keep["until"]) == switched_at + timedelta(seconds=30)


def test_every_plan_routes_production_to_one_side_only() -> None:
    run = Runner(blue_green(), "blue_green")
    final = run.until(lambda p, r: r.phase.terminal)
    assert final.phase == RolloutPhase.HEALTHY
    sides = [routed(p) for p in run.plans if p.traffic is not None]
    assert all(len(side) == 1 for side in sides)
    assert sides[0] == {1}
    assert sides[-1] == {2}


def test_auto_promotion_waits_its_seconds() -> None:
    run = Runner(blue_green(auto_promotion_seconds="20s"), "blue_green")
    run.until(lambda p, r: "preview_ready_at" in r.status)
    ready_at = datetime.fromisoformat(run.rollout.status["preview_ready_at"])
    run.until(lambda p, r: r.phase.terminal)
    assert run.now - timedelta(seconds=1) >= ready_at + timedelta(seconds=20)


def test_without_preview_address_there_is_no_preview_table() -> None:
    spec = make_spec(2, {"blue_green": {}})
    run = Runner(spec, "blue_green")
    plan = run.step()
    assert plan.preview is None
