"""Two ``baepo server`` replicas on one PostgreSQL database: one leads, the other takes over.

Real processes throughout: a throwaway PostgreSQL cluster, two servers started by the CLI
sharing one state dir, the sample app behind the built-in router, and load through that router
while the leader is SIGKILLed in the middle of a canary.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import postgres
import pytest
from harness import SampleProject, free_port, serving

from baepo import store
from baepo.cli.loadgen import LoadGenerator
from baepo.shell.process import pid_alive
from baepo.store.lease import AdvisoryLease

pytestmark = pytest.mark.slow

CANARY = (
    "{canary: {steps: [{set_weight: 50}, {pause: {duration: 8s}}, {set_weight: 100}, "
    "{pause: {duration: 2s}}]}}"
)


class Replica:
    """One ``baepo server start --foreground`` process of ``project`` on ``database``."""

    def __init__(self, project: SampleProject, database: str, name: str) -> None:
        self.name = name
        self.project = project
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = project.root / f"server-{name}.log"
        argv = [
            sys.executable,
            "-m",
            "baepo",
            "server",
            "start",
            "--foreground",
            "--state-dir",
            str(project.state_dir),
            "--database-url",
            database,
            "--listen",
            self.url.removeprefix("http://"),
        ]
        with self.log.open("w") as output:
            self.process = subprocess.Popen(
                argv, cwd=project.root, env=project.env, stdout=output, stderr=subprocess.STDOUT
            )

    def info(self) -> dict[str, Any]:
        if self.process.poll() is not None:
            raise AssertionError(f"replica {self.name} exited: {self.log.read_text()[-3000:]}")
        response = httpx.get(f"{self.url}/api/v1/server", headers=self.project.headers(), timeout=5)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(
            f"{self.url}{path}", params=params, headers=self.project.headers(), timeout=10
        )
        response.raise_for_status()
        return response.json()

    def status(self) -> dict[str, Any]:
        return dict(self.get("/api/v1/apps/sample"))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


def until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something true (errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (httpx.HTTPError, OSError, ValueError, KeyError, TypeError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture
def database(pg_server: postgres.PostgresServer) -> str:
    return pg_server.create_database("ha")


@pytest.fixture
def replicas(project: SampleProject, database: str) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    try:
        yield started
    finally:
        alive = [r for r in started if r.process.poll() is None]
        if alive:
            env = {**project.env, "BAEPO_SERVER": alive[0].url}
            subprocess.run(
                [sys.executable, "-m", "baepo", "down", "--wait", "--timeout", "30"],
                cwd=project.root,
                env=env,
                capture_output=True,
                timeout=90,
                check=False,
            )
        for replica in started:
            replica.stop()
        with contextlib.suppress(FileNotFoundError):
            (project.state_dir / "server.json").unlink()


def cli(project: SampleProject, replica: Replica, *args: str) -> str:
    env = {**project.env, "BAEPO_SERVER": replica.url}
    done = subprocess.run(
        [sys.executable, "-m", "baepo", *args],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"baepo {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_advisory_lease_admits_one_session_and_frees_it_when_the_session_ends(
    database: str,
) -> None:
    with store.open_store(database) as db:
        first = db.lease("controller", "first", ttl=5)
        second = db.lease("controller", "second", ttl=5)
        assert isinstance(first, AdvisoryLease)
        assert first.holder() is None
        assert first.acquire() and first.renew()
        assert not second.acquire() and not second.renew()
        assert second.holder() == "first"
        first.release()  # ends the session, as a crash would
        assert second.acquire()
        assert first.holder() == "second"
        assert not first.acquire()
        second.release()


def test_the_database_ends_a_silent_leaders_session_so_its_lease_passes_on(
    database: str,
) -> None:
    with store.open_store(database) as db:
        hung = db.lease("controller", "hung", ttl=1)
        other = db.lease("controller", "other", ttl=1)
        assert hung.acquire()
        assert not other.acquire()
        time.sleep(2.5)  # the holder sends nothing for longer than its ttl
        assert other.acquire()
        assert not hung.renew()
        other.release()


def test_a_replica_that_loses_its_session_stops_leading_and_keeps_serving(
    project: SampleProject,
    database: str,
    pg_server: postgres.PostgresServer,
    replicas: list[Replica],
) -> None:
    first = Replica(project, database, "a")
    replicas.append(first)
    until(lambda: first.info()["leading"], "the first replica to lead")
    second = Replica(project, database, "b")
    replicas.append(second)
    until(lambda: second.info()["leader"], "the second replica to see the leader")
    pg_server.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE application_name LIKE '%{first.url}'",
        database=database.rsplit("/", 1)[1],
    )
    # The deposed leader notices at its next renewal; whoever wins next waits out its trust.
    until(
        lambda: second.info()["leading"] or first.info()["terms"] == 2,
        "a new term to start",
        timeout=30,
    )
    now, other = (second, first) if second.info()["leading"] else (first, second)
    until(lambda: now.info()["leading"], "the new leader to act", timeout=30)
    assert now.url in other.info()["leader"]
    assert other.info()["leading"] is False  # and it still serves the API
    assert (
        "baepo_controller_leader 0.0"
        in httpx.get(f"{other.url}/metrics", headers=other.project.headers(), timeout=10).text
    )
    # Both keep campaigning: when the leader stops, the other takes over.
    now.stop()
    until(lambda: other.info()["leading"], "the other replica to lead", timeout=30)


def test_baepo_server_start_adds_replicas_on_postgresql(
    project: SampleProject, database: str
) -> None:
    pids: list[int] = []
    try:
        urls = []
        for _ in range(2):
            out = project.ok("server", "start", "--database-url", database)
            found = re.search(r"server started at (\S+) \(pid (\d+)\)", out)
            assert found, out
            urls.append(found[1])
            pids.append(int(found[2]))
        assert "leader: " in out
        infos = [
            until(
                lambda u=url: httpx.get(
                    f"{u}/api/v1/server", headers=project.headers(), timeout=5
                ).json(),
                "an answer",
            )
            for url in urls
        ]
        assert {i["pid"] for i in infos} == set(pids)
        leader = until(
            lambda: [
                u
                for u in urls
                if httpx.get(f"{u}/api/v1/server", headers=project.headers()).json()["leading"]
            ],
            "one replica to lead",
        )
        assert leader == [urls[0]]
        text = project.ok("server", "status")
        assert "leader: " in text and urls[0] in text
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in pids:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and pid_alive(pid):
                time.sleep(0.05)
        with contextlib.suppress(FileNotFoundError):
            (project.state_dir / "server.json").unlink()


def test_the_follower_takes_over_a_killed_leader_mid_canary_and_finishes_it(
    project: SampleProject, database: str, replicas: list[Replica]
) -> None:
    first = Replica(project, database, "a")
    replicas.append(first)
    until(lambda: first.info()["leading"], "the first replica to lead")
    second = Replica(project, database, "b")
    replicas.append(second)
    follower = until(second.info, "the second replica to answer")
    assert follower["leading"] is False
    assert first.url in follower["leader"]

    project.write("1.0.0", replicas=2)
    cli(project, first, "deploy", "--wait")
    until(lambda: serving(first.status(), 1, 2), "revision 1 serving")

    project.write("2.0.0", replicas=2, strategy=CANARY)
    gen = LoadGenerator("127.0.0.1", project.port, rate=40, workers=2, max_seconds=180).start()
    try:
        # A write through the follower reaches the leader through the store.
        cli(project, second, "deploy", "--no-wait")
        paused = until(
            lambda: (
                (s := first.status())["canary"]
                and s["canary"]["step"] == 1
                and s["canary"]["weight"] == 50
                and s
            ),
            "the canary in its timed pause",
        )
        rollout_id = paused["rollout"]["id"]
        assert second.status()["rollout"]["id"] == rollout_id  # followers serve the API too
        metrics = httpx.get(
            f"{second.url}/metrics", headers=second.project.headers(), timeout=10
        ).text
        assert "baepo_controller_leader 0.0" in metrics

        first.kill()
        killed = time.monotonic()
        until(lambda: second.info()["leading"], "the second replica to lead", timeout=30)
        took_over = time.monotonic() - killed
        info = second.info()
        assert second.url in info["leader"] and info["terms"] == 1
        assert project.server_info()["url"] == second.url  # the CLI finds the new leader
        resumed = second.status()
        assert resumed["rollout"]["id"] == rollout_id
        assert resumed["canary"]["step"] >= 1  # where the old leader left it, not step 0
        final = until(
            lambda: serving(s := second.status(), 2, 2) and s, "revision 2 serving", timeout=120
        )
    finally:
        report = gen.stop()
    print(f"failover: the second replica led {took_over:.2f}s after the SIGKILL; load {report}")
    assert report.failed == 0, report
    assert report.ok > 0
    assert final["last_rollout"]["id"] == rollout_id
    assert final["last_rollout"]["phase"] == "healthy"
    assert (
        "baepo_controller_leader 1.0"
        in httpx.get(f"{second.url}/metrics", headers=second.project.headers(), timeout=10).text
    )

    events = [e["message"] for e in second.get("/api/v1/apps/sample/events", limit=500)]
    done = Counter(m for m in events if m.startswith("step ") and m.endswith(": done"))
    assert done == {
        "step 1/4: set weight 50%: done": 1,
        "step 2/4: pause 8s: done": 1,
        "step 3/4: set weight 100%: done": 1,
        "step 4/4: pause 2s: done": 1,
    }, events
    assert Counter(events)["revision 2 is serving on 2 ready instances"] == 1, events
    started = [m for m in events if m.startswith("started r2-")]
    assert len(started) == 2, events  # no canary instance started twice

    status = subprocess.run(
        [sys.executable, "-m", "baepo", "server", "status", "-o", "json"],
        cwd=project.root,
        env={**project.env, "BAEPO_SERVER": second.url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == 0, status.stderr
    assert '"leading": true' in status.stdout
