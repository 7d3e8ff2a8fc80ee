"""End to end: the CLI, the server, the local platform and the router, with real processes.

Every test drives the sample app through `baepo` commands exactly as a user would and sends
real HTTP through the router with the bounded load generator.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from harness import SampleProject, serving

from baepo.cli.loadgen import LoadGenerator

pytestmark = pytest.mark.slow


class CapacitySampler:
    """Samples how many instances the router is routing to, through the API, until stopped."""

    def __init__(self, project: SampleProject) -> None:
        self.project = project
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CapacitySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status = self.project.status()
                routed = {u for t in status["traffic"] for u in t["upstreams"]}
                ready = {i["address"] for i in status["instances"] if i["ready"]}
                self.samples.append(len(routed & ready))
            except (httpx.HTTPError, OSError, ValueError, KeyError):
                pass
            self._stop.wait(0.05)


def load(project: SampleProject, rate: float = 80) -> LoadGenerator:
    return LoadGenerator("127.0.0.1", project.port, rate=rate, workers=4, max_seconds=240).start()


def test_rolling_deploy_and_undo_under_load_fail_no_request(project: SampleProject) -> None:
    project.write("1.0.0")
    project.ok("deploy", "--wait")
    project.wait_for(lambda s: serving(s, 1, 3), what="revision 1 serving")

    gen = load(project)
    try:
        with CapacitySampler(project) as sampler:
            project.write("2.0.0")
            out = project.ok("deploy", "--wait", "-m", "second")
            assert "revision 2" in out
            project.wait_for(lambda s: serving(s, 2, 3), what="revision 2 serving")
            project.ok("undo", "--wait")
            project.wait_for(lambda s: serving(s, 3, 3), what="revision 3 (undo) serving")
    finally:
        report = gen.stop()

    assert report.sent > 100
    assert report.failed == 0, report
    assert set(report.versions) == {"1.0.0", "2.0.0"}
    # max_unavailable 0: never fewer than 3 ready instances routed while replacing.
    assert len(sampler.samples) > 20
    assert min(sampler.samples) >= 3, sampler.samples

    history = json.loads(project.ok("history", "-o", "json"))
    assert [r["number"] for r in history] == [1, 2, 3]
    assert [r["rollout"]["phase"] for r in history] == ["healthy"] * 3
    assert history[2]["origin"] == "undo of 1"
    assert history[2]["version"] == "1.0.0"
    assert history[2]["stable"] is True


def test_identical_deploy_is_a_no_op_and_second_deploy_is_refused(
    project: SampleProject,
) -> None:
    project.write("1.0.0")
    project.ok("deploy", "--wait")
    out = project.ok("deploy", "--wait")
    assert "nothing to deploy" in out

    # Revision 2 holds at a pause until told: still under way however slow the machine is.
    project.write("2.0.0", strategy="{canary: {steps: [{set_weight: 50}, {pause: {}}]}}")
    first = json.loads(project.ok("deploy", "--no-wait", "-o", "json"))
    assert first["changed"] is True
    project.write("3.0.0")
    refused = project.baepo("deploy", "--no-wait")
    assert refused.returncode == 5, refused.stderr
    assert any(f"is {phase}" in refused.stderr for phase in ("pending", "progressing", "paused"))
    assert "--supersede" in refused.stderr
    project.ok("deploy", "--supersede", "--wait")
    final = project.wait_for(lambda s: serving(s, 3, 3), what="revision 3 serving")
    assert final["stable"]["version"] == "3.0.0"
    rollouts = {
        r["number"]: r["rollout"]["phase"] for r in json.loads(project.ok("history", "-o", "json"))
    }
    assert rollouts == {1: "healthy", 2: "superseded", 3: "healthy"}


def test_crash_looping_revision_rolls_back_and_keeps_serving(project: SampleProject) -> None:
    project.write("1.0.0")
    project.ok("deploy", "--wait")
    gen = load(project)
    try:
        project.write("2.0.0", extra_env={"SAMPLE_CRASH_ON_START": "true"})
        done = project.baepo("deploy", "--wait")
        assert done.returncode == 6, done.stdout + done.stderr
        assert "rolled back" in done.stderr
        final = project.wait_for(lambda s: serving(s, 1, 3), what="revision 1 serving again")
    finally:
        report = gen.stop()
    assert report.failed == 0, report
    assert final["last_rollout"]["phase"] == "rolled_back"
    assert "failed" in final["last_rollout"]["message"]


def test_crashed_instance_is_restarted(project: SampleProject) -> None:
    import os
    import signal

    project.write("1.0.0", replicas=2)
    project.ok("deploy", "--wait")
    status = project.wait_for(lambda s: serving(s, 1, 2))
    victim = status["instances"][0]
    os.kill(victim["pid"], signal.SIGKILL)  # the app's process, not its supervisor
    project.wait_for(
        lambda s: (
            serving(s, 1, 2)
            and any(i["id"] == victim["id"] and i["restarts"] >= 1 for i in s["instances"])
        ),
        what="the instance restarted, ready and routed again",
    )


@pytest.mark.parametrize("kill_after", [(0.05, 0.4), (0.8, 0.3)])
def test_server_killed_mid_rollout_resumes_without_failing_requests(
    project: SampleProject, kill_after: tuple[float, float]
) -> None:
    project.write("1.0.0")
    project.ok("deploy", "--wait")
    gen = load(project)
    try:
        project.write("2.0.0", extra_env={"SAMPLE_START_DELAY": "0.4"})
        project.ok("deploy", "--no-wait")
        for delay in kill_after:
            time.sleep(delay)
            project.kill_server()
            time.sleep(0.3)  # traffic keeps flowing with no controller at all
            project.ok("server", "start")
        final = project.wait_for(lambda s: serving(s, 2, 3), timeout=90, what="revision 2 serving")
    finally:
        report = gen.stop()
    assert report.failed == 0, report
    assert final["last_rollout"]["phase"] == "healthy"
    # No orphans: the server, one router (its master and worker), and a supervisor plus an
    # app per instance.
    time.sleep(0.5)
    commands = [c for _, c in project.processes()]
    assert sum("baepo.routers.builtin" in c for c in commands) == 2, commands
    assert sum("supervisor" in c for c in commands) == 3, commands
    assert sum("app.py" in c for c in commands) == 3, commands


def test_down_stops_everything_and_deploy_brings_it_back(project: SampleProject) -> None:
    project.write("1.0.0", replicas=2)
    project.ok("deploy", "--wait")
    project.ok("down", "--wait")
    status = project.status()
    assert status["state"] == "down"
    assert status["instances"] == []
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{project.port}/", timeout=2)
    out = project.ok("deploy", "--wait")
    assert "again" in out
    project.wait_for(lambda s: serving(s, 1, 2))
    assert httpx.get(f"http://127.0.0.1:{project.port}/", timeout=5).status_code == 200


def test_recreate_strategy_replaces_everything(project: SampleProject) -> None:
    project.write("1.0.0", strategy="recreate")
    project.ok("deploy", "--wait")
    project.write("2.0.0", strategy="recreate")
    project.ok("deploy", "--wait")
    final = project.wait_for(lambda s: serving(s, 2, 3))
    assert final["last_rollout"]["strategy"] == "recreate"


def test_bad_input_gets_clear_errors(project: SampleProject) -> None:
    project.write("1.0.0")
    text = project.spec.read_text().replace("max_surge: 1", "max_surge: lots")
    project.spec.write_text(text)
    bad = project.baepo("validate")
    assert bad.returncode == 2
    assert "strategy.rolling.max_surge" in bad.stderr
    assert "baepo.yaml:" in bad.stderr
    assert "Traceback" not in bad.stderr

    project.write("1.0.0")
    assert project.baepo("history", "abc").returncode == 2
    assert project.baepo("undo", "--to-revision", "0").returncode == 2
    project.ok("deploy", "--wait")
    missing = project.baepo("undo", "--to-revision", "42")
    assert missing.returncode == 4, missing.stderr
    assert "42" in missing.stderr

    url = project.server_info()["url"]
    answers: list[dict[str, Any]] = []
    bodies: list[dict[str, Any]] = [
        {},
        {"spec_yaml": 3},
        {"spec_yaml": "app: x", "spec_name": "baepo.yaml", "extra": 1},
        {"spec_yaml": "app: [", "spec_name": "/x/baepo.yaml"},
        {"spec_yaml": "app: x", "spec_path": "/x/baepo.yaml"},  # the server decides the folder
    ]
    for body in bodies:
        response = httpx.post(
            f"{url}/api/v1/deploy", json=body, headers=project.headers(), timeout=10
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        answers.append(response.json())
    assert "spec_yaml" in answers[0]["detail"]
    assert "extra" in answers[2]["detail"]
    assert answers[3]["problems"][0]["line"] == 1
    assert answers[3]["detail"].startswith("baepo.yaml: "), answers[3]  # a name, never a path
    assert "spec_path" in answers[4]["detail"]
    garbage = httpx.post(
        f"{url}/api/v1/deploy",
        content=b"\xff{",
        headers={"content-type": "application/json", **project.headers()},
    )
    assert garbage.status_code == 400
    assert garbage.headers["content-type"].startswith("application/problem+json")
    assert httpx.get(f"{url}/api/v1/apps/nope", headers=project.headers()).status_code == 404
