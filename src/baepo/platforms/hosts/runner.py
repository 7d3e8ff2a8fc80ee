"""Runs the hosts platform's actions: SSH commands and SFTP uploads over pooled connections.

``Runner`` is the port (a fake runs in unit tests); ``SSHRunner`` keeps one asyncssh connection
per host and opens it again once when it was lost (SSH keepalives notice a dead one within
seconds). Every failure becomes an ``ExternalError`` naming the host; no asyncssh exception escapes.
Callers: ``platform.HostsPlatform``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import asyncssh

from baepo.core.ports import HostConfig
from baepo.errors import ExternalError
from baepo.platforms.hosts.commands import Exec, Upload, where

CONNECT_TIMEOUT = 5.0
# A connection whose host stopped answering (its link went down) is closed after
# KEEPALIVE_INTERVAL * KEEPALIVE_COUNT seconds without an answer to SSH keepalives, which
# the host's sshd answers even when busy, so commands on it fail instead of hanging.
KEEPALIVE_INTERVAL = 2.0
KEEPALIVE_COUNT = 3
CHANNELS = 6  # commands at once per host connection
HostKey = tuple[str, int, str, str | None, str | None]


@dataclass(frozen=True)
class Result:
    exit_code: int
    stdout: str
    stderr: str


class Runner(Protocol):
    """Runs actions on hosts. Each call opens (or reuses) the host's connection."""

    async def run(self, action: Exec) -> Result:
        """Run the command; its exit code is returned, not raised. ExternalError when the
        host cannot be reached or the command outlives ``action.timeout``."""
        ...

    async def upload(self, action: Upload) -> None:
        """Write the file (replacing it). Idempotent. ExternalError on failure."""
        ...

    def stream(self, action: Exec) -> AsyncIterator[str]:
        """The command's output lines as they come, until the caller stops iterating."""
        ...

    async def close(self) -> None:
        """Close every connection. Idempotent."""
        ...


def _key(host: HostConfig) -> HostKey:
    return (host.address, host.port, host.user, host.key, host.known_hosts)


class SSHRunner:
    """The ``Runner`` over asyncssh: one connection per host, opened on first use.

    At most ``CHANNELS`` commands and uploads run at once on a host's connection (OpenSSH
    allows 10 sessions per connection by default; followers of logs use the rest). A lost
    connection is opened again once, by whichever command noticed first.
    Host keys are checked against the host's ``known_hosts`` file when it names one.
    """

    def __init__(self) -> None:
        self._connections: dict[HostKey, asyncssh.SSHClientConnection] = {}
        self._locks: dict[HostKey, asyncio.Lock] = {}
        self._slots: dict[HostKey, asyncio.Semaphore] = {}

    async def _connect(
        self, host: HostConfig, *, broken: asyncssh.SSHClientConnection | None = None
    ) -> asyncssh.SSHClientConnection:
        """The host's pooled connection; a new one if there is none, or it is ``broken``."""
        key = _key(host)
        async with self._locks.setdefault(key, asyncio.Lock()):
            conn = self._connections.get(key)
            if conn is not None and conn is not broken and not conn.is_closed():
                return conn
            if conn is not None:
                conn.close()
            keys = [os.path.expanduser(host.key)] if host.key else ()
            try:
                conn = await asyncio.wait_for(
                    asyncssh.connect(
                        host.address,
                        port=host.port,
                        username=host.user,
                        client_keys=keys or (),
                        known_hosts=(
                            os.path.expanduser(host.known_hosts) if host.known_hosts else None
                        ),
                        keepalive_interval=KEEPALIVE_INTERVAL,
                        keepalive_count_max=KEEPALIVE_COUNT,
                        connect_timeout=CONNECT_TIMEOUT,
                    ),
                    CONNECT_TIMEOUT,
                )
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                raise ExternalError(f"cannot connect to {where(host)}: {exc}") from exc
            self._connections[key] = conn
            return conn

    def _slot(self, host: HostConfig) -> asyncio.Semaphore:
        return self._slots.setdefault(_key(host), asyncio.Semaphore(CHANNELS))

    async def run(self, action: Exec) -> Result:
        broken: asyncssh.SSHClientConnection | None = None
        async with self._slot(action.host):
            for _attempt in range(2):
                conn = await self._connect(action.host, broken=broken)
                try:
                    done = await conn.run(
                        action.command,
                        input=action.stdin,
                        check=False,
                        timeout=action.timeout or None,
                    )
                except (asyncssh.ConnectionLost, asyncssh.DisconnectError):
                    broken = conn
                    continue
                except asyncssh.TimeoutError as exc:
                    raise ExternalError(
                        f"{where(action.host)}: `{action.command}` timed out"
                    ) from exc
                except (OSError, asyncssh.Error) as exc:
                    raise ExternalError(f"{where(action.host)}: {exc}") from exc
                status = done.exit_status
                code = status if status is not None else -(done.returncode or 1)
                return Result(code, str(done.stdout or ""), str(done.stderr or ""))
        raise ExternalError(f"{where(action.host)}: the connection was lost")

    async def upload(self, action: Upload) -> None:
        broken: asyncssh.SSHClientConnection | None = None
        async with self._slot(action.host):
            for _attempt in range(2):
                conn = await self._connect(action.host, broken=broken)
                try:
                    async with conn.start_sftp_client() as sftp:
                        tmp = f"{action.remote}.{os.getpid()}.part"
                        async with sftp.open(tmp, "wb") as handle:
                            await handle.write(action.data)
                        await sftp.posix_rename(tmp, action.remote)
                    return
                except (asyncssh.ConnectionLost, asyncssh.DisconnectError):
                    broken = conn
                except (OSError, asyncssh.Error) as exc:
                    raise ExternalError(
                        f"{where(action.host)}: cannot upload {action.remote}: {exc}"
                    ) from exc
        raise ExternalError(f"{where(action.host)}: the connection was lost")

    async def stream(self, action: Exec) -> AsyncIterator[str]:
        conn = await self._connect(action.host)
        try:
            proc = await conn.create_process(action.command)
        except (OSError, asyncssh.Error) as exc:
            raise ExternalError(f"{where(action.host)}: {exc}") from exc
        try:
            async for line in proc.stdout:
                if text := str(line).rstrip("\n"):  # blank lines are the agent's heartbeats
                    yield text
        except (OSError, asyncssh.Error) as exc:
            raise ExternalError(f"{where(action.host)}: {exc}") from exc
        finally:
            proc.close()  # the remote side ends on its next write; waiting could block

    async def close(self) -> None:
        connections = list(self._connections.values())
        self._connections.clear()
        for conn in connections:
            conn.close()
        for conn in connections:
            await conn.wait_closed()
