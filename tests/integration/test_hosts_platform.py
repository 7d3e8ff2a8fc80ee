"""HostsPlatform on the namespace fleet: instances spread over the hosts, probed from here,
answering on their host's address; logs over SSH; stop and restart through each host's agent."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
from fleet import PYTHON, Fleet, fleet
from harness import SAMPLE

from baepo.core.model import Instance, InstancePhase
from baepo.core.ports import HostConfig, HostsTarget, InstanceSpec, ProbeConfig
from baepo.errors import ExternalError
from baepo.platforms.hosts import commands
from baepo.platforms.hosts.platform import HostsPlatform
from baepo.platforms.hosts.runner import SSHRunner

__all__ = ["fleet"]


def instance_spec(fleet: Fleet, source: Path, secret: str) -> InstanceSpec:
    hosts = tuple(
        HostConfig(a, key=str(fleet.key), known_hosts=str(fleet.known_hosts), python=PYTHON)
        for a in fleet.addresses
    )
    return InstanceSpec(
        app="demo",
        env="prod",
        revision=1,
        command=[PYTHON, "app.py", "--host", "0.0.0.0", "--port", "{port}"],
        cwd=str(source),
        env_vars={"SAMPLE_VERSION": "v1", "SAMPLE_ACCESS_LOG": "true"},
        stop_grace_period=5.0,
        backoff_initial=0.1,
        backoff_max=1.0,
        crash_loop_restarts=3,
        crash_loop_window=30.0,
        log_max_bytes=1 << 20,
        log_backups=1,
        readiness=ProbeConfig("/health/ready", 0.2, 1.0, 2, 1, 0.0),
        secret_env={"SAMPLE_SECRET": secret},
        target=HostsTarget(hosts, "/srv/baepo", 0, str(source)),
    )


async def wait_for(platform: HostsPlatform, check: object, what: str) -> list[Instance]:
    deadline = time.monotonic() + 60
    found: list[Instance] = []
    while time.monotonic() < deadline:
        found = await platform.list_instances("demo", "prod")
        if callable(check) and check(found):
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {found}")


def test_instances_on_hosts(fleet: Fleet, tmp_path: Path) -> None:
    source = tmp_path / "app"
    source.mkdir()
    shutil.copy(SAMPLE, source / "app.py")
    spec = instance_spec(fleet, source, "s3cret-value")
    platform = HostsPlatform(tmp_path / "state")

    async def scenario() -> None:
        started = [await platform.start_instance(spec) for _ in range(4)]
        assert all(i.id.startswith("h-r1-") for i in started)
        assert sorted(i.host for i in started) == sorted([*fleet.addresses, fleet.addresses[0]])
        ready = await wait_for(
            platform, lambda f: len(f) == 4 and all(i.ready for i in f), "4 ready instances"
        )
        async with httpx.AsyncClient(trust_env=False) as client:
            for instance in ready:
                answer = await client.get(f"http://{instance.address}/", timeout=5)
                assert answer.status_code == 200
                assert answer.json()["version"] == "v1"
        lines = platform.read_logs("demo", "prod", tail=200)
        assert sum("listening on 0.0.0.0" in line for line in lines) == 4
        assert not any("s3cret-value" in line for line in lines)
        host = HostConfig(fleet.addresses[0], key=str(fleet.key))
        files = await platform.runner.run(
            commands.Exec(host, ("sh", "-c", "cat /srv/baepo/demo/prod/instances/*/*.json"))
        )
        assert '"port"' in files.stdout and "s3cret-value" not in files.stdout

        follow = platform.follow_logs("demo", "prod", revision=1)

        async def followed() -> str:
            async for line in follow:  # access-log lines of the probes come too
                if "/followed" in line:
                    return line
            return ""

        found = asyncio.ensure_future(followed())
        async with httpx.AsyncClient(trust_env=False) as client:
            await asyncio.sleep(2.0)  # the followers have started
            await client.get(f"http://{ready[0].address}/followed", timeout=5)
        line = await asyncio.wait_for(found, 30)
        assert line.startswith(f"{ready[0].host} {ready[0].id} ")
        await follow.aclose()

        # A fresh platform object (a restarted controller) finds and stops every instance.
        again = HostsPlatform(tmp_path / "state")
        first = started[0]
        await again.restart_instance(first.id)
        await wait_for(
            again,
            lambda f: any(i.id == first.id and i.restarts == 1 and i.ready for i in f),
            "the restarted instance ready again",
        )
        for instance in started:
            await again.stop_instance(instance.id, grace=3)
            await again.stop_instance(instance.id)  # idempotent
        assert await again.list_instances("demo", "prod") == []
        await again.close()
        await platform.close()

    asyncio.run(scenario())


def test_the_agent_restarts_a_crashed_app_and_gives_up_on_a_crash_loop(
    fleet: Fleet, tmp_path: Path
) -> None:
    source = tmp_path / "app"
    source.mkdir()
    shutil.copy(SAMPLE, source / "app.py")
    spec = instance_spec(fleet, source, "x")
    looping = dataclasses.replace(
        spec, revision=2, env_vars={**spec.env_vars, "SAMPLE_CRASH_ON_START": "true"}
    )
    platform = HostsPlatform(tmp_path / "state")

    async def scenario() -> None:
        healthy = await platform.start_instance(spec)
        ready = await wait_for(
            platform, lambda f: any(i.id == healthy.id and i.ready for i in f), "ready"
        )
        pid = next(i.pid for i in ready if i.id == healthy.id)
        assert pid is not None
        host = HostConfig(healthy.host, key=str(fleet.key))
        await platform.runner.run(commands.Exec(host, ("kill", "-9", str(pid))))
        await wait_for(
            platform,
            lambda f: any(i.id == healthy.id and i.restarts == 1 and i.ready for i in f),
            "the killed app restarted and ready",
        )
        crashing = await platform.start_instance(looping)
        failed = await wait_for(
            platform,
            lambda f: any(i.id == crashing.id and i.phase is InstancePhase.FAILED for i in f),
            "the crash-looping instance failed",
        )
        message = next(i.message for i in failed if i.id == crashing.id)
        assert "crash loop" in message
        for instance in (healthy, crashing):
            await platform.stop_instance(instance.id, grace=2)
        assert await platform.list_instances("demo", "prod") == []
        await platform.close()

    asyncio.run(scenario())


def test_a_failing_liveness_probe_restarts_the_app(fleet: Fleet, tmp_path: Path) -> None:
    source = tmp_path / "app"
    source.mkdir()
    shutil.copy(SAMPLE, source / "app.py")
    base = instance_spec(fleet, source, "x")
    spec = dataclasses.replace(
        base,
        env_vars={**base.env_vars, "SAMPLE_HEALTH_FAIL_AFTER": "1"},
        liveness=ProbeConfig("/health", 0.2, 1.0, 2, 1, 0.0),
    )
    platform = HostsPlatform(tmp_path / "state")

    async def scenario() -> None:
        started = await platform.start_instance(spec)
        await wait_for(
            platform,
            lambda f: any(i.id == started.id and i.restarts >= 2 for i in f),
            "two restarts by the liveness probe",
        )
        lines = platform.read_logs("demo", "prod", tail=500)
        assert sum("sending SIGTERM" in line for line in lines) >= 2
        await platform.stop_instance(started.id, grace=2)
        await platform.close()

    asyncio.run(scenario())


def test_unreachable_hosts_up_to_max_failed_hosts_are_passed_over(
    fleet: Fleet, tmp_path: Path
) -> None:
    source = tmp_path / "app"
    source.mkdir()
    shutil.copy(SAMPLE, source / "app.py")
    base = instance_spec(fleet, source, "x")
    assert base.target is not None
    gone = HostConfig(fleet.unused_address(), key=str(fleet.key))  # on the bridge, nobody there
    hosts = (gone, *base.target.hosts[:1])
    tolerant = dataclasses.replace(
        base, target=dataclasses.replace(base.target, hosts=hosts, max_failed_hosts=1)
    )
    strict = dataclasses.replace(
        base, target=dataclasses.replace(base.target, hosts=hosts, max_failed_hosts=0)
    )
    platform = HostsPlatform(tmp_path / "state")

    async def scenario() -> None:
        unreachable = rf"1 host\(s\) unreachable .*{re.escape(gone.address)}"
        with pytest.raises(ExternalError, match=unreachable):
            await platform.start_instance(strict)
        started = await platform.start_instance(tolerant)
        assert started.host == fleet.addresses[0]
        listed = await platform.list_instances("demo", "prod")  # the dead host is skipped
        assert [i.id for i in listed] == [started.id]
        await platform.stop_instance(started.id, grace=2)
        await platform.close()

    asyncio.run(scenario())


def test_a_host_whose_key_does_not_match_known_hosts_is_refused(
    fleet: Fleet, tmp_path: Path
) -> None:
    lines = fleet.known_hosts.read_text().splitlines()
    first, second = lines[0].split(" ", 1), lines[1].split(" ", 1)
    swapped = tmp_path / "known_hosts"
    swapped.write_text(f"{first[0]} {second[1]}\n")  # the first host with the second's key
    runner = SSHRunner()

    async def scenario() -> None:
        good = HostConfig(first[0], key=str(fleet.key), known_hosts=str(fleet.known_hosts))
        assert (await runner.run(commands.Exec(good, ("true",)))).exit_code == 0
        bad = HostConfig(first[0], key=str(fleet.key), known_hosts=str(swapped))
        with pytest.raises(ExternalError, match="cannot connect"):
            await runner.run(commands.Exec(bad, ("true",)))
        await runner.close()

    asyncio.run(scenario())
