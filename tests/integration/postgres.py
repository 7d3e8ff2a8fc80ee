"""A throwaway PostgreSQL cluster for integration tests.

Callers: store tests (and any other test needing PostgreSQL) use ``postgres_server()`` from a
session-scoped fixture, then ``server.create_database()`` for a fresh empty database per test.
The cluster lives in a temp dir, listens on a free loopback port with its unix socket in the
same dir, runs as the ``postgres`` user when the tests run as root, and is stopped and removed
at the end. When PostgreSQL is not installed the test is skipped, or fails when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

MISSING = "postgresql is not installed: run make test (it installs it)"
SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """The newest Debian PostgreSQL bin dir holding initdb and pg_ctl, else from PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for bindir in reversed(candidates):
        if (Path(bindir) / "initdb").exists() and (Path(bindir) / "pg_ctl").exists():
            return Path(bindir)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def require_bindir() -> Path:
    """The PostgreSQL bin dir; skips the test (fails it under ``CI=true``) when missing."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING)
        pytest.skip(MISSING)
    return bindir


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running cluster: ``url`` is its ``postgres`` database (trust auth, no password)."""

    bindir: Path
    root: Path
    port: int
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url_of(self, database: str) -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_of("postgres")

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one SQL command outside a transaction (e.g. CREATE DATABASE)."""
        conninfo = f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as connection:
            connection.execute(sql.encode())

    def create_database(self, prefix: str = "test") -> str:
        """A new empty database; returns its URL."""
        name = f"{prefix}_{next(self._names)}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url_of(name)


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", SUPERUSER, "--", *argv]
    return argv


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(
        _as_postgres(argv), capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stdout}{done.stderr}")


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a throwaway cluster, yield it, then stop it and remove its files."""
    bindir = require_bindir()
    root = Path(tempfile.mkdtemp(prefix="baepo-pg-"))
    server = PostgresServer(bindir=bindir, root=root, port=free_port())
    try:
        if os.geteuid() == 0:
            shutil.chown(root, user=SUPERUSER)
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(server.data),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            "initdb",
        )
        options = (
            f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=100"
        )
        _run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(server.data),
                "-o",
                options,
                "-l",
                str(root / "postgres.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            "pg_ctl start",
        )
        try:
            yield server
        finally:
            _run(
                [str(bindir / "pg_ctl"), "-D", str(server.data), "-m", "immediate", "-w", "stop"],
                "pg_ctl stop",
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
