"""The default canary (``strategy: {canary: {}}``) end to end, with real processes and load
through the real router: a healthy release is promoted once the judgement has enough
evidence, and a release with 2 % more errors — below what the rollback guards trip on — is
rolled back by the judgement, with an ``analysis`` cause and both revisions' figures."""

from __future__ import annotations

from typing import Any

import pytest
from harness import SampleProject, serving

from baepo.cli.loadgen import LoadGenerator

pytestmark = pytest.mark.slow


def judging(status: dict[str, Any]) -> bool:
    canary = status.get("canary") or {}
    return bool(canary.get("judgement")) and status["rollout"] is not None


def test_the_default_canary_promotes_a_healthy_release_and_rolls_back_more_errors(
    project: SampleProject,
) -> None:
    project.write("1.0.0", replicas=2)
    project.ok("deploy", "--wait")
    gen = LoadGenerator("127.0.0.1", project.port, rate=100, workers=4, max_seconds=600).start()
    try:
        project.write("2.0.0", replicas=2, strategy="{canary: {}}", deadline="600s")
        project.ok("deploy")
        seen = project.wait_for(judging, timeout=120, what="the judgement to show in status")
        metrics = [m["metric"] for m in seen["canary"]["judgement"]]
        assert metrics[0] == "errors", seen["canary"]
        assert "judge errors and latency" in seen["rollout"]["message"]
        shown = project.ok("status")
        assert "errors: evidence " in shown and "samples to pass" in shown, shown
        done = project.wait_for(
            lambda s: s["rollout"] is None and s["stable_revision"] in (1, 2),
            timeout=300,
            what="the healthy release to be promoted",
        )
        assert done["stable_revision"] == 2, (
            done["last_rollout"]["message"],
            done["last_rollout"]["cause"],
        )
        assert done["last_rollout"]["phase"] == "healthy"
        events = project.api("/api/v1/apps/sample/events", limit=1000)
        steps = [e["message"] for e in events if e["kind"] == "rollout.step"]
        assert any("until decided: no regression" in m for m in steps), steps

        # 2 % errors: the error-rate guard (5 %) stays quiet; the judgement does not.
        project.write(
            "3.0.0",
            replicas=2,
            strategy="{canary: {}}",
            deadline="600s",
            extra_env={"SAMPLE_ERROR_RATE": "0.02"},
        )
        project.ok("deploy")
        ended = project.wait_for(
            lambda s: s["rollout"] is None and s["last_rollout"]["revision"] == 3,
            timeout=300,
            what="the judgement to end the release with more errors",
        )
    finally:
        gen.stop()
    last = ended["last_rollout"]
    assert last["phase"] == "rolled_back", last
    assert "rollback guard" not in last["message"], last["message"]
    cause = last["cause"]
    assert cause["kind"] == "analysis", cause
    assert "error rate" in cause["summary"]
    assert cause["evidence"][0].startswith("errors of revision 3: ")
    assert cause["evidence"][1].startswith("errors of revision 2 (stable): ")
    project.wait_for(lambda s: serving(s, 2, 2), what="revision 2 serving alone again")
