"""Rolling host by host: ``strategy.rolling.hosts_at_a_time`` with ``target: hosts``.

The hosts, in the spec's order, are cut into batches of ``size``; the replicas are spread over
them evenly (``shares``). One pass works on the first batch that has a host not yet *done* (a
host is done when it runs exactly its share, all of the target revision and ready, and nothing
else, not even an instance still draining). On that batch's hosts only, it starts the missing
new instances (placed on that host), stops the host's old instances one for one as its new ones
become ready (so no host runs below its share of ready instances), and stops failed and
surplus ones. Every other host keeps its instances, so their old instances carry the load
while a batch moves, and the next batch starts only once the whole batch is done.

Hosts in ``failed`` (a start placed on them failed: unreachable, refused) are skipped: their
share goes to the other hosts, and whatever still runs on them (or on a host no longer listed)
is stopped last, once every other host is done. How many may fail is the caller's decision
(``target.max_failed_hosts``).
Pure: no I/O, no clock. Callers: ``strategies.rollout`` (planning a rollout),
``controller.preview`` (``batches`` for ``baepo deploy --dry-run``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from baepo.core.model import Instance, InstancePhase
from baepo.strategies.plan import Plan, live, proportional_traffic, ready

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class HostBatchStep:
    """A pass of a host-batched rollout: its plan, and which batch it works on (``number``
    counted from 1 of ``total``; 0 once every batch is done)."""

    plan: Plan
    number: int
    total: int
    hosts: tuple[str, ...]
    new_ready: int  # ready instances of the target revision on the batch's hosts
    wanted: int  # the batch's share of the replicas


def batches(hosts: Sequence[str], size: int) -> list[tuple[str, ...]]:
    """``hosts`` in order, cut into groups of ``size`` (the last one may be smaller)."""
    step = max(1, size)
    return [tuple(hosts[n : n + step]) for n in range(0, len(hosts), step)]


def shares(replicas: int, hosts: Sequence[str]) -> dict[str, int]:
    """``replicas`` spread evenly over ``hosts``; the first hosts take the remainder."""
    if not hosts:
        return {}
    base, extra = divmod(replicas, len(hosts))
    return {host: base + (1 if n < extra else 0) for n, host in enumerate(hosts)}


def is_done(target: int, share: int, on_host: Sequence[Instance]) -> bool:
    """``share`` ready instances of ``target`` on the host, and nothing else at all."""
    return len(on_host) == share and all(
        i.revision == target and i.phase == InstancePhase.RUNNING and i.ready for i in on_host
    )


def host_batch_step(
    target: int,
    replicas: int,
    hosts: Sequence[str],
    size: int,
    instances: Sequence[Instance],
    failed: Collection[str] = (),
) -> HostBatchStep:
    """One pass toward ``replicas`` ready instances of ``target`` spread over ``hosts``,
    ``size`` hosts at a time, skipping the ``failed`` ones."""
    active = [h for h in hosts if h not in failed]
    share = shares(replicas, active)
    by_host: dict[str, list[Instance]] = {}
    for instance in instances:
        by_host.setdefault(instance.host, []).append(instance)
    groups = batches(list(hosts), size)

    current = 0
    for number, group in enumerate(groups, 1):
        if any(not is_done(target, share[h], by_host.get(h, [])) for h in group if h in share):
            current = number
            break
    # Failed instances carry no traffic wherever they are: clean them up.
    stop = [i.id for i in instances if i.phase == InstancePhase.FAILED]
    placements: list[str] = []
    batch: tuple[str, ...] = ()
    if current:
        batch = tuple(h for h in groups[current - 1] if h in share)
        for host in batch:
            host_stop, host_start = _move_host(target, share[host], by_host.get(host, []))
            stop += host_stop
            placements += [host] * host_start
    else:  # every listed host is done: what runs elsewhere goes now
        stop += [
            i.id
            for host, on_host in by_host.items()
            if host not in share
            for i in on_host
            if i.phase != InstancePhase.STOPPING
        ]
    stop = list(dict.fromkeys(stop))
    remaining = [i for i in instances if i.id not in stop and i.phase != InstancePhase.STOPPING]
    plan = Plan(
        traffic=proportional_traffic(remaining),
        stop=tuple(stop),
        start=len(placements),
        placements=tuple(placements),
    )
    new_ready = sum(1 for h in batch for i in ready(by_host.get(h, [])) if i.revision == target)
    return HostBatchStep(
        plan=plan,
        number=current,
        total=len(groups),
        hosts=batch,
        new_ready=new_ready,
        wanted=sum(share[h] for h in batch),
    )


def _move_host(target: int, share: int, on_host: Sequence[Instance]) -> tuple[list[str], int]:
    """What to stop on one host of the batch, and how many new instances to start there."""
    new = [i for i in live(on_host) if i.revision == target]
    old = [i for i in live(on_host) if i.revision != target]
    stop: list[str] = []
    if len(new) > share:  # not-ready first, then the newest
        by_value = sorted(new, key=lambda i: (i.ready, -(i.started_at or _EPOCH).timestamp()))
        surplus = by_value[: len(new) - share]
        stop += [i.id for i in surplus]
        new = [i for i in new if i not in surplus]
    # Old instances that are not ready carry no traffic: remove them at once.
    stop += [i.id for i in old if not (i.phase == InstancePhase.RUNNING and i.ready)]
    old_ready = ready(old)
    removable = max(0, len(ready(new)) + len(old_ready) - share)
    stop += [i.id for i in sorted(old_ready, key=lambda i: (i.revision, i.id))[:removable]]
    return stop, max(0, share - len(new))
