"""The controller's side of host batches that fail (``hosts_at_a_time`` with
``max_failed_hosts``): the reconciler with a real store, driven pass by pass over a fake
fleet whose hosts can refuse starts. A batch that fails rolls back the hosts already moved,
and a host that failed in one rollout is tried again by the next rollout of the same
revision (``baepo retry``)."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from baepo.controller.reconciler import Reconciler
from baepo.controller.releases import DeployRequest, Releases
from baepo.controller.steering import Steering
from baepo.core.model import Instance, InstancePhase, RolloutPhase
from baepo.core.ports import (
    Backend,
    HeaderRoute,
    InstanceSpec,
    RevisionStats,
    RouterConfig,
    Sticky,
    Store,
)
from baepo.errors import ExternalError
from baepo.spec.models import Spec
from baepo.store import open_store, sqlite_url

HOSTS = ("10.0.0.1", "10.0.0.2", "10.0.0.3")


class FakeFleet:
    """Instances are ready as soon as they start; a start on a host in ``refuse`` fails as a
    failed build does. Unplaced starts go to the host with the fewest instances of the
    revision, then the fewest overall (the hosts platform's rule)."""

    def __init__(self) -> None:
        self.instances: dict[str, Instance] = {}
        self.refuse: set[str] = set()
        self._ids = itertools.count(1)

    async def start_instance(self, spec: InstanceSpec) -> Instance:
        def load(host: str) -> tuple[int, int]:
            on = [i for i in self.instances.values() if i.host == host]
            return sum(1 for i in on if i.revision == spec.revision), len(on)

        host = spec.host or min(HOSTS, key=load)
        if host in self.refuse:
            raise ExternalError(f"root@{host}: the build of r{spec.revision} failed")
        n = next(self._ids)
        instance = Instance(
            id=f"h-r{spec.revision}-{n}",
            app=spec.app,
            env=spec.env,
            revision=spec.revision,
            host=host,
            port=20000 + n,
            phase=InstancePhase.RUNNING,
            ready=True,
            started_at=datetime.now(UTC),
        )
        self.instances[instance.id] = instance
        return instance

    async def list_instances(self, app: str, env: str) -> list[Instance]:
        return list(self.instances.values())

    async def stop_instance(self, instance_id: str, *, grace: float | None = None) -> None:
        self.instances.pop(instance_id, None)

    async def restart_instance(self, instance_id: str) -> None:
        pass

    def read_logs(
        self, app: str, env: str, *, revision: int | None = None, tail: int = 100
    ) -> list[str]:
        return []

    async def follow_logs(
        self, app: str, env: str, *, revision: int | None = None
    ) -> AsyncIterator[str]:
        return
        yield ""

    def placed(self) -> Counter[tuple[str, int]]:
        return Counter((i.host, i.revision) for i in self.instances.values())


class FakeRouter:
    def __init__(self) -> None:
        self.tables: dict[str, list[Backend]] = {}

    async def ensure_running(self, config: RouterConfig) -> None:
        pass

    async def set_backends(
        self,
        app: str,
        env: str,
        backends: Sequence[Backend],
        *,
        sticky: Sticky | None = None,
        header_routes: Sequence[HeaderRoute] = (),
        listener: str = "main",
    ) -> None:
        self.tables[listener] = list(backends)

    async def get_backends(self, app: str, env: str, *, listener: str = "main") -> list[Backend]:
        return self.tables.get(listener, [])

    async def in_flight(self, app: str, env: str, *, listener: str = "main") -> dict[str, int]:
        return {}

    async def stats(self, app: str, env: str, *, listener: str = "main") -> list[RevisionStats]:
        return []

    async def stop(self, app: str, env: str, *, listener: str = "main") -> None:
        self.tables.pop(listener, None)

    async def listeners(self, app: str, env: str) -> list[str]:
        return list(self.tables)


def batched_spec(max_failed_hosts: int = 0) -> Spec:
    return Spec.model_validate(
        {
            "app": "a",
            "run": {"command": ["x", "{port}"]},
            "replicas": 3,
            "strategy": {"rolling": {"max_surge": 1, "max_unavailable": 0, "hosts_at_a_time": 1}},
            "target": {
                "kind": "hosts",
                "max_failed_hosts": max_failed_hosts,
                "hosts": [{"address": a} for a in HOSTS],
            },
        }
    )


async def settle(reconciler: Reconciler, store: Store, passes: int = 40) -> None:
    """Run passes (letting stops finish) until nothing is under way."""
    for _ in range(passes):
        app = store.get_app("a", "default")
        assert app is not None
        busy = await reconciler.reconcile(app)
        await reconciler.wait_draining()
        if not busy and store.active_rollout("a", "default") is None:
            return
    raise AssertionError(f"still busy after {passes} passes")


def test_a_failed_batch_rolls_back_and_a_retry_tries_the_failed_host_again(
    tmp_path: Path,
) -> None:
    store = open_store(sqlite_url(tmp_path / "state.db"))
    fleet = FakeFleet()
    reconciler = Reconciler(store, fleet, FakeRouter())
    releases = Releases(store, wake=lambda: None)

    def deploy(version: str) -> None:
        request = DeployRequest(batched_spec(), str(tmp_path), "default", "me", version=version)
        assert releases.deploy(request).changed

    def last_phase() -> RolloutPhase:
        last = store.latest_rollout("a", "default")
        assert last is not None
        return last.phase

    async def scenario() -> None:
        deploy("1")
        await settle(reconciler, store)
        assert fleet.placed() == Counter({(h, 1): 1 for h in HOSTS})
        kept = next(i.id for i in fleet.instances.values() if i.host == HOSTS[2])

        # The third host refuses revision 2: the first two hosts, already moved, go back.
        fleet.refuse = {HOSTS[2]}
        deploy("2")
        await settle(reconciler, store)
        assert last_phase() == RolloutPhase.ROLLED_BACK
        assert fleet.placed() == Counter({(h, 1): 1 for h in HOSTS})
        assert kept in fleet.instances  # the failed host's instance was never stopped
        events = store.list_events("a", "default")
        failed = [e.message for e in events if e.kind == "host.failed"]
        assert len(failed) == 1 and HOSTS[2] in failed[0], failed

        # Fixed, the same revision is rolled out again: the third host is not skipped.
        fleet.refuse = set()
        assert Steering(store, wake=lambda: None).retry("a", "default", "me").changed
        await settle(reconciler, store)
        assert last_phase() == RolloutPhase.HEALTHY
        assert fleet.placed() == Counter({(h, 2): 1 for h in HOSTS})

    asyncio.run(scenario())


def test_a_host_skipped_within_max_failed_hosts_is_emptied_then_used_by_the_next_deploy(
    tmp_path: Path,
) -> None:
    store = open_store(sqlite_url(tmp_path / "state.db"))
    fleet = FakeFleet()
    reconciler = Reconciler(store, fleet, FakeRouter())
    releases = Releases(store, wake=lambda: None)

    def deploy(version: str) -> None:
        request = DeployRequest(batched_spec(1), str(tmp_path), "default", "me", version=version)
        assert releases.deploy(request).changed

    async def scenario() -> None:
        deploy("1")
        await settle(reconciler, store)
        # The third host refuses revision 2 but answers: it is skipped, its share goes to the
        # first host, and its old instance is stopped once the other hosts are done.
        fleet.refuse = {HOSTS[2]}
        deploy("2")
        await settle(reconciler, store)
        last = store.latest_rollout("a", "default")
        assert last is not None and last.phase == RolloutPhase.HEALTHY
        assert last.status["failed_hosts"] == [HOSTS[2]]
        assert fleet.placed() == Counter({(HOSTS[0], 2): 2, (HOSTS[1], 2): 1})
        # The next deploy spreads over every host again.
        fleet.refuse = set()
        deploy("3")
        await settle(reconciler, store)
        assert fleet.placed() == Counter({(h, 3): 1 for h in HOSTS})

    asyncio.run(scenario())
