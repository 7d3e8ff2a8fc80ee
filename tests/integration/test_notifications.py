"""Release notifications from a real server: a Slack-format webhook receiver and an SMTP
server on 127.0.0.1 hear about a good release and a crashing one that is rolled back, while a
channel on a closed port is retried and never shows its URL in the server log."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from harness import SampleProject, free_port, serving

pytestmark = pytest.mark.slow

# apprise's JSON webhook, its fields mapped to a Slack incoming webhook's body: {"text": ...}
SLACK_FIELDS = "?:message=text&:title=&:version=&:attachments=&:type="
SMTP_USER, SMTP_PASSWORD = "baepo", "pa55-w0rd-7Q2x"
FAILING_TOKEN = "xoxb-0123456789-sekrit-token"

NOTIFICATIONS = """\
notifications:
  - name: team-slack
    url_env: SLACK_URL
  - name: ops-mail
    url_env: MAIL_URL
    events: [succeeded, rolled_back, failed]
  - name: broken
    url_env: BROKEN_URL
    events: [succeeded, rolled_back]
"""


class SlackReceiver:
    """A Slack incoming webhook on 127.0.0.1: keeps each JSON body POSTed to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                ok = self.headers.get("Content-Type") == "application/json"
                if ok:
                    received.append({"path": self.path, **json.loads(body)})
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if ok else b"invalid_payload")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/services/T0/B0/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [str(body["text"]) for body in list(self.received)]


class MailServer:
    """An SMTP server on 127.0.0.1 (no TLS) that wants a login and keeps each message."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[bool] = []
        self.controller = Controller(
            self,
            hostname="127.0.0.1",
            port=free_port(),
            authenticator=self._authenticate,
            auth_require_tls=False,
        )
        self.url = (
            f"mailto://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{self.controller.port}"
            "?mode=insecure&from=baepo@example.com&to=ops@example.com"
        )

    def _authenticate(self, *args: Any) -> AuthResult:
        data = args[-1]
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == SMTP_USER
            and data.password.decode() == SMTP_PASSWORD
        )
        self.logins.append(ok)
        return AuthResult(success=ok)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in list(self.messages)]

    def text(self, message: EmailMessage) -> str:
        part = message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def mail() -> Iterator[MailServer]:
    server = MailServer()
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def eventually(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated")
def test_releases_are_announced_on_slack_and_by_mail_and_a_broken_channel_is_retried(
    project: SampleProject, slack: SlackReceiver, mail: MailServer
) -> None:
    broken = f"json://127.0.0.1:{closed_port()}/hooks/{FAILING_TOKEN}"
    project.env.update(
        {
            "SLACK_URL": slack.url + SLACK_FIELDS,
            "MAIL_URL": mail.url,
            "BROKEN_URL": broken,
            "BAEPO_ALLOWED_SECRET_ENV": "SLACK_URL,MAIL_URL,BROKEN_URL",
        }
    )

    project.write("1.0.0", replicas=1)
    project.spec.write_text(project.spec.read_text() + NOTIFICATIONS)
    project.ok("deploy", "--wait")
    project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 serving")
    eventually(lambda: any("is live" in t for t in slack.texts()), "the success on Slack")

    project.write("2.0.0", replicas=1, extra_env={"SAMPLE_CRASH_ON_START": "true"})
    project.spec.write_text(project.spec.read_text() + NOTIFICATIONS)
    done = project.baepo("deploy", "--wait")
    assert done.returncode == 6, done.stdout + done.stderr
    project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 serving again")
    eventually(lambda: any("rolled back" in t for t in slack.texts()), "the rollback on Slack")
    eventually(lambda: len(mail.messages) >= 2, "two e-mails")

    # Slack: a Slack-compatible body, one message per event, naming env, version, reason
    assert all(set(body) == {"path", "text"} for body in slack.received), slack.received
    assert {body["path"] for body in slack.received} == {"/services/T0/B0/"}
    texts = slack.texts()
    assert len(texts) == 4, texts
    started_1, live_1, started_2, rolled_back = texts
    assert started_1.startswith("sample 1.0.0 (revision 1) is rolling out in default")
    assert live_1.startswith("sample 1.0.0 (revision 1) is live in default")
    assert started_2.startswith("sample 2.0.0 (revision 2) is rolling out in default")
    assert rolled_back.startswith("sample 2.0.0 (revision 2) was rolled back in default: ")
    assert "failed" in rolled_back  # the reason: the crashing instance
    server_url = project.server_info()["url"]
    assert f"{server_url}/apps/sample?env=default" in rolled_back

    # E-mail: logged in, one message per subscribed event, reason in the body
    assert mail.logins and all(mail.logins)
    assert mail.subjects() == [
        "sample 1.0.0 is live in default",
        "sample 2.0.0 rolled back in default",
    ]
    body = mail.text(mail.messages[1])
    assert "sample 2.0.0 (revision 2) was rolled back in default" in body
    assert "failed" in body
    assert mail.messages[1]["To"] == "ops@example.com"

    # The broken channel: retried, never blocking the release, never showing its URL
    log = project.state_dir / "server.log"
    eventually(
        lambda: (
            "broken (sample in default): rolled_back not delivered after 4 attempts"
            in log.read_text()
        ),
        "the broken channel to give up",
    )
    text = log.read_text()
    assert "broken (sample in default): succeeded not delivered (attempt 1 of 4" in text
    assert "retrying in 1s" in text and "retrying in 2s" in text and "retrying in 4s" in text
    for secret in (FAILING_TOKEN, broken, SMTP_PASSWORD, mail.url, slack.url):
        assert secret not in text
    history = json.loads(project.ok("history", "-o", "json"))
    assert [r["rollout"]["phase"] for r in history] == ["healthy", "rolled_back"]


def test_a_restarted_server_does_not_send_the_history_again(
    project: SampleProject, slack: SlackReceiver
) -> None:
    project.env["SLACK_URL"] = slack.url + SLACK_FIELDS
    project.env["BAEPO_ALLOWED_SECRET_ENV"] = "SLACK_URL"
    project.write("1.0.0", replicas=1)
    project.spec.write_text(
        project.spec.read_text()
        + "notifications:\n  - {name: team, url_env: SLACK_URL, events: [succeeded]}\n"
    )
    project.ok("deploy", "--wait")
    eventually(lambda: len(slack.texts()) == 1, "the success on Slack")
    project.ok("server", "stop", timeout=60)
    project.ok("status")  # starts the server again, on demand
    project.wait_for(lambda s: serving(s, 1, 1), what="revision 1 serving after the restart")
    time.sleep(2)  # four polls of the notifier
    assert len(slack.texts()) == 1, slack.texts()
