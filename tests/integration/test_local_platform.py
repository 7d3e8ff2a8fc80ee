"""The local platform with real processes: the sample app under real supervisors.

Deadlines are generous (the machine may be busy); no test asserts tight timings. Every test
stops what it started, and the fixture stops anything left over.
Helpers here are shared with ``test_local_platform_failures``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from baepo.core.model import Instance, InstancePhase
from baepo.core.ports import InstanceSpec, ProbeConfig
from baepo.platforms.local.platform import LocalPlatform
from baepo.shell.process import pid_alive

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "sample"
APP, ENV = "sample", "test"


def sample_spec(
    *,
    revision: int = 1,
    env_vars: dict[str, str] | None = None,
    command: list[str] | None = None,
    **overrides: Any,
) -> InstanceSpec:
    fields: dict[str, Any] = {
        "app": APP,
        "env": ENV,
        "revision": revision,
        "command": command or [sys.executable, "app.py", "--port", "{port}"],
        "cwd": str(SAMPLE_DIR),
        "env_vars": {"SAMPLE_VERSION": f"{revision}.0", **(env_vars or {})},
        "stop_grace_period": 5.0,
        "backoff_initial": 0.1,
        "backoff_max": 1.0,
        "crash_loop_restarts": 3,
        "crash_loop_window": 60.0,
        "log_max_bytes": 1024 * 1024,
        "log_backups": 2,
        "readiness": ProbeConfig("/health/ready", 0.1, 1.0, 2, 1, 0.0),
        "liveness": None,
    }
    fields.update(overrides)
    return InstanceSpec(**fields)


def run(coro: Awaitable[Any]) -> Any:
    async def wrap() -> Any:
        return await coro

    return asyncio.run(wrap())


async def wait_instance(
    platform: LocalPlatform,
    instance_id: str,
    predicate: Callable[[Instance], bool],
    timeout: float = 20.0,
) -> Instance:
    """Poll ``list_instances`` until the instance satisfies ``predicate``."""
    deadline = time.monotonic() + timeout
    last: Instance | None = None
    while time.monotonic() < deadline:
        for instance in await platform.list_instances(APP, ENV):
            if instance.id == instance_id:
                last = instance
                if predicate(instance):
                    return instance
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {instance_id}; last seen: {last}")


def group_pids(pgid: int) -> list[int]:
    """Live processes in process group ``pgid``, read straight from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def get(address: str, path: str = "/", timeout: float = 10.0) -> tuple[int, dict[str, Any]]:
    with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as response:
        return response.status, json.loads(response.read())


async def wait_http(address: str, path: str = "/", timeout: float = 20.0) -> int:
    """Poll until the app answers on ``address``; its status code."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return (await asyncio.to_thread(get, address, path))[0]
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[LocalPlatform]:
    local = LocalPlatform(tmp_path / "state")
    yield local

    async def stop_all() -> None:
        for instance in await local.list_instances(APP, ENV):
            await local.stop_instance(instance.id, grace=0.5)

    run(stop_all())


def test_start_ready_serve_stop(platform: LocalPlatform) -> None:
    async def scenario() -> None:
        began = time.monotonic()
        started = await platform.start_instance(sample_spec(revision=3))
        assert started.phase is InstancePhase.STARTING
        assert started.id.startswith("r3-")
        assert time.monotonic() - began < 1.0
        ready = await wait_instance(platform, started.id, lambda i: i.ready)
        assert ready.phase is InstancePhase.RUNNING
        assert ready.pid is not None
        assert ready.address == started.address
        status, body = get(ready.address)
        assert status == 200
        assert body["version"] == "3.0"
        assert body["instance"] == started.id
        assert body["pid"] == ready.pid

        directory = platform.instances_root / f"{APP}.{ENV}" / started.id
        supervisor = json.loads((directory / "state.json").read_text())["supervisor_pid"]
        await platform.stop_instance(started.id)
        assert await platform.list_instances(APP, ENV) == []
        assert not directory.exists()
        assert group_pids(ready.pid) == []
        assert not pid_alive(supervisor)
        assert any("exited with code 0" in line for line in platform.read_logs(APP, ENV))
        await platform.stop_instance(started.id)  # idempotent
        await platform.stop_instance("r9-000000")  # unknown: no-op

    run(scenario())


def test_stop_drains_a_request_in_flight(platform: LocalPlatform) -> None:
    async def scenario() -> None:
        spec = sample_spec(env_vars={"SAMPLE_LATENCY_MS": "1500"})
        instance = await platform.start_instance(spec)
        ready = await wait_instance(platform, instance.id, lambda i: i.ready)
        result: dict[str, Any] = {}

        def slow_request() -> None:
            result["answer"] = get(ready.address, "/")

        client = threading.Thread(target=slow_request)
        client.start()
        await asyncio.sleep(0.5)  # the request is now in flight
        await platform.stop_instance(instance.id)
        await asyncio.to_thread(client.join, 10)
        assert result["answer"][0] == 200
        assert ready.pid is not None
        assert group_pids(ready.pid) == []
        lines = platform.read_logs(APP, ENV)
        assert any("stopped (drained)" in line for line in lines)
        assert any("exited with code 0" in line for line in lines)

    run(scenario())


def test_sigkill_after_grace_for_an_app_ignoring_sigterm(platform: LocalPlatform) -> None:
    async def scenario() -> None:
        spec = sample_spec(env_vars={"SAMPLE_IGNORE_SIGTERM": "true"}, stop_grace_period=0.5)
        instance = await platform.start_instance(spec)
        ready = await wait_instance(platform, instance.id, lambda i: i.ready)
        began = time.monotonic()
        await platform.stop_instance(instance.id)
        assert time.monotonic() - began < 0.5 + 2.0 + 2.0  # grace + the port's margin + slack
        assert ready.pid is not None
        assert group_pids(ready.pid) == []
        lines = platform.read_logs(APP, ENV)
        assert any("SIGTERM ignored" in line for line in lines)
        assert any("killed by SIGKILL" in line for line in lines)

    run(scenario())


def test_a_new_platform_object_readopts_running_instances(
    platform: LocalPlatform, tmp_path: Path
) -> None:
    async def scenario() -> None:
        first = await platform.start_instance(sample_spec())
        second = await platform.start_instance(sample_spec(revision=2))
        assert first.port != second.port
        for instance in (first, second):
            await wait_instance(platform, instance.id, lambda i: i.ready)
        again = LocalPlatform(tmp_path / "state")  # as a restarted controller would
        seen = {i.id: i for i in await again.list_instances(APP, ENV)}
        assert set(seen) == {first.id, second.id}
        assert all(i.ready and i.phase is InstancePhase.RUNNING for i in seen.values())
        assert seen[second.id].revision == 2
        await again.stop_instance(first.id)
        assert [i.id for i in await again.list_instances(APP, ENV)] == [second.id]

    run(scenario())


def test_instances_outlive_the_process_that_started_them(platform: LocalPlatform) -> None:
    code = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_local_platform import sample_spec
        from baepo.platforms.local.platform import LocalPlatform
        local = LocalPlatform(Path({str(platform.state_dir)!r}))
        print(asyncio.run(local.start_instance(sample_spec())).id)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    instance_id = done.stdout.strip()
    ready = run(wait_instance(platform, instance_id, lambda i: i.ready))
    assert ready.phase is InstancePhase.RUNNING
    assert get(ready.address)[1]["instance"] == instance_id


def test_readiness_stays_false_when_the_app_is_not_ready(platform: LocalPlatform) -> None:
    async def scenario() -> None:
        instance = await platform.start_instance(sample_spec(env_vars={"SAMPLE_READY": "false"}))
        running = await wait_instance(platform, instance.id, lambda i: i.pid is not None)
        assert await wait_http(running.address) == 200  # it serves, but says it is not ready
        for _ in range(10):
            await asyncio.sleep(0.1)
            [seen] = await platform.list_instances(APP, ENV)
            assert not seen.ready
            assert seen.phase is InstancePhase.RUNNING
        assert seen.message == "not ready: GET /health/ready → 503"

    run(scenario())


def test_restart_instance_restarts_the_app_and_counts_it(platform: LocalPlatform) -> None:
    async def scenario() -> None:
        instance = await platform.start_instance(sample_spec())
        ready = await wait_instance(platform, instance.id, lambda i: i.ready)
        await platform.restart_instance(instance.id)
        again = await wait_instance(
            platform, instance.id, lambda i: i.ready and i.restarts == 1 and i.pid != ready.pid
        )
        assert again.phase is InstancePhase.RUNNING
        assert ready.pid is not None
        assert group_pids(ready.pid) == []
        await platform.restart_instance("r9-000000")  # unknown: no-op

    run(scenario())


def test_logs_are_captured_rotated_and_followed(platform: LocalPlatform) -> None:
    script = (
        "import itertools, time\n"
        "for n in itertools.count():\n"
        "    print(f'tick {n:05d} ' + 'x' * 40, flush=True)\n"
        "    time.sleep(0.002 if n < 300 else 0.01)\n"
    )
    spec = sample_spec(command=[sys.executable, "-c", script], log_max_bytes=4096, log_backups=2)

    async def scenario() -> None:
        instance = await platform.start_instance(spec)
        directory = platform.instances_root / f"{APP}.{ENV}" / instance.id
        deadline = time.monotonic() + 20
        while not (directory / "output.log.2").exists():
            assert time.monotonic() < deadline, "the log never rotated twice"
            await asyncio.sleep(0.1)
        seen: list[int] = []
        follower = platform.follow_logs(APP, ENV)
        async for line in follower:
            assert line.startswith(f"{instance.id} ")
            if " tick " in line:
                seen.append(int(line.split(" tick ")[1].split()[0]))
            if len(seen) >= 250:  # about 3 rotations while following
                break
        await follower.aclose()  # type: ignore[attr-defined]
        assert seen == list(range(seen[0], seen[0] + len(seen)))
        assert not (directory / "output.log.3").exists()
        for file in directory.glob("output.log*"):
            assert file.stat().st_size <= 4096

        tail = platform.read_logs(APP, ENV, tail=50)
        assert len(tail) == 50
        ticks = [int(line.split(" tick ")[1].split()[0]) for line in tail if " tick " in line]
        assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))
        await platform.stop_instance(instance.id, grace=1.0)
        assert platform.read_logs(APP, ENV, tail=5)  # still readable once stopped
        assert platform.read_logs(APP, ENV, revision=7) == []

    run(scenario())


def test_stopped_instance_logs_are_kept_within_a_bound(tmp_path: Path) -> None:
    local = LocalPlatform(tmp_path / "state", keep_logs=2)
    spec = sample_spec(command=[sys.executable, "-c", "print('hi'); import time; time.sleep(60)"])

    async def scenario() -> None:
        ids = []
        for _ in range(3):
            instance = await local.start_instance(spec)
            ids.append(instance.id)
            await wait_instance(local, instance.id, lambda i: i.pid is not None)
            await local.stop_instance(instance.id, grace=0.2)
            await asyncio.sleep(0.05)  # distinct modification times
        kept = sorted(p.name for p in (local.logs_root / f"{APP}.{ENV}").iterdir())
        assert kept == sorted(ids[1:])

    run(scenario())


def test_env_and_port_reach_the_app(platform: LocalPlatform, tmp_path: Path) -> None:
    out = tmp_path / "seen.json"
    script = (
        "import json, os, sys, time\n"
        f"json.dump({{'argv': sys.argv[1:], 'env': dict(os.environ)}}, open({str(out)!r}, 'w'))\n"
        "time.sleep(60)\n"
    )
    spec = sample_spec(
        command=[sys.executable, "-c", script, "--listen=127.0.0.1:{port}"],
        env_vars={"GREETING": "hello"},
    )

    async def scenario() -> None:
        instance = await platform.start_instance(spec)
        deadline = time.monotonic() + 10
        while not out.exists() or not out.read_text():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        seen = json.loads(out.read_text())
        assert seen["argv"] == [f"--listen=127.0.0.1:{instance.port}"]
        assert seen["env"]["PORT"] == str(instance.port)
        assert seen["env"]["GREETING"] == "hello"
        assert seen["env"]["BAEPO_INSTANCE"] == instance.id
        assert seen["env"]["BAEPO_REVISION"] == "1"
        assert seen["env"]["PYTHONUNBUFFERED"] == "1"

    run(scenario())


def test_supervisor_survives_its_parent_signal_group(platform: LocalPlatform) -> None:
    """The supervisor runs in its own session: a signal to the controller's group misses it."""

    async def scenario() -> None:
        instance = await platform.start_instance(sample_spec())
        await wait_instance(platform, instance.id, lambda i: i.ready)
        directory = platform.instances_root / f"{APP}.{ENV}" / instance.id
        supervisor = json.loads((directory / "state.json").read_text())["supervisor_pid"]
        assert os.getpgid(supervisor) == supervisor != os.getpgid(0)
        assert os.getsid(supervisor) == supervisor
        os.killpg(os.getpgid(0), 0)  # our own group is untouched by this check

    run(scenario())
