"""The dashboard over real HTTP against a real server: sessions, CSRF and what each role sees.

Without auth the local user logs in with the one-time link ``baepo ui`` prints (or the local
credential), and every form still needs the session's CSRF token. With ``--auth required``
pages send to the login page; users log in with a password (``baepo user create``) or an API
token; a viewer sees no buttons and is refused if it posts anyway; production asks for
confirmation first.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from harness import SampleProject, free_port

from baepo.api import local_credential

pytestmark = pytest.mark.slow

PASSWORD = "a long enough password"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found is not None, page
    return found.group(1)


def events(project: SampleProject, url: str, headers: dict[str, str], env: str) -> Any:
    response = httpx.get(
        f"{url}/api/v1/apps/sample/events", params={"env": env, "limit": 10000}, headers=headers
    )
    return response.json()


def test_local_mode_sessions_and_csrf(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    project.ok("deploy", "--wait")
    url = project.server_info()["url"]
    client = httpx.Client(base_url=url, timeout=30)

    # No session without the local credential: the page sends to the login page.
    refused = client.get("/ui/apps/sample")
    assert refused.status_code == 303 and refused.headers["location"].startswith("/ui/login")
    assert "baepo ui" in client.get("/ui/login").text
    assert client.get("/ui/apps/sample/live").status_code == 401
    link = json.loads(project.ok("ui", "-o", "json"))["url"]
    assert link.startswith(f"{url}/ui/login/link?code=")
    logged = client.get(link)
    assert logged.status_code == 303 and logged.headers["location"] == "/ui/"
    cookie = logged.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    again = httpx.get(link, timeout=30)  # the link works once
    assert again.status_code == 401 and "baepo_session" not in again.headers.get("set-cookie", "")
    assert "used already" in again.text
    first = client.get("/ui/")
    assert first.status_code == 200
    assert "sample" in first.text and local_credential.owner() in first.text
    assert client.get("/", follow_redirects=True).url.path == "/ui/"
    # The local credential pasted as a token logs in too; a wrong one does not.
    pasted = httpx.Client(base_url=url, timeout=30)
    local = project.headers()["Authorization"].removeprefix("Bearer ")
    assert pasted.post("/ui/login", data={"token": local + "x"}).status_code == 401
    assert pasted.post("/ui/login", data={"token": local}).status_code == 303
    assert pasted.get("/ui/").status_code == 200

    page = client.get("/ui/apps/sample").text
    assert 'id="btn-undo"' in page  # the local user is an admin
    assert "sse-connect=" in page
    token = csrf_of(page)
    before = events(project, url, project.headers(), "default")

    # Forged: no token, a wrong token, or another browser's (no cookie) token.
    assert client.post("/ui/apps/sample/undo", data={"env": "default"}).status_code == 403
    forged = {"env": "default", "csrf": "not-the-token"}
    assert client.post("/ui/apps/sample/undo", data=forged).status_code == 403
    stranger = httpx.post(f"{url}/ui/apps/sample/undo", data={"env": "default", "csrf": token})
    assert stranger.status_code == 403
    # The JSON API with only the session cookie needs the token in a header.
    api = client.post("/api/v1/apps/sample/pause", json={"env": "default"})
    assert api.status_code == 403
    assert events(project, url, project.headers(), "default") == before

    # With the token, the button works (here: nothing to pause, said on the page).
    done = client.post("/ui/apps/sample/pause", data={"env": "default", "csrf": token})
    assert done.status_code == 303
    assert "nothing%20to%20pause" in done.headers["location"]
    assert client.get("/ui/apps/sample/history").status_code == 200
    audit = client.get("/ui/audit").text
    assert "POST /ui/apps/{app}/undo" in audit and "403" in audit


def test_auth_required_login_roles_and_confirmation(project: SampleProject) -> None:
    for env in ("dev", "production"):
        project.port = free_port()  # each environment has its own router
        project.write("1.0.0", replicas=1)
        project.ok("deploy", "--wait", "-e", env)
    admin = project.ok("token", "create", "--name", "root", "--role", "admin", "--env", "*")
    admin = admin.strip()
    project.env["BAEPO_PASSWORD"] = PASSWORD
    project.ok("user", "create", "--name", "vera", "--role", "viewer", "--env", "dev")
    project.ok("user", "create", "--name", "dan", "--role", "deployer", "--env", "*")
    project.env["BAEPO_PASSWORD"] = "short"
    short = project.baepo("user", "create", "--name", "x", "--role", "viewer", "--env", "dev")
    assert short.returncode != 0 and "at least 10 characters" in short.stderr
    project.ok("server", "stop")
    project.ok("server", "start", "--auth", "required")
    url = str(project.server_info()["url"])
    admin_headers = {"Authorization": f"Bearer {admin}"}
    listed = httpx.get(f"{url}/api/v1/users", headers=admin_headers).json()
    assert {u["username"]: u["role"] for u in listed} == {"dan": "deployer", "vera": "viewer"}
    assert all("password" not in str(u) for u in listed)

    anonymous = httpx.Client(base_url=url, timeout=30)
    to_login = anonymous.get("/ui/apps/sample?env=dev")
    assert to_login.status_code == 303
    assert to_login.headers["location"].startswith("/ui/login?next=")
    assert anonymous.get("/ui/login").status_code == 200
    wrong = anonymous.post("/ui/login", data={"username": "vera", "password": "nope nope nope"})
    assert wrong.status_code == 401 and "Wrong username" in wrong.text
    nobody = anonymous.post("/ui/login", data={"username": "ghost", "password": PASSWORD})
    assert nobody.status_code == 401
    assert anonymous.post("/ui/login", data={"token": "bp_x_y"}).status_code == 401
    guesses = [
        anonymous.post("/ui/login", data={"username": "ghost", "password": f"guess {n}"})
        for n in range(5)
    ]
    assert guesses[0].status_code == 401 and guesses[-1].status_code == 429
    assert "Too many failed logins" in guesses[-1].text
    elsewhere = {"Origin": "http://evil.example"}
    login = {"username": "dan", "password": PASSWORD}
    assert anonymous.post("/ui/login", data=login, headers=elsewhere).status_code == 403
    assert anonymous.get("/ui/apps/sample/live?env=dev").status_code == 401

    # A viewer: sees dev, no buttons, not production; a post with its own token is refused.
    vera = httpx.Client(base_url=url, timeout=30)
    logged = vera.post(
        "/ui/login", data={"username": "vera", "password": PASSWORD, "next": "/ui/audit"}
    )
    assert logged.status_code == 303 and logged.headers["location"] == "/ui/audit"
    overview = vera.get("/ui/").text
    assert ">dev<" in overview and ">production<" not in overview
    page = vera.get("/ui/apps/sample?env=dev").text
    assert "btn-" not in page and "vera · viewer in dev" in page
    assert vera.get("/ui/apps/sample?env=production").status_code == 403
    before = events(project, url, admin_headers, "dev")
    refused = vera.post("/ui/apps/sample/undo", data={"env": "dev", "csrf": csrf_of(page)})
    assert refused.status_code == 403
    assert events(project, url, admin_headers, "dev") == before

    # A deployer: buttons; production asks for confirmation first, then acts.
    dan = httpx.Client(base_url=url, timeout=30)
    assert dan.post("/ui/login", data={"username": "dan", "password": PASSWORD}).status_code == 303
    page = dan.get("/ui/apps/sample?env=production").text
    assert 'id="btn-undo"' in page and "asks for confirmation" in page
    token = csrf_of(page)
    before = events(project, url, admin_headers, "production")
    cross = {"env": "production", "csrf": token, "confirmed": "yes"}
    assert dan.post("/ui/apps/sample/pause", data=cross, headers=elsewhere).status_code == 403
    ask = dan.post("/ui/apps/sample/pause", data={"env": "production", "csrf": token})
    assert ask.status_code == 200 and 'name="confirmed" value="yes"' in ask.text
    assert events(project, url, admin_headers, "production") == before
    confirmed = {"env": "production", "csrf": token, "confirmed": "yes"}
    acted = dan.post("/ui/apps/sample/pause", data=confirmed)
    assert acted.status_code == 303 and "done=" in acted.headers["location"]
    audit = httpx.get(f"{url}/api/v1/audit", headers=admin_headers).json()
    assert any(r["actor"] == "dan" and r["action"].endswith("/pause") for r in audit)
    assert any(r["actor"] == "vera" and r["status"] == 403 for r in audit)

    # The session cookie also reads the JSON API; writes need the CSRF header.
    assert dan.get("/api/v1/apps/sample", params={"env": "dev"}).status_code == 200
    header = {"X-CSRF-Token": token}
    steered = dan.post("/api/v1/apps/sample/pause", json={"env": "dev"}, headers=header)
    assert steered.status_code == 409  # allowed; there is just nothing to pause

    # Logging out ends the session for good; an API token logs in too.
    dan.post("/ui/logout", data={"csrf": token})
    assert dan.get("/ui/").status_code == 303
    with_token = httpx.Client(base_url=url, timeout=30)
    assert with_token.post("/ui/login", data={"token": admin}).status_code == 303
    assert "root · admin" in with_token.get("/ui/").text

    # Disabling a user ends their sessions at once.
    disabled = httpx.post(f"{url}/api/v1/users/vera/disable", headers=admin_headers)
    assert disabled.status_code == 200 and disabled.json()["disabled"]
    assert vera.get("/ui/").status_code == 303
