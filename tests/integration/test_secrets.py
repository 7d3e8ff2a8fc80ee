"""Secrets never show: a full release that uses an API token, a notification URL with a
token and an analysis header with a bearer token, then every log, API answer, record and
dashboard page is searched for them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from harness import SampleProject

pytestmark = pytest.mark.slow

METRICS_SECRET = "metricsSecret7f3a9d2c41b8e605"
NOTIFY_SECRET = "notifySecret5b7e2a9c0d4f1836"


class Receiver:
    """A local endpoint: GET answers the analysis (with the right bearer token only), POST
    collects notifications."""

    def __init__(self) -> None:
        self.posts: list[bytes] = []
        self.bearers: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                receiver.bearers.append(self.headers.get("Authorization", ""))
                ok = self.headers.get("Authorization") == f"Bearer {METRICS_SECRET}"
                body = json.dumps({"ok": ok}).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                receiver.posts.append(self.rfile.read(length))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.server.shutdown()


SPEC_EXTRA = """
analysis:
  smoke:
    metrics:
      - name: smoke
        provider: web
        web:
          url: http://127.0.0.1:{port}/health
          headers: {{Authorization: "Bearer {{{{env.METRICS_TOKEN}}}}"}}
          json_path: $.ok
        success_condition: result == true
notifications:
  - name: hook
    url_env: NOTIFY_URL
"""


def test_a_release_shows_no_secret_anywhere(project: SampleProject, receiver: Receiver) -> None:
    project.env["METRICS_TOKEN"] = METRICS_SECRET
    project.env["BAEPO_ALLOWED_SECRET_ENV"] = "METRICS_TOKEN NOTIFY_URL"
    project.env["NOTIFY_URL"] = (
        f"json://127.0.0.1:{receiver.port}/hooks?token={NOTIFY_SECRET}&:message=text"
    )
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait")
    api_token = project.ok(
        "token", "create", "--name", "ci", "--role", "admin", "--env", "*"
    ).strip()
    project.ok("server", "stop")
    project.ok("server", "start", "--auth", "required")
    project.env["BAEPO_TOKEN"] = api_token

    project.write(
        "2.0.0", replicas=1,
        strategy="{canary: {steps: [{set_weight: 50}, {analysis: {templates: [smoke]}}]}}",
    )  # fmt: skip
    project.spec.write_text(project.spec.read_text() + SPEC_EXTRA.format(port=receiver.port))
    project.ok("deploy", "--wait")
    assert f"Bearer {METRICS_SECRET}" in receiver.bearers  # the secret did its job

    url = project.server_info()["url"]
    headers = {"Authorization": f"Bearer {api_token}"}
    seen: list[str] = []
    for path in (
        "/api/v1/apps",
        "/api/v1/apps/sample",
        "/api/v1/apps/sample/revisions",
        "/api/v1/apps/sample/revisions/2",
        "/api/v1/apps/sample/events?limit=10000",
        "/api/v1/apps/sample/analysis",
        "/api/v1/audit?limit=10000",
        "/api/v1/report",
        "/api/v1/tokens",
        "/metrics",
    ):
        response = httpx.get(url + path, headers=headers, timeout=10)
        assert response.status_code == 200, (path, response.text)
        seen.append(response.text)
    with httpx.Client(base_url=url, timeout=10) as browser:  # the dashboard, logged in
        login = browser.post("/ui/login", data={"token": api_token})
        assert login.status_code in (200, 303), login.text
        for page in ("/ui/", "/ui/apps/sample?env=default", "/ui/apps/sample/history", "/ui/audit"):
            response = browser.get(page)
            assert response.status_code == 200, (page, response.text[:300])
            seen.append(response.text)
    for args in (("status",), ("history", "2"), ("analysis", "-o", "json"), ("audit",)):
        seen.append(project.ok(*args))
    seen.append((project.state_dir / "server.log").read_text())
    seen += [post.decode(errors="replace") for post in receiver.posts]
    everything = "\n".join(seen)
    assert "smoke" in everything and "2.0.0" in everything  # the searched text is real
    for secret in (METRICS_SECRET, NOTIFY_SECRET, api_token.split("_", 2)[2]):
        assert secret not in everything
