"""A host batch that fails rolls back every host already moved, on the namespace fleet.

Revision 1 runs on the three hosts; revision 2 is rolled out one host at a time
(``hosts_at_a_time: 1``, ``max_failed_hosts: 0``) with a ``target.release.build`` that fails
only in the third host's network namespace, which stays reachable. Under load through the
built-in router: the first two batches move to revision 2, the third host's start fails
(``host.failed``), the rollout ends ``rolled_back``, and the fleet converges back to
revision 1 with one ready instance per host, the third host's never stopped, no revision-2
process left on any host, and no failed request.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
from fleet import Fleet, fleet
from harness import SampleProject, serving
from test_hosts_batches import agent_status, write_batched

from baepo.cli.loadgen import LoadGenerator

__all__ = ["fleet"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def write_failing_on(project: SampleProject, fleet: Fleet, version: str, address: str) -> None:
    """The batched spec of ``version``, with a build that fails on ``address`` only."""
    write_batched(project, fleet, version)
    fails_there = f"! /usr/sbin/ip -4 addr | grep -q ' {address}/'"
    build = json.dumps({"command": ["/bin/sh", "-c", fails_there], "timeout": "30s"})
    text = project.spec.read_text()
    assert "  path: /srv/baepo\n" in text
    project.spec.write_text(
        text.replace("  path: /srv/baepo\n", f"  path: /srv/baepo\n  release: {{build: {build}}}\n")
    )


def host_of(instance: dict[str, Any]) -> str:
    return str(instance["address"]).rsplit(":", 1)[0]


def test_a_failed_batch_rolls_back_the_hosts_already_moved(
    project: SampleProject, fleet: Fleet
) -> None:
    first_host, second_host, third_host = fleet.addresses
    write_batched(project, fleet, "1.0.0")
    project.ok("deploy", "--no-wait")
    first = project.wait_for(lambda s: serving(s, 1, 3), timeout=180, what="revision 1 serving")
    old_host = {i["id"]: host_of(i) for i in first["instances"]}
    assert sorted(old_host.values()) == sorted(fleet.addresses)
    kept = next(i for i, h in old_host.items() if h == third_host)

    write_failing_on(project, fleet, "2.0.0", third_host)
    gen = LoadGenerator("127.0.0.1", project.port, rate=40, workers=4, max_seconds=200).start()
    new_host: dict[str, str] = {}
    try:
        project.ok("deploy", "--no-wait", "-m", "fails on the third host")
        deadline = time.monotonic() + 180
        while True:
            status = project.status()
            for i in status["instances"]:
                if i["revision"] == 2:
                    new_host[i["id"]] = host_of(i)
            if status["rollout"] is None and status["last_rollout"]["revision"] == 2:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
        assert status["last_rollout"]["phase"] == "rolled_back", status["last_rollout"]
        assert "max_failed_hosts is 0" in status["last_rollout"]["message"], status
        cause = status["last_rollout"]["cause"]
        assert cause["kind"] == "infrastructure", cause
        assert "more than max_failed_hosts (0)" in cause["summary"], cause
        [evidence] = cause["evidence"]
        assert evidence.startswith(f"{third_host}: "), cause  # the host, with its error
        final = project.wait_for(
            lambda s: serving(s, 1, 3), timeout=120, what="revision 1 serving again"
        )
    finally:
        report = gen.stop()
    print(f"host batch rolled back under load: {report}")  # pytest -s

    assert report.sent > 50
    assert report.failed == 0, report
    assert set(report.versions) == {"1.0.0", "2.0.0"}, report
    # Revision 1 is back on every host, one instance each; the third host's was never stopped.
    assert hosts_of(final) == Counter(fleet.addresses)
    assert kept in {i["id"] for i in final["instances"]}
    assert all(i["revision"] == 1 for i in final["instances"])
    # Revision 2 ran on the first two hosts only, one instance each.
    assert Counter(new_host.values()) == Counter([first_host, second_host]), new_host

    # The history: the first two hosts moved completely (new instance started, old one
    # stopped), then the third host's start failed and the rollout was rolled back.
    events = project.api("/api/v1/apps/sample/events", limit=1000)
    events.sort(key=lambda e: e["id"])
    rollout_id = status["last_rollout"]["id"]
    steps = [
        e["message"]
        for e in events
        if e["kind"] == "rollout.step" and e.get("rollout_id") == rollout_id
    ]
    assert steps == [f"batch {n}/3: {a}" for n, a in enumerate(fleet.addresses, 1)], steps
    order: list[tuple[str, str]] = []  # (what, host) in the order it happened
    for event in events:
        words = event["message"].split()
        if event["kind"] == "instance.started" and words[1] in new_host:
            order.append(("started 2", new_host[words[1]]))
        elif event["kind"] == "instance.stopped" and words[1] in old_host:
            order.append(("stopped 1", old_host[words[1]]))
        elif event["kind"] == "instance.stopped" and words[1] in new_host:
            order.append(("stopped 2", new_host[words[1]]))
        elif event["kind"] == "host.failed":
            assert third_host in event["message"], event
            assert "build" in event["message"], event
            order.append(("failed", third_host))
        elif event["kind"] == "rollout.rolled_back":
            order.append(("rolled back", ""))
    moved = [
        (what, host) for host in (first_host, second_host) for what in ("started 2", "stopped 1")
    ]
    assert order[:6] == [*moved, ("failed", third_host), ("rolled back", "")], order
    assert sorted(order[6:]) == [("stopped 2", first_host), ("stopped 2", second_host)], order

    # No process of revision 2 is left on any host: each agent reports revision 1 only.
    for address in fleet.addresses:
        reported = agent_status(fleet, address)
        assert [i.get("revision") for i in reported] == [1], (address, reported)
        assert all(str(i["id"]).startswith("h-r1-") for i in reported), (address, reported)


def hosts_of(status: dict[str, Any]) -> Counter[str]:
    return Counter(host_of(i) for i in status["instances"])
