"""Rolling host batches (``strategy.rolling.hosts_at_a_time``), simulated pass by pass on a
fake fleet: which hosts move together, capacity, a failed batch, skipped unreachable hosts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simulation import T0, make_rollout

from baepo.controller import preview
from baepo.core.model import Instance, InstancePhase, Rollout, RolloutPhase
from baepo.errors import ConfigError
from baepo.spec.loader import parse_spec
from baepo.spec.models import Spec
from baepo.strategies.host_batches import batches, host_batch_step, shares
from baepo.strategies.plan import Plan, ready
from baepo.strategies.rolling import converge
from baepo.strategies.rollout import plan_rollout

_ids = itertools.count()


def make_instance(revision: int, host: str, *, is_ready: bool = True) -> Instance:
    n = next(_ids)
    return Instance(
        id=f"r{revision}-{n}",
        app="a",
        env="default",
        revision=revision,
        host=host,
        port=20000 + n,
        phase=InstancePhase.RUNNING if is_ready else InstancePhase.STARTING,
        ready=is_ready,
        started_at=T0,
    )


def hosts_spec(hosts: int, replicas: int, at_a_time: int | str | None, max_failed: int = 0) -> Spec:
    rolling: dict[str, Any] = {"max_surge": 1, "max_unavailable": 0}
    if at_a_time is not None:
        rolling["hosts_at_a_time"] = at_a_time
    return Spec.model_validate(
        {
            "app": "a",
            "run": {"command": ["x"]},
            "replicas": replicas,
            "strategy": {"rolling": rolling},
            "target": {
                "kind": "hosts",
                "max_failed_hosts": max_failed,
                "hosts": [{"address": f"10.0.0.{n}"} for n in range(1, hosts + 1)],
            },
        }
    )


@dataclass
class Fleet:
    """A fake hosts platform: placed starts go to their host (and fail on an unreachable one,
    as the controller then records), unplaced ones to the least busy host (the platform's
    rule); unreachable hosts' instances are not listed. Starts are ready one pass later,
    stops drain for one pass."""

    instances: list[Instance]
    hosts: list[str]
    unreachable: frozenset[str] = frozenset()
    crash_on: str | None = None  # a host where new instances crash-loop (a bad host)

    def listed(self) -> list[Instance]:
        return [i for i in self.instances if i.host not in self.unreachable]

    def apply(self, plan: Plan, target: int) -> list[str]:
        """Apply ``plan``; return the hosts a placed start failed on."""
        self.instances = [i for i in self.instances if i.phase != InstancePhase.STOPPING]
        self.instances = [
            (
                replace(i, phase=InstancePhase.FAILED, message="exit 3")
                if i.host == self.crash_on and i.revision == target
                else replace(i, phase=InstancePhase.RUNNING, ready=True)
            )
            if i.phase == InstancePhase.STARTING
            else i
            for i in self.instances
        ]
        self.instances = [
            replace(i, phase=InstancePhase.STOPPING, ready=False) if i.id in plan.stop else i
            for i in self.instances
        ]
        failed: list[str] = []
        for n in range(plan.start):
            host = plan.placements[n] if plan.placements else self.least_busy(target)
            if host in self.unreachable:
                failed.append(host)
                continue
            self.instances.append(make_instance(target, host, is_ready=False))
        return failed

    def least_busy(self, revision: int) -> str:
        reachable = [h for h in self.hosts if h not in self.unreachable]

        def load(host: str) -> tuple[int, int]:
            live = [i for i in self.instances if i.host == host and i.phase != "failed"]
            return (sum(1 for i in live if i.revision == revision), len(live))

        return min(reachable, key=load)

    def on(self, host: str) -> list[Instance]:
        return [i for i in self.instances if i.host == host]

    def moving(self) -> set[str]:
        """Hosts mid-update: running both revisions, or a new instance not ready yet."""
        hosts = set()
        for host in self.hosts:
            on = self.on(host)
            revisions = {i.revision for i in on}
            if len(revisions) > 1 or any(i.revision == 2 and not i.ready for i in on):
                hosts.add(host)
        return hosts


def fleet_of(spec: Spec, revision: int = 1) -> Fleet:
    hosts = [h.address for h in spec.target.hosts]
    instances = [
        make_instance(revision, host)
        for host, count in shares(spec.replicas, hosts).items()
        for _ in range(count)
    ]
    return Fleet(instances, hosts)


@dataclass
class Trace:
    rollout: Rollout
    moving: list[set[str]]  # hosts mid-update, before each pass
    serving: list[int]  # instances routed to, after each pass
    notes: list[str]


def drive(spec: Spec, fleet: Fleet, passes: int = 200) -> Trace:
    """Passes as the controller runs them, until the rollout ends."""
    ro = make_rollout(2, 1)
    now = T0
    trace = Trace(ro, [], [], [])
    failed_hosts: set[str] = set()
    for _ in range(passes):
        trace.moving.append(fleet.moving())
        if failed_hosts - set(ro.status.get("failed_hosts", [])):
            merged = sorted(failed_hosts | set(ro.status.get("failed_hosts", [])))
            ro = replace(ro, status={**ro.status, "failed_hosts": merged})
        plan, status = plan_rollout(ro, spec, fleet.listed(), now)
        ro = replace(
            ro, status=status, phase=plan.phase or ro.phase, message=plan.message or ro.message
        )
        trace.notes += plan.notes
        if plan.traffic is not None:
            routed = {u for b in plan.traffic for u in b.upstreams}
            trace.serving.append(len([i for i in ready(fleet.listed()) if i.address in routed]))
        if ro.phase.terminal:
            trace.rollout = ro
            return trace
        failed_hosts |= set(fleet.apply(plan, ro.revision))
        now += timedelta(seconds=1)
    raise AssertionError(f"rollout did not finish: {ro}")


def per_host(fleet: Fleet, revision: int) -> dict[str, int]:
    return {
        h: sum(1 for i in fleet.on(h) if i.revision == revision and i.ready) for h in fleet.hosts
    }


@pytest.mark.parametrize(
    ("hosts", "size", "expected"),
    [
        (["a", "b", "c"], 1, [("a",), ("b",), ("c",)]),
        (["a", "b", "c", "d"], 2, [("a", "b"), ("c", "d")]),
        (["a", "b", "c"], 2, [("a", "b"), ("c",)]),
        (["a", "b"], 5, [("a", "b")]),
    ],
)
def test_batches_cut_the_hosts_in_order(
    hosts: list[str], size: int, expected: list[tuple[str, ...]]
) -> None:
    assert batches(hosts, size) == expected


@pytest.mark.parametrize(
    ("replicas", "hosts", "expected"),
    [
        (6, ["a", "b", "c"], {"a": 2, "b": 2, "c": 2}),
        (4, ["a", "b", "c"], {"a": 2, "b": 1, "c": 1}),
        (2, ["a", "b", "c"], {"a": 1, "b": 1, "c": 0}),
        (3, [], {}),
    ],
)
def test_shares_spread_replicas_evenly(
    replicas: int, hosts: list[str], expected: dict[str, int]
) -> None:
    assert shares(replicas, hosts) == expected


@pytest.mark.parametrize(
    ("at_a_time", "hosts", "size"),
    [(1, 3, 1), ("50%", 4, 2), ("50%", 3, 1), ("10%", 3, 1), ("100%", 4, 4), (9, 3, 3)],
)
def test_batch_size_rounds_down_and_is_at_least_one(at_a_time: Any, hosts: int, size: int) -> None:
    rolling = hosts_spec(hosts, hosts, at_a_time).strategy.rolling
    assert rolling is not None
    assert rolling.host_batch_size(hosts) == size


def test_first_pass_starts_new_instances_on_the_first_host_only() -> None:
    spec = hosts_spec(3, 6, 1)
    fleet = fleet_of(spec)
    plan, status = plan_rollout(make_rollout(2, 1), spec, fleet.listed(), T0)
    assert plan.start == 2 and plan.placements == ("10.0.0.1", "10.0.0.1")
    assert plan.stop == ()
    assert status["batch"] == 1
    assert plan.notes == ("batch 1/3: 10.0.0.1",)
    assert plan.phase == RolloutPhase.PROGRESSING


def test_three_hosts_two_replicas_one_host_at_a_time() -> None:
    spec = hosts_spec(3, 6, 1)
    fleet = fleet_of(spec)
    trace = drive(spec, fleet)
    assert trace.rollout.phase == RolloutPhase.HEALTHY
    assert max(len(moving) for moving in trace.moving) == 1
    # Hosts move in the spec's order, each once.
    order = [next(iter(m)) for m in trace.moving if m]
    assert list(dict.fromkeys(order)) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert min(trace.serving) >= 6  # a host's old instances leave only as new ones are ready
    assert per_host(fleet, 2) == {"10.0.0.1": 2, "10.0.0.2": 2, "10.0.0.3": 2}
    assert all(i.revision == 2 for i in fleet.instances)
    assert trace.notes == [
        "batch 1/3: 10.0.0.1",
        "batch 2/3: 10.0.0.2",
        "batch 3/3: 10.0.0.3",
    ]


def test_half_of_four_hosts_at_a_time() -> None:
    spec = hosts_spec(4, 4, "50%")
    fleet = fleet_of(spec)
    trace = drive(spec, fleet)
    assert trace.rollout.phase == RolloutPhase.HEALTHY
    seen = [frozenset(m) for m in trace.moving if m]
    assert set(seen) <= {
        frozenset({"10.0.0.1", "10.0.0.2"}),
        frozenset({"10.0.0.3", "10.0.0.4"}),
    }
    assert seen[0] == {"10.0.0.1", "10.0.0.2"} and seen[-1] == {"10.0.0.3", "10.0.0.4"}
    assert trace.notes == ["batch 1/2: 10.0.0.1, 10.0.0.2", "batch 2/2: 10.0.0.3, 10.0.0.4"]
    assert per_host(fleet, 2) == dict.fromkeys(fleet.hosts, 1)


def test_next_batch_waits_until_every_new_instance_of_the_batch_is_ready() -> None:
    hosts = ["a", "b"]
    new_ready = make_instance(2, "a")
    new_starting = make_instance(2, "a", is_ready=False)
    old = [make_instance(1, "a"), make_instance(1, "a"), make_instance(1, "b")]
    step = host_batch_step(2, 4, hosts, 1, [new_ready, new_starting, *old, make_instance(1, "b")])
    assert step.number == 1 and step.hosts == ("a",)
    assert step.plan.start == 0
    assert step.plan.stop == (old[0].id,)  # one old for the one new that is ready
    assert not any(i.host == "b" for i in old if i.id in step.plan.stop)


def test_a_host_still_draining_holds_the_next_batch() -> None:
    hosts = ["a", "b"]
    draining = replace(make_instance(1, "a"), phase=InstancePhase.STOPPING, ready=False)
    instances = [make_instance(2, "a"), draining, make_instance(1, "b")]
    step = host_batch_step(2, 2, hosts, 1, instances)
    assert step.number == 1 and step.plan.start == 0 and step.plan.stop == ()


def test_a_batch_whose_new_instance_fails_rolls_back_on_every_host() -> None:
    spec = hosts_spec(3, 3, 1)
    fleet = fleet_of(spec)
    fleet.crash_on = "10.0.0.2"
    trace = drive(spec, fleet)
    assert trace.rollout.phase == RolloutPhase.ROLLED_BACK
    assert "exit 3" in trace.rollout.message and "revision 1" in trace.rollout.message
    assert max(len(moving) for moving in trace.moving) == 1
    # The controller's rollback: converge to the stable revision, as ``_hold`` does.
    for _ in range(50):
        listed = fleet.listed()
        plan = converge(1, 3, 3, 0, listed, traffic_to_target_only=True)
        assert plan.traffic is not None and {b.revision for b in plan.traffic} == {1}
        if not plan.stop and not plan.start and all(i.ready for i in listed):
            break
        fleet.apply(plan, 1)
    assert all(i.revision == 1 and i.ready for i in fleet.instances)
    assert per_host(fleet, 1) == dict.fromkeys(fleet.hosts, 1)


def test_unreachable_host_is_skipped_within_max_failed_hosts() -> None:
    spec = hosts_spec(3, 3, 1, max_failed=1)
    fleet = fleet_of(spec)
    fleet.unreachable = frozenset({"10.0.0.2"})
    trace = drive(spec, fleet)
    assert trace.rollout.phase == RolloutPhase.HEALTHY
    assert trace.rollout.status["failed_hosts"] == ["10.0.0.2"]
    # Its share went to the other hosts: still 3 replicas, all new, none on the lost host.
    assert per_host(fleet, 2) == {"10.0.0.1": 2, "10.0.0.2": 0, "10.0.0.3": 1}
    assert all(i.revision == 2 for i in fleet.listed())
    assert max(len(moving) for moving in trace.moving) == 1


def test_more_unreachable_hosts_than_allowed_roll_back() -> None:
    spec = hosts_spec(3, 3, 1, max_failed=1)
    fleet = fleet_of(spec)
    fleet.unreachable = frozenset({"10.0.0.2", "10.0.0.3"})
    trace = drive(spec, fleet)
    assert trace.rollout.phase == RolloutPhase.ROLLED_BACK
    assert "2 host(s) failed (10.0.0.2, 10.0.0.3); max_failed_hosts is 1" in trace.rollout.message


def test_unreachable_host_fails_the_rollout_by_default() -> None:
    spec = hosts_spec(3, 3, 1)
    fleet = fleet_of(spec)
    fleet.unreachable = frozenset({"10.0.0.1"})
    trace = drive(spec, fleet)
    assert trace.rollout.phase == RolloutPhase.ROLLED_BACK
    assert "max_failed_hosts is 0" in trace.rollout.message
    assert all(i.revision == 1 for i in fleet.instances)  # nothing else moved


def test_instances_on_a_host_no_longer_listed_go_last() -> None:
    hosts = ["a", "b"]
    instances = [make_instance(2, "a"), make_instance(2, "b"), make_instance(1, "gone")]
    step = host_batch_step(2, 2, hosts, 1, instances)
    assert step.number == 0
    assert step.plan.stop == (instances[2].id,)
    assert step.plan.traffic is not None
    assert {u for b in step.plan.traffic for u in b.upstreams} == {
        instances[0].address,
        instances[1].address,
    }


def test_without_hosts_at_a_time_nothing_is_placed() -> None:
    spec = hosts_spec(3, 3, None)
    fleet = fleet_of(spec)
    plan, status = plan_rollout(make_rollout(2, 1), spec, fleet.listed(), T0)
    assert plan.start == 1 and plan.placements == ()
    assert "batch" not in status


def test_first_deploy_starts_everything_at_once() -> None:
    spec = hosts_spec(3, 3, 1)
    plan, _ = plan_rollout(make_rollout(1, None), spec, [], T0)
    assert plan.start == 3 and plan.placements == ()


@settings(max_examples=100, deadline=None)
@given(hosts=st.integers(1, 5), replicas=st.integers(0, 8), size=st.integers(1, 5))
def test_host_batches_keep_capacity_and_finish(hosts: int, replicas: int, size: int) -> None:
    spec = hosts_spec(hosts, replicas, size)
    fleet = fleet_of(spec)
    trace = drive(spec, fleet)
    assert trace.rollout.phase == RolloutPhase.HEALTHY
    assert max(len(moving) for moving in trace.moving) <= size
    assert min(trace.serving, default=replicas) >= replicas
    assert len(fleet.instances) == replicas
    assert all(i.revision == 2 and i.ready for i in fleet.instances)


def test_the_dry_run_lists_the_batches() -> None:
    lines = preview.strategy_lines(hosts_spec(4, 4, "50%"))
    assert lines == [
        "rolling, 4 replica(s)",
        "batch 1/2: 10.0.0.1, 10.0.0.2",
        "batch 2/2: 10.0.0.3, 10.0.0.4",
    ]
    assert preview.strategy_lines(hosts_spec(4, 4, None)) == ["rolling, 4 replica(s)"]


def test_host_batches_need_a_hosts_target() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec("app: a\nrun: {command: [x]}\nstrategy: {rolling: {hosts_at_a_time: 1}}\n")
    assert "strategy.rolling.hosts_at_a_time" in str(caught.value.problems)
    no_hosts = (
        "app: a\nrun: {command: [x]}\nstrategy: {rolling: {hosts_at_a_time: '0%'}}\n"
        "target: {kind: hosts, hosts: [{address: 10.0.0.1}]}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_spec(no_hosts)
    assert "at least 1 host" in str(caught.value.problems)
