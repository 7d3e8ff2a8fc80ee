"""Tokens, roles per environment and the audit log, against a real server with auth required.

The matrix: every mutating route, for every role, in an environment the token covers or not,
gives the right status, and nothing changes on a refusal. Tokens never show up in the audit
log or the server's log.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest
from harness import SampleProject

from baepo.api import local_credential
from baepo.core.model import ROLES

pytestmark = pytest.mark.slow

MINE, OTHER = "dev", "prod"
REQUIRED = {
    "deploy": "deployer",
    "undo": "deployer",
    "down": "deployer",
    "promote": "deployer",
    "pause": "deployer",
    "resume": "deployer",
    "abort": "deployer",
    "retry": "deployer",
    "token": "admin",
    "user": "admin",
}

# One client for the matrix (a thousand requests): a client per request built its TLS context
# each time, which took the test past its time limit on a busy machine. The timeout bounds a
# hang only.
HTTP = httpx.Client(timeout=60)


def create_token(project: SampleProject, name: str, role: str, *envs: str) -> str:
    args = ["token", "create", "--name", name, "--role", role]
    for env in envs:
        args += ["--env", env]
    return project.ok(*args).strip()


def call(url: str, token: str | None, route: str, env: str, spec: dict[str, str]) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if route == "deploy":
        body: dict[str, Any] = {**spec, "env": env}
        path = "/api/v1/deploy"
    elif route == "token":
        body = {"name": "made", "role": "viewer", "envs": [env]}
        path = "/api/v1/tokens"
    elif route == "user":
        body = {"username": f"u{env}", "password": "a long password", "role": "viewer",
                "envs": [env]}  # fmt: skip
        path = "/api/v1/users"
    else:
        body = {"env": env}
        path = f"/api/v1/apps/sample/{route}"
    return HTTP.post(url + path, json=body, headers=headers).status_code


def snapshot(url: str, admin: str) -> dict[str, Any]:
    """Everything a refused request must leave as it was."""
    headers = {"Authorization": f"Bearer {admin}"}
    got: dict[str, Any] = {}
    for env in (MINE, OTHER):
        for what in ("revisions", "events"):
            response = HTTP.get(
                f"{url}/api/v1/apps/sample/{what}", params={"env": env, "limit": 10000},
                headers=headers,
            )  # fmt: skip
            got[f"{env}/{what}"] = response.json() if response.status_code == 200 else None
    got["apps"] = HTTP.get(f"{url}/api/v1/apps", headers=headers).json()
    tokens = HTTP.get(f"{url}/api/v1/tokens", headers=headers).json()
    got["tokens"] = sorted((t["id"], t["revoked_at"] or "") for t in tokens)
    got["users"] = HTTP.get(f"{url}/api/v1/users", headers=headers).json()
    return got


def restart_with_auth(project: SampleProject) -> str:
    project.ok("server", "stop")
    project.ok("server", "start", "--auth", "required")
    return str(project.server_info()["url"])


def test_roles_per_environment_matrix(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait", "-e", MINE)
    admin = create_token(project, "root", "admin", "*")
    tokens = {role: create_token(project, f"{role}-dev", role, MINE) for role in ROLES}
    url = restart_with_auth(project)
    spec = {"spec_yaml": project.spec.read_text(), "spec_name": project.spec.name}

    assert HTTP.get(f"{url}/api/v1/apps").status_code == 401
    bad = {"Authorization": "Bearer bp_nothing_here"}
    assert HTTP.get(f"{url}/api/v1/apps", headers=bad).status_code == 401

    refused: list[tuple[str, str, str, int]] = []
    for role, route, env in itertools.product(ROLES, REQUIRED, (MINE, OTHER)):
        allowed = ROLES.index(role) >= ROLES.index(REQUIRED[route]) and env == MINE
        if allowed:
            continue
        before = snapshot(url, admin)
        status = call(url, tokens[role], route, env, spec)
        refused.append((role, route, env, status))
        assert status == 403, (role, route, env, status)
        assert snapshot(url, admin) == before, (role, route, env)
    for route in REQUIRED:  # no token at all
        assert call(url, None, route, MINE, spec) == 401
    # Allowed: never refused (what follows depends on the app's state, e.g. 409).
    for role, route in itertools.product(ROLES, REQUIRED):
        if ROLES.index(role) >= ROLES.index(REQUIRED[route]) and route not in ("down", "deploy"):
            status = call(url, tokens[role], route, MINE, spec)
            assert status not in (401, 403), (role, route, status)

    # Viewers read their environments only.
    viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
    mine = HTTP.get(f"{url}/api/v1/apps/sample", params={"env": MINE}, headers=viewer)
    assert mine.status_code == 200
    other = HTTP.get(f"{url}/api/v1/apps/sample", params={"env": OTHER}, headers=viewer)
    assert other.status_code == 403
    listed = HTTP.get(f"{url}/api/v1/apps", headers=viewer).json()
    assert {a["env"] for a in listed} == {MINE}

    # The audit log has every refusal, with who and from where; no token text anywhere.
    records = HTTP.get(
        f"{url}/api/v1/audit", params={"limit": 10000},
        headers={"Authorization": f"Bearer {admin}"},
    ).json()  # fmt: skip
    forbidden = [r for r in records if r["status"] == 403]
    assert len(forbidden) == len(refused)
    assert {r["actor"] for r in forbidden} == {f"{role}-dev" for role in ROLES}
    assert all(r["source"] == "127.0.0.1" for r in records)
    assert any(r["status"] == 401 and r["actor"] == "anonymous" for r in records)
    log = (project.state_dir / "server.log").read_text()
    for text in [admin, *tokens.values()]:
        secret = text.split("_", 2)[2]
        assert secret not in str(records)
        assert secret not in log


def test_cli_with_tokens_revocation_and_expiry(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait")
    admin = create_token(project, "root", "admin", "*")
    deployer = create_token(project, "ci", "deployer", "default")
    restart_with_auth(project)

    refused = project.baepo("status")
    assert refused.returncode == 3, refused.stderr
    assert "requires an API token" in refused.stderr
    assert "BAEPO_TOKEN" in refused.stderr

    project.env["BAEPO_TOKEN"] = deployer
    assert "1.0.0" in project.ok("status")
    project.write("1.0.1", replicas=1)
    project.ok("deploy", "--wait")
    history = json.loads(project.ok("history", "-o", "json"))
    by = {r["version"]: r["created_by"] for r in history}
    assert by["1.0.1"] == "ci", history  # the token's name, whatever the client says
    assert by["1.0.0"] == local_credential.owner(), history  # the server's OS user
    denied = project.baepo("token", "list")
    assert denied.returncode == 3
    assert "admin" in denied.stderr

    project.env["BAEPO_TOKEN"] = admin
    listed = project.ok("token", "list", "-o", "json")
    ci = next(t for t in json.loads(listed) if t["name"] == "ci")
    assert ci["last_used_at"] is not None
    assert "secret_hash" not in listed
    project.ok("token", "revoke", ci["id"])
    project.env["BAEPO_TOKEN"] = deployer
    gone = project.baepo("status")
    assert gone.returncode == 3
    assert "not valid" in gone.stderr

    project.env["BAEPO_TOKEN"] = admin
    audit = project.ok("audit", "-o", "json")
    actions = [(r["action"], r["status"]) for r in json.loads(audit)]
    assert ("POST /api/v1/deploy", 200) in actions
    assert ("DELETE /api/v1/tokens/{token_id}", 200) in actions


def test_listening_beyond_loopback_needs_auth(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    refused = project.baepo("server", "start", "--foreground", "--listen", "0.0.0.0:0")
    assert refused.returncode == 2
    assert "without authentication" in refused.stderr
    assert "--auth required" in refused.stderr


def test_metrics_and_report_need_a_token_when_auth_is_required(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait", "-e", MINE)
    viewer = create_token(project, "grafana", "viewer", OTHER)
    url = restart_with_auth(project)
    assert httpx.get(f"{url}/metrics", timeout=10).status_code == 401
    headers = {"Authorization": f"Bearer {viewer}"}
    scraped = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert scraped.status_code == 200
    assert "baepo_build_info" in scraped.text
    assert httpx.get(f"{url}/api/v1/report", timeout=10).status_code == 401
    report = httpx.get(f"{url}/api/v1/report", headers=headers, timeout=10).json()
    assert report["deployments"] == 0  # the dev deploy is not this viewer's to see
    assert report["apps"] == []
