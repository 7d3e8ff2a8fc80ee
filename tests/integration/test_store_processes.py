"""Several processes opening the same new database at once: migrations must not collide."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import postgres
import pytest

from baepo import store

PROCESSES = 3

CHILD = """
import sys, time
from datetime import UTC, datetime
from pathlib import Path
from baepo import store
from baepo.core.model import Revision

url, flags, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
(flags / f"ready-{name}").touch()
while not (flags / "go").exists():
    time.sleep(0.005)
with store.open_store(url) as db:
    now = datetime.now(UTC)
    added = db.add_revision(Revision("shop", "prod", 0, name, {}, "h", "/", name, now))
    print(added.number)
"""


@pytest.fixture(scope="module")
def pg_server() -> Iterator[postgres.PostgresServer]:
    with postgres.postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return store.sqlite_url(tmp_path / "state" / "baepo.db")
    server: postgres.PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database()


def test_processes_open_a_new_database_at_once(url: str, tmp_path: Path) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(flags), f"p{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    deadline = time.monotonic() + 30
    while len(list(flags.glob("ready-*"))) < PROCESSES and time.monotonic() < deadline:
        time.sleep(0.01)
    (flags / "go").touch()
    outputs = [child.communicate(timeout=60) for child in children]
    for child, (_out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
    numbers = sorted(int(out.strip()) for out, _err in outputs)
    assert numbers == list(range(1, PROCESSES + 1))
    assert store.schema_revision(url) == store.head_revision()
