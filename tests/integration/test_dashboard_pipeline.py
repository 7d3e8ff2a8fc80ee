"""The release pipeline on the dashboard, with auth required: a deploy waiting for approval
shows a banner; its requester's Approve is refused with the API's message; another approver
locks and unlocks the app, then approves from the page, and the rollout goes on; the checks
it ran are listed with their output; the history shows secrets only as changed or not.
An open freeze window is shown with its reason and end. In a real headless Chromium (Selenium)
an approver presses Approve and sees the rollout finish."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import SampleProject
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.slow

ENV = "staging"
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
POLICY = """\
environments:
  staging:
    approval: required
checks:
  before:
    - name: ticket approved
      command: ["python3", "-c", "print('ticket T-42 approved')"]
"""


def login(url: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    answer = client.post("/ui/login", data={"token": token})
    assert answer.status_code == 303, answer.text
    return client


def press(client: httpx.Client, action: str, **form: str) -> str:
    """Press a button of the app page; the page it leads to."""
    page = client.get("/ui/apps/sample", params={"env": ENV}).text
    match = CSRF.search(page)
    assert match, page
    answer = client.post(
        f"/ui/apps/sample/{action}", data={"env": ENV, "csrf": match.group(1), **form}
    )
    assert answer.status_code == 303, answer.text
    return client.get(answer.headers["location"]).text


def test_approve_lock_and_gates_on_the_dashboard(project: SampleProject) -> None:
    project.write("1.0.0", replicas=1)
    project.spec.write_text(project.spec.read_text() + POLICY)
    admin = project.ok("token", "create", "--name", "root", "--role", "admin", "--env", "*")
    alice = project.ok("token", "create", "--name", "alice", "--role", "approver", "--env", ENV)
    bob = project.ok("token", "create", "--name", "bob", "--role", "approver", "--env", ENV)
    project.ok("server", "stop")
    project.ok("server", "start", "--auth", "required")
    url = str(project.server_info()["url"])

    def status() -> dict[str, Any]:
        got = httpx.get(f"{url}/api/v1/apps/sample", params={"env": ENV}, timeout=10,
                        headers={"Authorization": f"Bearer {admin.strip()}"})  # fmt: skip
        got.raise_for_status()
        return dict(got.json())

    project.env["BAEPO_TOKEN"] = alice.strip()
    try:
        asked = project.baepo("deploy", "-e", ENV)
    finally:
        project.env.pop("BAEPO_TOKEN")
    assert asked.returncode == 0, asked.stderr
    assert status()["rollout"]["phase"] == "awaiting_approval"

    as_alice = login(url, alice.strip())
    page = as_alice.get("/ui/apps/sample", params={"env": ENV}).text
    assert "Awaiting approval" in page and "alice" in page, page
    assert 'id="btn-approve"' in page and 'id="btn-reject"' in page
    refused = press(as_alice, "approve")
    assert "may not approve it" in refused, refused
    assert status()["rollout"]["phase"] == "awaiting_approval"

    as_bob = login(url, bob.strip())
    locked = press(as_bob, "lock", reason="db maintenance")
    assert "Locked by" in locked and "db maintenance" in locked, locked
    assert 'id="btn-unlock"' in locked
    unlocked = press(as_bob, "unlock")
    assert "Not locked" in unlocked, unlocked
    no_reason = press(as_bob, "reject", reason="  ")
    assert "reason" in no_reason.lower() and "Awaiting approval" in no_reason
    press(as_bob, "approve")
    deadline = time.monotonic() + 90
    while status()["stable_revision"] != 1:
        assert time.monotonic() < deadline, f"revision 1 never promoted: {status()}"
        time.sleep(0.3)
    page = as_bob.get("/ui/apps/sample", params={"env": ENV}).text
    assert "Awaiting approval" not in page
    assert 'id="gates"' in page and "ticket approved" in page, page
    assert "ticket T-42 approved" in page  # the check's output, expandable
    assert re.search(r"<td>\d+\.\d s</td>", page), page  # its duration

    audit = httpx.get(f"{url}/api/v1/audit", timeout=10,
                      headers={"Authorization": f"Bearer {admin.strip()}"}).json()  # fmt: skip
    approvals = [a for a in audit if "bob" in a["actor"] and "/approve" in str(a)]
    assert approvals, audit


def test_an_open_freeze_window_is_on_the_app_page(project: SampleProject) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    end = now + timedelta(days=2)
    project.write("1.0.0", replicas=1)
    project.spec.write_text(
        project.spec.read_text()
        + f"environments:\n  {ENV}:\n    freeze:\n      - reason: quarter close\n"
        + f"        start: {(now - timedelta(days=1)).strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
        + f"        end: {end.strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
    )
    project.ok("deploy", "-e", ENV, "--override-freeze", "hotfix", "--wait")
    client = project.dashboard()
    page = client.get("/ui/apps/sample", params={"env": ENV}).text
    client.close()
    assert 'id="freeze"' in page and "Deploy freeze" in page, page
    assert "quarter close" in page and end.strftime("%Y-%m-%d %H:%M") in page


def test_approve_in_chromium(project: SampleProject) -> None:
    """An approver logs in with a token in a real headless Chromium, sees the banner, presses
    Approve, and the page (kept fresh by server-sent events) shows the rollout finished."""
    for path in (CHROMIUM, DRIVER):
        assert Path(path).exists(), f"{path} is missing: run scripts/install-system-deps test"
    project.write("1.0.0", replicas=1)
    project.spec.write_text(project.spec.read_text() + POLICY)
    alice = project.ok("token", "create", "--name", "alice", "--role", "approver", "--env", ENV)
    bob = project.ok("token", "create", "--name", "bob", "--role", "approver", "--env", ENV)
    project.ok("server", "stop")
    project.ok("server", "start", "--auth", "required")
    url = str(project.server_info()["url"])
    project.env["BAEPO_TOKEN"] = alice.strip()
    try:
        asked = project.baepo("deploy", "-e", ENV)
    finally:
        project.env.pop("BAEPO_TOKEN")
    assert asked.returncode == 0, asked.stderr

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        driver.get(f"{url}/ui/login")
        driver.find_element(By.ID, "token").send_keys(bob.strip())
        driver.find_element(By.ID, "login-token").click()
        WebDriverWait(driver, 30).until(lambda d: d.current_url.endswith("/ui/"))
        driver.get(f"{url}/ui/apps/sample?env={ENV}")
        banner = WebDriverWait(
            driver, 30, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)
        ).until(lambda d: d.find_element(By.ID, "approval").text)
        assert "Awaiting approval" in banner and "alice" in banner, banner

        def press_approve(d: WebDriver) -> bool:
            d.find_element(By.ID, "btn-approve").click()
            return True

        WebDriverWait(
            driver, 30, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException)
        ).until(press_approve)

        def finished(d: WebDriver) -> bool:
            status = d.find_element(By.ID, "status").text
            return "Awaiting approval" not in status and "ticket approved" in status

        try:
            WebDriverWait(
                driver, 120, poll_frequency=0.5,
                ignored_exceptions=(StaleElementReferenceException, NoSuchElementException),
            ).until(finished)  # fmt: skip
        except TimeoutException as exc:
            page = driver.find_element(By.TAG_NAME, "main").text
            raise AssertionError(f"the approved rollout never showed; the page:\n{page}") from exc
        assert not driver.find_elements(By.ID, "btn-approve")
    finally:
        driver.quit()
