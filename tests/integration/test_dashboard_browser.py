"""The dashboard in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
installed by ``scripts/install-system-deps test``), driven through Selenium.

One server with ``--auth required`` and a canary in production under light load: a deployer
logs in, watches the canary's weight and step change on the page without reloading it,
promotes it (confirming, since it is production) and sees it finish; a viewer sees no
buttons; a forged post without the CSRF token is refused and changes nothing; the report page
draws its charts. Screenshots of the overview, app, history and report pages are taken each
time, and copied to docs/screenshots/ (for docs/dashboard.md) with
``BAEPO_UPDATE_SCREENSHOTS=1``.
"""

from __future__ import annotations

import http.client
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import SampleProject
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.slow

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
VENDOR = Path(__file__).parents[2] / "src/baepo/web/static/vendor"
SCREENSHOTS = Path(__file__).parents[2] / "docs/screenshots"
PASSWORD = "a long enough password"
ENV = "production"
CANARY = (
    "{canary: {steps: [{set_weight: 20}, {pause: {duration: 3s}}, {set_weight: 60}, {pause: {}}]}}"
)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    for path in (CHROMIUM, DRIVER):
        assert Path(path).exists(), f"{path} is missing: run scripts/install-system-deps test"
    assert (VENDOR / "htmx.min.js").exists(), "the dashboard's libraries are missing: make web"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class Load:
    """Light, bounded load on the router: one keep-alive client, about 20 requests/s."""

    def __init__(self, port: int, seconds: float = 120) -> None:
        self.port, self.seconds = port, seconds
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        ends = time.monotonic() + self.seconds
        while not self.stop.is_set() and time.monotonic() < ends:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                for _ in range(200):
                    if self.stop.is_set():
                        break
                    conn.request("GET", "/")
                    conn.getresponse().read()
                    time.sleep(0.05)
            except OSError:
                time.sleep(0.2)
            finally:
                conn.close()

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)


def wait(driver: WebDriver, what: str, predicate: Any, timeout: float = 60) -> Any:
    try:
        return WebDriverWait(
            driver,
            timeout,
            poll_frequency=0.2,
            ignored_exceptions=(StaleElementReferenceException,),
        ).until(predicate)
    except TimeoutException as exc:
        page = driver.find_element(By.TAG_NAME, "main").text
        raise AssertionError(f"timed out waiting for {what}; the page shows:\n{page}") from exc


def text_of(driver: WebDriver, element_id: str) -> str:
    found = driver.find_elements(By.ID, element_id)
    return found[0].text if found else ""


def log_in(driver: WebDriver, url: str, username: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{url}/ui/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login-password").click()
    wait(driver, "the overview", lambda d: d.current_url.endswith("/ui/"))


def screenshot(driver: WebDriver, folder: Path, name: str) -> None:
    """A full-page PNG in ``folder``; also in docs/screenshots/ with BAEPO_UPDATE_SCREENSHOTS=1."""
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(max(int(height) + 40, 700), 2400))
    taken = folder / f"{name}.png"
    assert driver.save_screenshot(str(taken))
    assert taken.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("BAEPO_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(taken, SCREENSHOTS / f"{name}.png")
    driver.set_window_size(1400, 1000)


def test_dashboard_in_chromium(project: SampleProject, browser: WebDriver, tmp_path: Path) -> None:
    project.write("1.0.0", replicas=2)
    project.ok("deploy", "--wait", "-e", ENV)
    admin = project.ok("token", "create", "--name", "root", "--role", "admin", "--env", "*")
    project.env["BAEPO_PASSWORD"] = PASSWORD
    project.ok("user", "create", "--name", "dan", "--role", "deployer", "--env", ENV)
    project.ok("user", "create", "--name", "vera", "--role", "viewer", "--env", ENV)
    project.ok("server", "stop")
    project.ok("server", "start", "--auth", "required")
    url = str(project.server_info()["url"])
    headers = {"Authorization": f"Bearer {admin.strip()}"}
    project.env["BAEPO_TOKEN"] = admin.strip()

    def status() -> dict[str, Any]:
        got: dict[str, Any] = httpx.get(
            f"{url}/api/v1/apps/sample", params={"env": ENV}, headers=headers, timeout=10
        ).json()
        return got

    # Log in: the login page first, then the overview.
    browser.get(f"{url}/ui/apps/sample?env={ENV}")
    wait(browser, "the login page", lambda d: "/ui/login" in d.current_url)
    log_in(browser, url, "dan")
    assert "sample" in browser.find_element(By.TAG_NAME, "table").text

    with Load(project.port):
        project.write("2.0.0", replicas=2, strategy=CANARY)
        # Fresh instances answer a few milliseconds slower at first: not a reason here.
        project.spec.write_text(project.spec.read_text() + "rollback: {latency_vs_baseline: off}\n")
        project.ok("deploy", "-e", ENV)
        browser.get(f"{url}/ui/apps/sample?env={ENV}")
        browser.execute_script("window.notReloaded = true;")

        # The canary goes 20 % -> 3 s pause -> 60 % -> waits; the page follows by itself.
        wait(browser, "weight 20%", lambda d: text_of(d, "weight") == "20%")
        wait(browser, "weight 60%", lambda d: text_of(d, "weight") == "60%")
        wait(
            browser, "the last pause current",
            lambda d: "pause until promoted" in " ".join(
                e.text for e in d.find_elements(By.CSS_SELECTOR, "#steps [aria-current=step]")
            ),
        )  # fmt: skip
        assert browser.execute_script("return window.notReloaded === true;")
        wait(browser, "a chart drawn", lambda d: d.find_elements(By.CSS_SELECTOR, ".uplot"))
        screenshot(browser, tmp_path, "app")

        # A forged post (no CSRF token) from the logged-in page is refused; nothing changes.
        before = status()["rollout"]
        forged = browser.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            fetch('/ui/apps/sample/abort', {method: 'POST',
                headers: {'Content-Type': 'application/x-www-form-urlencoded'},
                body: 'env=production'}).then(r => done(r.status));
            """
        )
        assert forged == 403
        after = status()["rollout"]
        assert after is not None and after["id"] == before["id"]
        assert after["phase"] not in ("aborted",)

        # Promote, confirm (production), and see the new state.
        browser.find_element(By.ID, "btn-promote").click()
        wait(browser, "the confirmation page", lambda d: d.find_elements(By.ID, "confirm"))
        browser.find_element(By.ID, "confirm").click()
        wait(browser, "back on the app page", lambda d: "done=" in d.current_url)
        notice = browser.find_element(By.CSS_SELECTOR, "[role=status]").text
        assert "promoted" in notice, (notice, status()["events"], status()["last_rollout"])
        wait(browser, "the canary finished", lambda d: "healthy" in text_of(d, "phase"), 90)
        assert status()["stable_revision"] == 2

    browser.get(f"{url}/ui/")
    screenshot(browser, tmp_path, "overview")
    browser.get(f"{url}/ui/apps/sample/history?env={ENV}")
    assert "2.0.0" in browser.find_element(By.ID, "revisions").text
    assert browser.find_elements(By.CSS_SELECTOR, "#diff .add")
    screenshot(browser, tmp_path, "history")
    browser.get(f"{url}/ui/report?env={ENV}")
    assert browser.find_element(By.ID, "kpi-deployments").text == "2"
    wait(browser, "both report charts drawn",
         lambda d: len(d.find_elements(By.CSS_SELECTOR, ".report-chart .uplot")) == 2)  # fmt: skip
    screenshot(browser, tmp_path, "report")

    # Aborted from the dashboard: the live page, the history and the report say who stopped it.
    project.write("3.0.0", replicas=2, strategy=CANARY)
    project.ok("deploy", "-e", ENV)
    browser.get(f"{url}/ui/apps/sample?env={ENV}")
    # The live fragment is redrawn every second: a click on a redrawn button is tried again.
    wait(browser, "a click on Abort", lambda d: d.find_element(By.ID, "btn-abort").click() or 1)
    wait(browser, "the confirmation page", lambda d: d.find_elements(By.ID, "confirm"))
    browser.find_element(By.ID, "confirm").click()
    wait(
        browser, "the cause and its evidence on the app page",
        lambda d: "cause: stopped by a person: baepo abort by dan\nby dan\nwith baepo abort"
        in text_of(d, "cause"),
    )  # fmt: skip
    browser.get(f"{url}/ui/apps/sample/history?env={ENV}")
    assert "stopped by a person: baepo abort by dan" in text_of(browser, "revisions")
    browser.get(f"{url}/ui/report?env={ENV}")
    assert text_of(browser, "failure-causes").splitlines()[1:] == ["stopped by a person 1"]

    # A viewer sees the same page without any button.
    log_in(browser, url, "vera")
    browser.get(f"{url}/ui/apps/sample?env={ENV}")
    wait(browser, "the rollout section", lambda d: d.find_elements(By.ID, "rollout-title"))
    assert not browser.find_elements(By.CSS_SELECTOR, "[id^=btn-]")
    assert "vera" in browser.find_element(By.CSS_SELECTOR, "header").text
