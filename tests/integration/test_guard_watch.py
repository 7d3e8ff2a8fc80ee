"""After promotion the rollback guards keep watching: a revision that turns bad within
``rollback.watch`` is undone on its own, with the reason recorded. Real processes and load."""

from __future__ import annotations

import pytest
from harness import SampleProject, serving, versions

from baepo.cli.loadgen import LoadGenerator

pytestmark = pytest.mark.slow


def test_a_revision_that_turns_bad_after_promotion_is_undone(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait")
    gen = LoadGenerator("127.0.0.1", project.port, rate=100, workers=4, max_seconds=120).start()
    try:
        # Healthy until promoted, then 50 % errors: the test turns the fault on (a timed onset
        # came before the promotion on a busy machine, and the rollout itself rolled back).
        fault = project.root / "fault"
        project.write(
            "2.0.0",
            replicas=1,
            strategy="{canary: {steps: [{set_weight: 100}]}}",
            extra_env={"SAMPLE_ERROR_RATE": "0.5", "SAMPLE_FAULT_FILE": str(fault)},
        )
        project.ok("deploy", "--wait")
        assert project.status()["stable_revision"] == 2
        fault.touch()
        status = project.wait_for(
            lambda s: s["stable_revision"] == 3 and s["rollout"] is None,
            timeout=90,
            what="the guard to undo revision 2",
        )
    finally:
        gen.stop()
    events = project.api("/api/v1/apps/sample/events", limit=1000)
    guard = [e for e in events if e["kind"] == "rollback.guard"]
    assert len(guard) == 1, events
    assert "after promotion" in guard[0]["message"]
    assert "error_rate" in guard[0]["message"]
    revisions = project.api("/api/v1/apps/sample/revisions")
    assert revisions[-1]["origin"] == "undo of 1"
    assert revisions[-1]["created_by"] == "baepo (rollback guard)"
    project.wait_for(lambda s: serving(s, 3, 1), what="the undo serving alone")
    assert set(versions(project.port, 100)) == {"1.0.0"}
    assert status["last_rollout"]["phase"] == "healthy"
