"""A host cut off mid-deploy (its link down): the router stops sending to the lost host within
seconds (its instances fail their readiness probes; the controller does not wait for the host's
agent), the rollout stops instead of going on with a hole in the fleet, the other hosts keep
serving the old version, and once the link is back a new deploy converges on all three hosts.
``pytest -s`` prints how long each phase took."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from fleet import Fleet, fleet
from harness import SampleProject, serving, versions
from test_hosts_deploy import hosts_of, write

__all__ = ["fleet"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def link(fleet: Fleet, host: int, state: str) -> None:
    subprocess.run(["ip", "link", "set", fleet.link(host), state], check=True, timeout=10)


def routed_to(project: SampleProject, address: str) -> bool | None:
    """Whether the router's table sends to ``address`` (None when the server did not answer
    within two seconds)."""
    url = project.server_info()["url"]
    try:
        answer = httpx.get(f"{url}/api/v1/apps/sample", headers=project.headers(), timeout=2.0)
        answer.raise_for_status()
    except httpx.HTTPError:
        return None
    routed = [u for t in answer.json()["traffic"] for u in t.get("upstreams", [])]
    return any(u.startswith(address + ":") for u in routed)


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
            project.spec.read_text().replace("progress_deadline: 120s", "progress_deadline: 25s")
        )
        project.ok("deploy", "--no-wait")
        project.wait_for(first_new_ready, timeout=120, what="a first new instance")
        deadline = time.monotonic() + 30
        while not routed_to(project, lost):  # None: the server is busy, ask again
            assert time.monotonic() < deadline, "the lost host was never routed to"
            time.sleep(0.1)
        link(fleet, 3, "down")
        down = time.monotonic()
        # The router stops sending to the lost host once its instances fail their probes.
        while routed_to(project, lost) is not False:
            assert time.monotonic() - down < 60, "the lost host is still routed to"
            time.sleep(0.1)
        unrouted = time.monotonic() - down
        status = project.wait_for(
            lambda s: s["rollout"] is None, timeout=120, what="the rollout to stop"
        )
        stopped = time.monotonic() - down
        assert status["last_rollout"]["phase"] in ("failed", "rolled_back", "aborted"), status
        assert status["stable_revision"] == 1
        # The other two hosts serve the old version; nothing is routed to the lost host.
        answers = [routed_to(project, lost) for _ in range(5)]
        assert True not in answers and False in answers, answers
        # When the rolling update had already replaced revision 1 on both other hosts before
        # the link went down, the rollback must start revision 1 there again before traffic
        # can move (never to no instance at all): wait for it.
        project.wait_for(
            lambda s: (
                {t["revision"] for t in s["traffic"] if t["weight"] and t["upstreams"]} == {1}
            ),
            timeout=120,
            what="all traffic back on revision 1",
        )
        assert set(versions(project.port, 40)) == {"1.0.0"}
        print(
            f"link down: the router stopped sending to {lost} after {unrouted:.1f}s, "
            f"the rollout stopped after {stopped:.1f}s"
        )  # pytest -s
    finally:
        link(fleet, 3, "up")

    # With the host back, deploying again converges: three instances, one per host.
    back = time.monotonic()
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
    print(f"link back up: the redeploy converged after {time.monotonic() - back:.1f}s")
