"""Freeze windows through the real CLI and a server with auth required: a production overlay
with a date range around now refuses deploys (exit 5, naming the reason and the end); a
deployer may not override it (exit 3); an admin may, and the override is in the audit log with
its reason and in the app's events as ``freeze.overridden``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from harness import SampleProject

pytestmark = pytest.mark.slow

PROD = "production"
REASON = "release freeze for the holidays"


def as_token(project: SampleProject, token: str, *args: str) -> Any:
    project.env["BAEPO_TOKEN"] = token
    try:
        return project.baepo(*args, "-e", PROD)
    finally:
        project.env.pop("BAEPO_TOKEN", None)


def test_a_freeze_refuses_deploys_unless_an_admin_overrides(project: SampleProject) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start, end = now - timedelta(days=1), now + timedelta(days=2)
    project.write("1.0.0", replicas=1)
    project.spec.write_text(
        project.spec.read_text()
        + "environments:\n  production:\n    freeze:\n"
        + f"      - reason: {REASON}\n"
        + f"        start: {start.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        + f"        end: {end.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
    )
    admin = project.ok("token", "create", "--name", "root", "--role", "admin", "--env", "*").strip()
    dave = project.ok(
        "token", "create", "--name", "dave", "--role", "deployer", "--env", PROD
    ).strip()
    project.ok("server", "stop")
    project.ok("server", "start", "--auth", "required")
    url = project.server_info()["url"]
    headers = {"Authorization": f"Bearer {admin}"}

    def events() -> list[dict[str, Any]]:
        got = httpx.get(
            f"{url}/api/v1/apps/sample/events", params={"env": PROD, "limit": 1000},
            headers=headers, timeout=10,
        )  # fmt: skip
        return list(got.json()) if got.status_code == 200 else []

    refused = as_token(project, dave, "deploy")
    assert refused.returncode == 5, (refused.stdout, refused.stderr)
    until = end.strftime("%Y-%m-%d %H:%M UTC")
    assert f"deploys of sample to production are frozen until {until}: {REASON}" in (
        refused.stderr
    ), refused.stderr
    assert "--override-freeze" in refused.stderr

    forbidden = as_token(project, dave, "deploy", "--override-freeze", "hotfix")
    assert forbidden.returncode == 3, (forbidden.stdout, forbidden.stderr)
    assert "override a freeze" in forbidden.stderr, forbidden.stderr
    assert not [e for e in events() if e["kind"] == "freeze.overridden"]

    why = "payment outage hotfix"
    overridden = as_token(project, admin, "deploy", "--override-freeze", why, "--wait")
    assert overridden.returncode == 0, (overridden.stdout, overridden.stderr)

    project.env["BAEPO_TOKEN"] = admin
    audit = json.loads(project.ok("audit", "-o", "json"))
    project.env.pop("BAEPO_TOKEN", None)
    deploys = [r for r in audit if r["action"] == "POST /api/v1/deploy"]
    assert any(r["status"] == 200 and why in r["detail"] for r in deploys), deploys
    assert any(r["status"] == 403 and r["actor"] == "dave" for r in deploys), deploys

    kinds = {e["kind"]: e for e in events()}
    assert "freeze.overridden" in kinds, list(kinds)
    event = kinds["freeze.overridden"]
    assert why in event["message"] and REASON in event["message"], event
    assert event["actor"], event
