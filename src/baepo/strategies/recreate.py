"""The recreate strategy: stop every old instance, then start all new ones.

It has downtime by design (requests get the router's 503 between the two halves); use it for
development or for apps that cannot run two versions side by side.
Callers: ``strategies.rollout``.
"""

from __future__ import annotations

from collections.abc import Sequence

from baepo.core.model import Instance, InstancePhase
from baepo.strategies.plan import Plan, proportional_traffic
from baepo.strategies.rolling import converge


def recreate_step(target: int, replicas: int, instances: Sequence[Instance]) -> Plan:
    """Stop whatever is not the target; once nothing else runs, start every new instance."""
    others = [i for i in instances if i.revision != target]
    if others:
        to_stop = tuple(i.id for i in others if i.phase != InstancePhase.STOPPING)
        remaining = [i for i in instances if i.revision == target]
        return Plan(traffic=proportional_traffic(remaining), stop=to_stop)
    return converge(target, replicas, replicas, replicas, instances)
