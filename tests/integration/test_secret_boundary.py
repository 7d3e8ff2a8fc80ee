"""An environment-scoped role is a boundary: a deployer of `staging`, through the real CLI and
raw HTTP against a real server with auth required, tries every way a spec can reach a file, a
server environment variable, the master key or production's stored secrets. Each attempt is
refused with a 4xx naming the field, nothing is made, and no value shows anywhere."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import SampleProject

pytestmark = pytest.mark.slow

OUTSIDE = "outside-" + secrets.token_hex(8)
SERVER_ONLY = "server-only-" + secrets.token_hex(8)
PRODUCTION = "production-" + secrets.token_hex(8)
HEADER = "checks:\n  before:\n    - name: leak\n      http:\n        url: http://127.0.0.1:9/\n"

# (what is tried, spec text added, the field the refusal must name, words it must say)
ATTEMPTS = [
    ("a file above the folder", "secrets: {X: {file: ../outside.txt}}\n",
     "secrets.X.file", "goes up with '..'"),
    ("an absolute file", "secrets: {X: {file: /etc/hostname}}\n",
     "secrets.X.file", "is an absolute path"),
    ("a symlink out, made before", "secrets: {X: {file: link-out}}\n",
     "secrets.X.file", "leads out of the app's folder"),
    ("a symlinked folder out", "secrets: {X: {file: up/outside.txt}}\n",
     "secrets.X.file", "leads out of the app's folder"),
    ("the master key", "secrets: {X: {file: .baepo/secret.key}}\n",
     "secrets.X.file", "in the server's state directory"),
    ("the state database", "secrets: {X: {file: .baepo/state.db}}\n",
     "secrets.X.file", "in the server's state directory"),
    ("a server variable", "secrets: {X: {env: BAEPO_TEST_SERVER_ONLY}}\n",
     "secrets.X.env", "--allow-secret-env BAEPO_TEST_SERVER_ONLY"),
    ("the key's variable", "secrets: {X: {env: BAEPO_SECRET_KEY}}\n",
     "secrets.X.env", "does not allow specs to read"),
    ("production's stored secret", "secrets: {X: db-password}\n",
     "secrets.X", "the secret db-password is not set for sample in staging"),
    ("production's stored secret, long form", "secrets: {X: {secret: db-password}}\n",
     "secrets.X.secret", "baepo secret set db-password -e staging"),
    ("a check header", HEADER + "        headers: {X-Leak: '{{env.BAEPO_TEST_SERVER_ONLY}}'}\n",
     "checks.before[0].http.headers.X-Leak", "--allow-secret-env"),
    ("a notification URL", "notifications: [{name: leak, url_env: BAEPO_TEST_SERVER_ONLY}]\n",
     "notifications[0].url_env", "--allow-secret-env"),
    ("a backup URL", "backup: {kind: postgres, url_env: BAEPO_TEST_SERVER_ONLY}\n",
     "backup.url_env", "--allow-secret-env"),
    ("a release archive", "target: {kind: hosts, hosts: [{address: 127.0.0.1}], "
     "release: {archive: ../outside.tgz}}\n", "target.release.archive", "goes up with '..'"),
]  # fmt: skip


def create_token(project: SampleProject, name: str, role: str, env: str) -> str:
    return project.ok("token", "create", "--name", name, "--role", role, "--env", env).strip()


def with_token(project: SampleProject, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "baepo", *args],
        cwd=project.root,
        env={**project.env, "BAEPO_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def get(url: str, token: str, path: str, **params: Any) -> Any:
    answer = httpx.get(
        url + path, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    answer.raise_for_status()
    return answer.json()


def test_a_staging_deployer_reaches_nothing_beyond_its_environment(
    project: SampleProject, tmp_path: Path
) -> None:
    assert project.root.parent == tmp_path
    (tmp_path / "outside.txt").write_text(OUTSIDE)
    (tmp_path / "outside.tgz").write_text(OUTSIDE)
    (project.root / "inside.txt").write_text("inside-value\n")
    (project.root / "link-out").symlink_to(tmp_path / "outside.txt")
    (project.root / "up").symlink_to(tmp_path, target_is_directory=True)
    project.env["BAEPO_TEST_SERVER_ONLY"] = SERVER_ONLY
    project.env["BAEPO_TEST_ALLOWED"] = "allowed-value"
    project.write("1.0.0", replicas=1, deadline="10s")
    base = project.spec.read_text()
    stored = subprocess.run(
        [sys.executable, "-m", "baepo", "secret", "set", "db-password", "-e", "production"],
        cwd=project.root, env=project.env, input=PRODUCTION, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert stored.returncode == 0, stored.stderr
    admin = create_token(project, "root", "admin", "*")
    deployer = create_token(project, "stager", "deployer", "staging")
    project.ok("server", "stop")
    project.ok("server", "start", "--auth", "required", "--allow-secret-env", "BAEPO_TEST_ALLOWED")
    url = str(project.server_info()["url"])
    assert project.server_info()["workdir"] == str(project.root)
    seen: list[str] = []

    for what, extra, field, words in ATTEMPTS:
        project.spec.write_text(base + extra)
        for args in (("deploy", "-e", "staging", "--dry-run"), ("deploy", "-e", "staging")):
            done = with_token(project, deployer, *args)
            seen += [done.stdout, done.stderr]
            said = " ".join(done.stderr.split())  # lines may be wrapped
            assert done.returncode == 2, (what, args, done.stdout, done.stderr)
            assert f"{field}: " in said, (what, args, done.stderr)
            assert words in said, (what, args, done.stderr)
    # a backup is refused the same way
    project.spec.write_text(base + "backup: {kind: postgres, url_env: BAEPO_TEST_SERVER_ONLY}\n")
    done = with_token(project, deployer, "backup", "create", "-e", "staging")
    seen += [done.stdout, done.stderr]
    assert done.returncode == 2 and "backup.url_env: " in " ".join(done.stderr.split())
    project.spec.write_text(
        base + "backup: {kind: sqlite, path: app.db}\nsecrets: {X: db-password}\n"
    )
    done = with_token(project, deployer, "backup", "create", "-e", "staging")
    seen += [done.stdout, done.stderr]
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "secrets.X: the secret db-password is not" in said, said

    # Raw HTTP: no route takes a server path any more, and production stays out of reach.
    headers = {"Authorization": f"Bearer {deployer}"}
    spec_text = base + "secrets: {X: {file: token}}\n"
    for path, body in (
        ("/api/v1/deploy", {"env": "staging", "spec_yaml": spec_text, "spec_path": "/tmp/x.yaml"}),
        ("/api/v1/apps/sample/backups",
         {"env": "staging", "spec_yaml": spec_text, "spec_path": "/tmp/x.yaml"}),
        ("/api/v1/apps/sample/migrate",
         {"env": "staging", "action": "status", "spec_path": "/tmp/x.yaml"}),
    ):  # fmt: skip
        answer = httpx.post(url + path, json=body, headers=headers, timeout=30)
        seen.append(answer.text)
        assert answer.status_code == 422, (path, answer.text)
        assert "spec_path" in answer.text, answer.text
    for path, body in (
        ("/api/v1/deploy", {"env": "production", "spec_yaml": base + "secrets: {X: db}\n"}),
        ("/api/v1/apps/sample/backups", {"env": "production", "spec_yaml": base}),
        ("/api/v1/apps/sample/migrate", {"env": "production", "action": "status"}),
    ):  # fmt: skip
        answer = httpx.post(url + path, json=body, headers=headers, timeout=30)
        seen.append(answer.text)
        assert answer.status_code == 403, (path, answer.text)
    answer = httpx.post(
        url + "/api/v1/deploy",
        json={"env": "staging", "spec_yaml": base + "secrets: {X: {file: link-out}}\n",
              "spec_name": "../../elsewhere/baepo.yaml", "dry_run": True},
        headers=headers, timeout=30,
    )  # fmt: skip
    seen.append(answer.text)
    assert answer.status_code == 422, answer.text
    problems = {p["path"]: p["message"] for p in answer.json()["problems"]}
    assert list(problems) == ["secrets.X.file"], problems
    assert "elsewhere" not in answer.text
    assert get(url, admin, "/api/v1/apps/sample/revisions", env="staging") == []

    # What an admin allowed works: a file in the folder and an allowed variable.
    project.spec.write_text(
        base
        + "secrets: {FROM_FILE: {file: inside.txt}, FROM_ENV: {env: BAEPO_TEST_ALLOWED}}\n"
        + "environments: {staging: {approval: required}}\n"
    )
    done = with_token(project, deployer, "deploy", "-e", "staging")
    seen += [done.stdout, done.stderr]
    assert done.returncode == 0, done.stderr
    revision = get(url, admin, "/api/v1/apps/sample/revisions/1", env="staging")
    assert set(revision["secrets"]) == {"FROM_FILE", "FROM_ENV"}, revision

    # A symlink made after the deploy was accepted is refused when the instance reads it.
    (project.root / "inside.txt").unlink()
    (project.root / "inside.txt").symlink_to(tmp_path / "outside.txt")
    approved = with_token(project, admin, "approve", "-e", "staging", "--reason", "test")
    assert approved.returncode == 0, approved.stderr
    deadline = time.monotonic() + 90
    while True:
        status = get(url, admin, "/api/v1/apps/sample", env="staging")
        if status["rollout"] is None:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["instances"] == [] and status["stable_revision"] is None, status
    log = (project.state_dir / "server.log").read_text()
    assert "FROM_FILE: inside.txt leads out of the app's folder" in log, log[-3000:]
    events = get(url, admin, "/api/v1/apps/sample/events", env="staging", limit=1000)

    everything = "\n".join([*seen, log, str(events)])
    key = (project.state_dir / "secret.key").read_text().strip()
    for value in (OUTSIDE, SERVER_ONLY, PRODUCTION, key):
        assert value not in everything


def test_a_spec_in_another_folder_than_the_servers_is_refused(
    project: SampleProject, tmp_path: Path
) -> None:
    project.write("1.0.0", replicas=1)
    first = project.ok("deploy", "--dry-run")  # starts the server on demand, for this folder
    assert "would make revision 1" in first
    assert project.server_info()["workdir"] == str(project.root)
    other = tmp_path / "other"
    other.mkdir()
    (other / "baepo.yaml").write_text(project.spec.read_text())
    for args in (("deploy", "--dry-run"), ("backup", "create")):
        done = subprocess.run(
            [sys.executable, "-m", "baepo", *args],
            cwd=other, env=project.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        said = " ".join(done.stderr.split())
        assert done.returncode == 5, (args, done.stdout, done.stderr)
        assert f"runs apps in {project.root}, but baepo.yaml is in {other}" in said, said
        assert f"baepo server start --workdir {other}" in said, said
