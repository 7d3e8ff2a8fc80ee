"""The release pipeline on the dashboard, with auth required: a deploy waiting for approval
shows a banner; its requester's Approve is refused with the API's message; another approver
locks and unlocks the app, then approves from the page, and the rollout goes on; the checks
it ran are listed with their output; the history shows secrets only as changed or not.
An open freeze window is shown with its reason and end."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from harness import SampleProject

pytestmark = pytest.mark.slow

ENV = "staging"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
POLICY = """\
environments:
  staging:
    approval: required
checks:
  before:
    - name: ticket approved
      command: ["python3", "-c", "print('ticket T-42 approved')"]
"""


def login(url: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    answer = client.post("/ui/login", data={"token": token})
    assert answer.status_code == 303, answer.text
    return client


def press(client: httpx.Client, action: str, **form: str) -> str:
    """Press a button of the app page; the page it leads to."""
    page = client.get("/ui/apps/sample", params={"env": ENV}).text
    match = CSRF.search(page)
    assert match, page
    answer = client.post(
        f"/ui/apps/sample/{action}", data={"env": ENV, "csrf": match.group(1), **form}
    )
    assert answer.status_code == 303, answer.text
    return client.get(answer.headers["location"]).text


def test_approve_lock_and_gates_on_the_dashboard(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    project.spec.write_text(project.spec.read_text() + POLICY)
    admin = project.ok("token", "create", "--name", "root", "--role", "admin", "--env", "*")
    alice = project.ok("token", "create", "--name", "alice", "--role", "approver", "--env", ENV)
    bob = project.ok("token", "create", "--name", "bob", "--role", "approver", "--env", ENV)
    project.ok("server", "stop")
    project.ok("server", "start", "--auth", "required")
    url = str(project.server_info()["url"])

    def status() -> dict[str, Any]:
        got = httpx.get(f"{url}/api/v1/apps/sample", params={"env": ENV}, timeout=10,
                        headers={"Authorization": f"Bearer {admin.strip()}"})  # fmt: skip
        got.raise_for_status()
        return dict(got.json())

    project.env["BAEPO_TOKEN"] = alice.strip()
    try:
        asked = project.baepo("deploy", "-e", ENV)
    finally:
        project.env.pop("BAEPO_TOKEN")
    assert asked.returncode == 0, asked.stderr
    assert status()["rollout"]["phase"] == "awaiting_approval"

    as_alice = login(url, alice.strip())
    page = as_alice.get("/ui/apps/sample", params={"env": ENV}).text
    assert "Awaiting approval" in page and "alice" in page, page
    assert 'id="btn-approve"' in page and 'id="btn-reject"' in page
    refused = press(as_alice, "approve")
    assert "may not approve it" in refused, refused
    assert status()["rollout"]["phase"] == "awaiting_approval"

    as_bob = login(url, bob.strip())
    locked = press(as_bob, "lock", reason="db maintenance")
    assert "Locked by" in locked and "db maintenance" in locked, locked
    assert 'id="btn-unlock"' in locked
    unlocked = press(as_bob, "unlock")
    assert "Not locked" in unlocked, unlocked
    no_reason = press(as_bob, "reject", reason="  ")
    assert "reason" in no_reason.lower() and "Awaiting approval" in no_reason
    press(as_bob, "approve")
    deadline = time.monotonic() + 90
    while status()["stable_revision"] != 1:
        assert time.monotonic() < deadline, f"revision 1 never promoted: {status()}"
        time.sleep(0.3)
    page = as_bob.get("/ui/apps/sample", params={"env": ENV}).text
    assert "Awaiting approval" not in page
    assert 'id="gates"' in page and "ticket approved" in page, page
    assert "ticket T-42 approved" in page  # the check's output, expandable

    audit = httpx.get(f"{url}/api/v1/audit", timeout=10,
                      headers={"Authorization": f"Bearer {admin.strip()}"}).json()  # fmt: skip
    approvals = [a for a in audit if "bob" in a["actor"] and "/approve" in str(a)]
    assert approvals, audit


def test_an_open_freeze_window_is_on_the_app_page(project: SampleProject) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    end = now + timedelta(days=2)
    project.write("1.0.0", replicas=1)
    project.spec.write_text(
        project.spec.read_text()
        + f"environments:\n  {ENV}:\n    freeze:\n      - reason: quarter close\n"
        + f"        start: {(now - timedelta(days=1)).strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        + f"        end: {end.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
    )
    project.ok("deploy", "-e", ENV, "--override-freeze", "hotfix", "--wait")
    url = str(project.server_info()["url"])
    with httpx.Client(base_url=url, timeout=30, follow_redirects=True) as client:
        page = client.get("/ui/apps/sample", params={"env": ENV}).text
    assert 'id="freeze"' in page and "Deploy freeze" in page, page
    assert "quarter close" in page and end.strftime("%Y-%m-%d %H:%M") in page
