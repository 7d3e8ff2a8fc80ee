"""The hosts platform's probes: an instance adopted from an earlier controller is ready after
its first successful check, and the platform can wait for that verdict; a new instance keeps
``initial_delay`` and ``success_threshold`` (a scripted probe, no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from baepo.core.ports import ProbeConfig
from baepo.platforms.hosts.commands import Probe
from baepo.platforms.hosts.probes import Prober


class ScriptedProber(Prober):
    """Answers the readiness checks from a script instead of HTTP."""

    def __init__(self, answers: Iterator[bool]) -> None:
        super().__init__()
        self.answers = answers
        self.checks = 0

    async def check(self, action: Probe) -> tuple[bool, str]:
        self.checks += 1
        passed = next(self.answers, True)
        return passed, f"GET {action.path} → {200 if passed else 503}"


def readiness(*, success: int = 3, delay: float = 30.0) -> ProbeConfig:
    return ProbeConfig("/ready", 0.01, 1.0, 2, success, delay)


async def nothing() -> None:
    return None


def test_an_adopted_instance_is_ready_after_its_first_success() -> None:
    async def main() -> tuple[bool, int]:
        prober = ScriptedProber(iter([True]))
        state = prober.start(
            "h-r1-a", ("10.0.0.1", 8000), 42, readiness(), None, nothing, adopted=True
        )
        await prober.settle(["h-r1-a"])
        ready, checks = state.ready, prober.checks
        await prober.close()
        return ready, checks

    ready, checks = asyncio.run(main())
    assert ready  # no initial_delay, no success_threshold of 3
    assert checks == 1


def test_an_adopted_instance_that_fails_is_not_ready() -> None:
    async def main() -> bool:
        prober = ScriptedProber(iter([False, False, False]))
        state = prober.start(
            "h-r1-a", ("10.0.0.1", 8000), 42, readiness(), None, nothing, adopted=True
        )
        await prober.settle(["h-r1-a"])
        ready = state.ready
        await prober.close()
        return ready

    assert not asyncio.run(main())


def test_a_new_instance_keeps_its_initial_delay_and_threshold() -> None:
    async def main() -> tuple[bool, int, bool]:
        prober = ScriptedProber(iter([True] * 10))
        state = prober.start("h-r1-b", ("10.0.0.1", 8000), 42, readiness(), None, nothing)
        await asyncio.sleep(0.05)
        waiting = (state.ready, prober.checks)  # still in its 30 s initial delay
        fresh = prober.start("h-r1-c", ("10.0.0.1", 8001), 43, readiness(delay=0), None, nothing)
        await prober.settle(["h-r1-c"])
        after_one = fresh.ready  # one success of the three needed
        await prober.close()
        return waiting[0], waiting[1], after_one

    ready, checks, after_one = asyncio.run(main())
    assert (ready, checks) == (False, 0)
    assert not after_one


def test_settle_gives_up_after_the_probe_timeout() -> None:
    class Hanging(Prober):
        async def check(self, action: Probe) -> tuple[bool, str]:
            await asyncio.sleep(60)
            return True, "GET /ready → 200"

    async def main() -> float:
        prober = Hanging()
        config = ProbeConfig("/ready", 1.0, 0.1, 2, 1, 0.0)
        prober.start("h-r1-d", ("10.0.0.1", 8000), 42, config, None, nothing, adopted=True)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await prober.settle(["h-r1-d", "h-r1-unknown"])
        waited = loop.time() - began
        await prober.close()
        return waited

    assert asyncio.run(main()) < 5


def test_a_failing_new_instance_keeps_the_answer_and_a_ready_one_its_time_to_ready() -> None:
    async def main() -> tuple[str, bool, float | None]:
        prober = ScriptedProber(iter([False, False, True]))
        state = prober.start(
            "h-r1-e", ("10.0.0.1", 8000), 42, readiness(success=1, delay=0), None, nothing
        )
        await prober.settle(["h-r1-e"])
        detail = state.detail
        while not state.ready:
            await asyncio.sleep(0.01)
        await prober.close()
        return detail, state.detail == "", state.ready_after

    detail, cleared, ready_after = asyncio.run(main())
    assert detail == "GET /ready → 503"
    assert cleared
    assert ready_after is not None and ready_after >= 0
