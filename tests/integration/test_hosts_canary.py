"""A canary on the namespace fleet behind a real HAProxy: a bad version (half its answers are
500s) gets a share of the traffic on the three hosts, the default rollback guard sees its
error rate and rolls it back on its own; afterwards every request goes to the old version."""

from __future__ import annotations

import json

import pytest
from fleet import PYTHON, Fleet, fleet
from harness import SampleProject, serving, versions
from test_hosts_deploy import SPEC

from baepo.cli.loadgen import LoadGenerator

__all__ = ["fleet"]

pytestmark = pytest.mark.slow

CANARY = "{canary: {steps: [{set_weight: 34}, {pause: {duration: 60s}}, {set_weight: 100}]}}"


def write(project: SampleProject, fleet: Fleet, version: str, *, bad: bool = False) -> None:
    hosts = [{"address": a, "user": fleet.user, "key": str(fleet.key)} for a in fleet.addresses]
    text = SPEC.format(
        version=version,
        port=project.port,
        hosts=json.dumps(hosts),
        known_hosts=fleet.known_hosts,
        python=PYTHON,
    )
    text = text.replace("router:\n", "router:\n  kind: haproxy\n", 1)
    if bad:
        text = text.replace("{rolling: {max_surge: 1, max_unavailable: 0}}", CANARY)
        text = text.replace(
            f'env: {{SAMPLE_VERSION: "{version}"}}',
            f'env: {{SAMPLE_VERSION: "{version}", SAMPLE_ERROR_RATE: "0.5"}}',
        )
    project.spec.write_text(text)


def test_a_bad_canary_on_the_fleet_is_rolled_back(project: SampleProject, fleet: Fleet) -> None:
    write(project, fleet, "1.0.0")
    project.ok("deploy", "--wait", timeout=180)
    project.wait_for(lambda s: serving(s, 1, 3), what="revision 1 serving")
    [pid_file] = (project.state_dir / "routers" / "haproxy").glob("sample.*.main/haproxy.pid")
    assert set(versions(project.port, 30)) == {"1.0.0"}

    gen = LoadGenerator("127.0.0.1", project.port, rate=60, workers=4, max_seconds=240).start()
    try:
        write(project, fleet, "2.0.0", bad=True)
        project.ok("deploy", "--no-wait")
        status = project.wait_for(
            lambda s: s["rollout"] is None and s["last_rollout"]["revision"] == 2,
            timeout=180,
            what="the guard to roll the canary back",
        )
    finally:
        report = gen.stop()
    assert status["last_rollout"]["phase"] == "rolled_back", status["last_rollout"]
    assert status["stable_revision"] == 1
    events = project.api("/api/v1/apps/sample/events", limit=1000)
    reasons = [e for e in events if "error_rate" in e["message"]]
    assert reasons, [(e["kind"], e["message"]) for e in events]
    # The canary did get traffic on the fleet (its errors are what the guard saw) ...
    assert "2.0.0" in report.versions, report
    # ... and after the rollback only the old version answers, through the same HAProxy.
    project.wait_for(lambda s: serving(s, 1, 3), what="the canary's instances stopped")
    assert set(versions(project.port, 60)) == {"1.0.0"}
    assert pid_file.exists()
