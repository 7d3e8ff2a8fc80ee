"""Approval of production deploys through the real CLI and a server with auth required: a
deploy waits in ``awaiting_approval`` with nothing started, its requester may not approve it,
a deployer may not either, another approver can; a rejection ends it with its reason."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from harness import SampleProject

pytestmark = pytest.mark.slow

PROD = "production"


def create_token(project: SampleProject, name: str, role: str) -> str:
    return project.ok("token", "create", "--name", name, "--role", role, "--env", PROD).strip()


def as_token(project: SampleProject, token: str, *args: str) -> Any:
    project.env["BAEPO_TOKEN"] = token
    try:
        return project.baepo(*args, "-e", PROD)
    finally:
        project.env.pop("BAEPO_TOKEN", None)


def test_a_production_deploy_waits_for_another_approver(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    project.spec.write_text(
        project.spec.read_text() + "environments:\n  production:\n    approval: required\n"
    )
    admin = project.ok("token", "create", "--name", "root", "--role", "admin", "--env", "*").strip()
    alice = create_token(project, "alice", "approver")
    bob = create_token(project, "bob", "approver")
    dave = create_token(project, "dave", "deployer")
    project.ok("server", "stop")
    project.ok("server", "start", "--auth", "required")
    url = project.server_info()["url"]

    def status() -> dict[str, Any]:
        got = httpx.get(
            f"{url}/api/v1/apps/sample", params={"env": PROD},
            headers={"Authorization": f"Bearer {admin}"}, timeout=10,
        )  # fmt: skip
        got.raise_for_status()
        return dict(got.json())

    try:
        asked = as_token(project, alice, "deploy")
        assert asked.returncode == 0, asked.stderr
        assert "waits for approval" in asked.stdout, asked.stdout
        waiting = status()
        assert waiting["rollout"]["phase"] == "awaiting_approval", waiting
        assert waiting["instances"] == [], waiting

        own = as_token(project, alice, "approve")
        assert own.returncode == 5, (own.stdout, own.stderr)
        assert "may not approve it" in own.stderr, own.stderr
        deployer = as_token(project, dave, "approve")
        assert deployer.returncode == 3, (deployer.stdout, deployer.stderr)
        assert status()["rollout"]["phase"] == "awaiting_approval"

        approved = as_token(project, bob, "approve", "--reason", "release notes checked")
        assert approved.returncode == 0, approved.stderr
        deadline = time.monotonic() + 90
        while status()["stable_revision"] != 1:
            assert time.monotonic() < deadline, f"revision 1 not promoted: {status()}"
            time.sleep(0.2)

        project.write("1.1.0", replicas=1)
        project.spec.write_text(
            project.spec.read_text() + "environments:\n  production:\n    approval: required\n"
        )
        assert as_token(project, dave, "deploy").returncode == 0
        empty = as_token(project, bob, "reject")
        assert empty.returncode == 2, (empty.stdout, empty.stderr)
        rejected = as_token(project, bob, "reject", "--reason", "not during the sale")
        assert rejected.returncode == 0, rejected.stderr
        final = status()
        assert final["stable_revision"] == 1, final
        history = json.loads(as_token(project, admin, "history", "-o", "json").stdout)
        assert history, history
        events = httpx.get(
            f"{url}/api/v1/apps/sample/events", params={"env": PROD, "limit": 1000},
            headers={"Authorization": f"Bearer {admin}"}, timeout=10,
        ).json()  # fmt: skip
        kinds = [e["kind"] for e in events]
        assert kinds.count("approval.requested") == 2, kinds
        assert "approval.granted" in kinds and "approval.rejected" in kinds, kinds
        said = " ".join(e["message"] for e in events)
        assert "release notes checked" in said and "not during the sale" in said
        audit = json.loads(as_token(project, admin, "audit", "-o", "json").stdout)
        decisions = [a for a in audit if a["action"].endswith(("/approve", "/reject"))]
        assert {a["status"] for a in decisions} >= {200, 403, 409}, decisions
    finally:
        project.env["BAEPO_TOKEN"] = admin
        project.baepo("down", "-e", PROD, "--wait", "--timeout", "30", timeout=60)
