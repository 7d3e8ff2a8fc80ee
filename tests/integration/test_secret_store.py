"""Stored secrets through the real CLI and server: ``baepo secret set`` from stdin and from a
file, a deploy whose instances get them as environment variables (the app answers their
SHA-256, which proves the injection), ``baepo secret rotate`` rolling out a new revision, then
every CLI output, API answer, log and state file (database included) is searched for the
values."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from harness import SampleProject, serving

from baepo.api import local_credential

pytestmark = pytest.mark.slow

APP = """\
import hashlib, json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def digest(name):
    return hashlib.sha256(os.environ.get(name, "").encode()).hexdigest()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"db": digest("DB_PASSWORD"), "api": digest("API_KEY")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


port = int(sys.argv[sys.argv.index("--port") + 1])
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


PATHS = (
    "/api/v1/apps/sample",
    "/api/v1/apps/sample/revisions",
    "/api/v1/apps/sample/revisions/1",
    "/api/v1/apps/sample/events",
    "/api/v1/apps/sample/secrets",
    "/api/v1/apps/sample/secrets/db-password",
    "/api/v1/audit",
)


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def test_a_deploy_gets_stored_secrets_that_never_show(project: SampleProject) -> None:
    db_password = "dbPw" + secrets.token_hex(12)
    api_key = "apiKey" + secrets.token_hex(12)
    new_password = "newPw" + secrets.token_hex(12)
    (project.root / "secret_app.py").write_text(APP)
    project.write("1.0.0", replicas=2)
    spec = project.spec.read_text().replace('"app.py"', '"secret_app.py"')
    project.spec.write_text(
        spec + "secrets:\n  DB_PASSWORD: db-password\n  API_KEY: {secret: api-key}\n"
    )
    (project.root / "api.key").write_text(api_key + "\n")
    outputs: list[str] = []

    def run(*args: str, stdin: str | None = None, code: int = 0) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "baepo", *args],
            cwd=project.root,
            env=project.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        outputs.extend([done.stdout, done.stderr])
        assert done.returncode == code, f"baepo {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout

    try:
        run("secret", "set", "db-password", stdin=db_password + "\n")
        listed = json.loads(run("secret", "list", "-o", "json"))
        assert [(s["name"], s["version"]) for s in listed] == [("db-password", 1)]
        run("secret", "set", "api-key", "--from-file", "api.key")
        assert "version 1" in run("secret", "get", "api-key")
        run("secret", "set", "db-password", stdin=db_password)
        meta = json.loads(run("secret", "get", "db-password", "-o", "json"))
        assert (meta["version"], meta["updated_by"]) == (2, local_credential.owner())
        run("secret", "get", "nope", code=4)

        run("deploy", "--wait")
        project.wait_for(lambda s: serving(s, 1, 2), what="2 replicas serving")
        for _ in range(4):
            answer = httpx.get(f"http://127.0.0.1:{project.port}/", timeout=10).json()
            assert answer == {"db": sha(db_password), "api": sha(api_key)}, answer

        run("status", "-o", "json")
        run("status")
        run("history")
        run("logs")
        run("config", "show", "-o", "json")
        run("secret", "list")
        url = project.server_info()["url"]
        responses = [
            httpx.get(f"{url}{path}", headers=project.headers(), timeout=10) for path in PATHS
        ]
        assert [r.status_code for r in responses] == [200] * len(PATHS), responses
        answers = [r.text for r in responses]
        rotated = run("secret", "rotate", "db-password", stdin=new_password)
        assert "revision 2" in rotated, rotated
        project.wait_for(lambda s: serving(s, 2, 2), what="revision 2 serving")
        answer = httpx.get(f"http://127.0.0.1:{project.port}/", timeout=10).json()
        assert answer == {"db": sha(new_password), "api": sha(api_key)}, answer
        assert json.loads(run("secret", "get", "db-password", "-o", "json"))["version"] == 3
        history = run("history")
        assert "rotated" in history or "rotation" in history, history
        two = json.loads(run("history", "2", "-o", "json"))
        assert two["secret_changes"] == {"API_KEY": "unchanged", "DB_PASSWORD": "changed"}
        assert two["secrets"] == {"DB_PASSWORD": "secret db-password v3",
                                  "API_KEY": "secret api-key v1"}  # fmt: skip
        shown = run("history", "2")
        assert "DB_PASSWORD" in shown and "changed" in shown, shown
        assert "(same config as the previous revision)" in shown, shown
        first = json.loads(run("history", "1", "-o", "json"))
        assert first["secret_changes"] == {"API_KEY": "added", "DB_PASSWORD": "added"}
        answers += [
            httpx.get(f"{url}{path}", headers=project.headers(), timeout=10).text for path in PATHS
        ]
        run("secret", "rm", "api-key")
        assert [s["name"] for s in json.loads(run("secret", "list", "-o", "json"))] == [
            "db-password"
        ]
        run("secret", "rm", "api-key", code=4)
    finally:
        project.clean_up()

    for value in (db_password, api_key, new_password):
        for text in outputs + answers:
            assert value not in text
        for path in project.state_dir.rglob("*"):
            if path.is_file():
                assert value.encode() not in path.read_bytes(), path


def test_a_missing_secret_names_the_variable_not_a_value(project: SampleProject) -> None:
    (project.root / "secret_app.py").write_text(APP)
    project.write("1.0.0", replicas=1, deadline="5s")
    spec = project.spec.read_text().replace('"app.py"', '"secret_app.py"')
    project.spec.write_text(spec + "secrets:\n  DB_PASSWORD: db-password\n")
    try:
        done = project.baepo("deploy", "--wait", "--timeout", "20", timeout=60)
        # refused at deploy, before anything starts: a located spec error, exit 2
        assert done.returncode == 2, done
        assert "secrets.DB_PASSWORD: the secret db-password is not set for sample in default" in (
            done.stderr
        ), done.stderr
        assert "baepo secret set db-password -e default" in done.stderr
        assert project.api("/api/v1/apps") == []
    finally:
        project.clean_up()


def test_values_never_come_from_an_argument(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    done = project.baepo("secret", "set", "db-password", "hunter2")
    assert done.returncode == 2, done
    assert Path(project.root / "baepo.yaml").exists()
