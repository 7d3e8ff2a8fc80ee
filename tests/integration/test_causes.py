"""Failure causes through the real CLI, server, router and instances: a rollout aborted by a
person, one replaced by a newer deploy, and one stopped by a failing hook whose output holds a
secret each record their cause, shown the same way by the API, ``baepo status``, ``baepo
history``, ``baepo report -o json``, the dashboard and a Slack-format notification, with the
secret shown as ``***`` everywhere."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from harness import SampleProject, serving, until
from test_notifications import SLACK_FIELDS, SlackReceiver

pytestmark = pytest.mark.slow

CANARY = "{canary: {steps: [{set_weight: 50}, {pause: {}}]}}"
SECRET = "tok-9f8e7d6c5b4a3210"
LEAK = (
    "import os, sys; print('migrating'); print('connecting with', os.environ['API_TOKEN']); "
    "print('<script>alert(1)</script>'); sys.exit(3)"
)


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def revisions(project: SampleProject) -> dict[int, dict[str, Any]]:
    return {r["number"]: r for r in project.api("/api/v1/apps/sample/revisions")}


def dashboard_page(project: SampleProject, path: str) -> str:
    dashboard = project.dashboard()
    try:
        answer = dashboard.get(path)
        assert answer.status_code == 200, answer.text
        return answer.text
    finally:
        dashboard.close()


def rolling_out(status: dict[str, Any], revision: int) -> bool:
    rollout = status["rollout"]
    return rollout is not None and rollout["revision"] == revision


def test_an_aborted_and_a_superseded_rollout_say_who_ended_them(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1, strategy=CANARY)
    project.ok("deploy", "--wait")
    project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 serving")

    project.write("2.0.0", replicas=1, strategy=CANARY)
    project.ok("deploy")
    project.wait_for(lambda s: rolling_out(s, 2), what="revision 2 rolling out")
    project.ok("abort")
    aborted = project.status()["last_rollout"]
    assert aborted["phase"] == "aborted"
    cause = aborted["cause"]
    assert cause["kind"] == "aborted"
    assert cause["summary"].startswith("baepo abort by ")
    assert cause["evidence"][1] == "with baepo abort"
    shown = project.ok("status")
    assert "cause: stopped by a person: baepo abort by " in shown, shown

    project.write("3.0.0", replicas=1, strategy=CANARY)
    project.ok("deploy")
    project.wait_for(lambda s: rolling_out(s, 3), what="revision 3 rolling out")
    project.write("4.0.0", replicas=1, strategy=CANARY)
    project.ok("deploy", "--supersede")
    replaced = revisions(project)[3]["rollout"]
    assert replaced["phase"] == "superseded"
    assert replaced["cause"]["kind"] == "superseded"
    assert replaced["cause"]["summary"].startswith("replaced by revision 4 (4.0.0), deployed by ")

    listed = project.ok("history")
    assert "stopped by a person: baepo abort by" in listed, listed
    assert "superseded: replaced by revision 4 (4.0.0)" in listed, listed
    one = project.ok("history", "2")
    assert "  cause: stopped by a person: baepo abort by" in one, one
    assert "    with baepo abort" in one, one

    report = json.loads(project.ok("report", "-o", "json"))
    assert report["failure_causes"] == {"aborted": 1}, report  # superseded is no failure

    page = dashboard_page(project, "/ui/apps/sample/history")
    assert 'id="cause-2"' in page and "stopped by a person</span>: baepo abort by" in page
    assert 'id="cause-3"' in page and "replaced by revision 4 (4.0.0)" in page


def test_a_failing_hook_is_the_cause_with_its_output_and_no_secret(
    project: SampleProject, slack: SlackReceiver
) -> None:
    project.env.update(
        {"SLACK_URL": slack.url + SLACK_FIELDS, "BAEPO_ALLOWED_SECRET_ENV": "SLACK_URL"}
    )
    notifications = "notifications:\n  - {name: team, url_env: SLACK_URL, events: [failed]}\n"
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait")

    project.write("2.0.0", replicas=1, extra_env={"API_TOKEN": SECRET})
    hook = json.dumps([sys.executable, "-c", LEAK])
    project.spec.write_text(
        project.spec.read_text()
        + f"hooks:\n  pre_deploy: [{{name: leak, command: {hook}}}]\n"
        + notifications
    )
    failed = project.baepo("deploy", "--wait", "--timeout", "120")
    assert failed.returncode == 6, (failed.stdout, failed.stderr)

    status = project.status()
    cause = status["last_rollout"]["cause"]
    assert cause["kind"] == "gate"
    assert cause["summary"].startswith("hook 'leak' (pre_deploy) failed: ")
    assert "exit code 3" in cause["evidence"]
    assert "  connecting with ***" in cause["evidence"]
    assert "  <script>alert(1)</script>" in cause["evidence"]

    shown = {
        "status": project.ok("status"),
        "history": project.ok("history"),
        "history 2": project.ok("history", "2"),
        "gates": project.ok("gates", "-o", "json"),
        "api": json.dumps([status, project.api("/api/v1/apps/sample/revisions")]),
    }
    headline = "cause: gate, hook or migration: hook 'leak' (pre_deploy) failed"
    assert headline in shown["status"] and "connecting with ***" in shown["status"]
    assert "gate, hook or migration: hook 'leak'" in shown["history"]
    assert headline in shown["history 2"] and "exit code 3" in shown["history 2"]
    for where, text in shown.items():
        assert SECRET not in text, where

    report = json.loads(project.ok("report", "-o", "json"))
    assert report["failure_causes"] == {"gate": 1}, report

    page = dashboard_page(project, "/ui/apps/sample")
    assert 'id="cause"' in page
    assert "gate, hook or migration</span>: hook &#39;leak&#39; (pre_deploy) failed" in page
    assert "connecting with ***" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page and SECRET not in page

    [message] = until(slack.texts, lambda texts: len(texts) == 1, "the failure on Slack")
    lines = message.splitlines()
    assert lines[0].startswith("sample 2.0.0 (revision 2) failed in default: ")
    assert lines[1] == f"{headline}: {sys.executable} exited with 3", lines
    assert "exit code 3" in lines and "  connecting with ***" in lines, lines
    assert SECRET not in message
