"""Rolling host by host on the namespace fleet (``strategy.rolling.hosts_at_a_time: 1``):
under load through the built-in router no request fails, the instance lists sampled while
the deploy runs never show two hosts mid-update, the events show each host's old instance
stopped before the next host's new one starts, and ``deploy --dry-run`` shows the batches.
A host cut off before the deploy is skipped when ``max_failed_hosts`` allows it."""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from typing import Any

import pytest
from fleet import PYTHON, Fleet, fleet
from harness import SampleProject, serving
from test_hosts_deploy import hosts_of, write

from baepo.cli.loadgen import LoadGenerator

__all__ = ["fleet"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROLLING = "strategy: {rolling: {max_surge: 1, max_unavailable: 0}}"
SKIP_ONE = "  path: /srv/baepo\n  max_failed_hosts: 1\n"


def link(fleet: Fleet, host: int, state: str) -> None:
    subprocess.run(["ip", "link", "set", fleet.link(host), state], check=True, timeout=10)


def write_batched(project: SampleProject, fleet: Fleet, version: str) -> None:
    write(project, fleet, version)
    text = project.spec.read_text()
    assert ROLLING in text
    batched = "strategy: {rolling: {max_surge: 1, max_unavailable: 0, hosts_at_a_time: 1}}"
    project.spec.write_text(text.replace(ROLLING, batched))


def moving_hosts(instances: list[dict[str, Any]], new: int) -> set[str]:
    """Hosts mid-update: running two revisions, or a new instance that is not ready yet."""
    by_host: dict[str, list[dict[str, Any]]] = {}
    for instance in instances:
        by_host.setdefault(instance["address"].rsplit(":", 1)[0], []).append(instance)
    return {
        host
        for host, on in by_host.items()
        if len({i["revision"] for i in on}) > 1
        or any(i["revision"] == new and not i["ready"] for i in on)
    }


def stuck(project: SampleProject, status: dict[str, Any]) -> str:
    """What a rollout that did not finish shows: its state, the instances, the last events."""
    instances = [
        (i["id"], i["revision"], i["address"], i["phase"], i["ready"], i.get("message"))
        for i in status["instances"]
    ]
    events = project.api("/api/v1/apps/sample/events", limit=40)
    lines = [f"{e['kind']}: {e['message']}" for e in sorted(events, key=lambda e: e["id"])]
    return "\n".join([f"rollout: {status['rollout']}", f"instances: {instances}", *lines])


def test_one_host_at_a_time_under_load(project: SampleProject, fleet: Fleet) -> None:
    write_batched(project, fleet, "1.0.0")
    project.ok("deploy", "--no-wait")
    first = project.wait_for(lambda s: serving(s, 1, 3), timeout=180, what="revision 1 serving")
    old_host = {i["id"]: i["address"].rsplit(":", 1)[0] for i in first["instances"]}
    assert sorted(old_host.values()) == sorted(fleet.addresses)

    write_batched(project, fleet, "2.0.0")
    preview = project.ok("deploy", "--dry-run")
    for n, address in enumerate(fleet.addresses, 1):
        assert f"batch {n}/3: {address}" in preview, preview

    gen = LoadGenerator("127.0.0.1", project.port, rate=40, workers=4, max_seconds=200).start()
    samples: list[set[str]] = []
    new_host: dict[str, str] = {}
    try:
        project.ok("deploy", "--no-wait", "-m", "host by host")
        deadline = time.monotonic() + 180
        while True:
            status = project.status()
            samples.append(moving_hosts(status["instances"], 2))
            for i in status["instances"]:
                if i["revision"] == 2:
                    new_host[i["id"]] = i["address"].rsplit(":", 1)[0]
            if serving(status, 2, 3):
                break
            assert time.monotonic() < deadline, stuck(project, status)
            time.sleep(0.1)
    finally:
        report = gen.stop()
    print(f"host batches under load: {report}; {len(samples)} samples")  # pytest -s

    assert report.sent > 50
    assert report.failed == 0, report
    assert set(report.versions) == {"1.0.0", "2.0.0"}
    assert hosts_of(status) == Counter(fleet.addresses)
    assert max(len(s) for s in samples) <= 1, samples
    # The hosts seen mid-update come in the spec's order. A busy machine's status polls can
    # miss a host's whole update (the events below prove every host's turn), not the order.
    seen = list(dict.fromkeys(next(iter(s)) for s in samples if s))
    assert seen, samples
    assert seen == [a for a in fleet.addresses if a in seen], seen

    # The history: batches in the spec's order, and each host's old instance stopped before
    # the next host's new instance started.
    events = project.api("/api/v1/apps/sample/events", limit=1000)
    events.sort(key=lambda e: e["id"])
    notes = [e["message"] for e in events if e["kind"] == "rollout.step"]
    assert notes == [f"batch {n}/3: {a}" for n, a in enumerate(fleet.addresses, 1)], notes
    order: list[tuple[str, str]] = []  # (what, host) in the order it happened
    for event in events:
        words = event["message"].split()
        if event["kind"] == "instance.started" and words[1] in new_host:
            order.append(("started", new_host[words[1]]))
        elif event["kind"] == "instance.stopped" and words[1] in old_host:
            order.append(("stopped", old_host[words[1]]))
    assert order == [(what, host) for host in fleet.addresses for what in ("started", "stopped")], (
        order
    )


def test_an_unreachable_host_is_skipped_within_max_failed_hosts(
    project: SampleProject, fleet: Fleet
) -> None:
    def allow_one_failed_host(version: str) -> None:
        write_batched(project, fleet, version)
        text = project.spec.read_text()
        project.spec.write_text(text.replace("  path: /srv/baepo\n", SKIP_ONE))

    allow_one_failed_host("1.0.0")
    project.ok("deploy", "--no-wait")
    project.wait_for(lambda s: serving(s, 1, 3), timeout=180, what="revision 1 serving")

    lost = fleet.addresses[2]
    try:
        link(fleet, 3, "down")

        def without_lost(s: dict[str, Any]) -> bool:
            routed = [u for t in s["traffic"] for u in t.get("upstreams", [])]
            return bool(routed) and not any(u.startswith(lost + ":") for u in routed)

        # Its instances fail their probes: out of the router in seconds (a generous bound).
        project.wait_for(without_lost, timeout=30, what="the lost host out of the router")
        gen = LoadGenerator("127.0.0.1", project.port, rate=40, workers=4, max_seconds=200)
        gen.start()
        try:
            allow_one_failed_host("2.0.0")
            project.ok("deploy", "--no-wait", "-m", "one host down")
            status = project.wait_for(
                lambda s: s["rollout"] is None and s["stable_revision"] == 2,
                timeout=180,
                what="revision 2 promoted without the lost host",
            )
        finally:
            report = gen.stop()
        print(f"host batches with a host down: {report}")  # pytest -s
        assert report.failed == 0, report
        assert status["last_rollout"]["phase"] == "healthy", status["last_rollout"]
        final = project.wait_for(lambda s: serving(s, 2, 3), timeout=60, what="3 serving")
        # The lost host's share went to the first host (replicas spread over the other two).
        assert hosts_of(final) == Counter({fleet.addresses[0]: 2, fleet.addresses[1]: 1})
        events = project.api("/api/v1/apps/sample/events", limit=1000)
        failed = [e["message"] for e in events if e["kind"] == "host.failed"]
        assert failed and all(lost in message for message in failed), failed
    finally:
        link(fleet, 3, "up")
    # Back on the network, the host's old instance is stopped (its agent reports none): the
    # app already runs its replicas on the other hosts.
    deadline = time.monotonic() + 120
    while agent_status(fleet, lost):
        assert time.monotonic() < deadline, agent_status(fleet, lost)
        time.sleep(1)
    assert serving(project.status(), 2, 3)


def agent_status(fleet: Fleet, address: str) -> list[dict[str, Any]]:
    """What the agent on ``address`` reports of the sample app's instances, asked over SSH."""
    done = subprocess.run(
        [
            "ssh", "-i", str(fleet.key), "-o", f"UserKnownHostsFile={fleet.known_hosts}",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", f"{fleet.user}@{address}",
            PYTHON, "/srv/baepo/.baepo/agent.py", "status",
            "/srv/baepo/sample/default/instances",
        ],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    found: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return found
