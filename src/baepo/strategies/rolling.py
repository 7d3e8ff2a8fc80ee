"""The rolling strategy: replace instances a few at a time, with Kubernetes' semantics.

Never more than ``replicas + max_surge`` instances live (draining ones included), never fewer
than ``replicas - max_unavailable`` ready ones while old instances are replaced. Traffic goes
to every ready instance, old and new alike. ``converge`` is also how the controller brings an
app back to its stable revision after a failed rollout or a crashed instance.
Callers: ``strategies.rollout`` (planning a rollout), the controller's steady-state reconcile.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from baepo.core.model import Instance, InstancePhase
from baepo.strategies.plan import (
    Plan,
    live,
    only_revision_traffic,
    proportional_traffic,
    ready,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def converge(
    target: int,
    replicas: int,
    surge: int,
    unavailable: int,
    instances: Sequence[Instance],
    *,
    traffic_to_target_only: bool = False,
) -> Plan:
    """One rolling step toward ``replicas`` ready instances of ``target`` and none of others.

    ``traffic_to_target_only`` (rolling back) routes only to the target revision as soon as it
    has a ready instance: abort and rollback move all traffic to stable first.
    """
    new = [i for i in live(instances) if i.revision == target]
    old = [i for i in live(instances) if i.revision != target]
    new_ready, old_ready = ready(new), ready(old)
    draining = sum(1 for i in instances if i.phase == InstancePhase.STOPPING)
    # Failed instances are cleaned up; the caller decides first what a failed instance of the
    # target revision means for the rollout.
    stop = [i.id for i in instances if i.phase == InstancePhase.FAILED]

    if len(new) > replicas:  # scaled down: not-ready first, then the newest
        by_value = sorted(new, key=lambda i: (i.ready, -(i.started_at or _EPOCH).timestamp()))
        surplus = by_value[: len(new) - replicas]
        stop += [i.id for i in surplus]
        new = [i for i in new if i not in surplus]
        new_ready = ready(new)

    # Old instances that are not ready carry no traffic: remove them at once.
    stop += [i.id for i in old if not (i.phase == InstancePhase.RUNNING and i.ready)]
    removable = max(0, len(new_ready) + len(old_ready) - max(0, replicas - unavailable))
    # Oldest revision first, so leftovers of a superseded rollout go before the stable ones.
    stop += [i.id for i in sorted(old_ready, key=lambda i: (i.revision, i.id))[:removable]]

    # Instances being stopped now, or still draining, count against the surge cap until gone.
    room = replicas + surge - (len(new) + len(old) + draining)
    start = max(0, min(room, replicas - len(new)))

    remaining = [i for i in instances if i.id not in stop and i.phase != InstancePhase.STOPPING]
    if traffic_to_target_only and only_revision_traffic(remaining, target):
        traffic = only_revision_traffic(remaining, target)
    else:
        traffic = proportional_traffic(remaining)
    return Plan(traffic=traffic, stop=tuple(dict.fromkeys(stop)), start=start)


def is_complete(target: int, replicas: int, instances: Sequence[Instance]) -> bool:
    """``replicas`` ready instances of ``target``, and no instance of any other revision."""
    new = [i for i in instances if i.revision == target]
    return len(ready(new)) == replicas == len(live(new)) == len(new) and len(new) == len(instances)
