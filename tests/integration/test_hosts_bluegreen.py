"""Blue-green across the namespace fleet behind a real nginx (``router.kind: nginx``).

Revision 1 (blue) runs one instance per host. Revision 2 starts beside it as the preview, on
its own nginx listener, while production traffic stays on blue; ``baepo promote`` switches
all of it at once; blue stays warm for ``scale_down_delay``, then is stopped; ``baepo undo``
afterwards rolls a copy of revision 1 out the same way. Bounded load through nginx the whole
time fails no request.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from fleet import Fleet, fleet
from harness import SampleProject, free_port, serving, versions
from test_hosts_deploy import hosts_of, write

from baepo.cli.loadgen import LoadGenerator

__all__ = ["fleet"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

ROLLING = "{rolling: {max_surge: 1, max_unavailable: 0}}"
DELAY = 10  # scale_down_delay, seconds


def write_blue_green(project: SampleProject, fleet: Fleet, version: str, preview: int) -> None:
    write(project, fleet, version)
    strategy = (
        f'{{blue_green: {{preview_listen: "127.0.0.1:{preview}", auto_promotion_enabled: false, '
        f"scale_down_delay: {DELAY}s}}}}"
    )
    text = project.spec.read_text().replace(ROLLING, strategy)
    project.spec.write_text(text.replace("router:\n", "router:\n  kind: nginx\n", 1))


def paused(s: dict[str, Any]) -> bool:
    return bool(s.get("rollout")) and s["rollout"]["phase"] == "paused"


def test_blue_green_across_the_fleet_behind_nginx(project: SampleProject, fleet: Fleet) -> None:
    preview = free_port()
    write_blue_green(project, fleet, "1.0.0", preview)
    project.ok("deploy", "--wait", timeout=180)  # a first deploy has nothing to switch from
    blue = project.wait_for(lambda s: serving(s, 1, 3), timeout=120, what="revision 1 serving")
    assert hosts_of(blue) == Counter(fleet.addresses)
    assert list((project.state_dir / "routers" / "nginx").glob("sample.*.main/nginx.pid"))

    gen = LoadGenerator("127.0.0.1", project.port, rate=40, workers=4, max_seconds=360).start()
    try:
        write_blue_green(project, fleet, "2.0.0", preview)
        project.ok("deploy", "--no-wait")
        waiting = project.wait_for(paused, timeout=180, what="the preview ready")
        assert "baepo promote" in waiting["rollout"]["message"]
        green = [i for i in waiting["instances"] if i["revision"] == 2]
        assert len(green) == 3 and all(i["ready"] for i in green), green
        assert hosts_of({"instances": green}) == Counter(fleet.addresses)
        # The preview answers on its own listener; production sees only blue.
        assert versions(preview, 60) == Counter({"2.0.0": 60})
        assert versions(project.port, 200) == Counter({"1.0.0": 200})

        project.ok("promote")
        switched = project.wait_for(
            lambda s: s["rollout"] is None and s["stable_revision"] == 2, what="the switch"
        )
        switched_at = time.monotonic()
        assert [t["revision"] for t in switched["traffic"]] == [2]
        assert versions(project.port, 200) == Counter({"2.0.0": 200})
        # Blue stays up, unrouted, for scale_down_delay ...
        assert sum(i["revision"] == 1 for i in switched["instances"]) == 3
        # ... then only green runs, one instance per host.
        final = project.wait_for(lambda s: serving(s, 2, 3), timeout=90, what="blue scaled down")
        assert time.monotonic() - switched_at >= DELAY - 3  # the switch was seen late by <= 3s
        assert hosts_of(final) == Counter(fleet.addresses)

        # Undo after the delay: a new revision copying revision 1, rolled out blue-green again.
        out = project.ok("undo", "--no-wait")
        assert "revision 3" in out, out
        project.wait_for(paused, timeout=180, what="the undo's preview ready")
        assert versions(preview, 30) == Counter({"1.0.0": 30})
        project.ok("promote")
        back = project.wait_for(lambda s: serving(s, 3, 3), timeout=120, what="revision 3")
    finally:
        report = gen.stop()
    print(f"blue-green on hosts behind nginx: {report}")  # shown with pytest -s
    assert report.sent > 100
    assert report.failed == 0, report
    assert set(report.versions) == {"1.0.0", "2.0.0"}
    assert hosts_of(back) == Counter(fleet.addresses)
    assert set(versions(project.port, 60)) == {"1.0.0"}
    with pytest.raises(OSError):  # the preview listener is gone once no rollout runs
        versions(preview, 1)
