"""A host cut off mid-deploy (its link down): the rollout stops instead of going on with a
hole in the fleet, the router stops sending to the lost host, the other hosts keep serving
the old version, and once the link is back a new deploy converges on all three hosts."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from typing import Any

import pytest
from fleet import Fleet, fleet
from harness import SampleProject, serving, versions
from test_hosts_deploy import hosts_of, write

__all__ = ["fleet"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def link(fleet: Fleet, host: int, state: str) -> None:
    subprocess.run(["ip", "link", "set", fleet.link(host), state], check=True, timeout=10)


def test_a_host_lost_mid_deploy_stops_the_rollout(project: SampleProject, fleet: Fleet) -> None:
    write(project, fleet, "1.0.0")
    text = project.spec.read_text().replace("progress_deadline: 120s", "progress_deadline: 40s")
    project.spec.write_text(text)
    project.ok("deploy", "--wait", timeout=180)
    project.wait_for(lambda s: serving(s, 1, 3), what="revision 1 serving")

    def first_new_ready(s: dict[str, Any]) -> bool:
        return any(i["revision"] == 2 and i["ready"] for i in s["instances"])

    lost = fleet.addresses[2]
    try:
        write(project, fleet, "2.0.0")
        project.spec.write_text(
            project.spec.read_text().replace("progress_deadline: 120s", "progress_deadline: 40s")
        )
        project.ok("deploy", "--no-wait")
        project.wait_for(first_new_ready, timeout=120, what="a first new instance")
        link(fleet, 3, "down")
        status = project.wait_for(
            lambda s: s["rollout"] is None, timeout=240, what="the rollout to stop"
        )
        assert status["last_rollout"]["phase"] in ("failed", "rolled_back", "aborted"), status
        assert status["stable_revision"] == 1
        # The other two hosts serve the old version; nothing is routed to the lost host.
        deadline = time.monotonic() + 60
        while True:
            routed = [u for t in project.status()["traffic"] for u in t.get("upstreams", [])]
            if routed and not any(u.startswith(lost + ":") for u in routed):
                break
            assert time.monotonic() < deadline, routed
            time.sleep(0.5)
        assert set(versions(project.port, 40)) == {"1.0.0"}
    finally:
        link(fleet, 3, "up")

    # With the host back, deploying again converges: three instances, one per host.
    project.ok("deploy", "--wait", timeout=240)
    status = project.wait_for(
        lambda s: s["stable_revision"] >= 2 and s["rollout"] is None, timeout=240,
        what="the redeploy",
    )  # fmt: skip
    final = project.wait_for(
        lambda s: serving(s, status["stable_revision"], 3), timeout=120, what="3 serving"
    )
    assert hosts_of(final) == Counter(fleet.addresses)
    assert set(versions(project.port, 30)) == {"2.0.0"}
