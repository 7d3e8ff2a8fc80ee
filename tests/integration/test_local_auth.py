"""Only the owner of a local server may use it; the actor is always the credential's.

A second, unprivileged OS user of the machine (made with ``useradd`` for the test, removed
after) calls every operation of a running local server's OpenAPI document over loopback, with
no credential and with guessed ones, and gets 401 or 403 for each (the bare health check
excepted); it cannot read the token file; a request addressed to another name is refused (DNS
rebinding). Whatever a client claims, the history and the audit log name the credential: the
server's OS user, or the token. The login answers an unknown name and a wrong password alike.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from harness import LocalApi, SampleProject

from baepo.api import local_credential

pytestmark = pytest.mark.slow

RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"

PROBE = r"""
import json, sys, urllib.request, urllib.error

base, routes = sys.argv[1], json.loads(sys.argv[2])
guesses = {
    "none": {},
    "api token": {"Authorization": "Bearer bp_0123456789ab_" + "x" * 43},
    "local token": {"Authorization": "Bearer bpl_" + "x" * 43},
    "bare": {"Authorization": "Bearer"},
    "basic": {"Authorization": "Basic cm9vdDpyb290"},
    "cookie": {"Cookie": "baepo_session=" + "x" * 43},
    "localhost": {"Host": base.split("//")[1].replace("127.0.0.1", "localhost")},
}
seen = []
for method, path in routes:
    for guess, headers in guesses.items():
        body = json.dumps({"env": "default"}).encode() if method in ("POST", "PUT") else None
        request = urllib.request.Request(base + path, data=body, method=method)
        request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                seen.append([method, path, guess, answer.status, answer.read().decode()])
        except urllib.error.HTTPError as refused:
            seen.append([method, path, guess, refused.code, refused.read().decode()])
print(json.dumps(seen))
"""


def fill(path: str) -> str:
    """A path of the schema with plausible values: the app that exists, small numbers."""
    for name in ("app", "name", "username", "token_id", "env"):
        path = path.replace(f"{{{name}}}", {"app": "sample", "env": "default"}.get(name, "x1"))
    while "{" in path:
        start = path.index("{")
        path = path[:start] + "1" + path[path.index("}", start) + 1 :]
    return path


@pytest.fixture
def other_user() -> Iterator[str]:
    """A new unprivileged OS user, removed afterwards."""
    name = f"baepo-other-{secrets.token_hex(3)}"
    made = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)


@pytest.fixture
def open_project() -> Iterator[SampleProject]:
    """A sample project in a folder any user may enter (unlike pytest's tmp_path), so that
    only baepo's own file modes keep the other user out."""
    root = Path(tempfile.mkdtemp(prefix="baepo-local-auth-"))
    root.chmod(0o755)
    project = SampleProject(root / "app")
    project.root.chmod(0o755)
    try:
        yield project
    finally:
        project.clean_up()
        shutil.rmtree(root, ignore_errors=True)


def as_user(user: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUNUSER, "-u", user, "--", *argv],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )


def test_another_user_gets_401_or_403_on_every_route(
    open_project: SampleProject, other_user: str
) -> None:
    project = open_project
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait")
    project.ok("token", "create", "--name", "ci", "--role", "deployer", "--env", "*")
    url = str(project.server_info()["url"])
    token_file = project.state_dir / local_credential.TOKEN_FILE
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert project.state_dir.stat().st_mode & 0o077 == 0

    # The owner's file is out of the other user's reach, its folder too.
    for argv in (["cat", str(token_file)], ["ls", str(project.state_dir)]):
        tried = as_user(other_user, *argv)
        assert tried.returncode != 0 and "Permission denied" in tried.stderr, tried

    schema = httpx.get(f"{url}/openapi.json", timeout=10).json()
    routes = [
        [method.upper(), fill(path)]
        for path, operations in schema["paths"].items()
        for method in operations
    ]
    routes += [["GET", "/metrics"], ["GET", "/ui/apps/sample/live"]]
    assert len(routes) >= 40, routes
    done = as_user(other_user, "/usr/bin/python3", "-c", PROBE, url, json.dumps(routes))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert len(seen) == len(routes) * 7
    answered = [row for row in seen if row[3] not in (401, 403)]
    health = [row for row in answered if row[1] == "/api/v1/healthz"]
    assert [row for row in answered if row not in health] == []
    assert {json.dumps(json.loads(row[4])) for row in health} == {'{"ok": true}'}
    for method, path, guess, _status, body in seen:
        assert str(project.state_dir) not in body, (method, path, guess, body)
        assert "1.0.0" not in body and "sample" not in body.replace(path, ""), body

    # Pages send to the login page; another name for the server is refused (DNS rebinding).
    page = as_user(other_user, "/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                   f"{url}/ui/apps/sample")  # fmt: skip
    assert page.stdout == "303", page
    rebound = httpx.get(
        f"{url}/api/v1/apps", headers={"Host": "attacker.example", **project.headers()}
    )
    assert rebound.status_code == 421, rebound.text
    assert rebound.headers["content-type"].startswith("application/problem+json")
    # The owner, with the token the CLI sends, is let in under each loopback name.
    port = url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
        mine = httpx.get(f"{url}/api/v1/apps", headers={"Host": host, **project.headers()})
        assert mine.status_code == 200, mine.text


def test_the_actor_is_the_credentials_whatever_the_client_sends(local_api: LocalApi) -> None:
    owner = local_credential.owner()
    spec = (
        'app: whose\nversion: "1"\nrun:\n  command: ["python3", "-m", "http.server", "{port}"]\n'
        'router:\n  listen: "127.0.0.1:1"\n'
    )
    body = {"spec_yaml": spec}
    with httpx.Client(base_url=local_api.url, headers=local_api.headers, timeout=30) as owner_api:
        claimed = owner_api.post("/api/v1/deploy", json={**body, "actor": "mallory"})
        assert claimed.status_code == 422, claimed.text
        assert [p["path"] for p in claimed.json()["problems"]] == ["actor"]
        for path in ("/api/v1/apps/whose/pause", "/api/v1/apps/whose/lock"):
            refused = owner_api.post(path, json={"env": "default", "actor": "mallory"})
            assert refused.status_code == 422, refused.text
        assert owner_api.post("/api/v1/deploy", json=body).status_code == 200
        made = owner_api.post(
            "/api/v1/tokens", json={"name": "ci-bot", "role": "deployer", "envs": ["*"]}
        ).json()
        with httpx.Client(
            base_url=local_api.url,
            headers={"Authorization": f"Bearer {made['token']}", "X-Actor": "mallory"},
            timeout=30,
        ) as ci:
            again = {**body, "version": "2", "supersede": True}
            assert ci.post("/api/v1/deploy", json=again).status_code == 200
            locked = ci.post("/api/v1/apps/whose/lock", json={"env": "default"}).json()
            assert locked["holder"] == "ci-bot", locked
        revisions = owner_api.get("/api/v1/apps/whose/revisions").json()
        assert {r["version"]: r["created_by"] for r in revisions} == {"1": owner, "2": "ci-bot"}
        audit = owner_api.get("/api/v1/audit", params={"limit": 1000}).json()
    deploys = [(r["actor"], r["status"]) for r in audit if r["action"] == "POST /api/v1/deploy"]
    assert (owner, 200) in deploys and ("ci-bot", 200) in deploys, deploys
    assert not [r for r in audit if "mallory" in json.dumps(r)], audit


def _login(url: str, username: str, password: str) -> tuple[int, str, float]:
    started = time.perf_counter()
    answer = httpx.post(
        f"{url}/ui/login", data={"username": username, "password": password}, timeout=30
    )
    took = time.perf_counter() - started
    return answer.status_code, answer.text.replace(username, "NAME"), took


def test_login_does_not_tell_which_names_exist(local_api: LocalApi) -> None:
    user = {"username": "known-user", "password": "a long enough password", "role": "viewer",
            "envs": ["*"]}  # fmt: skip
    made = httpx.post(f"{local_api.url}/api/v1/users", json=user, headers=local_api.headers)
    assert made.status_code in (200, 201), made.text
    known = [_login(local_api.url, "known-user", f"wrong {n}") for n in range(4)]
    unknown = [_login(local_api.url, "nobody-xyz", f"wrong {n}") for n in range(4)]
    assert {(s, body) for s, body, _ in known} == {(s, body) for s, body, _ in unknown}
    assert {s for s, _, _ in known} == {401}
    # The same work for both: the password KDF (≈ 0.1 s) runs for an unknown name too.
    known_s = statistics.median(t for _, _, t in known)
    unknown_s = statistics.median(t for _, _, t in unknown)
    assert unknown_s > 0.02 and known_s > 0.02, (known_s, unknown_s)
    assert 0.5 < unknown_s / known_s < 2.0, (known_s, unknown_s)
    # The throttle counts failures for any name: both are refused after the fifth.
    for expected in (401, 429):
        answers = {
            _login(local_api.url, name, "wrong")[:2] for name in ("known-user", "nobody-xyz")
        }
        assert len(answers) == 1 and answers.pop()[0] == expected, answers


def test_a_token_file_others_could_read_is_replaced(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = local_credential.ensure(state)
    assert local_credential.ensure(state) == first  # replicas share it
    path = state / local_credential.TOKEN_FILE
    path.chmod(0o644)
    second = local_credential.ensure(state)
    assert second != first and path.stat().st_mode & 0o777 == 0o600
    state.chmod(0o755)
    local_credential.ensure(state)
    assert state.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_uid == os.geteuid()
