"""Fixtures shared by the integration tests: sample projects, stores on SQLite and on one
throwaway PostgreSQL server for the whole session, and an API server without its controller."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import postgres
import pytest
import uvicorn
from fleet import fleet_hosts
from harness import LocalApi, SampleProject

from baepo import store
from baepo.api import local_credential, trusted_hosts
from baepo.api.app import create_app
from baepo.api.runtime import Runtime
from baepo.controller.loop import Controller
from baepo.controller.releases import Releases
from baepo.controller.steering import Steering
from baepo.platforms.local.platform import LocalPlatform
from baepo.routers.builtin.adapter import BuiltinRouter

__all__ = ["fleet_hosts"]  # the fleet, once per session, under the per-test ``fleet`` fixture


@pytest.fixture(scope="session")
def pg_server() -> Iterator[postgres.PostgresServer]:
    with postgres.postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return store.sqlite_url(tmp_path / "baepo.db")
    server: postgres.PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database()


@pytest.fixture
def db(url: str) -> Iterator[store.SqlStore]:
    with store.open_store(url) as opened:
        yield opened


@pytest.fixture
def project(tmp_path: Path) -> Iterator[SampleProject]:
    """A sample-app project in a temporary folder; everything it started is stopped after."""
    p = SampleProject(tmp_path / "app")
    try:
        yield p
    finally:
        p.clean_up()


@pytest.fixture(scope="module")
def local_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    """The real application under uvicorn on a real SQLite store, its controller not started
    (so nothing is deployed), with its local credential: for throwing any input at the API."""
    state: Path = tmp_path_factory.mktemp("api")
    opened = store.open_store(store.sqlite_url(state / "state.db"))
    platform, router = LocalPlatform(state), BuiltinRouter(state)
    controller = Controller(opened, platform, router)
    releases, steering = Releases(opened, lambda: None), Steering(opened, lambda: None)
    runtime = Runtime(state, opened, platform, router, controller, releases, steering)
    runtime.local_token = local_credential.ensure(state)
    runtime.owner = local_credential.owner()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    runtime.hosts = trusted_hosts.names_of("127.0.0.1", sock.getsockname()[1])
    config = uvicorn.Config(create_app(runtime), lifespan="off", log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    headers = {"Authorization": f"Bearer {runtime.local_token}"}
    yield LocalApi(f"http://127.0.0.1:{sock.getsockname()[1]}", headers)
    server.should_exit = True
    thread.join(10)
    sock.close()
    opened.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadgroup``, as ``scripts/check`` runs), the tests on the
    namespace fleet run one after another on one worker: one fleet for the session, and no
    two rollouts across hosts at once on a small machine."""
    for item in items:
        if "fleet" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("fleet"))
