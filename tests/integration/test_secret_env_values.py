"""Secret-looking ``run.env`` values never show: a spec that writes ``API_TOKEN`` and
``DB_PASSWORD`` in ``run.env`` is validated, previewed, deployed, changed and undone through
the real CLI and server; the values reach the instances (which answer with their digests) and
appear nowhere else: not in the CLI's output, any GET route of the API as a viewer, the
dashboard, the database file (WAL included), ``instance.json`` or any other state file."""

from __future__ import annotations

import hashlib
import re

import httpx
import pytest
from harness import SampleProject, free_port

pytestmark = pytest.mark.slow

TOKEN = "s3cr3t-value-7d41c9e2"
TOKEN_2 = "s3cr3t-other-0b8a55f3"
PASSWORD = "pw-4f0e9a1c77b2"

# A tiny app that answers with digests of the values it was started with, never the values.
APP = """\
import hashlib, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

def digest(name):
    return hashlib.sha256(os.environ.get(name, "").encode()).hexdigest()

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = (digest("API_TOKEN") + " " + digest("DB_PASSWORD")).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()
"""


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def answer(project: SampleProject) -> str:
    return httpx.get(f"http://127.0.0.1:{project.port}/", timeout=5).text


def write(project: SampleProject, version: str, token: str) -> None:
    project.write(version, replicas=1, extra_env={"API_TOKEN": token, "DB_PASSWORD": PASSWORD})


def shown(project: SampleProject, *args: str) -> str:
    done = project.baepo(*args)
    assert done.returncode == 0, f"baepo {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def get_routes(url: str) -> list[str]:
    """Every GET route of the API, its path parameters filled with the release's names."""
    schema = httpx.get(f"{url}/openapi.json", timeout=10).json()
    fill = {"app": "sample", "env": "default", "number": "2", "revision": "2", "id": "1"}
    paths = []
    for path, methods in schema["paths"].items():
        if "get" in methods:
            paths.append(re.sub(r"\{(\w+)\}", lambda m: fill.get(m.group(1), "1"), path))
    return paths


def test_secret_looking_env_values_run_but_never_show(project: SampleProject) -> None:
    (project.root / "app.py").write_text(APP)
    write(project, "1.0.0", TOKEN)
    seen: list[str] = []

    checked = project.baepo("validate")
    assert checked.returncode == 0, checked.stderr
    assert "run.env.API_TOKEN looks like a secret" in checked.stderr
    assert "run.env.DB_PASSWORD looks like a secret" in checked.stderr
    assert "secrets:\n  API_TOKEN: api-token" in checked.stderr
    seen += [checked.stdout, checked.stderr, shown(project, "validate", "-o", "json")]
    seen.append(shown(project, "config", "show"))

    seen.append(shown(project, "deploy", "--dry-run"))
    seen.append(shown(project, "deploy", "--dry-run", "-o", "json"))
    deployed = shown(project, "deploy", "--wait")
    assert "run.env.API_TOKEN looks like a secret" in deployed
    seen.append(deployed)
    assert answer(project) == f"{sha(TOKEN)} {sha(PASSWORD)}"  # the instance got the values

    write(project, "2.0.0", TOKEN_2)
    preview = shown(project, "deploy", "--dry-run")
    assert "API_TOKEN" in preview and "changed" in preview  # a changed value says so
    seen.append(preview)
    seen.append(shown(project, "deploy", "--dry-run", "-o", "json"))
    seen.append(shown(project, "deploy", "--wait"))
    assert answer(project) == f"{sha(TOKEN_2)} {sha(PASSWORD)}"

    seen.append(shown(project, "undo", "--wait"))  # revision 3, a copy of revision 1
    assert answer(project) == f"{sha(TOKEN)} {sha(PASSWORD)}"  # the same sealed values run

    for args in (("history",), ("history", "2"), ("history", "-o", "json"),
                 ("history", "2", "-o", "json"), ("history", "3"), ("status",)):  # fmt: skip
        seen.append(shown(project, *args))
    history_2 = shown(project, "history", "2")
    assert re.search(r"API_TOKEN\s+changed", history_2), history_2
    assert re.search(r"DB_PASSWORD\s+unchanged", history_2), history_2

    viewer = shown(project, "token", "create", "--name", "v", "--role", "viewer", "--env", "*")
    viewer = viewer.strip().splitlines()[0]
    project.ok("server", "stop")
    project.ok("server", "start", "--auth", "required")
    url = project.server_info()["url"]
    routes = get_routes(url)
    assert "/api/v1/apps/sample/revisions/2" in routes
    headers = {"Authorization": f"Bearer {viewer}"}
    answered = 0
    for path in routes:
        response = httpx.get(url + path, headers=headers, timeout=10)
        answered += response.status_code == 200
        seen.append(response.text)
    assert answered > 10
    with httpx.Client(base_url=url, timeout=10) as browser:  # the dashboard, logged in
        login = browser.post("/ui/login", data={"token": viewer})
        assert login.status_code in (200, 303), login.text
        for page in ("/ui/", "/ui/apps/sample?env=default", "/ui/apps/sample/history",
                     "/ui/apps/sample/history?a=1&b=2", "/ui/audit"):  # fmt: skip
            response = browser.get(page)
            assert response.status_code == 200, (page, response.text[:300])
            seen.append(response.text)

    everything = "\n".join(seen)
    assert "API_TOKEN" in everything and "***" in everything  # the searched text is real
    for value in (TOKEN, TOKEN_2, PASSWORD):
        assert value not in everything, value

    # At rest: the database (with its WAL), every instance.json, every other state file.
    files = [p for p in project.state_dir.rglob("*") if p.is_file()]
    assert any(p.name == "instance.json" for p in files), files
    assert any(p.suffix == ".db" or p.name.endswith(".db-wal") for p in files), files
    for path in files:
        data = path.read_bytes()
        for value in (TOKEN, TOKEN_2, PASSWORD):
            assert value.encode() not in data, (value, path)
    for record in (p.read_text() for p in files if p.name == "instance.json"):
        assert "API_TOKEN" not in record and "baepo-sealed" not in record, record


def test_promote_release_runs_the_sealed_values_it_promotes(project: SampleProject) -> None:
    """The spec as written is kept sealed: production resolves it again with its own overlay
    and runs the very values staging ran, not what the file says now."""
    (project.root / "app.py").write_text(APP)
    staging, production = free_port(), free_port()
    prod_password = "pw-prod-93e1b07c5d"

    def write_envs(token: str) -> None:
        write(project, "1.0.0", token)
        project.spec.write_text(
            project.spec.read_text()
            + f"""
environments:
  staging:
    router: {{listen: "127.0.0.1:{staging}"}}
  production:
    router: {{listen: "127.0.0.1:{production}"}}
    run: {{env: {{DB_PASSWORD: "{prod_password}"}}}}
"""
        )

    write_envs(TOKEN)
    checked = project.baepo("validate")
    assert "environments.production.run.env.DB_PASSWORD looks like a secret" in checked.stderr
    project.ok("deploy", "-e", "staging", "--wait")
    write_envs(TOKEN_2)  # the file changes after staging passed: production still gets TOKEN
    project.ok("promote-release", "--from", "staging", "--to", "production", "--wait")
    got = httpx.get(f"http://127.0.0.1:{production}/", timeout=5).text
    assert got == f"{sha(TOKEN)} {sha(prod_password)}"
    for path in (p for p in project.state_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for value in (TOKEN, TOKEN_2, PASSWORD, prod_password):
            assert value.encode() not in data, (value, path)
