"""baepo commands are rerun after an interruption and converge, on the namespace fleet.

A ``baepo deploy --wait`` is cut short mid-rollout: the CLI and the server are both SIGKILLed
(a laptop closed, a CI job cancelled). Running the same ``baepo deploy --wait`` again starts a
server, which adopts the router and the agents' instances and resumes the rollout in flight; the
CLI follows it to its end. Afterwards each host runs exactly one instance of the new revision
and no process of the old one (read from the hosts' own process tables), and a third run is a
no-op. The built-in router is a separate process, so requests through it keep being answered
while no server runs: the rerun under load fails none.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fleet import Fleet, fleet
from harness import SampleProject, serving, versions
from test_hosts_deploy import hosts_of, write

from baepo.cli.loadgen import LoadGenerator

__all__ = ["fleet"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def host_processes(fleet: Fleet, host: int) -> tuple[Counter[str], int]:
    """On host ``host`` (1-based), from its network namespace's process list: the sample apps
    running, by their ``SAMPLE_VERSION``, and how many instance supervisors run."""
    pids = subprocess.run(
        ["ip", "netns", "pids", f"baepo{fleet.net}-h{host}"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout.split()
    apps: Counter[str] = Counter()
    supervisors = 0
    for pid in pids:
        proc = Path("/proc") / pid
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # exited meanwhile
        if state == "Z":
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        if any(w.endswith("app.py") for w in words) and "--port" in words:
            env = dict(e.decode(errors="replace").partition("=")[::2] for e in environ if e)
            apps[env.get("SAMPLE_VERSION", "?")] += 1
        elif any(w.endswith("agent.py") for w in words) and "start" in words:
            supervisors += 1
    return apps, supervisors


def assert_one_per_host(fleet: Fleet, version: str) -> None:
    """Each host runs one instance of ``version`` under one supervisor, and nothing else
    (stops under way are given time to finish)."""
    deadline = time.monotonic() + 60
    while True:
        seen = [host_processes(fleet, n) for n in range(1, len(fleet.addresses) + 1)]
        if all(apps == Counter({version: 1}) and sup == 1 for apps, sup in seen):
            return
        assert time.monotonic() < deadline, f"processes on the hosts: {seen}"
        time.sleep(0.5)


def start_deploy(project: SampleProject) -> subprocess.Popen[str]:
    """``baepo deploy --wait`` in the background, as a user would run it."""
    return subprocess.Popen(
        [sys.executable, "-m", "baepo", "deploy", "--wait"],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def interrupt(project: SampleProject, cli: subprocess.Popen[str]) -> None:
    """SIGKILL the CLI and the server, as a crash of the machine that runs both would."""
    cli.kill()
    project.kill_server()
    cli.communicate(timeout=10)


def rerun_converges(project: SampleProject, fleet: Fleet, revision: int, version: str) -> None:
    out = project.ok("deploy", "--wait", timeout=240)
    assert "already rolling out" in out, out
    assert f"done: revision {revision} serves all traffic" in out, out
    status = project.wait_for(lambda s: serving(s, revision, 3), what=f"revision {revision}")
    assert hosts_of(status) == Counter(fleet.addresses)
    assert_one_per_host(fleet, version)
    again = project.ok("deploy", "--wait", timeout=60)
    assert "nothing to deploy" in again, again
    assert project.status()["stable_revision"] == revision


def test_an_interrupted_rollout_is_resumed_by_the_same_deploy(
    project: SampleProject, fleet: Fleet
) -> None:
    write(project, fleet, "1.0.0")
    project.ok("deploy", "--wait", timeout=180)
    project.wait_for(lambda s: serving(s, 1, 3), what="revision 1 serving")

    def first_new_ready(s: dict[str, Any]) -> bool:
        return bool(s["rollout"]) and any(i["revision"] == 2 and i["ready"] for i in s["instances"])

    gen = LoadGenerator("127.0.0.1", project.port, rate=40, workers=4, max_seconds=300).start()
    try:
        write(project, fleet, "2.0.0")
        cli = start_deploy(project)
        project.wait_for(first_new_ready, timeout=120, what="a first new instance ready")
        interrupt(project, cli)
        time.sleep(1)  # no server at all for a moment: the router answers on its own
        rerun_converges(project, fleet, 2, "2.0.0")
    finally:
        report = gen.stop()
    print(f"interrupted rolling deploy on hosts: {report}")  # shown with pytest -s
    assert report.sent > 50
    assert report.failed == 0, report
    assert set(report.versions) == {"1.0.0", "2.0.0"}
    assert set(versions(project.port, 30)) == {"2.0.0"}
    # Resumed, not made again: two revisions, the second one's rollout healthy.
    history = project.api("/api/v1/apps/sample/revisions")
    assert [(r["number"], r["rollout"]["phase"]) for r in history] == [
        (1, "healthy"),
        (2, "healthy"),
    ]


def test_an_interrupted_first_deploy_is_resumed_by_the_same_deploy(
    project: SampleProject, fleet: Fleet
) -> None:
    write(project, fleet, "1.0.0")
    cli = start_deploy(project)
    project.wait_for(lambda s: bool(s["instances"]), timeout=120, what="a first instance")
    interrupt(project, cli)
    rerun_converges(project, fleet, 1, "1.0.0")
    assert set(versions(project.port, 30)) == {"1.0.0"}
