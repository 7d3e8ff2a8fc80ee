"""Timed waits against a wall clock that jumps: pauses, automatic promotion, scale-down delay.

The machine's wall clock is set one hour ahead (or back) in the middle of a wait; the
controller's timer (``controller.clock``) keeps elapsed time on the monotonic clock, so the
wait neither ends early nor stretches. The strategies are driven pass by pass by the fake
cluster of ``simulation``, one second of both clocks per pass.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from simulation import T0, Runner, make_spec

from baepo.controller import clock as clocks
from baepo.controller.clock import SteadyClock
from baepo.core.model import Rollout, RolloutPhase
from baepo.strategies.plan import Plan

HOUR = 3600.0


class Machine:
    """A wall clock someone may set, and a monotonic clock nobody can."""

    def __init__(self) -> None:
        self.wall = T0.timestamp()
        self.monotonic = 5000.0

    def tick(self, seconds: float = 1.0) -> None:
        self.wall += seconds
        self.monotonic += seconds

    def set_wall(self, jump: float) -> None:
        self.wall += jump

    def steady(self) -> SteadyClock:
        return SteadyClock(wall=lambda: self.wall, monotonic=lambda: self.monotonic)

    def wall_now(self) -> datetime:
        return datetime.fromtimestamp(self.wall, T0.tzinfo)


def passes_until(
    run: Runner,
    machine: Machine,
    now: Callable[[], datetime],
    predicate: Callable[[Plan, Rollout], bool],
    limit: int = 400,
) -> int:
    """Run passes (one second each) until ``predicate``; how many it took."""
    for count in range(1, limit + 1):
        run.now = now()
        plan = run.step()
        machine.tick()
        if predicate(plan, run.rollout):
            return count
    raise AssertionError(f"never reached: {run.rollout}")


def canary(pause: str = "60s") -> Runner:
    steps: list[dict[str, Any]] = [
        {"set_weight": 10}, {"pause": {"duration": pause}}, {"set_weight": 20},
    ]  # fmt: skip
    return Runner(make_spec(4, {"canary": {"steps": steps}}), "canary")


@pytest.mark.parametrize("jump", [HOUR, -HOUR])
def test_a_timed_pause_lasts_its_duration_when_the_wall_clock_jumps(jump: float) -> None:
    machine = Machine()
    timer = machine.steady()
    run = canary("60s")
    passes_until(run, machine, timer, lambda p, r: "pause" in p.message)
    passes_until(run, machine, timer, lambda p, r: True, limit=1)
    machine.set_wall(jump)
    left = passes_until(run, machine, timer, lambda p, r: run.weight() == 20)
    # 60 s of pause, two of them already gone, a pass or two to set the next weight.
    assert 57 <= left <= 61


def test_the_wall_clock_alone_skips_the_pause() -> None:
    """The defect the timer fixes: timed on the wall clock, an hour ahead ends the pause."""
    machine = Machine()
    run = canary("60s")
    passes_until(run, machine, machine.wall_now, lambda p, r: "pause" in p.message)
    machine.set_wall(HOUR)
    left = passes_until(run, machine, machine.wall_now, lambda p, r: run.weight() == 20)
    assert left <= 2


@pytest.mark.parametrize("jump", [HOUR, -HOUR])
def test_auto_promotion_waits_its_seconds_when_the_wall_clock_jumps(jump: float) -> None:
    machine = Machine()
    timer = machine.steady()
    spec = make_spec(
        3, {"blue_green": {"preview_listen": "127.0.0.1:9090", "auto_promotion_seconds": "30s"}}
    )
    run = Runner(spec, "blue_green")
    passes_until(run, machine, timer, lambda p, r: "preview_ready_at" in r.status)
    machine.set_wall(jump)
    waited = passes_until(run, machine, timer, lambda p, r: bool(r.status.get("promote")))
    assert 29 <= waited <= 31


@pytest.mark.parametrize("jump", [HOUR, -HOUR])
def test_the_scale_down_delay_counts_on_the_monotonic_clock(jump: float) -> None:
    machine = Machine()
    timer = machine.steady()
    spec = make_spec(
        3,
        {
            "blue_green": {
                "preview_listen": "127.0.0.1:9090",
                "auto_promotion_seconds": "1s",
                "scale_down_delay": "120s",
            }
        },
    )
    run = Runner(spec, "blue_green")
    passes_until(run, machine, timer, lambda p, r: r.phase == RolloutPhase.HEALTHY)
    until = datetime.fromisoformat(run.rollout.status["keep"]["until"])
    machine.tick(100)
    machine.set_wall(jump)
    # What the reconciler compares: 101 s are gone (the healthy pass's second, then 100), so
    # the old side stays warm for the 19 s that are left, whichever way the wall clock went.
    assert until - timer() == timedelta(seconds=19)


def test_across_a_restart_the_stored_instant_is_all_there_is() -> None:
    machine = Machine()
    run = canary("60s")
    passes_until(run, machine, machine.steady(), lambda p, r: "pause" in p.message)
    machine.set_wall(HOUR)
    restarted = machine.steady()  # a new server process reads the (jumped) wall clock
    left = passes_until(run, machine, restarted, lambda p, r: run.weight() == 20)
    assert left <= 2


def test_the_controller_times_waits_on_the_steady_clock() -> None:
    from baepo.controller.operations import Operations
    from baepo.controller.reconciler import Reconciler

    reconciler = Reconciler(None, None, None)  # type: ignore[arg-type]
    assert reconciler.timer is clocks.steady
    operations = Operations(None, lambda: None)  # type: ignore[arg-type]
    assert operations.timer is clocks.steady
    assert abs((clocks.steady() - datetime.now(T0.tzinfo)).total_seconds()) < 5
