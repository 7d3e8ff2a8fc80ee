"""Rolling host by host on the namespace fleet (``strategy.rolling.hosts_at_a_time: 1``):
under load through the built-in router no request fails, the instance lists sampled while
the deploy runs never show two hosts mid-update, the events show each host's old instance
stopped before the next host's new one starts, and ``deploy --dry-run`` shows the batches."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from fleet import Fleet, fleet
from harness import SampleProject, serving
from test_hosts_deploy import hosts_of, write

from baepo.cli.loadgen import LoadGenerator

__all__ = ["fleet"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROLLING = "strategy: {rolling: {max_surge: 1, max_unavailable: 0}}"


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
            assert time.monotonic() < deadline, status
            time.sleep(0.1)
    finally:
        report = gen.stop()
    print(f"host batches under load: {report}; {len(samples)} samples")  # pytest -s

    assert report.sent > 50
    assert report.failed == 0, report
    assert set(report.versions) == {"1.0.0", "2.0.0"}
    assert hosts_of(status) == Counter(fleet.addresses)
    assert max(len(s) for s in samples) <= 1, samples
    seen = [next(iter(s)) for s in samples if s]
    assert list(dict.fromkeys(seen)) == list(fleet.addresses), seen

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
