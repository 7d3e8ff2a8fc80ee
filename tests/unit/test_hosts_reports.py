"""The agents' reports asked in the background: a host that stops answering costs a listing
one short wait, then its last report stands until it is late enough to count as unreachable;
a slow host is never taken for a lost one; a change on a host is never hidden by an old report.
The bounds are shrunk (monkeypatched) so that the tests take well under a second each."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from baepo.core.ports import HostConfig
from baepo.errors import ExternalError
from baepo.platforms.hosts import reports
from baepo.platforms.hosts.reports import Reports

HOST = HostConfig("10.0.0.1")
WAIT = 0.1


class Agent:
    """A host's agent: answers after ``delay`` seconds, never while ``hung``, or fails."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.hung = asyncio.Event()
        self.failing = False
        self.items: list[dict[str, Any]] = [{"id": "h-r1-a"}]
        self.asked = 0
        self.answering = 0  # requests not answered yet

    async def ask(self, host: HostConfig, path: str, app: str, env: str) -> list[dict[str, Any]]:
        self.asked += 1
        if self.failing:
            raise ExternalError(f"cannot connect to {host.address}")
        answer = list(self.items)
        self.answering += 1
        try:
            await asyncio.sleep(self.delay)
            while self.hung.is_set():
                await asyncio.sleep(0.01)
        finally:
            self.answering -= 1
        return answer


@pytest.fixture(autouse=True)
def short_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "STATUS_TTL", 0.02)
    monkeypatch.setattr(reports, "LOST_AFTER", 0.5)
    monkeypatch.setattr(reports, "DOWN_RETRY", 0.2)


async def timed(got: Reports) -> tuple[float, list[dict[str, Any]]]:
    start = time.monotonic()
    report = await got.get(HOST, "/srv/baepo", "shop", "prod", wait=WAIT)
    return time.monotonic() - start, report


def test_a_lost_host_costs_one_short_wait_then_becomes_unreachable() -> None:
    async def main() -> None:
        agent = Agent()
        got = Reports(agent.ask)
        assert (await timed(got))[1] == [{"id": "h-r1-a"}]
        agent.hung.set()
        await asyncio.sleep(0.03)
        took, report = await timed(got)  # waits once, then the last report stands
        assert WAIT * 0.9 <= took < WAIT + 0.1 and report == [{"id": "h-r1-a"}]
        took, report = await timed(got)  # already late: no wait again
        assert took < 0.05 and report == [{"id": "h-r1-a"}]
        assert not got.down(HOST)
        await asyncio.sleep(0.5)
        with pytest.raises(ExternalError, match="unreachable"):
            await timed(got)
        assert got.down(HOST)
        start = time.monotonic()
        with pytest.raises(ExternalError):
            await timed(got)  # down: no wait at all
        assert time.monotonic() - start < 0.05
        agent.hung.clear()  # back: its request answers, the host is up again
        await asyncio.sleep(0.05)
        assert (await timed(got))[1] == [{"id": "h-r1-a"}]
        assert not got.down(HOST)
        await got.close()

    asyncio.run(main())


def test_a_slow_host_is_not_taken_for_a_lost_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # A loaded machine can hold this process back for a good part of a second: the host's
    # delay sits well between the wait and the bound, and no assertion times a listing.
    monkeypatch.setattr(reports, "LOST_AFTER", 5.0)

    async def main() -> None:
        agent = Agent()
        got = Reports(agent.ask)
        await timed(got)
        agent.delay = 0.5  # far slower than the wait, far quicker than LOST_AFTER
        started = 0
        for _ in range(300):  # until the host was asked three times (a bound on a hang only)
            asked = agent.asked
            _, report = await timed(got)
            assert report == [{"id": "h-r1-a"}]
            assert not got.down(HOST)
            if agent.asked > asked:  # this listing asked the host: it did not wait for it
                started += 1
                assert agent.answering == 1, "a listing waited for a slow host's answer"
            if started == 3:
                break
            await asyncio.sleep(0.03)
        assert started == 3  # each slow answer was taken, and the host asked again
        await got.close()

    asyncio.run(main())


def test_after_a_change_a_listing_waits_for_a_new_report() -> None:
    async def main() -> None:
        agent = Agent()
        got = Reports(agent.ask)
        await timed(got)
        agent.delay = 0.3
        agent.items.append({"id": "h-r1-b"})
        got.changed(HOST, "/srv/baepo", "shop", "prod")  # an instance started there
        took, report = await timed(got)
        assert took >= 0.25 and [i["id"] for i in report] == ["h-r1-a", "h-r1-b"]
        await got.close()

    asyncio.run(main())


def test_a_failing_host_is_asked_again_only_after_down_retry() -> None:
    async def main() -> None:
        agent = Agent()
        agent.failing = True
        got = Reports(agent.ask)
        with pytest.raises(ExternalError, match="cannot connect"):
            await timed(got)
        with pytest.raises(ExternalError, match="cannot connect"):
            await timed(got)
        assert agent.asked == 1 and got.down(HOST)
        await asyncio.sleep(0.25)
        agent.failing = False
        with pytest.raises(ExternalError, match="unreachable"):
            await timed(got)  # asked again in the background: no wait for a host down
        await asyncio.sleep(0.03)
        assert agent.asked == 2
        assert (await timed(got))[1] == [{"id": "h-r1-a"}]
        assert not got.down(HOST)
        # A placement asks now, whatever the cache holds.
        asked = agent.asked
        await got.get(HOST, "/srv/baepo", "shop", "prod", fresh=True)
        assert agent.asked == asked + 1
        await got.close()

    asyncio.run(main())


def test_a_placement_waits_for_a_late_host_only_its_own_bound() -> None:
    async def main() -> None:
        agent = Agent()
        got = Reports(agent.ask)
        await timed(got)
        agent.hung.set()
        start = time.monotonic()
        with pytest.raises(ExternalError, match="did not answer"):
            await got.get(HOST, "/srv/baepo", "shop", "prod", fresh=True, wait=0.1)
        assert time.monotonic() - start < 0.2
        assert not got.down(HOST)  # late, not lost: listings still use its last report
        assert (await timed(got))[1] == [{"id": "h-r1-a"}]
        await got.close()

    asyncio.run(main())
