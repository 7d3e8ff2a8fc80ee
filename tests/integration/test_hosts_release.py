"""``target.release`` on the namespace fleet: an archive uploaded and unpacked on each host, a
URL each host downloads from an HTTP server on the fleet's bridge (checked against its
SHA-256, refused when it differs), and a build command run once per host before the app
starts, whose output the app then serves (or whose failure fails the start)."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import io
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fleet import PYTHON, Fleet, fleet
from harness import SAMPLE

from baepo.core.model import Instance
from baepo.core.ports import HostConfig, HostsRelease, HostsTarget, InstanceSpec, ProbeConfig
from baepo.errors import ExternalError
from baepo.platforms.hosts import commands
from baepo.platforms.hosts.platform import HostsPlatform

__all__ = ["fleet"]

# The build writes the app's config file; the app answers with the version it names. It
# notes each run, and whether it saw the instances' secret (it must not).
BUILD = (
    PYTHON,
    "-c",
    "import json, os; json.dump({'version': 'built-' + os.environ['BAEPO_REVISION']}, "
    "open('config.json', 'w')); secret = 'SAMPLE_SECRET' in os.environ; "
    "open('builds.txt', 'a').write('built' + (' with the secret' if secret else '') + '\\n')",
)


def release_tgz() -> bytes:
    """The sample app in a folder ``shop/`` (as a release archive from CI would hold it)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(SAMPLE, arcname="shop/app.py")
    return buffer.getvalue()


def instance_spec(fleet: Fleet, app: str, release: HostsRelease, tmp: Path) -> InstanceSpec:
    hosts = tuple(
        HostConfig(a, key=str(fleet.key), known_hosts=str(fleet.known_hosts), python=PYTHON)
        for a in fleet.addresses
    )
    command = [PYTHON, "app.py", "--host", "0.0.0.0", "--port", "{port}"]
    if release.build:
        command += ["--config", "config.json"]
    return InstanceSpec(
        app=app,
        env="prod",
        revision=1,
        command=command,
        cwd=str(tmp),
        env_vars={"BAEPO_REVISION": "1"} if release.build else {"SAMPLE_VERSION": "v1"},
        stop_grace_period=5.0,
        backoff_initial=0.1,
        backoff_max=1.0,
        crash_loop_restarts=3,
        crash_loop_window=30.0,
        log_max_bytes=1 << 20,
        log_backups=1,
        readiness=ProbeConfig("/health/ready", 0.2, 1.0, 2, 1, 0.0),
        secret_env={"SAMPLE_SECRET": "s3cret-value"},
        target=HostsTarget(hosts, "/srv/baepo", 0, str(tmp), workdir="shop", release=release),
    )


class Served:
    """An HTTP server on the fleet's bridge address (reachable from every host) serving one
    file; it counts the downloads."""

    def __init__(self, address: str, data: bytes) -> None:
        self.downloads = 0
        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/shop.tgz":
                    self.send_error(404)
                    return
                served.downloads += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((address, 0), Handler)
        self.url = f"http://{address}:{self.server.server_address[1]}/shop.tgz"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def served(fleet: Fleet) -> Iterator[tuple[Served, bytes]]:
    data = release_tgz()
    server = Served(fleet.gateway, data)
    yield server, data
    server.close()


async def ready_instances(platform: HostsPlatform, app: str, count: int) -> list[Instance]:
    deadline = time.monotonic() + 60
    found: list[Instance] = []
    while time.monotonic() < deadline:
        found = await platform.list_instances(app, "prod")
        if len(found) == count and all(i.ready for i in found):
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {count} ready instances of {app}: {found}")


async def versions(instances: list[Instance]) -> list[str]:
    async with httpx.AsyncClient(trust_env=False) as client:
        answers = [await client.get(f"http://{i.address}/", timeout=5) for i in instances]
    return [answer.json()["version"] for answer in answers]


def test_an_archive_release_is_unpacked_on_every_host(fleet: Fleet, tmp_path: Path) -> None:
    (tmp_path / "dist").mkdir()
    archive = tmp_path / "dist" / "shop-1.tgz"
    archive.write_bytes(release_tgz())
    spec = instance_spec(fleet, "archived", HostsRelease(archive=str(archive)), tmp_path)
    platform = HostsPlatform(tmp_path / "state")

    async def scenario() -> None:
        started = [await platform.start_instance(spec) for _ in range(3)]
        assert sorted(i.host for i in started) == sorted(fleet.addresses)
        ready = await ready_instances(platform, "archived", 3)
        assert await versions(ready) == ["v1"] * 3
        host = HostConfig(fleet.addresses[0], key=str(fleet.key))
        listing = await platform.runner.run(
            commands.Exec(
                host, ("ls", "-A", "/srv/baepo/archived/prod", "/srv/baepo/archived/prod/r1")
            )
        )
        assert "r1.tgz" not in listing.stdout  # the uploaded archive is removed once unpacked
        assert "shop" in listing.stdout
        await asyncio.gather(*(platform.stop_instance(i.id, grace=2) for i in started))
        await platform.close()

    asyncio.run(scenario())


def test_a_url_release_is_fetched_once_by_each_host_and_built_before_it_starts(
    fleet: Fleet, tmp_path: Path, served: tuple[Served, bytes]
) -> None:
    server, data = served
    release = HostsRelease(
        url=server.url, sha256=hashlib.sha256(data).hexdigest(), build=BUILD, build_timeout=60
    )
    spec = instance_spec(fleet, "fetched", release, tmp_path)
    platform = HostsPlatform(tmp_path / "state")

    async def scenario() -> None:
        started = [await platform.start_instance(spec) for _ in range(3)]
        # A new controller process ships again: the release folders are there and built.
        again = HostsPlatform(tmp_path / "state")
        started.append(await again.start_instance(spec))
        assert server.downloads == 3
        ready = await ready_instances(platform, "fetched", 4)
        assert await versions(ready) == ["built-1"] * 4
        for address in fleet.addresses:
            host = HostConfig(address, key=str(fleet.key))
            builds = await platform.runner.run(
                commands.Exec(host, ("cat", "/srv/baepo/fetched/prod/r1/shop/builds.txt"))
            )
            assert builds.stdout == "built\n", address  # once per host, before any start
        await asyncio.gather(*(platform.stop_instance(i.id, grace=2) for i in started))
        await again.close()
        await platform.close()

    asyncio.run(scenario())


def test_a_download_with_another_sha256_is_refused(
    fleet: Fleet, tmp_path: Path, served: tuple[Served, bytes]
) -> None:
    server, data = served
    wrong = "0" * 64
    spec = instance_spec(fleet, "badsum", HostsRelease(url=server.url, sha256=wrong), tmp_path)
    platform = HostsPlatform(tmp_path / "state")

    async def scenario() -> None:
        with pytest.raises(ExternalError) as refused:
            await platform.start_instance(spec)
        message = str(refused.value)
        assert message.startswith("root@10.213.")  # the host that refused it
        assert hashlib.sha256(data).hexdigest() in message and wrong in message
        assert await platform.list_instances("badsum", "prod") == []
        await platform.close()

    asyncio.run(scenario())


def test_a_failing_build_fails_the_start_with_its_last_lines(fleet: Fleet, tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "app.py").write_bytes(SAMPLE.read_bytes())
    failing = (PYTHON, "-c", "print('compiling shop'); raise SystemExit(2)")
    release = HostsRelease(build=failing, build_timeout=30)
    spec = instance_spec(fleet, "badbuild", release, tmp_path)
    platform = HostsPlatform(tmp_path / "state")

    async def scenario() -> None:
        with pytest.raises(ExternalError) as failed:
            await platform.start_instance(spec)
        message = str(failed.value)
        assert "the build of r1 failed" in message and "exited with 2" in message
        assert "compiling shop" in message
        with pytest.raises(ExternalError, match="the build of r1 failed"):
            await platform.start_instance(spec)  # not built again at once: the same error
        assert await platform.list_instances("badbuild", "prod") == []
        await platform.close()

    asyncio.run(scenario())
