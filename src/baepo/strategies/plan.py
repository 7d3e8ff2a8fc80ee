"""What a strategy returns: the next actions for one reconcile pass, as plain data.

Callers: every strategy builds a ``Plan``; the controller applies it in a fixed order:
traffic first (so nothing is routed to an instance about to stop), then stops (drained), then
starts, then the phase change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from baepo.core.model import AnalysisRequest, Cause, Instance, InstancePhase, RolloutPhase
from baepo.core.ports import Backend, HeaderRoute, Sticky

LIVE_PHASES = frozenset({InstancePhase.STARTING, InstancePhase.RUNNING})


@dataclass(frozen=True)
class Plan:
    """The next idempotent actions. Empty lists mean "nothing to do this pass"."""

    traffic: tuple[Backend, ...] | None = None  # None: leave the routing table as it is
    sticky: Sticky | None = None  # rules that travel with ``traffic``
    header_routes: tuple[HeaderRoute, ...] = ()
    preview: tuple[Backend, ...] | None = None  # the preview listener's table (blue-green)
    stop: tuple[str, ...] = ()  # instance ids: drain, then stop
    start: int = 0  # new instances of the target revision
    # Where each new instance must run (a host address per start), or () for "anywhere":
    # host batches place their instances on the batch's hosts.
    placements: tuple[str, ...] = ()
    phase: RolloutPhase | None = None  # a transition to persist
    message: str = ""  # why, in plain words (shown in status and events)
    cause: Cause | None = None  # with a phase that ends the rollout: why, with evidence
    progressed: bool = False  # something moved toward the goal (resets the progress deadline)
    notes: tuple[str, ...] = field(default_factory=tuple)  # events worth recording
    analyses: tuple[AnalysisRequest, ...] = ()  # analysis runs wanted now; others are ended


def live(instances: Iterable[Instance]) -> list[Instance]:
    """Instances that run or are starting: neither failed nor on their way out."""
    return [i for i in instances if i.phase in LIVE_PHASES]


def ready(instances: Iterable[Instance]) -> list[Instance]:
    """Live instances whose readiness probe passes."""
    return [i for i in instances if i.phase == InstancePhase.RUNNING and i.ready]


def proportional_traffic(instances: Iterable[Instance]) -> tuple[Backend, ...]:
    """A routing table spreading requests evenly over every ready instance of any revision."""
    by_revision: dict[int, list[str]] = {}
    for instance in sorted(ready(instances), key=lambda i: (i.revision, i.id)):
        by_revision.setdefault(instance.revision, []).append(instance.address)
    return tuple(
        Backend(revision=rev, weight=len(addrs), upstreams=tuple(addrs))
        for rev, addrs in sorted(by_revision.items())
    )


def only_revision_traffic(instances: Iterable[Instance], revision: int) -> tuple[Backend, ...]:
    """A routing table sending everything to the ready instances of one revision."""
    return proportional_traffic(i for i in instances if i.revision == revision)
