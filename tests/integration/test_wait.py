"""``--wait`` always ends with the outcome's exit code, and the CLI tells the truth after a
failure: real CLI processes, a real server, real instances behind the real router.

Exit codes of ``--wait``: 0 healthy, 6 failed / rolled back / aborted, 8 waits for a person.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest
from harness import SampleProject, free_port, until, versions

pytestmark = pytest.mark.slow

MISSING = "baepo-test-no-such-program"
# "05:38:09.965  message": a line --wait prints for a change
CHANGE_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3}  (.*)$")


def changes(stdout: str) -> list[str]:
    return [m.group(1) for line in stdout.splitlines() if (m := CHANGE_LINE.match(line))]


def test_a_first_deploy_whose_command_is_missing_ends_the_wait_with_6(
    project: SampleProject,
) -> None:
    project.write("1.0.0", replicas=1)
    project.spec.write_text(project.spec.read_text().replace(f'"{sys.executable}"', f'"{MISSING}"'))
    started = time.monotonic()
    done = project.baepo("deploy", "--wait", timeout=120)
    took = time.monotonic() - started
    assert done.returncode == 6, f"{done.stdout}\n{done.stderr}"
    # The server starts with the command, and the rollout fails within a second or two: the
    # bound is for a busy machine (a hang used to last until the job was killed).
    assert took < 60, took
    said = changes(done.stdout)
    assert said, done.stdout
    assert len(said) == len(set(said)), f"a line printed twice:\n{done.stdout}"
    # The failure is what is printed last: the rollout's message, naming the program.
    last = done.stderr.strip().splitlines()
    assert last[-1].startswith(("error: rollout 1 failed", "    ", "  cause:")), done.stderr
    assert "error: rollout 1 failed" in done.stderr
    assert MISSING in done.stderr[done.stderr.index("error: rollout 1 failed") :]

    # The server records the failure once, not again on every pass while the failed
    # instance stays listed: let it make 20 more passes, then count.
    def passes() -> float:
        url = project.server_info()["url"]
        text = httpx.get(f"{url}/metrics", headers=project.headers(), timeout=60).text
        found = re.search(r"^baepo_reconcile_passes_total (\S+)$", text, re.M)
        assert found is not None, text
        return float(found[1])

    then = passes()
    until(passes, lambda now: now >= then + 20, "20 controller passes")
    events = project.api("/api/v1/apps/sample/events", limit=1000)
    failed = [e for e in events if e["kind"] == "instance.failed"]
    assert len(failed) == 1, [e["message"] for e in events]


def test_a_blue_green_preview_returns_the_wait_with_8_naming_promote(
    project: SampleProject,
) -> None:
    strategy = (
        f'{{blue_green: {{preview_listen: "127.0.0.1:{free_port()}", '
        "auto_promotion_enabled: false, scale_down_delay: 5m}}"
    )
    project.write("1.0.0", replicas=1, strategy=strategy)
    project.ok("deploy", "--wait")
    project.write("2.0.0", replicas=1, strategy=strategy)
    paused = project.baepo("deploy", "--wait", timeout=120)
    assert paused.returncode == 8, f"{paused.stdout}\n{paused.stderr}"
    assert "paused: rollout 2 (revision 2) waits for a person" in paused.stderr
    assert "baepo promote -e default" in paused.stderr
    assert "baepo abort -e default" in paused.stderr
    assert project.status()["rollout"]["phase"] == "paused"  # nothing was changed by returning

    # A stuck rollout's elapsed time runs from its start, not to its last write.
    started = datetime.fromisoformat(project.status()["rollout"]["started_at"])
    while (datetime.now(UTC) - started).total_seconds() < 3:
        time.sleep(0.1)
    shown = re.search(
        r"rollout 2: revision 2 \(blue_green\) paused  ([\d.]+)s", project.ok("status")
    )
    assert shown is not None and float(shown.group(1)) >= 3, project.ok("status")

    promoted = project.baepo("promote", "--wait", timeout=120)
    assert promoted.returncode == 0, f"{promoted.stdout}\n{promoted.stderr}"
    # Revision 1 stays warm for 5 minutes: done once the switch is, not after the delay.
    assert "has not settled" not in promoted.stderr
    assert "done: revision 2 serves all traffic" in promoted.stdout
    assert versions(project.port, 50) == Counter({"2.0.0": 50})

    # Undo switches back to the warm revision 1: status must not say revision 2 serves.
    assert "still warm" in project.ok("undo", "--wait")
    assert versions(project.port, 50) == Counter({"1.0.0": 50})
    status = project.ok("status").splitlines()
    rollout = status.index(next(line for line in status if line.startswith("rollout 2:")))
    assert "undone" in status[rollout], status
    assert status[rollout + 1].strip() == "undone: revision 1 serves all traffic again", status


def test_a_canary_waits_out_a_timed_pause_and_returns_at_an_indefinite_one(
    project: SampleProject,
) -> None:
    strategy = "{canary: {steps: [{set_weight: 50}, {pause: {duration: 2s}}, {pause: {}}]}}"
    project.write("1.0.0", replicas=2, strategy=strategy)
    project.ok("deploy", "--wait")
    project.write("2.0.0", replicas=2, strategy=strategy)
    paused = project.baepo("deploy", "--wait", timeout=120)
    assert paused.returncode == 8, f"{paused.stdout}\n{paused.stderr}"
    timed = [line for line in changes(paused.stdout) if "paused for 2 s, until" in line]
    assert len(timed) == 1, paused.stdout
    assert "step 2: paused for 2 s, until" in timed[0]
    assert "baepo promote -e default" in paused.stderr
    status = project.status()
    assert status["rollout"]["phase"] == "paused"
    assert status["canary"]["step"] == 2
    done = project.baepo("promote", "--wait", timeout=120)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "done: revision 2 serves all traffic" in done.stdout


def test_logs_after_a_failed_release_show_the_failed_revision(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1, extra_env={"SAMPLE_ACCESS_LOG": "true"})
    project.ok("deploy", "--wait")
    project.write("2.0.0", replicas=1, extra_env={"SAMPLE_CRASH_ON_START": "true"})
    failed = project.baepo("deploy", "--wait", timeout=120)
    assert failed.returncode == 6, f"{failed.stdout}\n{failed.stderr}"
    assert "baepo logs -r 2" in failed.stderr
    # The stable revision goes on writing (an access-log line a request, health probes
    # included): more lines than the tail shown, written after the failed revision's.
    versions(project.port, 20)
    shown = project.baepo("logs", "-n", "5")
    assert shown.returncode == 0, shown.stderr
    assert "sample 2.0.0: crashing on start as configured" in shown.stdout, shown.stdout
    assert "rollout 2 of revision 2 rolled back: showing its output" in shown.stderr
    assert "baepo logs -r 1" in shown.stderr
    # The stable revision's output is one option away.
    stable = project.ok("logs", "-n", "5", "-r", "1").splitlines()
    assert len(stable) == 5 and all(line.startswith("r1-") for line in stable), stable


def test_a_deploy_waiting_for_approval_returns_the_wait_with_8_naming_approve(
    project: SampleProject,
) -> None:
    project.write("1.0.0", replicas=1)
    project.spec.write_text(
        project.spec.read_text()
        + "environments:\n  default:\n    approval: {required: true, allow_self_approval: true}\n"
    )
    asked = project.baepo("deploy", "--wait", timeout=120)
    assert asked.returncode == 8, f"{asked.stdout}\n{asked.stderr}"
    assert "waits for a person: approval" in asked.stderr
    assert "baepo approve -e default" in asked.stderr
    assert project.status()["rollout"]["phase"] == "awaiting_approval"
    approved = project.baepo("approve", "--wait", timeout=120)
    assert approved.returncode == 0, f"{approved.stdout}\n{approved.stderr}"
    assert "done: revision 1 serves all traffic" in approved.stdout


SECRET = "tok-5e4d3c2b1a09f8e7"
LEAK = (
    "import os, sys; print('migrating'); print('connecting with', os.environ['API_TOKEN']); "
    "sys.exit(3)"
)


def test_the_last_lines_of_a_failed_wait_are_the_cause_with_its_evidence_and_no_secret(
    project: SampleProject,
) -> None:
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait")
    project.write("2.0.0", replicas=1, extra_env={"API_TOKEN": SECRET})
    hook = json.dumps([sys.executable, "-c", LEAK])
    project.spec.write_text(
        project.spec.read_text() + f"hooks:\n  pre_deploy: [{{name: leak, command: {hook}}}]\n"
    )
    failed = project.baepo("deploy", "--wait", timeout=120)
    assert failed.returncode == 6, f"{failed.stdout}\n{failed.stderr}"
    assert SECRET not in failed.stdout + failed.stderr
    assert "see baepo gates" in failed.stderr  # where the hook's whole output is
    error = failed.stderr[failed.stderr.index("error: rollout 2 failed") :].splitlines()
    assert error[1].startswith("  cause: gate, hook or migration: hook 'leak' (pre_deploy)"), error
    assert "    exit code 3" in error, error
    assert "      connecting with ***" in error, error
    assert error[-1].startswith("    "), error  # the evidence is the very last
