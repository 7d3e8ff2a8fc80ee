"""End to end on the namespace fleet: a revision whose app crashes at start on the hosts rolls
back with the exit code and the last lines of the app's own output (reported by the agent) as
the cause's evidence."""

from __future__ import annotations

import json
import time

import pytest
from fleet import Fleet, fleet
from harness import SampleProject, serving
from test_hosts_deploy import write

__all__ = ["fleet"]

pytestmark = pytest.mark.slow


def test_a_crash_at_start_on_hosts_rolls_back_with_the_output_tail(
    project: SampleProject, fleet: Fleet
) -> None:
    write(project, fleet, "1.0.0")
    project.ok("deploy", "--wait", timeout=180)
    project.wait_for(lambda s: serving(s, 1, 3), what="revision 1 serving")

    write(project, fleet, "2.0.0")
    text = project.spec.read_text().replace('"app.py", "--host"', '"-c", "import flaskk", "--host"')
    project.spec.write_text(text)
    began = time.monotonic()
    project.ok("deploy", timeout=180)
    status = project.wait_for(
        lambda s: (
            (s["last_rollout"] or {}).get("revision") == 2
            and s["last_rollout"]["phase"] in ("rolled_back", "failed", "healthy")
        ),
        what="the rollout of revision 2 to end",
    )
    took = time.monotonic() - began
    rollout = status["last_rollout"]
    print(f"crash at start on hosts: rolled back after {took:.1f}s")
    assert rollout["phase"] == "rolled_back"
    cause = rollout["cause"]
    assert cause["kind"] == "start_failed", cause
    assert "(exit code 1)" in cause["evidence"][0], cause
    assert "  ModuleNotFoundError: No module named 'flaskk'" in cause["evidence"], cause
    shown = json.loads(project.ok("status", "-o", "json"))["last_rollout"]["cause"]
    assert shown == cause
    project.wait_for(lambda s: serving(s, 1, 3), what="revision 1 serving again")
