"""Blue-green rollouts end to end: the preview on its own address, one switch, instant undo."""

from __future__ import annotations

from collections import Counter

import pytest
from harness import SampleProject, free_port, serving, versions

from baepo.cli.loadgen import LoadGenerator

pytestmark = pytest.mark.slow


def test_preview_then_switch_then_instant_undo_under_load(project: SampleProject) -> None:
    preview = free_port()
    strategy = (
        f'{{blue_green: {{preview_listen: "127.0.0.1:{preview}", auto_promotion_enabled: false, '
        f"scale_down_delay: 60s}}}}"
    )
    project.write("1.0.0", replicas=2, strategy=strategy)
    project.ok("deploy", "--wait")
    project.write("2.0.0", replicas=2, strategy=strategy)
    gen = LoadGenerator("127.0.0.1", project.port, rate=80, workers=4, max_seconds=180).start()
    try:
        project.ok("deploy", "--no-wait")
        waiting = project.wait_for(
            lambda s: s.get("rollout") and s["rollout"]["phase"] == "paused", what="preview ready"
        )
        assert "baepo promote" in waiting["rollout"]["message"]
        # The preview answers on its own address; production sees only the active side.
        assert versions(preview, 200) == Counter({"2.0.0": 200})
        assert versions(project.port, 1000) == Counter({"1.0.0": 1000})
        project.ok("promote")
        switched = project.wait_for(
            lambda s: s["rollout"] is None and s["stable_revision"] == 2, what="the switch"
        )
        assert [t["revision"] for t in switched["traffic"]] == [2]
        assert versions(project.port, 1000) == Counter({"2.0.0": 1000})
        # The old side is still running, unrouted: undo only switches back.
        warm = {i["id"] for i in switched["instances"] if i["revision"] == 1}
        assert len(warm) == 2
        out = project.ok("undo")
        assert "still warm" in out
        back = project.wait_for(lambda s: serving(s, 1, 2), what="revision 1 serving again")
        # A switch back to the warm side, not a new deploy: the same instances serve.
        assert {i["id"] for i in back["instances"]} == warm
        assert versions(project.port, 300) == Counter({"1.0.0": 300})
    finally:
        report = gen.stop()
    assert report.failed == 0, report
    assert back["stable_revision"] == 1
    # The preview listener is gone once the rollout ended.
    with pytest.raises(OSError):
        versions(preview, 1)


def test_auto_promotion_switches_on_its_own(project: SampleProject) -> None:
    strategy = "{blue_green: {auto_promotion_seconds: 1s, scale_down_delay: 1s}}"
    project.write("1.0.0", replicas=2, strategy=strategy)
    project.ok("deploy", "--wait")
    project.write("2.0.0", replicas=2, strategy=strategy)
    project.ok("deploy", "--wait")
    final = project.wait_for(lambda s: serving(s, 2, 2), what="old side scaled down")
    assert final["last_rollout"]["phase"] == "healthy"


def test_a_smaller_preview_is_scaled_up_before_the_switch(project: SampleProject) -> None:
    strategy = "{blue_green: {preview_replica_count: 1, auto_promotion_enabled: false}}"
    project.write("1.0.0", replicas=3, strategy=strategy)
    project.ok("deploy", "--wait")
    project.write("2.0.0", replicas=3, strategy=strategy)
    project.ok("deploy", "--no-wait")
    waiting = project.wait_for(lambda s: s.get("rollout") and s["rollout"]["phase"] == "paused")
    assert sum(i["revision"] == 2 for i in waiting["instances"]) == 1
    project.ok("promote")
    switched = project.wait_for(lambda s: s["rollout"] is None and s["stable_revision"] == 2)
    assert sum(i["revision"] == 2 and i["ready"] for i in switched["instances"]) == 3
    assert [t["revision"] for t in switched["traffic"]] == [2]
