"""What ``baepo deploy --wait`` (and undo, down) follows after the server's answer."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.text import Text

from baepo.cli.context import Project
from baepo.cli.follow import Narration, RolloutWatch, pause_line, settled
from baepo.cli.release_commands import failure_text, to_follow, waiting_text, where_to_look


def test_a_new_rollout_is_followed() -> None:
    assert to_follow({"changed": True, "rollout_id": 7})


def test_the_same_deploy_run_again_follows_the_rollout_in_flight() -> None:
    # "revision 2 (2.0.0) with this config is already rolling out (rollout 7)"
    assert to_follow({"changed": False, "rollout_id": 7})


def test_a_no_op_has_nothing_to_follow() -> None:
    assert not to_follow({"changed": False, "rollout_id": None})
    assert not to_follow({"changed": False})


def test_down_and_a_warm_undo_are_followed_until_settled() -> None:
    assert to_follow({"changed": True, "rollout_id": None})


# -- when a wait ends ------------------------------------------------------------------


def _status(**overrides: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "state": "running",
        "rollout": None,
        "last_rollout": None,
        "stable": {"number": 1},
        "desired": {"1": 1},
        "instances": [{"revision": 1, "ready": True, "phase": "running"}],
        "traffic": [{"revision": 1, "percent": 100.0}],
    }
    return {**status, **overrides}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_first_deploy_is_settled_with_its_instance_that_could_not_start() -> None:
    failed = {"revision": 1, "ready": False, "phase": "failed"}
    status = _status(stable=None, desired={}, instances=[failed])
    assert settled(status)
    assert RolloutWatch(1)(status)


def test_a_starting_instance_of_no_revision_is_waited_for() -> None:
    starting = {"revision": 2, "ready": False, "phase": "starting"}
    assert not settled(_status(instances=[*_status()["instances"], starting]))


def test_an_ended_rollout_that_never_settles_ends_the_wait_after_the_settle_time() -> None:
    clock = Clock()
    stopping = {"revision": 2, "ready": True, "phase": "stopping"}
    status = _status(instances=[*_status()["instances"], stopping])
    watch = RolloutWatch(7, settle_seconds=60, clock=clock)
    assert not watch(status)
    clock.now = 59.9
    assert not watch(status)
    clock.now = 60.0
    assert watch(status)
    assert watch.unsettled


def test_a_rollout_in_flight_is_waited_for_and_one_held_for_a_person_ends_the_wait() -> None:
    watch = RolloutWatch(7)
    moving = {"id": 7, "phase": "progressing", "message": "step 1"}
    assert not watch(_status(rollout=moving))
    for phase in ("paused", "awaiting_approval"):
        held = {**moving, "phase": phase}
        assert watch(_status(rollout=held))
        assert watch.held == held
    assert not watch(_status(rollout=moving))
    assert watch.held is None


def test_a_blue_green_switch_is_done_while_the_old_revision_stays_warm() -> None:
    last = {"id": 7, "revision": 2, "phase": "healthy", "strategy": "blue_green"}
    warm = [
        {"revision": 1, "ready": True, "phase": "running"},
        {"revision": 2, "ready": True, "phase": "running"},
    ]
    status = _status(
        stable={"number": 2},
        desired={"2": 1},
        last_rollout=last,
        instances=warm,
        traffic=[{"revision": 2, "percent": 100.0}],
    )
    watch = RolloutWatch(7, clock=Clock())
    assert watch(status)
    assert not watch.unsettled
    rolling = {**last, "strategy": "rolling"}
    assert not RolloutWatch(7, clock=Clock())(_status(**{**status, "last_rollout": rolling}))


def test_a_timed_pause_is_said_with_its_end() -> None:
    canary = {
        "steps": [
            {"index": 0, "state": "done", "pause_seconds": None},
            {"index": 1, "state": "current", "pause_seconds": 30.0},
        ],
        "pause_until": "2026-12-05T10:04:31.123+00:00",
    }
    status = _status(rollout={"id": 7, "phase": "progressing"}, canary=canary)
    assert pause_line(status) == "step 2: paused for 30 s, until 10:04:31"
    assert pause_line(_status(canary={**canary, "pause_until": None})) is None


def test_the_last_lines_of_a_failure_are_its_message_and_cause() -> None:
    rollout = {"id": 3, "phase": "rolled_back", "message": "instance r2-a failed"}
    assert failure_text(rollout) == "rollout 3 rolled back: instance r2-a failed"
    cause = {
        "kind": "start_failed",
        "summary": "exited with code 3",
        "evidence": ["ModuleNotFoundError: no module named shop"],
    }
    assert failure_text({**rollout, "cause": cause}).splitlines() == [
        "rollout 3 rolled back: instance r2-a failed",
        "  cause: start failed: exited with code 3",
        "    ModuleNotFoundError: no module named shop",
    ]


def test_a_held_rollout_names_the_command_that_goes_on() -> None:
    project = Project(None, "production", None)
    paused = {
        "id": 4,
        "revision": 2,
        "phase": "paused",
        "stable_revision": 1,
        "message": "step 3: waiting for `baepo promote`",
    }
    text = waiting_text(paused, project)
    assert "baepo promote -e production" in text
    assert "baepo abort -e production" in text
    manual = {**paused, "message": "paused by ana: nothing changes until baepo resume"}
    assert "baepo resume -e production" in waiting_text(manual, project)
    approval = {**paused, "phase": "awaiting_approval"}
    assert "baepo approve -e production" in waiting_text(approval, project)


def test_a_failure_points_to_the_output_of_what_failed() -> None:
    rollout = {"id": 3, "revision": 2, "phase": "failed", "message": "m", "cause": None}
    assert "baepo logs -r 2" in where_to_look(rollout)
    assert "baepo gates" in where_to_look({**rollout, "cause": {"kind": "gate"}})
    assert "baepo analysis" in where_to_look({**rollout, "cause": {"kind": "analysis"}})


def test_a_log_prints_each_line_once() -> None:
    console = Console(file=io.StringIO(), width=40, color_system=None)
    narration = Narration(console)
    long = "r1-28fcf8 failed: cannot start 'definitely-not-a-program' as 'nobody'"
    for at in ("05:33:04.104", "05:33:04.668", "05:33:05.677"):
        narration.say(at, Text(long))
    narration.say("05:33:06.000", Text("rollout 1 failed"))
    printed = console.file.getvalue().splitlines()  # type: ignore[attr-defined]
    assert printed == [f"05:33:04.104  {long}", "05:33:06.000  rollout 1 failed"]  # unwrapped
