"""HostsPlatform with a fake runner: where instances go, what is shipped once, unreachable
hosts, and listings that never miss an instance just started."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from baepo.core.ports import HostConfig, HostsTarget, InstanceSpec, ProbeConfig
from baepo.errors import ExternalError
from baepo.platforms.hosts import commands
from baepo.platforms.hosts.platform import HostsPlatform
from baepo.platforms.hosts.runner import Result

HOSTS = (HostConfig("10.0.0.1"), HostConfig("10.0.0.2"), HostConfig("10.0.0.3"))


class FakeRunner:
    """Plays the agents of three hosts: remembers started instances, answers status."""

    def __init__(self, down: set[str] | None = None) -> None:
        self.down = down or set()
        self.instances: dict[str, list[dict[str, object]]] = {h.address: [] for h in HOSTS}
        self.log: list[str] = []

    async def run(self, action: commands.Exec) -> Result:
        address = action.host.address
        if address in self.down:
            raise ExternalError(f"cannot connect to {address}")
        verb = action.argv[2] if action.argv[0] == "python3" else action.argv[0]
        self.log.append(f"{address} {verb}")
        if verb == "status":
            return Result(0, json.dumps(self.instances[address]), "")
        if verb == "start":
            request = json.loads(action.stdin or "{}")
            port = 40000 + len(self.log)
            instance_id = action.argv[3].rsplit("/", 1)[1]
            self.instances[address].append(
                {"id": instance_id, "revision": request["revision"], "port": port,
                 "phase": "running", "pid": port, "readiness": None}
            )  # fmt: skip
            return Result(0, json.dumps({"port": port}) + "\n", "")
        if verb == "stop":
            instance_id = action.argv[3].rsplit("/", 1)[1]
            self.instances[address] = [i for i in self.instances[address] if i["id"] != instance_id]
        return Result(0, "", "")

    async def upload(self, action: commands.Upload) -> None:
        self.log.append(f"{action.host.address} upload {action.remote}")

    async def stream(self, action: commands.Exec) -> AsyncIterator[str]:
        yield ""

    async def close(self) -> None:
        pass


def spec(tmp_path: Path, revision: int, max_failed_hosts: int = 0) -> InstanceSpec:
    (tmp_path / "src").mkdir(exist_ok=True)
    return InstanceSpec(
        app="shop",
        env="prod",
        revision=revision,
        command=["app", "{port}"],
        cwd=str(tmp_path / "src"),
        env_vars={},
        stop_grace_period=1.0,
        backoff_initial=0.1,
        backoff_max=1.0,
        crash_loop_restarts=3,
        crash_loop_window=60.0,
        log_max_bytes=1024,
        log_backups=1,
        readiness=ProbeConfig("/", 1.0, 1.0, 3, 1, 0.0),
        target=HostsTarget(HOSTS, "/srv/baepo", max_failed_hosts, str(tmp_path / "src")),
    )


def test_replicas_spread_and_each_host_gets_the_release_once(tmp_path: Path) -> None:
    runner = FakeRunner()
    platform = HostsPlatform(tmp_path / "state", runner=runner)

    async def scenario() -> None:
        first = [await platform.start_instance(spec(tmp_path, 1)) for _ in range(3)]
        assert [i.host for i in first] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        # A new revision spreads by its own instances first, whatever the old ones are.
        second = [await platform.start_instance(spec(tmp_path, 2)) for _ in range(4)]
        assert [i.host for i in second] == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"]
        listed = await platform.list_instances("shop", "prod")
        assert {i.id for i in listed} == {i.id for i in first + second}
        await platform.stop_instance(first[0].id)
        listed = await platform.list_instances("shop", "prod")  # not a stale report
        assert first[0].id not in {i.id for i in listed}
        await platform.close()

    asyncio.run(scenario())
    uploads = [line for line in runner.log if "upload" in line]
    assert len(uploads) == 3 + 6  # the agent once per host, each revision once per host


def test_unreachable_hosts_beyond_max_failed_hosts_fail_the_start(tmp_path: Path) -> None:
    runner = FakeRunner(down={"10.0.0.2"})
    platform = HostsPlatform(tmp_path / "state", runner=runner)

    async def scenario() -> None:
        with pytest.raises(ExternalError, match="max_failed_hosts is 0"):
            await platform.start_instance(spec(tmp_path, 1))
        placed = [await platform.start_instance(spec(tmp_path, 1, 1)) for _ in range(2)]
        assert [i.host for i in placed] == ["10.0.0.1", "10.0.0.3"]
        assert len(await platform.list_instances("shop", "prod")) == 2

    asyncio.run(scenario())


def test_a_listing_right_after_a_start_sees_the_instance(tmp_path: Path) -> None:
    runner = FakeRunner()
    platform = HostsPlatform(tmp_path / "state", runner=runner)

    async def scenario() -> None:
        assert await platform.list_instances("shop", "prod") == []  # never placed: no SSH
        assert runner.log == []
        await platform.start_instance(spec(tmp_path, 1))
        assert len(await platform.list_instances("shop", "prod")) == 1
        asked = len(runner.log)
        assert len(await platform.list_instances("shop", "prod")) == 1  # a fresh report reused
        assert len(runner.log) == asked
        await platform.start_instance(spec(tmp_path, 1))
        assert len(await platform.list_instances("shop", "prod")) == 2  # never a stale one

    asyncio.run(scenario())


def test_a_host_that_refused_a_release_is_passed_over_while_others_can_take_it(
    tmp_path: Path,
) -> None:
    """A host that answers but fails the start (its build, its agent) is not picked again by
    the least-busy rule for ``BUILD_RETRY``: replacements go to the hosts that work."""
    runner = FakeRunner()
    refuse = {"10.0.0.1"}
    real_run = runner.run

    async def run(action: commands.Exec) -> Result:
        if action.host.address in refuse and "start" in action.argv:
            return Result(1, "", "no space left on device")
        return await real_run(action)

    runner.run = run  # type: ignore[method-assign]
    platform = HostsPlatform(tmp_path / "state", runner=runner)

    async def scenario() -> None:
        with pytest.raises(ExternalError, match="no space left"):
            await platform.start_instance(spec(tmp_path, 1))  # the least busy: 10.0.0.1
        placed = [await platform.start_instance(spec(tmp_path, 1)) for _ in range(3)]
        assert [i.host for i in placed] == ["10.0.0.2", "10.0.0.3", "10.0.0.2"]
        # Another revision is not held against the host.
        refuse.clear()
        other = await platform.start_instance(spec(tmp_path, 2))
        assert other.host == "10.0.0.1"
        # Once every host refused, the least busy is tried again rather than nothing.
        refuse.update({"10.0.0.1", "10.0.0.2", "10.0.0.3"})
        for _ in range(4):
            with pytest.raises(ExternalError, match="no space left"):
                await platform.start_instance(spec(tmp_path, 3))
        refuse.clear()
        again = await platform.start_instance(spec(tmp_path, 3))
        assert again.host in {"10.0.0.1", "10.0.0.2", "10.0.0.3"}

    asyncio.run(scenario())
