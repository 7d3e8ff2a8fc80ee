"""A fake platform and clock for planning tests: passes applied one after another.

Started instances become ready one pass later; stopped ones drain for one pass, then vanish.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from baepo.core.model import (
    AnalysisPhase,
    AnalysisRun,
    Instance,
    InstancePhase,
    Rollout,
    RolloutPhase,
)
from baepo.core.ports import RevisionStats
from baepo.spec.models import Spec
from baepo.strategies.plan import Plan, ready
from baepo.strategies.rollout import plan_rollout

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_ids = itertools.count()


def instance(
    revision: int, *, is_ready: bool = True, phase: InstancePhase | None = None
) -> Instance:
    n = next(_ids)
    return Instance(
        id=f"r{revision}-{n}",
        app="a",
        env="default",
        revision=revision,
        host="127.0.0.1",
        port=10000 + n,
        phase=phase or (InstancePhase.RUNNING if is_ready else InstancePhase.STARTING),
        ready=is_ready,
        started_at=T0,
    )


class Cluster:
    """A fake platform: started instances become ready one pass later, stops take one pass."""

    def __init__(self, instances: list[Instance]) -> None:
        self.instances = instances

    def apply(self, plan: Plan, target: int) -> None:
        self.instances = [i for i in self.instances if i.phase != InstancePhase.STOPPING]
        self.instances = [
            replace(i, phase=InstancePhase.RUNNING, ready=True, ready_after=1.0)
            if i.phase == InstancePhase.STARTING
            else i
            for i in self.instances
        ]
        self.instances = [
            replace(i, phase=InstancePhase.STOPPING, ready=False) if i.id in plan.stop else i
            for i in self.instances
        ]
        self.instances += [instance(target, is_ready=False) for _ in range(plan.start)]

    def serving(self, plan: Plan) -> int:
        routed = {u for b in (plan.traffic or ()) for u in b.upstreams}
        return len([i for i in ready(self.instances) if i.address in routed])

    def count(self, revision: int) -> int:
        return len([i for i in self.instances if i.revision == revision])


def make_spec(replicas: int, strategy: Any) -> Spec:
    return Spec.model_validate(
        {"app": "a", "run": {"command": ["x"]}, "replicas": replicas, "strategy": strategy}
    )


def make_rollout(target: int = 2, stable: int | None = 1, strategy: str = "rolling") -> Rollout:
    return Rollout(
        id=1,
        app="a",
        env="default",
        revision=target,
        stable_revision=stable,
        strategy=strategy,
        phase=RolloutPhase.PENDING,
        message="",
        started_at=T0,
        updated_at=T0,
    )


class Runner:
    """Runs passes, applying plans to a fake cluster, with a clock moved by hand."""

    def __init__(self, spec: Spec, strategy: str) -> None:
        self.spec = spec
        self.cluster = Cluster([instance(1) for _ in range(spec.replicas)])
        self.rollout: Rollout = make_rollout(strategy=strategy)
        self.now = T0
        self.plans: list[Plan] = []
        self.analyses: dict[str, AnalysisRun] = {}  # runs by key, as the engine reports them
        self.counters: dict[int, RevisionStats] = {}  # the router's, per revision

    def step(self) -> Plan:
        plan, status = plan_rollout(
            self.rollout, self.spec, self.cluster.instances, self.now, self.analyses, self.counters
        )
        self.rollout = replace(self.rollout, status=status, phase=plan.phase or self.rollout.phase)
        self.plans.append(plan)
        if not self.rollout.phase.terminal:
            self.cluster.apply(plan, self.rollout.revision)
        self.now += timedelta(seconds=1)
        return plan

    def set_analysis(self, key: str, phase: AnalysisPhase, message: str = "") -> None:
        """Pretend the engine reports the run ``key`` in ``phase``."""
        self.analyses[key] = AnalysisRun(
            app="web", env="default", rollout_id=self.rollout.id, revision=2, baseline=1,
            kind="step", key=key, templates=["t"], phase=phase,
            message=message or f"analysis {phase.value}", started_at=self.now,
        )  # fmt: skip

    def until(self, predicate: Any, limit: int = 200) -> Plan:
        for _ in range(limit):
            plan = self.step()
            if predicate(plan, self.rollout):
                return plan
        raise AssertionError(f"never reached: {self.rollout}")

    def weight(self) -> int:
        plan = self.plans[-1]
        shares = {b.revision: b.weight for b in plan.traffic or ()}
        total = sum(shares.values()) or 1
        return round(100 * shares.get(2, 0) / total)

    def promote(self, full: bool = False) -> None:
        key = "promote_full" if full else "promote_step"
        self.rollout = replace(
            self.rollout,
            status={**self.rollout.status, key: True},
            phase=RolloutPhase.PROGRESSING,
        )
