"""A fake platform and clock for planning tests: passes applied one after another.

Started instances become ready one pass later; stopped ones drain for one pass, then vanish.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from baepo.core.model import Instance, InstancePhase, Rollout, RolloutPhase
from baepo.spec.models import Spec
from baepo.strategies.plan import Plan, ready

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
            replace(i, phase=InstancePhase.RUNNING, ready=True)
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
