"""A sample-app project in a temporary folder, driven through the real CLI, server and router.

Callers: the end-to-end release tests.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import httpx

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample" / "app.py"

SPEC = """\
app: sample
version: "{version}"
run:
  command: ["{python}", "app.py", "--port", "{{port}}"]
  env: {env}
  stop_grace_period: 5s
replicas: {replicas}
health:
  readiness: {{path: /health/ready, interval: 100ms, timeout: 5s, failure_threshold: 3}}
router:
  listen: "127.0.0.1:{port}"
  drain_timeout: 10s
strategy: {strategy}
restart: {{backoff_initial: 100ms, backoff_max: 1s, crash_loop_restarts: 3, crash_loop_window: 30s}}
progress_deadline: {deadline}
"""


class LocalApi(NamedTuple):
    """A server's URL and the headers with its local credential."""

    url: str
    headers: dict[str, str]


def local_headers(state_dir: Path) -> dict[str, str]:
    """``Authorization`` with the local credential of the server of ``state_dir``."""
    token = (state_dir / "local.token").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class SampleProject:
    """One app folder with its own state dir, server, router and instances."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE, root / "app.py")
        self.spec = root / "baepo.yaml"
        self.state_dir = root / ".baepo"
        self.port = free_port()
        self.env = {
            **os.environ,
            "BAEPO_STATE_DIR": str(self.state_dir),
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
        self.env.pop("BAEPO_SERVER", None)

    def write(
        self,
        version: str,
        *,
        replicas: int = 3,
        strategy: str = "{rolling: {max_surge: 1, max_unavailable: 0}}",
        extra_env: dict[str, str] | None = None,
        deadline: str = "60s",
    ) -> None:
        env = {"SAMPLE_VERSION": version, **(extra_env or {})}
        self.spec.write_text(
            SPEC.format(
                version=version,
                python=sys.executable,
                env=json.dumps(env),
                replicas=replicas,
                port=self.port,
                strategy=strategy,
                deadline=deadline,
            )
        )

    def baepo(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "baepo", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 120) -> str:
        done = self.baepo(*args, timeout=timeout)
        assert done.returncode == 0, f"baepo {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout

    # -- the server --------------------------------------------------------------------

    def server_info(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state_dir / "server.json").read_text())
        return data

    def headers(self) -> dict[str, str]:
        """The local credential, as the CLI sends it."""
        return local_headers(self.state_dir)

    def api(self, path: str, **params: Any) -> Any:
        url = self.server_info()["url"]
        response = httpx.get(f"{url}{path}", params=params, headers=self.headers(), timeout=60)
        response.raise_for_status()
        return response.json()

    def dashboard(self) -> httpx.Client:
        """A client logged in to the dashboard as the local user, by the one-time link that
        ``baepo ui`` prints."""
        link = json.loads(self.ok("ui", "-o", "json"))["url"]
        client = httpx.Client(base_url=self.server_info()["url"], timeout=30)
        logged = client.get(link)
        assert logged.status_code == 303, logged.text
        return client

    def status(self) -> dict[str, Any]:
        return dict(self.api("/api/v1/apps/sample"))

    def kill_server(self) -> None:
        """SIGKILL the server, as a crash would."""
        pid = int(self.server_info()["pid"])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                stat = Path(f"/proc/{pid}/stat").read_text()
                if stat.rsplit(")", 1)[1].split()[0] == "Z":
                    os.waitpid(pid, os.WNOHANG)
                    return
            except (ProcessLookupError, ChildProcessError, FileNotFoundError):
                return
            time.sleep(0.02)

    def wait_for(self, predicate: Any, timeout: float = 180, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.status()
                if predicate(last):
                    return last
            except (httpx.HTTPError, OSError, ValueError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; last status: {last}")

    # -- processes ---------------------------------------------------------------------

    def processes(self) -> list[tuple[int, str]]:
        """Every process whose command line mentions this project's folder."""
        found = []
        marker = str(self.root)
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                environ = (entry / "environ").read_bytes()
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                cwd = ""
            if marker in cmdline or marker.encode() in environ or cwd.startswith(marker):
                found.append((int(entry.name), cmdline))
        return found

    def clean_up(self) -> None:
        """Kill every process of the project: server, routers, supervisors, instances.

        No ``baepo down`` first: a graceful stop drains for seconds and tests nothing here.
        Instances on the test fleet's hosts are not this machine's processes; the ``fleet``
        fixture empties the hosts before each test."""
        for _ in range(5):  # again, in case a supervisor restarted an app before it died
            found = [pid for pid, _ in self.processes() if pid != os.getpid()]
            if not found:
                return
            for pid in found:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)


def serving(status: dict[str, Any], revision: int, replicas: int) -> bool:
    """``revision`` is stable, no rollout runs, and exactly its replicas are ready and routed."""
    instances = status["instances"]
    routed = [u for t in status["traffic"] for u in t["upstreams"]]
    return (
        status["rollout"] is None
        and status["stable_revision"] == revision
        and len(instances) == replicas
        and all(i["revision"] == revision and i["ready"] for i in instances)
        and len(routed) == replicas
    )


def versions(port: int, count: int) -> Counter[str]:
    """Versions answering ``count`` sequential GETs on one keep-alive connection (all 200)."""
    seen: Counter[str] = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(count):
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status
            seen[response.getheader("X-Sample-Version") or "?"] += 1
    finally:
        conn.close()
    return seen


def until(fetch: Any, done: Any, what: str, timeout: float = 120) -> Any:
    """Call ``fetch()`` until ``done(value)``, and return that value. ``timeout`` only bounds
    a hang (a busy machine is slow, never wrong); on expiry the last value is shown."""
    deadline = time.monotonic() + timeout
    while True:
        last = fetch()
        if done(last):
            return last
        assert time.monotonic() < deadline, f"timed out waiting for {what}; last seen: {last!r}"
        time.sleep(0.1)
