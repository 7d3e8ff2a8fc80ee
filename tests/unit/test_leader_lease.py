"""The elector's fence (a fake lease and a fake clock) and the SQLite file lease."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from baepo import store
from baepo.controller import leader
from baepo.controller.leader import Elector, FencedRouter
from baepo.controller.loop import Controller
from baepo.controller.reconciler import Reconciler
from baepo.core.ports import Backend
from baepo.errors import StateError
from baepo.store.lease import FileLease, SoleLease


class FakeLease:
    """A lease another replica may hold; ``answers`` False makes the database unreachable."""

    kind = "fake"

    def __init__(self) -> None:
        self.taken_by_other = False
        self.answers = True
        self.mine = False
        self.calls: list[str] = []

    def acquire(self) -> bool:
        self.calls.append("acquire")
        if not self.answers or self.taken_by_other:
            return False
        self.mine = True
        return True

    def renew(self) -> bool:
        self.calls.append("renew")
        if not self.answers:
            self.mine = False
        return self.mine

    def holder(self) -> str | None:
        return "other" if self.taken_by_other else None

    def release(self) -> None:
        self.mine = False


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def elector(lease: FakeLease, clock: Clock) -> Elector:
    return Elector(lease, "me", trust=3.0, renew_every=1.0, clock=clock)


def test_a_follower_campaigns_until_the_lease_is_free_then_leads() -> None:
    lease, clock = FakeLease(), Clock()
    e = elector(lease, clock)
    lease.taken_by_other = True
    assert asyncio.run(e.step()) is False
    assert not e.leading and e.terms == 0
    assert asyncio.run(e.holder()) == "other"
    lease.taken_by_other = False
    assert asyncio.run(e.step()) is True
    assert e.leading and e.terms == 1 and e.since is not None
    assert asyncio.run(e.holder()) == "me"
    assert lease.calls == ["acquire", "acquire"]
    asyncio.run(e.step())
    assert lease.calls[-1] == "renew"


def test_the_fence_closes_when_renewals_stop_succeeding_in_time() -> None:
    lease, clock = FakeLease(), Clock()
    e = elector(lease, clock)
    asyncio.run(e.step())
    clock.now += 2.9
    assert e.leading  # the last renewal was sent 2.9 s ago: still trusted
    clock.now += 0.2
    assert not e.leading  # 3.1 s: a renewal that never came back no longer counts
    with pytest.raises(StateError, match="not the leader"):
        e.check("routing")
    asyncio.run(e.step())  # a late answer from the same session renews the term
    assert e.leading and e.terms == 1


def test_a_failed_renewal_ends_the_term_and_a_new_campaign_starts_a_new_one() -> None:
    lease, clock = FakeLease(), Clock()
    e = elector(lease, clock)
    asyncio.run(e.step())
    lease.answers = False
    assert asyncio.run(e.step()) is False
    assert not e.leading and e.since is None
    assert asyncio.run(e.step()) is False
    assert lease.calls[-1] == "acquire"
    lease.answers = True
    assert asyncio.run(e.step()) is True
    assert e.terms == 2


def test_a_replica_that_wins_a_shared_lease_waits_out_the_old_leaders_trust() -> None:
    lease, clock = FakeLease(), Clock()
    e = Elector(lease, "me", trust=3.0, settle=3.0, renew_every=1.0, clock=clock)
    assert asyncio.run(e.step()) is False  # won, but the old leader may still act for 3 s
    assert e.terms == 1
    for _ in range(3):
        clock.now += 1.0
        asyncio.run(e.step())
    assert e.leading
    lease.answers = False
    asyncio.run(e.step())
    lease.answers = True
    asyncio.run(e.step())
    assert not e.leading and e.terms == 2  # a new term waits again


def test_a_process_bound_lease_keeps_leading_however_late_a_renewal_is(tmp_path: Path) -> None:
    # On a busy machine a renewal can come seconds late; a SQLite file lock cannot pass to
    # another process meanwhile, so the server must not stop (and rebuild) its controller.
    clock = Clock()
    alone = leader.elector_for(FileLease(tmp_path / "db.leader", "me"), "me", shared=False)
    alone.clock = clock
    assert asyncio.run(alone.step()) is True  # leads at once: no settle
    clock.now += 60
    assert alone.leading
    with store.open_store("sqlite://") as db:  # a bare controller is alone too
        bare = Controller(db, object(), object())  # type: ignore[arg-type]
        assert bare.elector.trust == math.inf
    # A shared lease is trusted TRUST seconds, and won only after SETTLE.
    lease = FakeLease()
    shared = leader.elector_for(lease, "me", shared=True)
    shared.clock = clock
    assert asyncio.run(shared.step()) is False
    clock.now += leader.SETTLE
    assert asyncio.run(shared.step()) is True
    clock.now += leader.TRUST
    assert not shared.leading


def test_priming_takes_a_free_lease_before_the_loop_runs() -> None:
    lease, clock = FakeLease(), Clock()
    e = elector(lease, clock)
    assert e.prime() and e.terms == 1
    assert e.prime() and e.terms == 1 and lease.calls == ["acquire"]
    busy = FakeLease()
    busy.taken_by_other = True
    assert not elector(busy, clock).prime()


def test_an_unexpected_lease_failure_counts_as_a_lost_campaign() -> None:
    class Broken(FakeLease):
        def acquire(self) -> bool:
            raise OSError("read-only file system")

    e = elector(Broken(), Clock())
    assert asyncio.run(e.step()) is False


def test_trust_must_outlast_the_renewal_period() -> None:
    with pytest.raises(ValueError, match="trust"):
        Elector(FakeLease(), trust=1.0, renew_every=1.0)


def test_a_fenced_router_refuses_changes_but_not_reads_when_not_leading() -> None:
    class Router:
        def __init__(self) -> None:
            self.tables: list[list[Backend]] = []

        async def set_backends(
            self, app: str, env: str, backends: list[Backend], **_: object
        ) -> None:
            self.tables.append(list(backends))

        async def get_backends(
            self, app: str, env: str, *, listener: str = "main"
        ) -> list[Backend]:
            return self.tables[-1] if self.tables else []

    lease, clock, inner = FakeLease(), Clock(), Router()
    e = elector(lease, clock)
    fenced = FencedRouter(inner, e)  # type: ignore[arg-type]
    table = [Backend(1, 100, ("127.0.0.1:1",))]
    with pytest.raises(StateError, match="routing sample"):
        asyncio.run(fenced.set_backends("sample", "default", table))
    assert asyncio.run(fenced.get_backends("sample", "default")) == []
    asyncio.run(e.step())
    asyncio.run(fenced.set_backends("sample", "default", table))
    assert asyncio.run(fenced.get_backends("sample", "default")) == table


def test_the_sqlite_file_lease_admits_one_holder_and_names_it(tmp_path: Path) -> None:
    path = tmp_path / "state.db.controller.leader"
    first, second = FileLease(path, "first"), FileLease(path, "second")
    assert first.holder() is None
    assert first.acquire() and first.renew()
    assert not second.acquire() and not second.renew()
    assert second.holder() == "first"
    first.release()
    assert second.holder() is None
    assert second.acquire()
    assert first.holder() == "second"
    second.release()


def test_the_store_picks_the_lease_of_its_database(tmp_path: Path) -> None:
    with store.open_store(store.sqlite_url(tmp_path / "state.db")) as db:
        lease = db.lease("controller", "me", ttl=5)
        assert isinstance(lease, FileLease)
        assert lease.path == tmp_path / "state.db.controller.leader"
    with store.open_store("sqlite://") as memory:
        assert isinstance(memory.lease("controller", "me", ttl=5), SoleLease)


class Duty:
    """Counts the terms it served."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def start(self) -> None:
        self.log.append("start")

    async def stop(self) -> None:
        self.log.append("stop")


def test_the_controller_acts_only_while_leading_and_starts_afresh_each_term() -> None:
    async def scenario() -> None:
        lease = FakeLease()
        lease.taken_by_other = True
        fast = Elector(lease, "me", trust=1.0, renew_every=0.05, campaign_every=0.05)
        with store.open_store("sqlite://") as db:
            controller = Controller(db, object(), object(), elector=fast)  # type: ignore[arg-type]
            duties: list[str] = []
            controller.while_leading(lambda: Duty(duties))
            hooked: list[Reconciler] = []
            controller.configure(hooked.append)
            controller.start()
            try:
                await asyncio.sleep(0.3)
                assert controller.passes == 0 and duties == []  # a follower does not act
                lease.taken_by_other = False
                await until(lambda: controller.passes > 0)
                first_term = controller.reconciler
                assert duties == ["start"] and first_term in hooked
                lease.answers = False  # the session is gone
                await until(lambda: duties == ["start", "stop"])
                passes = controller.passes
                await asyncio.sleep(0.3)
                assert controller.passes == passes and not controller.leading
                lease.answers = True
                await until(lambda: duties == ["start", "stop", "start"])
                assert controller.reconciler is not first_term and fast.terms == 2
                assert controller.reconciler in hooked
            finally:
                await controller.stop()
            assert duties[-1] == "stop" and lease.mine is False

    async def until(check: Callable[[], bool]) -> None:
        for _ in range(500):
            if check():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("timed out")

    asyncio.run(scenario())
