"""``baepo deploy --dry-run`` through the real CLI and server: it says what a deploy would do
(revision number, config and secret changes, steps, gates, approval, commands on each host),
refuses what a deploy would refuse with the same exit code, and changes nothing: no revision,
no rollout, no app, no instance, no event."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from typing import Any

import pytest
from harness import SampleProject, serving
from test_deploy_locks import as_actor

pytestmark = pytest.mark.slow

CANARY = (
    "{canary: {steps: [{set_weight: 20}, {pause: {duration: 1s}}, {set_weight: 50}],"
    " max_surge: 1, max_unavailable: 0}}"
)


def revisions(project: SampleProject) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(project.ok("history", "-o", "json"))
    return found


def test_a_dry_run_shows_the_deploy_and_changes_nothing(project: SampleProject) -> None:
    password = "pw" + secrets.token_hex(12)
    project.write("1.0.0", replicas=1)
    first = project.ok("deploy", "--dry-run")
    assert "dry run: would make revision 1 (version 1.0.0) and roll it out" in first
    assert "first revision: config" in first and "strategy: rolling, 1 replica(s)" in first
    assert "nothing was changed (dry run)" in first
    assert revisions(project) == []
    apps = project.api("/api/v1/apps")
    assert all(a["app"] != "sample" for a in apps), apps
    started = [cmd for _, cmd in project.processes() if "baepo server" not in cmd]
    assert started == []  # the server only: no instance, no router

    project.ok("deploy", "--wait", timeout=180)
    project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 serving")
    events = len(project.api("/api/v1/apps/sample/events"))

    project.write("2.0.0", replicas=1, strategy=CANARY)
    spec = project.spec.read_text()
    project.spec.write_text(
        spec
        + "secrets:\n  DB_PASSWORD: db-password\n"
        + 'checks:\n  before: [{name: disk, command: ["true"]}]\n'
        + "approval: required\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "baepo", "secret", "set", "db-password"],
        cwd=project.root,
        env=project.env,
        input=password,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    text = project.ok("deploy", "--dry-run")
    assert "dry run: would make revision 2 (version 2.0.0) and roll it out (after an " in text
    assert "replacing revision 1 (1.0.0)" in text
    assert "config changes since revision 1:" in text
    assert "-version: 1.0.0" in text and "+version: 2.0.0" in text
    assert "DB_PASSWORD" in text and "added" in text
    assert "strategy: canary, 1 replica(s)" in text
    assert "1. set weight 20%" in text and "2. pause 1s" in text and "3. set weight 50%" in text
    assert "check 'disk' (before)" in text
    assert "approval: required" in text
    assert password not in text

    as_json = json.loads(project.ok("deploy", "--dry-run", "-o", "json"))
    preview = as_json["preview"]
    assert as_json["changed"] is False and as_json["rollout_id"] is None
    assert (preview["revision"], preview["version"]) == (2, "2.0.0")
    assert preview["stable"]["revision"] == 1
    assert preview["secret_changes"] == {"DB_PASSWORD": "added"}
    assert preview["approval_required"] is True
    assert preview["gates"] == ["check 'disk' (before)"]
    assert preview["strategy"][0] == "canary, 1 replica(s)" and len(preview["strategy"]) == 4
    assert preview["target"] == "local" and preview["hosts_plan"] == []
    assert password not in json.dumps(as_json)

    # nothing changed: one revision, revision 1 serving, no rollout, no new event
    assert [r["number"] for r in revisions(project)] == [1]
    assert serving(project.status(), 1, 1)
    assert len(project.api("/api/v1/apps/sample/events")) == events

    # what a deploy refuses, a dry run refuses the same way
    assert as_actor(project, "alice", "lock", "--reason", "maintenance").returncode == 0
    refused = as_actor(project, "bob", "deploy", "--dry-run")
    assert refused.returncode == 5, refused.stdout + refused.stderr
    assert "locked by alice" in refused.stderr
    assert as_actor(project, "alice", "unlock").returncode == 0

    # the same config as what runs: the dry run says there is nothing to deploy
    project.write("1.0.0", replicas=1)
    same = project.ok("deploy", "--dry-run")
    assert "nothing to deploy: revision 1 already runs version 1.0.0" in same


def test_a_dry_run_on_hosts_prints_each_command_and_connects_to_none(
    project: SampleProject,
) -> None:
    project.write("1.0.0", replicas=2)
    spec = project.spec.read_text()
    # TEST-NET-1 addresses: nothing answers there, and a dry run must not try
    hosts = (
        "target:\n  kind: hosts\n  hosts:\n"
        "    - {address: 192.0.2.11, user: deploy}\n"
        "    - {address: 192.0.2.12, user: deploy}\n"
    )
    project.spec.write_text(spec + hosts)
    text = project.ok("deploy", "--dry-run", timeout=60)
    assert "dry run: would make revision 1" in text
    assert "on the hosts:" in text
    for address in ("192.0.2.11", "192.0.2.12"):
        assert f"deploy@{address}  upload the baepo agent" in text
        assert f"deploy@{address}  $ python3 /srv/baepo/.baepo/agent.py start" in text
    assert "/srv/baepo/sample/default/r1" in text
    preview = json.loads(project.ok("deploy", "--dry-run", "-o", "json"))["preview"]
    assert preview["target"] == "hosts"
    starts = [line for line in preview["hosts_plan"] if "agent.py start" in line]
    assert len(starts) == 2 and {line.split()[0] for line in starts} == {
        "deploy@192.0.2.11",
        "deploy@192.0.2.12",
    }
    assert revisions(project) == []
