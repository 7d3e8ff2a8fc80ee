"""End to end on the namespace fleet: ``baepo deploy`` of the sample app with ``target: hosts``
puts replicas on the three hosts, and a rolling deploy of a second version under load through
the built-in router (on this machine) fails no request."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from fleet import PYTHON, Fleet, fleet
from harness import SampleProject, serving

from baepo.cli.loadgen import LoadGenerator

__all__ = ["fleet"]

pytestmark = pytest.mark.slow

SPEC = """\
app: sample
version: "{version}"
run:
  command: ["{python}", "app.py", "--host", "0.0.0.0", "--port", "{{port}}"]
  env: {{SAMPLE_VERSION: "{version}"}}
  stop_grace_period: 5s
replicas: 3
health:
  readiness: {{path: /health/ready, interval: 100ms, timeout: 1s, failure_threshold: 2}}
router:
  listen: "127.0.0.1:{port}"
  drain_timeout: 10s
strategy: {{rolling: {{max_surge: 1, max_unavailable: 0}}}}
restart: {{backoff_initial: 100ms, backoff_max: 1s, crash_loop_restarts: 3, crash_loop_window: 30s}}
progress_deadline: 120s
target:
  kind: hosts
  python: {python}
  path: /srv/baepo
  known_hosts: {known_hosts}
  hosts: {hosts}
"""


def write(project: SampleProject, fleet: Fleet, version: str) -> None:
    hosts = [{"address": a, "user": fleet.user, "key": str(fleet.key)} for a in fleet.addresses]
    project.spec.write_text(
        SPEC.format(
            version=version,
            port=project.port,
            hosts=json.dumps(hosts),
            known_hosts=fleet.known_hosts,
            python=PYTHON,
        )
    )


def hosts_of(status: dict[str, Any]) -> Counter[str]:
    return Counter(i["address"].rsplit(":", 1)[0] for i in status["instances"])


def test_rolling_deploy_on_hosts_fails_no_request(project: SampleProject, fleet: Fleet) -> None:
    write(project, fleet, "1.0.0")
    project.ok("deploy", "--wait", timeout=180)
    status = project.wait_for(lambda s: serving(s, 1, 3), what="revision 1 serving")
    assert hosts_of(status) == Counter(fleet.addresses)
    assert all(i["id"].startswith("h-r1-") for i in status["instances"])

    gen = LoadGenerator("127.0.0.1", project.port, rate=40, workers=4, max_seconds=240).start()
    try:
        write(project, fleet, "2.0.0")
        out = project.ok("deploy", "--wait", "-m", "second", timeout=180)
        assert "revision 2" in out
        status = project.wait_for(lambda s: serving(s, 2, 3), what="revision 2 serving")
    finally:
        report = gen.stop()
    print(f"rolling deploy on hosts: {report}")  # shown with pytest -s

    assert report.sent > 50
    assert report.failed == 0, report
    assert set(report.versions) == {"1.0.0", "2.0.0"}
    assert hosts_of(status) == Counter(fleet.addresses)
    logs = project.ok("logs", "--tail", "50")
    assert "sample 2.0.0 listening on 0.0.0.0" in logs
